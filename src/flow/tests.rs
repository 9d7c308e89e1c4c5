//! The state machine's steps, natively: hold and buffer mode x enforce and shadow x de-dup x
//! watchdog x every rejection reason. A small fake host executes the steps (headers it sets or
//! removes, replies, counters, log lines, shared data) the way `crate::filter` does on Envoy.

use std::collections::HashMap;

use super::*;
use crate::body::MediaType;
use crate::config::Md5Options;
use crate::verdict::Scheme;
use crate::verify::{sign_cube, sign_md5, MD5_HEADER};

const NOW: u64 = 1_642_385_160_000 + 60_000;
const SECRET: &str = "first-secret";
const CUBE_ID: &str = "Ou8a5lyzPjN86ikmLeFC";
const CUBE_SECRET: &str = "3QY0I6jA6jOfeIQbOde3CG2DeOllV1zufpFR393my78h3tCn7P1IfyUIhV3cS8ks";
const BODY: &[u8] =
    br#"{"partner_code":"P1","sim_id":"8986","text_message":"hi","received_at":"1642385160000"}"#;
const RID: &str = "rid-1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    Headers,
    Buffer,
}

fn config_json(hold: Hold, mode: Mode, dedup: bool) -> String {
    let dedup = if dedup {
        r#", "dedup": {"window_seconds": 60, "max_entries": 16}"#
    } else {
        ""
    };
    format!(
        r#"{{
        "posture": "route_list",
        "keys": [
            {{"id": "k1", "secret": "{SECRET}"}},
            {{"id": "p2-key", "secret": "partner-two", "partners": ["P2"]}},
            {{"id": "{CUBE_ID}", "secret": "{CUBE_SECRET}"}}
        ],
        "routes": [
            {{"name": "lf", "path_prefix": "/lf/", "keys": ["k1"], "methods": ["POST", "PUT"]}},
            {{"name": "partners", "path_prefix": "/partners/", "keys": ["p2-key"]}},
            {{"name": "fresh", "path_prefix": "/fresh/", "keys": ["k1"],
              "freshness": {{"max_age_seconds": 600, "body_field": "received_at"}}}},
            {{"name": "cube", "path_prefix": "/cube/", "scheme": "cube", "keys": ["{CUBE_ID}"]}},
            {{"name": "plan", "path_prefix": "/plan/", "allow_unsigned": true, "keys": ["k1"]}}
        ],
        "max_body_bytes": 256,
        "mode": "{}",
        "hold_headers": {},
        "hold_timeout_ms": 1000{dedup}
    }}"#,
        mode.name(),
        hold == Hold::Headers
    )
}

fn config(hold: Hold, mode: Mode, dedup: bool) -> Rc<Config> {
    Rc::new(Config::from_json(config_json(hold, mode, dedup).as_bytes(), |_| None).unwrap())
}

fn md5(body: &[u8], secret: &str) -> String {
    sign_md5(
        MediaType::Json,
        body,
        &Md5Options::default(),
        secret.as_bytes(),
    )
    .unwrap()
}

/// A request as a client sends it.
#[derive(Debug, Clone)]
struct Req {
    headers: Vec<(String, Vec<u8>)>,
    /// Body chunks (empty: no body, end of stream on the headers).
    chunks: Vec<Vec<u8>>,
    trailers: bool,
}

impl Req {
    fn new(method: &str, path: &str) -> Req {
        Req {
            headers: vec![
                (":method".into(), method.as_bytes().to_vec()),
                (":path".into(), path.as_bytes().to_vec()),
                ("x-request-id".into(), RID.as_bytes().to_vec()),
            ],
            chunks: Vec::new(),
            trailers: false,
        }
    }

    fn header(mut self, name: &str, value: &[u8]) -> Req {
        self.headers.push((name.to_string(), value.to_vec()));
        self
    }

    fn body(mut self, body: &[u8]) -> Req {
        self.chunks = vec![body.to_vec()];
        self
    }

    fn json(self) -> Req {
        self.header("content-type", b"application/json")
    }

    /// A genuine md5 delivery of `body` to `path`.
    fn signed(path: &str, body: &[u8]) -> Req {
        Req::new("POST", path)
            .json()
            .header(MD5_HEADER, md5(body, SECRET).as_bytes())
            .body(body)
    }
}

/// The fake host: what the glue would do on Envoy, recorded.
#[derive(Default)]
struct Host {
    watch: HoldWatch,
    shared: HashMap<String, Vec<u8>>,
    /// Every effect executed, in order.
    effects: Vec<Step>,
    /// The value of each answer to the host, one per callback.
    answers: Vec<Next>,
    /// Host calls that fail.
    fail_read_body: bool,
    fail_set_verified: bool,
    fail_set_shadow: bool,
    fail_remove: bool,
    response_status: u32,
}

impl Host {
    fn new() -> Host {
        Host {
            response_status: 200,
            ..Host::default()
        }
    }

