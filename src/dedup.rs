//! Edge de-duplication, the pure part: delivery identity, slot choice, entry encoding and the
//! duplicate / record decisions. The filter keeps the table in proxy-wasm shared data (one value
//! per slot, written with compare-and-swap) so that every Envoy worker sees it.
//!
//! - Identity: SHA-1 over the route, the method and path with query, the scheme, the signature
//!   (as sent) and SHA-1 of the body.
//!   Only this 20-byte hash is stored; never the signature or the body.
//! - Table: `max_entries` fixed slots, `slot = identity mod max_entries`; a slot holds one
//!   (identity, expiry) pair and is overwritten when another delivery needs it. Memory is bounded
//!   by `max_entries` (shared data has no delete or iteration); an overwritten (evicted) entry only
//!   means a later duplicate is forwarded to the backend again: the safe direction.
//! - A delivery is recorded only after the backend answered 2xx, so a delivery whose earlier
//!   copy failed is always forwarded: no notification is ever lost.

pub mod etcd;

use sha1::{Digest, Sha1};

use crate::metrics::METRIC_PREFIX;
use crate::verdict::Scheme;

/// Bounds and default of the de-duplication settings (`dedup` sections).
pub const MAX_DEDUP_WINDOW_SECONDS: u64 = 7 * 24 * 3600;
pub const MAX_DEDUP_ENTRIES: u64 = 1_000_000;
pub const DEFAULT_DEDUP_ENTRIES: u64 = 10_000;
/// Table of the top-level `dedup` setting (a route's own setting uses `route.<name>`).
pub const GLOBAL_TABLE: &str = "global";

/// Edge de-duplication of verified deliveries that the backend already answered 2xx (a `dedup`
/// section, compiled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dedup {
    /// How long a recorded delivery is answered locally, in milliseconds.
    pub window_ms: u64,
    /// Number of slots of the table (the memory bound).
    pub max_entries: u32,
    /// Namespace of the table in proxy-wasm shared data: `global` for the top-level setting,
    /// `route.<name>` for a route's own setting.
    pub table: String,
    /// The fleet-wide store (`store`), if any: see [`etcd`].
    pub store: Option<etcd::EtcdStore>,
}

/// Size of an encoded entry: identity (20 bytes) + expiry (u64 big-endian, epoch ms).
pub const ENTRY_LEN: usize = 28;

/// The hash identifying one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity(pub [u8; 20]);

impl Identity {
    /// Hash of (route, `METHOD path?query`, scheme, signature material, SHA-1(body)), each
    /// length-prefixed: a copy sent to another path or query of the same route is another
    /// delivery (it cannot poison the record of the real one).
    pub fn new(route: &str, target: &[u8], scheme: Scheme, signature: &[u8], body: &[u8]) -> Self {
        let body_digest = Sha1::digest(body);
        let mut h = Sha1::new();
        h.update(b"lf-webhook-guard dedup v2\0");
        for part in [
            route.as_bytes(),
            target,
            scheme.name().as_bytes(),
            signature,
            body_digest.as_slice(),
        ] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        Identity(h.finalize().into())
    }

    /// The slot of this identity in a table of `max_entries` slots.
    pub fn slot(&self, max_entries: u32) -> u32 {
        let mut first = [0u8; 8];
        first.copy_from_slice(self.0.get(..8).unwrap_or(&[0; 8]));
        let n = u64::from_be_bytes(first) % u64::from(max_entries.max(1));
        u32::try_from(n).unwrap_or(0)
    }

    /// A short, non-reversible tag for log lines (first 8 bytes of the hash, hex).
    pub fn short(&self) -> String {
        self.0.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

/// The proxy-wasm shared-data key of a slot: `lf_webhook_guard.dedup.<table>.<slot>`.
pub fn shared_key(table: &str, slot: u32) -> String {
    format!("{METRIC_PREFIX}.dedup.{table}.{slot}")
}

/// A slot's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub identity: Identity,
    pub expires_ms: u64,
}

impl Entry {
    pub fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut out = [0u8; ENTRY_LEN];
        for (dst, src) in out.iter_mut().zip(
            self.identity
                .0
                .iter()
                .chain(self.expires_ms.to_be_bytes().iter()),
        ) {
            *dst = *src;
        }
        out
    }

    /// `None` for an empty slot or anything that is not an entry (e.g. another version's data).
    pub fn decode(raw: &[u8]) -> Option<Entry> {
        if raw.len() != ENTRY_LEN {
            return None;
        }
        let mut id = [0u8; 20];
        id.copy_from_slice(raw.get(..20)?);
        let mut exp = [0u8; 8];
        exp.copy_from_slice(raw.get(20..)?);
        Some(Entry {
            identity: Identity(id),
            expires_ms: u64::from_be_bytes(exp),
        })
    }

    fn live(&self, now_ms: u64) -> bool {
        now_ms < self.expires_ms
    }
}

