//! Hold mode's watchdog, the pure part: which requests are held, when each was last heard from,
//! and what an expired hold is answered (408 `request_timeout` or 500 `filter_misconfigured`).
//!
//! Two clocks per held request: `hold_timeout_ms` since the headers or the latest body chunk (a
//! silence), and `hold_deadline_ms` since the headers (a total: a body trickled one byte at a
//! time still ends). Either answers the request.
//!
//! One [`HoldWatch`] per worker is shared by the root context (which calls [`HoldWatch::expire`]
//! on every tick and answers the expired requests through their context ids) and the request
//! state machines of [`crate::flow`] (which register when they pause on headers, refresh their
//! entry on every body chunk and leave at the end of the body, or when they end).

use std::collections::HashMap;
use std::time::Duration;

use crate::config::Config;
use crate::verdict::Reason;

/// Held requests of one worker.
#[derive(Debug, Default)]
pub struct HoldWatch {
    held: HashMap<u32, Held>,
    /// A body callback arrived after a header hold on this worker: Envoy does deliver bodies to
    /// held requests (`allow_on_headers_stop_iteration` is set), so a later timeout is a stalled
    /// client (408), not a misconfiguration (500).
    body_after_hold_seen: bool,
}

/// One held request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// When the request was held, or when its latest body chunk arrived.
    pub since_ms: u64,
    /// When the request was held (its headers arrived).
    pub held_at_ms: u64,
    pub request_id: String,
    pub route: String,
    /// Part of the body arrived: a timeout now is a client that stalled mid-body (408).
    pub body_started: bool,
}

/// At most this many expired holds are answered per tick (the rest on the next ticks, oldest
/// context ids first). Measured on Envoy 1.40 (tests/e2e/production/test_limits.py): answering ~300 in one
/// on_tick overflowed the V8 stack ("Maximum call stack size exceeded" in
/// proxy_on_response_headers), which killed the VM (FAIL_CLOSED: every later request 503).
/// Envoy's own deadlines (request_timeout, stream_idle_timeout) still end whatever the watchdog
/// has not answered yet.
pub const MAX_ANSWERS_PER_TICK: usize = 64;

/// A held request whose watchdog expired, and the decision about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    /// The HTTP context to answer.
    pub context_id: u32,
    pub held: Held,
    /// [`Reason::RequestTimeout`] or [`Reason::FilterMisconfigured`].
    pub reason: Reason,
    pub detail: &'static str,
}

/// How often the root context scans held requests: a fifth of the shorter of `hold_timeout_ms`
/// and `hold_deadline_ms` (those set), 20 ms..1 s; zero (no timer) in buffer mode or with both
/// off.
pub fn tick_period(config: &Config) -> Duration {
    let shortest = [config.hold_timeout_ms, config.hold_deadline_ms]
        .into_iter()
        .filter(|&ms| ms > 0)
        .min();
    match shortest {
        Some(ms) if config.hold_headers => Duration::from_millis((ms / 5).clamp(20, 1000)),
        _ => Duration::ZERO,
    }
}

impl HoldWatch {
    /// Register a request paused on its headers.
    pub fn hold(&mut self, context_id: u32, held: Held) {
        self.held.insert(context_id, held);
    }

    /// Leave the watch (decided, or gone).
    pub fn leave(&mut self, context_id: u32) {
        self.held.remove(&context_id);
    }

    /// A body (or trailers) callback arrived for a registered request. At the end of the body
    /// the request leaves; before it, its clock restarts (`now_ms` is called only then: the
    /// filter's clock is a host call). Returns false when the watchdog already answered the
    /// request (it must then stay stopped).
    pub fn body_arrived(
        &mut self,
        context_id: u32,
        end_of_body: bool,
        now_ms: impl FnOnce() -> u64,
    ) -> bool {
        self.body_after_hold_seen = true;
        if end_of_body {
            return self.held.remove(&context_id).is_some();
        }
        match self.held.get_mut(&context_id) {
            Some(held) => {
                held.since_ms = now_ms();
                held.body_started = true;
                true
            }
            None => false,
        }
    }

    /// Whether `context_id` is registered.
    pub fn is_held(&self, context_id: u32) -> bool {
        self.held.contains_key(&context_id)
    }