    /// Execute steps until the flow answers the host (as `GuardHttp::run` does).
    fn run(&mut self, flow: &mut Flow, body: &[u8], mut steps: Steps) -> Next {
        loop {
            let mut failure = None;
            for step in steps.effects {
                failure = match &step {
                    Step::RemoveRequestHeader(_) if self.fail_remove => Some(Failure::RemoveHeader),
                    Step::SetVerified(_) if self.fail_set_verified => Some(Failure::SetVerified),
                    Step::SetShadow(_) if self.fail_set_shadow => {
                        Some(Failure::SetShadow("InternalFailure".into()))
                    }
                    Step::Hold(held) => {
                        self.watch.hold(7, held.clone());
                        None
                    }
                    _ => None,
                };
                if failure.is_some() {
                    break;
                }
                self.effects.push(step);
            }
            if let Some(failure) = failure {
                steps = flow.failed(failure);
                continue;
            }
            steps = match steps.next {
                Next::ReadBody(_) if self.fail_read_body => flow.failed(Failure::ReadBody),
                Next::ReadBody(size) => {
                    flow.on_body_read(body.get(..size).unwrap_or_default(), NOW)
                }
                Next::LookupDedup(key) => {
                    let stored = self.shared.get(&key).cloned();
                    flow.on_dedup_lookup(Ok(stored), NOW)
                }
                Next::ReadResponseStatus => flow.on_response_status(Some(self.response_status)),
                Next::RecordDedup(rec) => {
                    let stored = self.shared.get(&rec.shared_key).map(Vec::as_slice);
                    let (value, evicts) =
                        crate::dedup::record(stored, &rec.identity, NOW, rec.window_ms);
                    self.shared.insert(rec.shared_key.clone(), value.to_vec());
                    flow.on_dedup_written(DedupWritten::Recorded { evicts })
                }
                next => {
                    self.answers.push(next.clone());
                    return next;
                }
            };
        }
    }

    /// Send a whole request through a new flow (then a response, if it was forwarded).
    fn send(&mut self, config: &Rc<Config>, req: &Req) -> Sent {
        let mut flow = Flow::new(Some(Rc::clone(config)), 7, true);
        self.send_with(&mut flow, req)
    }

    fn send_with(&mut self, flow: &mut Flow, req: &Req) -> Sent {
        let start = self.effects.len();
        let body: Vec<u8> = req.chunks.concat();
        let no_body = req.chunks.is_empty();
        let s = flow.on_request_headers(&req.headers, no_body && !req.trailers, NOW);
        let mut last = self.run(flow, &body, s);
        let after_headers = last.clone();
        let mut size = 0;
        for (i, chunk) in req.chunks.iter().enumerate() {
            size += chunk.len();
            let end = i + 1 == req.chunks.len() && !req.trailers;
            let s = flow.on_request_body(size, end, NOW, Some(&mut self.watch));
            last = self.run(flow, &body, s);
        }
        if req.trailers {
            let s = flow.on_request_trailers(NOW, Some(&mut self.watch));
            last = self.run(flow, &body, s);
        }
        let effects: Vec<Step> = self.effects.get(start..).unwrap_or_default().to_vec();
        let replied = effects.iter().any(|e| matches!(e, Step::Reply(_)));
        if !replied && last == Next::Continue {
            let s = flow.on_response_headers();
            self.run(flow, &body, s);
        }
        flow.on_done(Some(&mut self.watch));
        Sent {
            effects: self.effects.get(start..).unwrap_or_default().to_vec(),
            after_headers,
            last,
        }
    }
}

/// What one request did.
#[derive(Debug)]
struct Sent {
    effects: Vec<Step>,
    after_headers: Next,
    last: Next,
}

impl Sent {
    fn reply(&self) -> Option<&Reply> {
        self.effects.iter().find_map(|e| match e {
            Step::Reply(r) => Some(r),
            _ => None,
        })
    }

    fn replies(&self) -> usize {
        self.effects
            .iter()
            .filter(|e| matches!(e, Step::Reply(_)))
            .count()
    }

    fn counts(&self) -> Vec<Metric> {
        self.effects
            .iter()
            .filter_map(|e| match e {
                Step::Count(m) => Some(*m),
                _ => None,
            })
            .collect()
    }

    fn verified(&self) -> Vec<&str> {
        self.effects
            .iter()
            .filter_map(|e| match e {
                Step::SetVerified(v) => Some(v.as_str()),
                _ => None,
            })
            .collect()
    }

    fn shadow(&self) -> Vec<&str> {
        self.effects
            .iter()
            .filter_map(|e| match e {
                Step::SetShadow(v) => Some(v.as_str()),
                _ => None,
            })
            .collect()
    }

