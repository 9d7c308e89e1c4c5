//! The filter's Envoy counters: every name, decided once from the configuration, and the mapping
//! from an outcome to its counter. Pure Rust; the filter defines one proxy-wasm counter per name
//! at configure time and keeps the ids in the same order.
//!
//! Names (Envoy shows them as `wasmcustom.<name>` in `/stats`; see docs/reference.md, "Metrics"):
//!
//! | name | counts |
//! |---|---|
//! | `lf_webhook_guard.requests_total` | requests on a protected route |
//! | `lf_webhook_guard.verified.scheme=<s>.key=<id>` | signature verified (incl. duplicates) |
//! | `lf_webhook_guard.unsigned_allowed` | unsigned requests forwarded on `allow_unsigned` routes |
//! | `lf_webhook_guard.rejected.reason=<category>` | answered locally (enforce mode) |
//! | `lf_webhook_guard.shadow_failed.reason=<category>` | failed but forwarded (shadow mode) |
//! | `lf_webhook_guard.duplicates_answered` | verified duplicates answered locally |
//! | `lf_webhook_guard.dedup_recorded` | deliveries recorded after a 2xx |
//! | `lf_webhook_guard.dedup_evictions` | live entries overwritten by another delivery |
//! | `lf_webhook_guard.dedup_store_hits` | duplicates found in the fleet store (etcd), not locally |
//! | `lf_webhook_guard.dedup_store_recorded` | deliveries inserted into the fleet store |
//! | `lf_webhook_guard.dedup_store_errors` | fleet store calls that failed (not a timeout) |
//! | `lf_webhook_guard.dedup_store_timeouts` | fleet store calls that timed out |
//! | `lf_webhook_guard.config_failures` | `on_configure` failures |

use crate::keys::Key;
use crate::verdict::{Reason, Scheme};

/// First segment of every metric name the filter defines (and of its shared-data keys,
/// [`crate::dedup::shared_key`]). Spelled here and nowhere else.
pub const METRIC_PREFIX: &str = "lf_webhook_guard";

/// Counted (before the configuration is parsed) each time `on_configure` fails.
pub const CONFIG_FAILURES: &str = "lf_webhook_guard.config_failures";

/// Envoy counter of requests rejected (answered locally) for this reason:
/// `lf_webhook_guard.rejected.reason=<category>` (`wasmcustom.` prefix in `/stats`).
pub fn rejected_name(reason: Reason) -> String {
    format!("{METRIC_PREFIX}.rejected.reason={}", reason.category())
}

/// Envoy counter of requests that failed for this reason on a `shadow` route and were
/// forwarded anyway: `lf_webhook_guard.shadow_failed.reason=<category>`.
pub fn shadow_failed_name(reason: Reason) -> String {
    format!("{METRIC_PREFIX}.shadow_failed.reason={}", reason.category())
}

/// One countable outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// A request matched a protected route.
    Requests,
    /// Verified with `scheme` by the key at index `key` of [`crate::Config::keys`].
    Verified { scheme: Scheme, key: usize },
    /// An unsigned request forwarded on an `allow_unsigned` route.
    UnsignedAllowed,
    /// Answered locally (enforce mode).
    Rejected(Reason),
    /// Failed verification on a shadow route, forwarded anyway.
    ShadowFailed(Reason),
    /// A verified duplicate answered locally by de-duplication.
    DuplicatesAnswered,
    /// A delivery recorded after the backend answered 2xx.
    DedupRecorded,
    /// Recording a delivery overwrote another, still live entry (capacity too small).
    DedupEvictions,
    /// A duplicate found in the fleet store (not in this replica's table).
    DedupStoreHits,
    /// A delivery inserted into the fleet store.
    DedupStoreRecorded,
    /// A fleet store call failed (unreachable, etcd error, malformed answer).
    DedupStoreErrors,
    /// A fleet store call timed out.
    DedupStoreTimeouts,
}

const FIXED: [(Metric, &str); 9] = [
    (Metric::Requests, "requests_total"),
    (Metric::UnsignedAllowed, "unsigned_allowed"),
    (Metric::DuplicatesAnswered, "duplicates_answered"),
    (Metric::DedupRecorded, "dedup_recorded"),
    (Metric::DedupEvictions, "dedup_evictions"),
    (Metric::DedupStoreHits, "dedup_store_hits"),
    (Metric::DedupStoreRecorded, "dedup_store_recorded"),
    (Metric::DedupStoreErrors, "dedup_store_errors"),
    (Metric::DedupStoreTimeouts, "dedup_store_timeouts"),
];

/// Every counter name for one configuration, and where each [`Metric`] lives in that list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricTable {
    names: Vec<String>,
    /// Per key index: the slot of its md5 and cube `verified` counters (if it has that scheme).
    verified: Vec<[Option<usize>; 2]>,
}

const fn scheme_slot(scheme: Scheme) -> usize {
    match scheme {
        Scheme::Md5 => 0,
        Scheme::Cube => 1,
    }
}

