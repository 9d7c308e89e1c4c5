//! The fleet store (etcd) part of the request flow (docs/fleet.md): the lookup of a verified
//! delivery that this replica's table does not know, before it is forwarded (request paused), and
//! the record after a 2xx answer (response paused until etcd answered). The call sequences
//! themselves (retries, leases) are [`crate::dedup::etcd`]'s; this module turns their outcomes
//! into steps: a duplicate answered at the edge, a forward, `on_error`, counters and log lines.

use super::*;
use crate::dedup::etcd::{
    Answer, EtcdStore, Inserted, Io, LookupEnd, OnError, RecordEnd, StoreError, StoreLookup,
    StoreRecord,
};

/// One call for the glue to send to the store's Envoy cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreCall {
    pub cluster: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
    pub timeout_ms: u64,
}

impl StoreCall {
    fn new(store: &EtcdStore, call: &crate::dedup::etcd::Call, timeout_ms: u64) -> StoreCall {
        StoreCall {
            cluster: store.cluster.clone(),
            headers: vec![
                (":method", "POST".to_string()),
                (":path", call.path.to_string()),
                (":authority", store.authority.clone()),
                ("content-type", "application/json".to_string()),
            ],
            body: call.body.clone(),
            timeout_ms,
        }
    }
}

/// A lookup in flight, with what the request needs once it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    seq: StoreLookup,
    verdict: Verdict,
    key_id: String,
    headers: Headers,
    record: DedupWrite,
}

impl Flow {
    /// The fleet store of the current route, if it has one (with the configuration it lives in).
    fn store(&self) -> Option<(Rc<Config>, usize)> {
        let config = self.config.clone()?;
        let route = self.route?;
        config.routes.get(route)?.dedup.as_ref()?.store.as_ref()?;
        Some((config, route))
    }

    /// Not in this replica's table: ask the fleet store, or (no store) forward.
    pub(super) fn after_local_miss(
        &mut self,
        fx: Vec<Step>,
        verdict: Verdict,
        key_id: String,
        headers: Headers,
        record: DedupWrite,
        now_ms: u64,
    ) -> Steps {
        let store = self.store();
        let Some(store) = store.as_ref().and_then(|(c, r)| route_store(c, *r)) else {
            let route = self.route.unwrap_or_default();
            return self.accept(fx, route, verdict, headers.continued(), Some(record));
        };
        let (seq, io) = store.lookup(record.identity);
        let lookup = Lookup {
            seq,
            verdict,
            key_id,
            headers,
            record,
        };
        self.lookup_io(fx, store, lookup, io, now_ms)
    }

    /// The answer (or failure) of the call asked for by [`Next::StoreCall`].
    pub fn on_store_answer(&mut self, answer: &Answer<'_>, now_ms: u64) -> Steps {
        let state = std::mem::replace(&mut self.state, State::Passthrough);
        let Some((config, route)) = self.store() else {
            self.state = state;
            return Steps::only(Next::Continue);
        };
        let Some(store) = route_store(&config, route) else {
            return Steps::only(Next::Continue);
        };
        match state {
            State::StoreLookup(mut lookup) => {
                let io = lookup.seq.on_answer(store, answer, now_ms);
                self.lookup_io(Vec::new(), store, lookup, io, now_ms)
            }
            State::StoreRecording(mut seq) => {
                let step = seq.on_answer(store, answer);
                let fx = step
                    .cache_lease
                    .map(|slot| Step::CacheLease {
                        key: store.lease_shared_key(),
                        value: slot.encode().to_vec(),
                    })
                    .into_iter()
                    .collect();
                self.record_io(fx, store, seq, step.io)
            }
            other => {
                self.state = other;
                Steps::only(Next::Continue)
            }
        }
    }

    fn lookup_io(
        &mut self,
        fx: Vec<Step>,
        store: &EtcdStore,
        lookup: Lookup,
        io: Io<LookupEnd>,
        now_ms: u64,
    ) -> Steps {
        match io {
            Io::Send { call, timeout_ms } => {
                self.state = State::StoreLookup(lookup);
                Steps::new(
                    fx,
                    Next::StoreCall(StoreCall::new(store, &call, timeout_ms)),
                )
            }
            Io::Done(end) => self.lookup_end(fx, lookup, end, now_ms),
        }
    }