    /// Take out every request silent for `timeout_ms` or held `deadline_ms` in all (each clock
    /// off when 0) with the answer each gets: 408 when the body started or bodies do reach held
    /// requests on this worker, else 500 (Envoy does not deliver bodies to a filter that paused
    /// on headers).
    pub fn expire(&mut self, now_ms: u64, timeout_ms: u64, deadline_ms: u64) -> Vec<Expired> {
        let elapsed = |since: u64, limit: u64| limit > 0 && now_ms.saturating_sub(since) >= limit;
        let mut ids: Vec<u32> = self
            .held
            .iter()
            .filter(|(_, h)| elapsed(h.since_ms, timeout_ms) || elapsed(h.held_at_ms, deadline_ms))
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids.truncate(MAX_ANSWERS_PER_TICK);
        let body_seen = self.body_after_hold_seen;
        ids.into_iter()
            .filter_map(|id| self.held.remove(&id).map(|h| (id, h)))
            .map(|(context_id, held)| {
                let silent = elapsed(held.since_ms, timeout_ms);
                let (reason, detail) = if held.body_started && !silent {
                    (
                        Reason::RequestTimeout,
                        "request body not complete within hold_deadline_ms",
                    )
                } else if held.body_started {
                    (
                        Reason::RequestTimeout,
                        "request body stalled for hold_timeout_ms",
                    )
                } else if body_seen {
                    (
                        Reason::RequestTimeout,
                        "no request body within hold_timeout_ms",
                    )
                } else {
                    (
                        Reason::FilterMisconfigured,
                        "held request got no body callback: allow_on_headers_stop_iteration missing?",
                    )
                };
                Expired {
                    context_id,
                    held,
                    reason,
                    detail,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(since_ms: u64) -> Held {
        Held {
            since_ms,
            held_at_ms: since_ms,
            request_id: "r".into(),
            route: "linksfield".into(),
            body_started: false,
        }
    }

    #[test]
    fn no_body_callback_ever_is_a_misconfiguration() {
        let mut w = HoldWatch::default();
        w.hold(7, held(1000));
        assert!(w.expire(1999, 1000, 0).is_empty());
        let e = w.expire(2000, 1000, 0);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].context_id, 7);
        assert_eq!(e[0].reason, Reason::FilterMisconfigured);
        assert!(!w.is_held(7));
        assert!(w.expire(99_999, 1000, 0).is_empty(), "answered once");
    }

    #[test]
    fn a_tick_answers_at_most_max_answers_per_tick() {
        let mut w = HoldWatch::default();
        let n = MAX_ANSWERS_PER_TICK + 36;
        for id in 0..n as u32 {
            w.hold(id, held(0));
        }
        let first = w.expire(5000, 1000, 0);
        assert_eq!(first.len(), MAX_ANSWERS_PER_TICK);
        assert_eq!(first[0].context_id, 0, "oldest context ids first");
        let rest = w.expire(5000, 1000, 0);
        assert_eq!(rest.len(), 36);
        assert!(w.expire(5000, 1000, 0).is_empty());
    }

    #[test]
    fn bodies_seen_make_it_a_client_timeout() {
        let mut w = HoldWatch::default();
        w.hold(1, held(0));
        assert!(w.body_arrived(1, true, || 10));
        w.hold(2, held(100));
        let e = w.expire(1100, 1000, 0);
        assert_eq!(e[0].reason, Reason::RequestTimeout);
        assert_eq!(e[0].detail, "no request body within hold_timeout_ms");
    }

    #[test]
    fn a_chunk_restarts_the_clock_and_a_stall_is_408() {
        let mut w = HoldWatch::default();
        w.hold(1, held(0));
        assert!(w.body_arrived(1, false, || 900));
        assert!(w.expire(1000, 1000, 0).is_empty());
        let e = w.expire(1900, 1000, 0);
        assert_eq!(e[0].reason, Reason::RequestTimeout);
        assert_eq!(e[0].detail, "request body stalled for hold_timeout_ms");
        assert!(!w.body_arrived(1, false, || 2000), "already answered");
        assert!(!w.body_arrived(1, true, || 2000), "already answered");
    }

    #[test]
    fn zero_timeout_never_expires_and_leave_forgets() {
        let mut w = HoldWatch::default();
        w.hold(1, held(0));
        assert!(w.expire(u64::MAX, 0, 0).is_empty());
        w.leave(1);
        assert!(w.expire(u64::MAX, 1, 1).is_empty());
    }

    #[test]
    fn a_trickle_ends_at_the_total_deadline() {
        let mut w = HoldWatch::default();
        w.hold(1, held(0));
        // One chunk every 900 ms: the silence clock never reaches 1000 ms.
        for t in (900..5000).step_by(900) {
            assert!(w.expire(t, 1000, 5000).is_empty(), "{t}");
            assert!(w.body_arrived(1, false, || t));
        }
        let e = w.expire(5000, 1000, 5000);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].reason, Reason::RequestTimeout);
        assert_eq!(
            e[0].detail,
            "request body not complete within hold_deadline_ms"
        );
        // The deadline alone (no silence clock) also answers a request with no body at all.
        w.hold(2, held(0));
        let e = w.expire(5000, 0, 5000);
        assert_eq!(e[0].reason, Reason::RequestTimeout, "bodies were seen");
    }

    #[test]
    fn tick_period_follows_the_shorter_clock() {
        let parse = |extra: &str| {
            Config::from_json(
                format!(
                    r#"{{"keys":[{{"id":"k","secret":"s"}}],"routes":[{{"path_prefix":"/a"}}]{extra}}}"#
                )
                .as_bytes(),
                |_| None,
            )
            .unwrap()
        };
        assert_eq!(tick_period(&parse("")), Duration::from_millis(1000));
        let c = parse(r#","hold_timeout_ms":1000,"hold_deadline_ms":0"#);
        assert_eq!(tick_period(&c), Duration::from_millis(200));
        let c = parse(r#","hold_timeout_ms":0,"hold_deadline_ms":500"#);
        assert_eq!(tick_period(&c), Duration::from_millis(100));
        let c = parse(r#","hold_timeout_ms":0,"hold_deadline_ms":0"#);
        assert_eq!(tick_period(&c), Duration::ZERO);
        let c = parse(r#","hold_headers":false"#);
        assert_eq!(tick_period(&c), Duration::ZERO);
    }
}