    fn logs(&self, level: Level) -> Vec<&str> {
        self.effects
            .iter()
            .filter_map(|e| match e {
                Step::Log(l, line) if *l == level => Some(line.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Forwarded upstream: nothing answered locally and the last callback continued.
    fn forwarded(&self) -> bool {
        self.replies() == 0 && self.last == Next::Continue
    }
}

/// How a reason is provoked.
enum Case {
    /// A request through the flow of this configuration.
    Request(Req),
    /// The body read fails on a protected route (500 internal_error).
    ReadBodyFails(Req),
    /// The hold watchdog expires: `body_seen` on this worker, `started`: part of the body came.
    Watchdog { body_seen: bool, started: bool },
    /// Needs a fleet store (`dedup.store`): provoked in src/flow/store.rs's tests.
    FleetStore,
}

/// Whether the reason is decided on the headers (then even buffer mode can still set headers).
fn at_headers(reason: Reason) -> bool {
    !matches!(
        reason,
        Reason::InvalidSignature
            | Reason::MalformedBody
            | Reason::PartnerNotAllowed
            | Reason::StaleNotification
            | Reason::BodyTooLarge
            | Reason::InternalError
    )
}

/// One way to provoke each reason. The match is exhaustive: a new reason does not compile
/// until it has a case here.
fn case(reason: Reason) -> Case {
    let stale = br#"{"partner_code":"P1","text_message":"hi","received_at":"1500000000000"}"#;
    let p1 = br#"{"partner_code":"P1","text_message":"hi"}"#;
    match reason {
        Reason::MissingSignature => Case::Request(Req::new("POST", "/lf/a").json().body(BODY)),
        Reason::InvalidSignature => Case::Request(
            Req::new("POST", "/lf/a")
                .json()
                .header(MD5_HEADER, md5(BODY, "wrong").as_bytes())
                .body(BODY),
        ),
        Reason::MalformedBody => Case::Request(
            Req::new("POST", "/lf/a")
                .json()
                .header(MD5_HEADER, md5(BODY, SECRET).as_bytes())
                .body(b"{\"a\":"),
        ),
        Reason::UnsupportedMediaType => Case::Request(
            Req::signed("/lf/a", BODY)
                .header("content-type", b"text/plain")
                .header("content-type", b"text/plain"),
        ),
        Reason::MethodNotAllowed => Case::Request(Req::new("GET", "/lf/a")),
        Reason::BodyTooLarge => Case::Request(
            Req::new("POST", "/lf/a")
                .json()
                .header(MD5_HEADER, md5(BODY, SECRET).as_bytes())
                .body(&[b' '; 300]),
        ),
        Reason::PartnerNotAllowed => Case::Request(
            Req::new("POST", "/partners/a")
                .json()
                .header(MD5_HEADER, md5(p1, "partner-two").as_bytes())
                .body(p1),
        ),
        Reason::StaleNotification => Case::Request(Req::signed("/fresh/a", stale)),
        Reason::InternalError => Case::ReadBodyFails(Req::signed("/lf/a", BODY)),
        Reason::FilterMisconfigured => Case::Watchdog {
            body_seen: false,
            started: false,
        },
        Reason::RequestTimeout => Case::Watchdog {
            body_seen: true,
            started: false,
        },
        Reason::NonCanonicalPath => Case::Request(Req::signed("/LF/a", BODY)),
        Reason::QueryNotAllowed => Case::Request(Req::signed("/lf/a?x=1", BODY)),
        Reason::UnsupportedEncoding => {
            Case::Request(Req::signed("/lf/a", BODY).header("content-encoding", b"gzip"))
        }
        Reason::DedupStoreUnavailable => Case::FleetStore,
    }
}

fn assert_enforced(sent: &Sent, reason: Reason, label: &str) {
    let reply = sent.reply().unwrap_or_else(|| panic!("{label}: no reply"));
    assert_eq!(reply.status, reason.status(), "{label}");
    assert_eq!(reply.body, reply_body(reason, RID), "{label}");
    assert_eq!(
        reply.headers.first(),
        Some(&("content-type", "application/json".to_string())),
        "{label}"
    );
    let allow = reply.headers.iter().find(|(n, _)| *n == "allow");
    if reason == Reason::MethodNotAllowed {
        assert_eq!(allow, Some(&("allow", "POST, PUT".to_string())), "{label}");
    } else {
        assert_eq!(allow, None, "{label}");
    }
    assert_eq!(sent.replies(), 1, "{label}");
    assert_eq!(sent.last, Next::Pause, "{label}");
    assert!(sent.counts().contains(&Metric::Rejected(reason)), "{label}");
    assert!(!sent
        .counts()
        .iter()
        .any(|m| matches!(m, Metric::ShadowFailed(_))));
    assert!(sent.shadow().is_empty(), "{label}");
    let warn = sent.logs(Level::Warn);
    assert_eq!(warn.len(), 1, "{label}: {warn:?}");
    let line = warn.first().copied().unwrap_or_default();
    assert!(
        line.starts_with(&format!("lf-webhook-guard: rejected request_id={RID} ")),
        "{label}: {line}"
    );
    assert!(
        line.contains(&format!(
            " reason={} status={} mode=enforce action=local_reply ",
            reason.category(),
            reason.status()
        )),
        "{label}: {line}"
    );
}

#[test]
fn every_reason_in_every_mode() {
    for hold in [Hold::Headers, Hold::Buffer] {
        for mode in [Mode::Enforce, Mode::Shadow] {
            let config = config(hold, mode, false);
            for reason in Reason::ALL {
                let label = format!("{reason:?} {hold:?} {mode:?}");
                let mut host = Host::new();
                let sent = match case(reason) {
                    Case::Request(req) => host.send(&config, &req),
                    Case::ReadBodyFails(req) => {
                        host.fail_read_body = true;
                        host.send(&config, &req)
                    }
                    Case::Watchdog { body_seen, started } => {
                        watchdog(&config, hold, body_seen, started, reason, &label);
                        continue;
                    }
                    Case::FleetStore => continue,
                };
                assert!(
                    sent.counts().first() == Some(&Metric::Requests),
                    "{label}: {:?}",
                    sent.counts()
                );
                if mode == Mode::Enforce {
                    assert_enforced(&sent, reason, &label);
                    // Buffer mode presets the verdict on enforce routes; a rejected request
                    // never reaches the upstream.
                    let preset = hold == Hold::Buffer && !at_headers(reason);
                    assert_eq!(!sent.verified().is_empty(), preset, "{label}");
                    continue;
                }
                // Shadow: counted and logged as such, forwarded, marked failed while the
                // headers are still here.
                assert!(sent.forwarded(), "{label}: {:?}", sent.effects);
                assert!(sent.verified().is_empty(), "{label}");
                let counts = sent.counts();
                assert!(counts.contains(&Metric::ShadowFailed(reason)), "{label}");
                assert!(!counts.contains(&Metric::Rejected(reason)), "{label}");
                let marked = hold == Hold::Headers || at_headers(reason);
                let expected = shadow_failed_value(reason);
                assert_eq!(
                    sent.shadow(),
                    if marked {
                        vec![expected.as_str()]
                    } else {
                        vec![]
                    },
                    "{label}"
                );
                let line = sent.logs(Level::Warn).first().copied().unwrap_or_default();
                assert!(
                    line.contains(&format!(
                        " reason={} status={} mode=shadow action=forwarded ",
                        reason.category(),
                        reason.status()
                    )),
                    "{label}: {line}"
                );
            }
        }
    }
}

/// The watchdog reasons: hold mode only, always answered (the watchdog has no shadow mode).
fn watchdog(
    config: &Rc<Config>,
    hold: Hold,
    body_seen: bool,
    started: bool,
    reason: Reason,
    label: &str,
) {
    let mut host = Host::new();
    if body_seen {
        // Another request on this worker got its body after a hold.
        let sent = host.send(config, &Req::signed("/lf/a", BODY));
        assert!(sent.forwarded(), "{label}");
    }
    let req = Req::signed("/lf/a", BODY);
    let mut flow = Flow::new(Some(Rc::clone(config)), 7, true);
    let s = flow.on_request_headers(&req.headers, false, NOW);
    let next = host.run(&mut flow, BODY, s);
    if hold == Hold::Buffer {
        assert_eq!(next, Next::Continue, "{label}");
        assert_eq!(crate::hold::tick_period(config), std::time::Duration::ZERO);
        assert!(!host.watch.is_held(7), "{label}: buffer mode holds nothing");
        return;
    }
    assert_eq!(next, Next::Pause, "{label}");
    assert!(host.watch.is_held(7), "{label}");
    if started {
        let s = flow.on_request_body(10, false, NOW, Some(&mut host.watch));
        assert_eq!(host.run(&mut flow, BODY, s), Next::Pause);
    }
    assert!(host.watch.expire(NOW + 999, 1000, 0).is_empty(), "{label}");
    let expired = host.watch.expire(NOW + 1000, 1000, 0);
    assert_eq!(expired.len(), 1, "{label}");
    let e = expired.first().unwrap();
    assert_eq!((e.context_id, e.reason), (7, reason), "{label}");
    let (log, answer) = expired_steps(e, 1000);
    let sent = Sent {
        effects: log.into_iter().chain(answer).collect(),
        after_headers: Next::Pause,
        last: Next::Pause,
    };
    assert_enforced(&sent, reason, label);
    assert_eq!(
        sent.logs(Level::Error).len(),
        usize::from(reason == Reason::FilterMisconfigured),
        "{label}"
    );
    // The body arriving after the answer changes nothing: the request stays stopped.
    let s = flow.on_request_body(BODY.len(), true, NOW + 1001, Some(&mut host.watch));
    assert_eq!(s, Steps::only(Next::Pause), "{label}");
}

#[test]
fn stalled_body_is_408_with_its_own_detail() {
    let config = config(Hold::Headers, Mode::Enforce, false);
    let mut host = Host::new();
    let req = Req::signed("/lf/a", BODY);
    let mut flow = Flow::new(Some(Rc::clone(&config)), 7, true);
    let s = flow.on_request_headers(&req.headers, false, NOW);
    host.run(&mut flow, BODY, s);
    // Each chunk restarts the clock.
    let s = flow.on_request_body(10, false, NOW + 900, Some(&mut host.watch));
    assert_eq!(host.run(&mut flow, BODY, s), Next::Pause);
    assert!(host.watch.expire(NOW + 1000, 1000, 0).is_empty());
    let expired = host.watch.expire(NOW + 1900, 1000, 0);
    let e = expired.first().unwrap();
    assert_eq!(e.reason, Reason::RequestTimeout);
    let (log, _) = expired_steps(e, 1000);
    assert!(matches!(log.as_slice(), [Step::Log(Level::Warn, line)]
        if line.contains("detail=\"request body stalled for hold_timeout_ms\"")));
}

#[test]
fn accepted_in_each_mode() {
    for hold in [Hold::Headers, Hold::Buffer] {
        for mode in [Mode::Enforce, Mode::Shadow] {
            let label = format!("{hold:?} {mode:?}");
            let config = config(hold, mode, false);
            let mut host = Host::new();
            let sent = host.send(&config, &Req::signed("/lf/a", BODY));
            assert!(sent.forwarded(), "{label}");
            assert_eq!(
                sent.counts(),
                vec![
                    Metric::Requests,
                    Metric::Verified {
                        scheme: Scheme::Md5,
                        key: 0
                    }
                ],
                "{label}"
            );
            assert!(sent.shadow().is_empty() && sent.logs(Level::Warn).is_empty());
            let expected: Vec<&str> = match (hold, mode) {
                (Hold::Headers, _) => vec!["md5; key=k1"],
                // Preset while the headers pass (the route has one md5 key).
                (Hold::Buffer, Mode::Enforce) => vec!["md5; key=k1"],
                // Shadow in buffer mode: never a "verified" value before the body is known.
                (Hold::Buffer, Mode::Shadow) => vec![],
            };
            assert_eq!(sent.verified(), expected, "{label}");
            let held = sent.effects.iter().any(|e| matches!(e, Step::Hold(_)));
            assert_eq!(held, hold == Hold::Headers, "{label}");
            let expect_after_headers = match hold {
                Hold::Headers => Next::Pause,
                Hold::Buffer => Next::Continue,
            };
            assert_eq!(sent.after_headers, expect_after_headers, "{label}");
            assert!(!host.watch.is_held(7), "{label}: left the watch");
            let debug = sent.logs(Level::Debug);
            assert_eq!(
                debug,
                vec![
                    "lf-webhook-guard: accepted request_id=rid-1 route=lf verified=\"md5; key=k1\""
                ],
                "{label}"
            );
        }
    }
}

#[test]
fn cube_and_unsigned_are_counted_per_key_and_scheme() {
    let config = config(Hold::Headers, Mode::Enforce, false);
    let body = br#"{"partner_code":"P1","text_message":"hi"}"#;
    let ts = "1642385160000";
    let sig = sign_cube(
        body,
        "1.0",
        "HMAC-SHA1",
        ts,
        CUBE_ID,
        CUBE_SECRET.as_bytes(),
    )
    .unwrap();
    let req = Req::new("POST", "/cube/a")
        .json()
        .header("x-lf-notification-version", b"1.0")
        .header("x-lf-algo", b"HMAC-SHA1")
        .header("x-lf-timestamp", ts.as_bytes())
        .header("x-lf-signature", sig.as_bytes())
        .body(body);
    let mut host = Host::new();
    let sent = host.send(&config, &req);
    assert!(sent.forwarded());
    assert_eq!(
        sent.verified(),
        vec![format!("cube; key={CUBE_ID}").as_str()]
    );
    assert!(sent.counts().contains(&Metric::Verified {
        scheme: Scheme::Cube,
        key: 2
    }));
    // Unsigned on an allow_unsigned route: decided on the headers, body never read.
    let sent = host.send(&config, &Req::new("POST", "/plan/a").json().body(BODY));
    assert!(sent.forwarded());
    assert_eq!(sent.after_headers, Next::Continue);
    assert_eq!(sent.verified(), vec!["none"]);
    assert_eq!(
        sent.counts(),
        vec![Metric::Requests, Metric::UnsignedAllowed]
    );
}

#[test]
fn client_verdicts_are_stripped_everywhere_and_unprotected_paths_pass() {
    let config = config(Hold::Headers, Mode::Enforce, false);
    let mut host = Host::new();
    let req = Req::new("POST", "/other")
        .header("x-lf-verified", b"md5; key=k1")
        .header("X-LF-Verified", b"x")
        .body(b"anything");
    let sent = host.send(&config, &req);
    assert_eq!(
        sent.effects,
        vec![
            Step::RemoveRequestHeader("x-lf-verified".into()),
            Step::RemoveRequestHeader("X-LF-Verified".into()),
        ]
    );
    assert!(sent.forwarded());
    // A removal that fails answers 500, even on a shadow route (fail closed).
    let config = config_shadow();
    let mut host = Host::new();
    host.fail_remove = true;
    let sent = host.send(
        &config,
        &Req::signed("/lf/a", BODY).header("x-lf-verified", b"x"),
    );
    assert_eq!(sent.reply().map(|r| r.status), Some(500));
    assert_eq!(sent.counts(), vec![Metric::Rejected(Reason::InternalError)]);
    assert!(sent.logs(Level::Warn)[0].contains(
        "rejected request_id=- route=- scheme=- partner=- reason=internal_error status=500 mode=enforce"
    ));
}

fn config_shadow() -> Rc<Config> {
    config(Hold::Headers, Mode::Shadow, false)
}

#[test]
fn no_configuration_fails_closed() {
    let mut host = Host::new();
    let mut flow = Flow::new(None, 7, true);
    let sent = host.send_with(&mut flow, &Req::signed("/lf/a", BODY));
    assert_eq!(sent.reply().map(|r| r.status), Some(500));
    assert!(sent.logs(Level::Warn)[0].contains("detail=\"no valid configuration\""));
    assert_eq!(
        sent.replies(),
        1,
        "body callbacks after the reply stay stopped"
    );
}

#[test]
fn header_failures() {
    // Cannot set x-lf-verified on accept: 500 (enforce), or failed:internal_error (shadow).
    for (mode, status) in [(Mode::Enforce, Some(500)), (Mode::Shadow, None)] {
        let config = config(Hold::Headers, mode, false);
        let mut host = Host::new();
        host.fail_set_verified = true;
        let sent = host.send(&config, &Req::signed("/lf/a", BODY));
        assert_eq!(sent.reply().map(|r| r.status), status, "{mode:?}");
        assert!(sent.logs(Level::Warn)[0].contains("detail=\"cannot set x-lf-verified\""));
        if mode == Mode::Shadow {
            assert_eq!(sent.shadow(), vec!["failed:internal_error"]);
            assert!(sent.forwarded());
        }
        assert!(!sent
            .counts()
            .iter()
            .any(|m| matches!(m, Metric::Verified { .. })));
    }
    // Cannot set the shadow verdict: forwarded without it, said in a warning.
    let mut host = Host::new();
    host.fail_set_shadow = true;
    let sent = host.send(
        &config_shadow(),
        &Req::new("POST", "/lf/a").json().body(BODY),
    );
    assert!(sent.forwarded());
    assert!(sent.shadow().is_empty());
    let warn = sent.logs(Level::Warn);
    assert_eq!(warn.len(), 2);
    assert_eq!(
        warn[1],
        "lf-webhook-guard: shadow request_id=rid-1 cannot set x-lf-verified (InternalFailure); \
         forwarded without it"
    );
}

#[test]
fn rejection_log_carries_the_partner_from_the_one_parse() {
    let config = config(Hold::Headers, Mode::Enforce, false);
    let mut host = Host::new();
    let (_, Case::Request(req)) = (0, case(Reason::InvalidSignature)) else {
        unreachable!()
    };
    let sent = host.send(&config, &req);
    assert_eq!(
        sent.logs(Level::Warn),
        vec![
            "lf-webhook-guard: rejected request_id=rid-1 route=lf scheme=md5 partner=P1 \
             reason=invalid_signature status=401 mode=enforce action=local_reply \
             detail=\"signature mismatch\""
        ]
    );
    // Rejected on the headers: the scheme is the route's, no partner.
    let sent = host.send(&config, &Req::new("POST", "/lf/a").json().body(BODY));
    assert!(sent.logs(Level::Warn)[0].contains("route=lf scheme=md5 partner=- "));
    // A body that does not parse names no partner.
    let Case::Request(req) = case(Reason::MalformedBody) else {
        unreachable!()
    };
    let sent = host.send(&config, &req);
    assert!(sent.logs(Level::Warn)[0].contains(" partner=- reason=malformed_body"));
}

#[test]
fn dedup_records_after_2xx_and_answers_the_copy() {
    for hold in [Hold::Headers, Hold::Buffer] {
        let config = config(hold, Mode::Enforce, true);
        let mut host = Host::new();
        let req = Req::signed("/lf/a", BODY);
        let first = host.send(&config, &req);
        assert!(first.forwarded(), "{hold:?}");
        assert!(first.counts().contains(&Metric::DedupRecorded));
        let copy = host.send(&config, &req);
        let reply = copy.reply().unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.headers,
            vec![
                ("content-type", "application/json".to_string()),
                ("x-lf-duplicate", "true".to_string())
            ]
        );
        assert_eq!(
            reply.body,
            "{\"status\":\"duplicate\",\"request_id\":\"rid-1\"}"
        );
        assert_eq!(
            copy.counts(),
            vec![
                Metric::Requests,
                Metric::DuplicatesAnswered,
                Metric::Verified {
                    scheme: Scheme::Md5,
                    key: 0
                }
            ]
        );
        let info = copy.logs(Level::Info);
        assert_eq!(info.len(), 1);
        assert!(info[0].starts_with(
            "lf-webhook-guard: duplicate request_id=rid-1 route=lf scheme=md5 key=k1 dedup_id="
        ));
        assert!(info[0].ends_with(" status=200 action=local_reply"));
        // Another path of the same route is another delivery.
        let other = host.send(&config, &Req::signed("/lf/b", BODY));
        assert!(other.forwarded());
    }
}

#[test]
fn dedup_never_records_a_failed_delivery_and_counts_evictions() {
    let config = config(Hold::Headers, Mode::Enforce, true);
    let mut host = Host::new();
    host.response_status = 503;
    let req = Req::signed("/lf/a", BODY);
    let first = host.send(&config, &req);
    assert!(!first.counts().contains(&Metric::DedupRecorded));
    assert!(first
        .logs(Level::Debug)
        .contains(&"lf-webhook-guard: not recorded for dedup request_id=rid-1 status=Some(503)"));
    host.response_status = 200;
    let again = host.send(&config, &req);
    assert!(
        again.forwarded(),
        "the earlier copy failed: forwarded again"
    );
    assert!(again.counts().contains(&Metric::DedupRecorded));
    // 16 slots: some other delivery lands on a live slot.
    let mut evicted = false;
    for i in 0..64 {
        let sent = host.send(&config, &Req::signed(&format!("/lf/{i}"), BODY));
        evicted |= sent.counts().contains(&Metric::DedupEvictions);
    }
    assert!(evicted);
}

#[test]
fn dedup_is_for_enforce_routes_and_verified_requests_only() {
    let shadow = config(Hold::Headers, Mode::Shadow, true);
    let mut host = Host::new();
    let req = Req::signed("/lf/a", BODY);
    for _ in 0..2 {
        let sent = host.send(&shadow, &req);
        assert!(sent.forwarded());
        assert!(!sent
            .counts()
            .iter()
            .any(|m| matches!(m, Metric::DedupRecorded | Metric::DuplicatesAnswered)));
    }
    assert!(host.shared.is_empty());
    let enforce = config(Hold::Headers, Mode::Enforce, true);
    for _ in 0..2 {
        let sent = host.send(&enforce, &Req::new("POST", "/plan/a").json().body(BODY));
        assert!(sent.forwarded());
    }
    assert!(host.shared.is_empty());
}

#[test]
fn dedup_host_failures_forward_and_say_so() {
    let config = config(Hold::Headers, Mode::Enforce, true);
    let mut flow = Flow::new(Some(Rc::clone(&config)), 7, true);
    let req = Req::signed("/lf/a", BODY);
    let s = flow.on_request_headers(&req.headers, false, NOW);
    assert_eq!(s.next, Next::Pause);
    let s = flow.on_request_body(BODY.len(), true, NOW, None);
    assert_eq!(s.next, Next::ReadBody(BODY.len()));
    let s = flow.on_body_read(BODY, NOW);
    assert!(
        matches!(s.next, Next::LookupDedup(ref k) if k.starts_with("lf_webhook_guard.dedup.global."))
    );
    let s = flow.on_dedup_lookup(Err("InternalFailure".into()), NOW);
    assert_eq!(
        s.effects.first(),
        Some(&Step::Log(
            Level::Warn,
            "lf-webhook-guard: dedup lookup failed (InternalFailure); forwarding".into()
        ))
    );
    assert_eq!(s.next, Next::Continue);
    assert_eq!(flow.on_response_headers().next, Next::ReadResponseStatus);
    let s = flow.on_response_status(Some(204));
    assert!(matches!(s.next, Next::RecordDedup(_)));
    let s = flow.on_dedup_written(DedupWritten::WriteFailed("BadArgument".into()));
    assert_eq!(
        s,
        Steps::new(
            vec![Step::Log(
                Level::Warn,
                "lf-webhook-guard: dedup write failed (BadArgument); not recorded".into()
            )],
            Next::Continue
        )
    );
    // Done: a later response event does nothing.
    assert_eq!(flow.on_response_headers(), Steps::only(Next::Continue));
}

#[test]
fn body_in_chunks_and_trailers() {
    for hold in [Hold::Headers, Hold::Buffer] {
        let config = config(hold, Mode::Enforce, false);
        let mut host = Host::new();
        let mut req = Req::signed("/lf/a", BODY);
        let (a, b) = BODY.split_at(20);
        req.chunks = vec![a.to_vec(), b.to_vec()];
        let sent = host.send(&config, &req);
        assert!(sent.forwarded(), "{hold:?}");
        assert_eq!(
            host.answers.get(1),
            Some(&Next::Pause),
            "{hold:?}: mid-body"
        );
        req.trailers = true;
        let sent = host.send(&config, &req);
        assert!(sent.forwarded(), "{hold:?} trailers");
        assert!(!host.watch.is_held(7));
        // Too large mid-body: answered at once, and the watch is left.
        req.trailers = false;
        req.chunks = vec![vec![b' '; 200], vec![b' '; 100], vec![b' '; 10]];
        let sent = host.send(&config, &req);
        assert_eq!(sent.reply().map(|r| r.status), Some(413));
        assert_eq!(sent.replies(), 1);
        assert!(!host.watch.is_held(7));
    }
}

#[test]
fn no_body_is_decided_on_the_headers() {
    for hold in [Hold::Headers, Hold::Buffer] {
        let config = config(hold, Mode::Enforce, false);
        let mut host = Host::new();
        let req = Req::new("POST", "/lf/a")
            .json()
            .header(MD5_HEADER, md5(BODY, SECRET).as_bytes());
        let sent = host.send(&config, &req);
        assert!(!sent.effects.iter().any(|e| matches!(e, Step::Hold(_))));
        // An empty body is malformed; decided (and answered) in the headers callback.
        assert_eq!(sent.reply().map(|r| r.status), Some(400), "{hold:?}");
        assert_eq!(sent.verified(), Vec::<&str>::new(), "{hold:?}");
    }
}

#[test]
fn a_hold_that_cannot_be_watched_still_holds() {
    let config = config(Hold::Headers, Mode::Enforce, false);
    let mut flow = Flow::new(Some(Rc::clone(&config)), 7, true);
    let req = Req::signed("/lf/a", BODY);
    let s = flow.on_request_headers(&req.headers, false, NOW);
    assert!(matches!(s.effects.last(), Some(Step::Hold(_))));
    let s = flow.failed(Failure::Watch);
    assert_eq!(s.next, Next::Pause);
    // Not registered: the body goes on without consulting the watch.
    let mut watch = HoldWatch::default();
    let s = flow.on_request_body(BODY.len(), true, NOW, Some(&mut watch));
    assert_eq!(s.next, Next::ReadBody(BODY.len()));
    let s = flow.on_body_read(BODY, NOW);
    assert_eq!(s.next, Next::Continue);
}

#[test]
fn debug_lines_only_when_wanted() {
    let config = config(Hold::Headers, Mode::Enforce, false);
    let mut host = Host::new();
    let mut flow = Flow::new(Some(Rc::clone(&config)), 7, false);
    let sent = host.send_with(&mut flow, &Req::signed("/lf/a", BODY));
    assert!(sent.forwarded());
    assert!(sent.logs(Level::Debug).is_empty());
}

#[test]
fn the_clock_is_read_only_when_a_step_needs_it() {
    let reads = std::cell::Cell::new(0u32);
    let clock = || {
        reads.set(reads.get() + 1);
        NOW
    };
    // Unprotected path, with a body: no host clock read at all.
    let held = config(Hold::Headers, Mode::Enforce, false);
    let mut flow = Flow::new(Some(Rc::clone(&held)), 7, false);
    let req = Req::new("POST", "/other").body(b"anything");
    let s = flow.on_request_headers(&req.headers, false, clock);
    assert_eq!(s.next, Next::Continue);
    let s = flow.on_request_body(8, true, clock, None);
    assert_eq!(s.next, Next::Continue);
    assert_eq!(reads.get(), 0);
    // A protected route in hold mode reads it once for the watchdog entry.
    let mut flow = Flow::new(Some(Rc::clone(&held)), 8, false);
    let req = Req::signed("/lf/a", BODY);
    let s = flow.on_request_headers(&req.headers, false, clock);
    assert_eq!(s.next, Next::Pause);
    assert_eq!(reads.get(), 1);
    // ... and not again when the whole body arrives in one callback and verifies (no freshness
    // window on the route): leaving the watch and verifying need no time.
    let mut watch = HoldWatch::default();
    watch.hold(
        8,
        crate::hold::Held {
            since_ms: NOW,
            held_at_ms: NOW,
            request_id: String::new(),
            route: "r".into(),
            body_started: false,
        },
    );
    let s = flow.on_request_body(BODY.len(), true, clock, Some(&mut watch));
    assert_eq!(s.next, Next::ReadBody(BODY.len()));
    assert!(!watch.is_held(8));
    let s = flow.on_body_read(BODY, clock);
    assert_eq!(s.next, Next::Continue);
    assert_eq!(reads.get(), 1);
    // Buffer mode never reads it at the headers.
    let buffered = config(Hold::Buffer, Mode::Enforce, false);
    let mut flow = Flow::new(Some(buffered), 9, false);
    let s = flow.on_request_headers(&req.headers, false, clock);
    assert_eq!(s.next, Next::Continue);
    assert_eq!(reads.get(), 1);
}