/// Whether a delivery is a recorded duplicate: the slot holds the same identity, unexpired.
pub fn is_duplicate(stored: Option<&[u8]>, identity: &Identity, now_ms: u64) -> bool {
    stored
        .and_then(Entry::decode)
        .is_some_and(|e| e.identity == *identity && e.live(now_ms))
}

/// What to write into the slot to record a delivery answered 2xx at `now_ms`, and whether that
/// evicts another, still live delivery (a sign that `max_entries` is too small).
pub fn record(
    stored: Option<&[u8]>,
    identity: &Identity,
    now_ms: u64,
    window_ms: u64,
) -> ([u8; ENTRY_LEN], bool) {
    let evicts = stored
        .and_then(Entry::decode)
        .is_some_and(|e| e.identity != *identity && e.live(now_ms));
    let entry = Entry {
        identity: *identity,
        expires_ms: now_ms.saturating_add(window_ms),
    };
    (entry.encode(), evicts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(sig: &[u8], body: &[u8]) -> Identity {
        Identity::new("lf", b"POST /lf/x", Scheme::Md5, sig, body)
    }

    #[test]
    fn identity_covers_every_part() {
        let base = id(b"sig", b"{}");
        assert_eq!(base, id(b"sig", b"{}"));
        assert_ne!(base, id(b"sig2", b"{}"));
        assert_ne!(base, id(b"sig", b"{ }"));
        assert_ne!(
            base,
            Identity::new("other", b"POST /lf/x", Scheme::Md5, b"sig", b"{}")
        );
        assert_ne!(
            base,
            Identity::new("lf", b"POST /lf/x", Scheme::Cube, b"sig", b"{}")
        );
        assert_ne!(
            base,
            Identity::new("lf", b"POST /lf/x?dry_run=1", Scheme::Md5, b"sig", b"{}")
        );
        // length prefixes: moving bytes between parts changes the identity
        assert_ne!(
            Identity::new("ab", b"", Scheme::Md5, b"c", b""),
            Identity::new("a", b"", Scheme::Md5, b"bc", b"")
        );
        // the hash does not contain the signature
        let sig = b"YjExZmMwNTdiZGVmNGMzZjUzYTVhMjExZWExODI4ODY=";
        let enc = Entry {
            identity: id(sig, b"{}"),
            expires_ms: 1,
        }
        .encode();
        assert!(!enc.windows(8).any(|w| sig.windows(8).any(|s| s == w)));
        assert_eq!(base.short().len(), 16);
    }

    #[test]
    fn slots_stay_in_range_and_spread() {
        let mut used = [0u32; 16];
        for i in 0..1600u32 {
            let s = id(&i.to_be_bytes(), b"{}").slot(16);
            assert!(s < 16);
            used[s as usize] += 1;
        }
        assert!(used.iter().all(|&n| n > 50), "{used:?}");
        assert_eq!(id(b"x", b"y").slot(1), 0);
        assert_eq!(id(b"x", b"y").slot(0), 0);
        assert_eq!(shared_key("global", 7), "lf_webhook_guard.dedup.global.7");
    }

    #[test]
    fn entry_roundtrip_and_junk() {
        let e = Entry {
            identity: id(b"s", b"b"),
            expires_ms: 1_700_000_000_123,
        };
        assert_eq!(Entry::decode(&e.encode()), Some(e));
        assert_eq!(Entry::decode(b""), None);
        assert_eq!(Entry::decode(&[0u8; 27]), None);
        assert_eq!(Entry::decode(&[0u8; 29]), None);
    }

    #[test]
    fn duplicate_only_within_window_and_same_identity() {
        let a = id(b"a", b"{}");
        let b = id(b"b", b"{}");
        assert!(!is_duplicate(None, &a, 1000));
        let (stored, evicts) = record(None, &a, 1000, 2000);
        assert!(!evicts);
        assert!(is_duplicate(Some(&stored), &a, 1000));
        assert!(is_duplicate(Some(&stored), &a, 2999));
        assert!(
            !is_duplicate(Some(&stored), &a, 3000),
            "expired at the window's end"
        );
        assert!(!is_duplicate(Some(&stored), &b, 1500));
        assert!(!is_duplicate(Some(b"junk"), &a, 1500));
    }

    #[test]
    fn recording_over_a_live_other_entry_is_an_eviction() {
        let a = id(b"a", b"{}");
        let b = id(b"b", b"{}");
        let (stored, _) = record(None, &a, 1000, 2000);
        let (over, evicts) = record(Some(&stored), &b, 1500, 2000);
        assert!(evicts);
        assert!(!is_duplicate(Some(&over), &a, 1500), "a was evicted");
        assert!(is_duplicate(Some(&over), &b, 1500));
        // same identity again: a refresh, not an eviction
        let (_, evicts) = record(Some(&stored), &a, 1500, 2000);
        assert!(!evicts);
        // expired other entry: not an eviction
        let (_, evicts) = record(Some(&stored), &b, 5000, 2000);
        assert!(!evicts);
    }
}