    /// The lookup ended: a duplicate (answered here, and copied into the local table), a
    /// forward, or the store failed (`on_error`).
    fn lookup_end(
        &mut self,
        mut fx: Vec<Step>,
        lookup: Lookup,
        end: LookupEnd,
        now_ms: u64,
    ) -> Steps {
        let route = self.route.unwrap_or_default();
        let Lookup {
            verdict,
            key_id,
            headers,
            record,
            ..
        } = lookup;
        match end {
            LookupEnd::Duplicate { expires_ms } => {
                fx.push(Step::Count(Metric::DedupStoreHits));
                let identity = record.identity;
                fx.push(Step::RecordLocal(DedupWrite {
                    window_ms: expires_ms.saturating_sub(now_ms),
                    ..record
                }));
                self.duplicate(fx, verdict, &key_id, &identity)
            }
            LookupEnd::Forward => {
                self.accept(fx, route, verdict, headers.continued(), Some(record))
            }
            LookupEnd::Failed { error, policy } => {
                self.store_failed(&mut fx, "lookup", &record.identity, &error, policy.name());
                match policy {
                    OnError::Forward => {
                        self.accept(fx, route, verdict, headers.continued(), Some(record))
                    }
                    OnError::Reject => {
                        let rejection = Rejection::new(
                            Reason::DedupStoreUnavailable,
                            "dedup store lookup failed (on_error: reject)",
                        );
                        self.reject(fx, Some(route), rejection, headers.continued())
                    }
                }
            }
        }
    }

    /// Recorded in this replica's table after a 2xx: now in the fleet store (lease cache first).
    pub(super) fn after_local_record(&mut self, fx: Vec<Step>, record: DedupWrite) -> Steps {
        let Some((config, route)) = self.store() else {
            return Steps::new(fx, Next::Continue);
        };
        let Some(store) = route_store(&config, route) else {
            return Steps::new(fx, Next::Continue);
        };
        let key = store.lease_shared_key();
        self.state = State::LeaseReading(record);
        Steps::new(fx, Next::ReadLease(key))
    }

    /// The lease cache asked for by [`Next::ReadLease`]: start the record.
    pub fn on_lease_read(&mut self, cached: Option<&[u8]>, now_ms: u64) -> Steps {
        let State::LeaseReading(record) = std::mem::replace(&mut self.state, State::Passthrough)
        else {
            return Steps::only(Next::Continue);
        };
        let Some((config, route)) = self.store() else {
            return Steps::only(Next::Continue);
        };
        let Some(store) = route_store(&config, route) else {
            return Steps::only(Next::Continue);
        };
        let (seq, io) = store.record(record.identity, now_ms, record.window_ms, cached);
        self.record_io(Vec::new(), store, seq, io)
    }

    fn record_io(
        &mut self,
        mut fx: Vec<Step>,
        store: &EtcdStore,
        seq: StoreRecord,
        io: Io<RecordEnd>,
    ) -> Steps {
        let identity = seq.identity();
        match io {
            Io::Send { call, timeout_ms } => {
                self.state = State::StoreRecording(seq);
                return Steps::new(
                    fx,
                    Next::StoreCall(StoreCall::new(store, &call, timeout_ms)),
                );
            }
            Io::Done(RecordEnd::Recorded(Inserted::Created)) => {
                fx.push(Step::Count(Metric::DedupStoreRecorded));
            }
            Io::Done(RecordEnd::Recorded(Inserted::AlreadyRecorded)) => {
                if self.debug {
                    fx.push(Step::Log(
                        Level::Debug,
                        format!(
                            "lf-webhook-guard: dedup store already had request_id={} dedup_id={}",
                            self.request_id,
                            identity.short()
                        ),
                    ));
                }
            }
            Io::Done(RecordEnd::Failed(error)) => {
                self.store_failed(&mut fx, "record", &identity, &error, "not_recorded");
            }
        }
        self.state = State::Passthrough;
        Steps::new(fx, Next::Continue)
    }

    /// A response body or trailers callback: held while the fleet store records (a callback
    /// that continued would let the paused response headers go as well).
    pub fn on_response_body(&mut self) -> Steps {
        match self.state {
            State::StoreRecording(_) | State::LeaseReading(_) => Steps::only(Next::Pause),
            _ => Steps::only(Next::Continue),
        }
    }

    /// One counter and one warn line per store failure: the operation, the error class, the
    /// request, the route and the short de-dup id (never a key, a body or a signature).
    fn store_failed(
        &self,
        fx: &mut Vec<Step>,
        op: &str,
        identity: &Identity,
        error: &StoreError,
        action: &str,
    ) {
        fx.push(Step::Count(if error.is_timeout() {
            Metric::DedupStoreTimeouts
        } else {
            Metric::DedupStoreErrors
        }));
        fx.push(Step::Log(
            Level::Warn,
            format!(
                "lf-webhook-guard: dedup store failure op={op} error={error} request_id={} \
                 route={} dedup_id={} action={action}",
                self.request_id,
                self.route_name(self.route),
                identity.short()
            ),
        ));
    }
}