impl MetricTable {
    /// All names for a configuration's `keys`: the fixed counters, one `rejected` and one
    /// `shadow_failed` per [`Reason::ALL`], and one `verified` per (key, scheme the key can
    /// verify). Key ids are public and bounded by the configuration.
    pub fn new(keys: &[Key]) -> Self {
        let mut names: Vec<String> = FIXED
            .iter()
            .map(|(_, n)| format!("{METRIC_PREFIX}.{n}"))
            .collect();
        names.extend(Reason::ALL.iter().map(|&r| rejected_name(r)));
        names.extend(Reason::ALL.iter().map(|&r| shadow_failed_name(r)));
        let mut verified = Vec::with_capacity(keys.len());
        for key in keys {
            let mut slots = [None, None];
            for (scheme, enabled) in [(Scheme::Md5, key.md5), (Scheme::Cube, key.cube)] {
                if enabled {
                    if let Some(slot) = slots.get_mut(scheme_slot(scheme)) {
                        *slot = Some(names.len());
                    }
                    names.push(format!(
                        "{METRIC_PREFIX}.verified.scheme={}.key={}",
                        scheme.name(),
                        key.id
                    ));
                }
            }
            verified.push(slots);
        }
        MetricTable { names, verified }
    }

    /// Every counter name, in definition order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Position of `metric` in [`Self::names`] (`None` for a key/scheme the config cannot verify).
    pub fn index(&self, metric: Metric) -> Option<usize> {
        let reason_pos = |r: Reason| Reason::ALL.iter().position(|x| *x == r);
        match metric {
            Metric::Rejected(r) => reason_pos(r).map(|p| FIXED.len() + p),
            Metric::ShadowFailed(r) => reason_pos(r).map(|p| FIXED.len() + Reason::ALL.len() + p),
            Metric::Verified { scheme, key } => self
                .verified
                .get(key)
                .and_then(|s| s.get(scheme_slot(scheme)).copied().flatten()),
            fixed => FIXED.iter().position(|(m, _)| *m == fixed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    fn config() -> Config {
        Config::from_json(
            br#"{"keys":[{"id":"demo","secret":"a","schemes":["md5"]},
                         {"id":"Ou8a.5-x_","secret":"b"},
                         {"id":"c","secret":"c","schemes":["cube"]}],
                 "routes":[{"path_prefix":"/lf/","scheme":"auto"}]}"#,
            |_| None,
        )
        .unwrap()
    }

    #[test]
    fn metric_names_follow_the_category() {
        assert_eq!(
            rejected_name(Reason::InvalidSignature),
            "lf_webhook_guard.rejected.reason=invalid_signature"
        );
        assert_eq!(
            shadow_failed_name(Reason::StaleNotification),
            "lf_webhook_guard.shadow_failed.reason=stale_notification"
        );
        assert!(CONFIG_FAILURES.starts_with(METRIC_PREFIX));
    }

    #[test]
    fn names_are_complete_distinct_and_prefixed() {
        let t = MetricTable::new(&config().keys);
        let names = t.names();
        // 9 fixed + 2 per reason + md5/demo + both for the second key + cube/c
        assert_eq!(names.len(), 9 + 2 * Reason::ALL.len() + 4);
        let mut sorted = names.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
        for n in names {
            assert!(n.starts_with("lf_webhook_guard."), "{n}");
            assert!(!n.contains(char::is_whitespace));
        }
        assert!(!names.iter().any(|n| n == CONFIG_FAILURES));
    }

    #[test]
    fn every_outcome_maps_to_its_name() {
        let t = MetricTable::new(&config().keys);
        let name = |m| t.names()[t.index(m).unwrap()].as_str();
        assert_eq!(name(Metric::Requests), "lf_webhook_guard.requests_total");
        assert_eq!(
            name(Metric::UnsignedAllowed),
            "lf_webhook_guard.unsigned_allowed"
        );
        assert_eq!(
            name(Metric::DuplicatesAnswered),
            "lf_webhook_guard.duplicates_answered"
        );
        assert_eq!(
            name(Metric::DedupRecorded),
            "lf_webhook_guard.dedup_recorded"
        );
        assert_eq!(
            name(Metric::DedupEvictions),
            "lf_webhook_guard.dedup_evictions"
        );
        for r in Reason::ALL {
            assert_eq!(
                name(Metric::Rejected(r)),
                format!("lf_webhook_guard.rejected.reason={}", r.category())
            );
            assert_eq!(
                name(Metric::ShadowFailed(r)),
                format!("lf_webhook_guard.shadow_failed.reason={}", r.category())
            );
        }
        let v = |scheme, key| Metric::Verified { scheme, key };
        assert_eq!(
            name(v(Scheme::Md5, 0)),
            "lf_webhook_guard.verified.scheme=md5.key=demo"
        );
        assert_eq!(t.index(v(Scheme::Cube, 0)), None);
        assert_eq!(
            name(v(Scheme::Md5, 1)),
            "lf_webhook_guard.verified.scheme=md5.key=Ou8a.5-x_"
        );
        assert_eq!(
            name(v(Scheme::Cube, 1)),
            "lf_webhook_guard.verified.scheme=cube.key=Ou8a.5-x_"
        );
        assert_eq!(t.index(v(Scheme::Md5, 2)), None);
        assert_eq!(
            name(v(Scheme::Cube, 2)),
            "lf_webhook_guard.verified.scheme=cube.key=c"
        );
        assert_eq!(t.index(v(Scheme::Md5, 9)), None);
    }
}