/// The fleet store of a route.
fn route_store(config: &Config, route: usize) -> Option<&EtcdStore> {
    config.routes.get(route)?.dedup.as_ref()?.store.as_ref()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::body::MediaType;
    use crate::dedup::etcd::{GRANT_PATH, RANGE_PATH, TXN_PATH};

    const NOW: u64 = 1_700_000_000_000;
    const BODY: &[u8] = br#"{"partner_code":"P1","text_message":"hi"}"#;
    const HDR: &str = r#""header":{"revision":"7"}"#;

    fn config(hold: bool, on_error: &str) -> Rc<Config> {
        let json = format!(
            r#"{{"keys":[{{"id":"k1","secret":"s3cret"}}],
                "routes":[{{"name":"lf","path_prefix":"/lf/"}}],
                "hold_headers":{hold},
                "dedup":{{"window_seconds":60,"max_entries":16,
                  "store":{{"etcd":{{"cluster":"etcd","on_error":"{on_error}","timeout_ms":100}}}}}}}}"#
        );
        Rc::new(Config::from_json(json.as_bytes(), |_| None).unwrap())
    }

    /// A fake host: executes the steps the glue executes, answers reads, stops at a store call
    /// or an answer to the host.
    struct Host {
        shared: HashMap<String, Vec<u8>>,
        fx: Vec<Step>,
        status: u32,
    }

    impl Host {
        fn new() -> Host {
            Host {
                shared: HashMap::new(),
                fx: Vec::new(),
                status: 200,
            }
        }

        fn run(&mut self, flow: &mut Flow, mut steps: Steps) -> Next {
            loop {
                for step in &steps.effects {
                    match step {
                        Step::RecordLocal(rec) => self.record(rec),
                        Step::CacheLease { key, value } => {
                            self.shared.insert(key.clone(), value.clone());
                        }
                        _ => {}
                    }
                }
                self.fx.extend(steps.effects);
                steps = match steps.next {
                    Next::ReadBody(n) => flow.on_body_read(BODY.get(..n).unwrap(), NOW),
                    Next::LookupDedup(k) => {
                        flow.on_dedup_lookup(Ok(self.shared.get(&k).cloned()), NOW)
                    }
                    Next::ReadResponseStatus => flow.on_response_status(Some(self.status)),
                    Next::RecordDedup(rec) => {
                        self.record(&rec);
                        flow.on_dedup_written(DedupWritten::Recorded { evicts: false })
                    }
                    Next::ReadLease(k) => {
                        let cached = self.shared.get(&k).cloned();
                        flow.on_lease_read(cached.as_deref(), NOW)
                    }
                    other => return other,
                };
            }
        }

        fn record(&mut self, rec: &DedupWrite) {
            let stored = self.shared.get(&rec.shared_key).map(Vec::as_slice);
            let (value, _) = crate::dedup::record(stored, &rec.identity, NOW, rec.window_ms);
            self.shared.insert(rec.shared_key.clone(), value.to_vec());
        }

        /// Headers and the whole body; the first answer that is not a read.
        fn request(&mut self, flow: &mut Flow, config: &Config) -> Next {
            let sig =
                crate::verify::sign_md5(MediaType::Json, BODY, &config.md5, b"s3cret").unwrap();
            let headers: Vec<(String, Vec<u8>)> = [
                (":method", "POST"),
                (":path", "/lf/a"),
                ("content-type", "application/json"),
                ("x-lf-md5", sig.as_str()),
                ("x-request-id", "rid-1"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect();
            let steps = flow.on_request_headers(&headers, false, NOW);
            let next = self.run(flow, steps);
            assert!(matches!(next, Next::Pause | Next::Continue), "{next:?}");
            let steps = flow.on_request_body(BODY.len(), true, NOW, None);
            self.run(flow, steps)
        }

        fn answer(&mut self, flow: &mut Flow, status: Option<u32>, body: &str, ms: u64) -> Next {
            let answer = Answer {
                status,
                body: body.as_bytes(),
                elapsed_ms: ms,
                timeout_ms: 100,
            };
            let steps = flow.on_store_answer(&answer, NOW + ms);
            self.run(flow, steps)
        }

        fn counts(&self) -> Vec<Metric> {
            self.fx
                .iter()
                .filter_map(|s| match s {
                    Step::Count(m) => Some(*m),
                    _ => None,
                })
                .collect()
        }

        fn warns(&self) -> Vec<&str> {
            self.fx
                .iter()
                .filter_map(|s| match s {
                    Step::Log(Level::Warn, l) => Some(l.as_str()),
                    _ => None,
                })
                .collect()
        }

        fn replies(&self) -> Vec<&Reply> {
            self.fx
                .iter()
                .filter_map(|s| match s {
                    Step::Reply(r) => Some(r),
                    _ => None,
                })
                .collect()
        }

        fn verified_set(&self) -> bool {
            self.fx.iter().any(|s| matches!(s, Step::SetVerified(_)))
        }
    }

    fn call_path(next: &Next) -> &str {
        match next {
            Next::StoreCall(c) => {
                assert_eq!(c.cluster, "etcd");
                assert!((50..=100).contains(&c.timeout_ms), "{}", c.timeout_ms);
                c.headers
                    .iter()
                    .find(|(n, _)| *n == ":path")
                    .map(|(_, v)| v.as_str())
                    .unwrap()
            }
            other => panic!("expected a store call, got {other:?}"),
        }
    }

    const VERIFIED: Metric = Metric::Verified {
        scheme: crate::verdict::Scheme::Md5,
        key: 0,
    };

    #[test]
    fn forwarded_then_recorded_with_the_response_waiting() {
        for hold in [true, false] {
            let config = config(hold, "reject");
            let mut host = Host::new();
            let mut flow = Flow::new(Some(Rc::clone(&config)), 7, true);
            let next = host.request(&mut flow, &config);
            assert_eq!(call_path(&next), RANGE_PATH);
            // absent: forwarded (hold mode sets the verdict now; buffer mode already did)
            let next = host.answer(&mut flow, Some(200), &format!("{{{HDR}}}"), 2);
            assert_eq!(next, Next::Continue, "resume the request");
            assert!(host.verified_set());
            assert_eq!(host.counts().last(), Some(&VERIFIED));
            // 2xx: local record, then the lease grant (no cached lease), then the insert
            let steps = flow.on_response_headers();
            let next = host.run(&mut flow, steps);
            assert_eq!(call_path(&next), GRANT_PATH);
            assert_eq!(flow.on_response_body().next, Next::Pause, "response held");
            let next = host.answer(
                &mut flow,
                Some(200),
                &format!(r#"{{{HDR},"ID":"9","TTL":"66"}}"#),
                2,
            );
            assert_eq!(call_path(&next), TXN_PATH);
            assert!(host.fx.iter().any(|s| matches!(s, Step::CacheLease { .. })));
            let next = host.answer(
                &mut flow,
                Some(200),
                &format!(r#"{{{HDR},"succeeded":true}}"#),
                2,
            );
            assert_eq!(next, Next::Continue, "resume the response");
            assert_eq!(flow.on_response_body().next, Next::Continue);
            let counts = host.counts();
            assert!(
                counts.contains(&Metric::DedupRecorded)
                    && counts.contains(&Metric::DedupStoreRecorded)
            );
            assert!(host.warns().is_empty() && host.replies().is_empty());
            // the next delivery of this Envoy finds the cached lease of the bucket: no grant
            let mut flow2 = Flow::new(Some(Rc::clone(&config)), 8, true);
            let mut host2 = Host {
                shared: host.shared.clone(),
                ..Host::new()
            };
            assert_eq!(
                host2.request(&mut flow2, &config),
                Next::Pause,
                "local duplicate"
            );
            assert!(host2.counts().contains(&Metric::DuplicatesAnswered));
        }
    }

    #[test]
    fn store_hit_is_answered_here_and_copied_into_the_local_table() {
        let config = config(true, "reject");
        let mut host = Host::new();
        let mut flow = Flow::new(Some(Rc::clone(&config)), 7, true);
        let next = host.request(&mut flow, &config);
        let Next::StoreCall(call) = &next else {
            panic!("{next:?}")
        };
        let key: serde_json::Value = serde_json::from_str(&call.body).unwrap();
        let kv = format!(
            r#"{{{HDR},"kvs":[{{"key":"{}","value":"{}"}}]}}"#,
            key["key"].as_str().unwrap(),
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                (NOW + 30_000).to_string()
            )
        );
        assert_eq!(host.answer(&mut flow, Some(200), &kv, 2), Next::Pause);
        let (reply,) = <[&Reply; 1]>::try_from(host.replies())
            .map(|[r]| (r,))
            .unwrap();
        assert_eq!(reply.status, 200);
        assert!(reply
            .headers
            .contains(&("x-lf-duplicate", "true".to_string())));
        let counts = host.counts();
        for m in [Metric::DedupStoreHits, Metric::DuplicatesAnswered, VERIFIED] {
            assert!(counts.contains(&m), "{m:?} {counts:?}");
        }
        assert!(!host.verified_set(), "nothing goes upstream");
        // the local table now answers the next copy without a store call
        let mut flow2 = Flow::new(Some(Rc::clone(&config)), 8, true);
        let mut host2 = Host {
            shared: host.shared.clone(),
            ..Host::new()
        };
        assert_eq!(host2.request(&mut flow2, &config), Next::Pause);
        assert_eq!(host2.replies().len(), 1);
    }

    #[test]
    fn no_quorum_reject_is_503_and_nothing_upstream() {
        for hold in [true, false] {
            let config = config(hold, "reject");
            let mut host = Host::new();
            let mut flow = Flow::new(Some(Rc::clone(&config)), 7, true);
            host.request(&mut flow, &config);
            // a fast failure is retried once, then the policy
            let next = host.answer(&mut flow, Some(503), "no healthy upstream", 1);
            assert_eq!(call_path(&next), RANGE_PATH);
            let next = host.answer(&mut flow, Some(503), "no healthy upstream", 1);
            assert_eq!(next, Next::Pause);
            let replies = host.replies();
            assert_eq!(replies.len(), 1);
            assert_eq!(replies[0].status, 503);
            assert_eq!(
                replies[0].body,
                reply_body(Reason::DedupStoreUnavailable, "rid-1")
            );
            let counts = host.counts();
            assert!(counts.contains(&Metric::DedupStoreErrors));
            assert!(counts.contains(&Metric::Rejected(Reason::DedupStoreUnavailable)));
            assert!(
                !counts.contains(&VERIFIED),
                "rejected, not verified: {counts:?}"
            );
            let warns = host.warns();
            assert_eq!(warns.len(), 2, "{warns:?}");
            assert!(warns[0].starts_with(
                "lf-webhook-guard: dedup store failure op=lookup error=unreachable request_id=rid-1 route=lf dedup_id="
            ), "{}", warns[0]);
            assert!(warns[0].ends_with(" action=reject"));
            assert!(
                warns[1].contains("reason=dedup_store_unavailable status=503"),
                "{}",
                warns[1]
            );
            // hold mode never marked it; buffer mode preset the header but the request is answered
            assert_eq!(host.verified_set(), !hold);
        }
    }

    #[test]
    fn timeout_forward_forwards_and_records_later() {
        let config = config(true, "forward");
        let mut host = Host::new();
        let mut flow = Flow::new(Some(Rc::clone(&config)), 7, true);
        host.request(&mut flow, &config);
        let next = host.answer(&mut flow, Some(504), "upstream request timeout", 100);
        assert_eq!(next, Next::Continue, "forwarded");
        assert!(host.verified_set());
        assert!(host.counts().contains(&Metric::DedupStoreTimeouts));
        let w = host.warns();
        assert!(
            w.len() == 1
                && w[0].contains("op=lookup error=timeout ")
                && w[0].ends_with("action=forward"),
            "{w:?}"
        );
        // the record fails too: counted, logged, the response goes on unchanged
        let steps = flow.on_response_headers();
        host.run(&mut flow, steps);
        let next = host.answer(&mut flow, None, "", 100);
        assert_eq!(next, Next::Continue);
        let w = host.warns();
        assert!(
            w.len() == 2
                && w[1].contains("op=record error=timeout ")
                && w[1].ends_with("action=not_recorded"),
            "{w:?}"
        );
        assert!(host.replies().is_empty());
        // the log lines never hold the key, the signature or the body
        let sig = crate::verify::sign_md5(MediaType::Json, BODY, &config.md5, b"s3cret").unwrap();
        for line in host.warns() {
            assert!(
                !line.contains(&sig)
                    && !line.contains("text_message")
                    && !line.contains("dedup/v2/"),
                "{line}"
            );
        }
    }

    #[test]
    fn a_failed_delivery_is_not_recorded_in_the_store() {
        let config = config(true, "forward");
        let mut host = Host::new();
        host.status = 503;
        let mut flow = Flow::new(Some(Rc::clone(&config)), 7, true);
        host.request(&mut flow, &config);
        host.answer(&mut flow, Some(200), &format!("{{{HDR}}}"), 1);
        let steps = flow.on_response_headers();
        assert_eq!(host.run(&mut flow, steps), Next::Continue, "no store call");
    }
}
