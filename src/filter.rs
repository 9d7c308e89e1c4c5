//! The proxy-wasm glue (wasm32 only): headers -> (hold) -> body -> core -> forward or local reply.
//! No signing logic lives here; see [`crate::verify`].
//!
//! Host calls go through `proxy_wasm::hostcalls` directly and every error is handled: the SDK's
//! trait helpers unwrap, and a panic would kill the VM.
#![allow(unsafe_code)] // `proxy_wasm::main!` expands to an unsafe call of the Wasm constructors.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use log::{debug, error, info, warn};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType};

use crate::config::{Config, RouteScheme};
use crate::dedup::etcd::{Answer, Call, EtcdStore, Io, LookupEnd, OnError, RecordEnd};
use crate::dedup::etcd::{StoreError, StoreLookup, StoreRecord};
use crate::headers::must_strip;
use crate::metrics::{Metric, MetricTable, CONFIG_FAILURES};
use crate::ops::{Mode, RejectionLog};
use crate::route::Target;
use crate::verdict::Accepted;
use crate::verdict::{reply_body, sanitize_request_id, Reason, Rejection};
use crate::verify::{HeadVerdict, Pending, RequestHead, VERIFIED_HEADER};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    // After set_log_level, which installs the SDK's own hook (that one unwraps the log call).
    std::panic::set_hook(Box::new(|info| log_panic(&info.to_string())));
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(GuardRoot { config: None, ops: None, config_failures: None, watch: Rc::default() })
    });
}}

/// Panic hook: there is no panic path in this crate (clippy denies unwrap/expect/panic/indexing),
/// but if one ever fires the VM is dead from here on; say so at critical level, on one line (the
/// SDK's own hook unwraps its log call). Envoy then answers 503 on every route through the filter
/// (`fail_open: false` / `failure_policy: FAIL_CLOSED`): nothing is forwarded unverified.
/// Proven by tests/e2e/test_crash.py with the `crash-probe` build.
fn log_panic(detail: &str) {
    let msg = format!(
        "lf-webhook-guard: PANIC, the Wasm VM is now unusable and Envoy fails closed (503) until \
         it is reloaded: {}",
        detail.replace('\n', " ")
    );
    let _ = hostcalls::log(LogLevel::Critical, &msg);
}

/// Test-only build (`--features crash-probe`, never shipped): a request carrying
/// `x-lf-crash-probe` panics inside the VM, so the end-to-end suite can prove that the panic hook
/// logs at critical level and that Envoy then fails closed (tests/e2e/test_crash.py).
#[cfg(feature = "crash-probe")]
#[allow(clippy::panic)]
fn crash_probe(headers: &[(String, Vec<u8>)]) {
    if headers.iter().any(|(name, _)| name == "x-lf-crash-probe") {
        panic!("crash probe requested");
    }
}

struct GuardRoot {
    config: Option<Rc<Config>>,
    /// Counters for the current configuration (defined once in `on_configure`).
    ops: Option<Rc<Ops>>,
    /// Id of `lf_webhook_guard.config_failures`, defined before the configuration is parsed.
    config_failures: Option<u32>,
    /// Hold mode: requests paused in their headers that have had no body callback yet.
    watch: Rc<RefCell<HoldWatch>>,
}

/// The metric table of the configuration and the proxy-wasm counter id of each name.
struct Ops {
    table: MetricTable,
    ids: Vec<Option<u32>>,
}

impl Ops {
    /// Define every counter of `config` (at configure time only).
    fn define(config: &Config) -> Ops {
        let table = MetricTable::new(config);
        let ids = table
            .names()
            .iter()
            .map(|name| define_counter(name))
            .collect();
        Ops { table, ids }
    }

    /// Count one outcome; a failing host call is logged, never fatal.
    fn inc(&self, metric: Metric) {
        let id = self
            .table
            .index(metric)
            .and_then(|i| self.ids.get(i).copied().flatten());
        if let Some(id) = id {
            if let Err(status) = hostcalls::increment_metric(id, 1) {
                debug!("lf-webhook-guard: cannot increment metric {metric:?}: {status:?}");
            }
        }
    }
}

fn define_counter(name: &str) -> Option<u32> {
    match hostcalls::define_metric(MetricType::Counter, name) {
        Ok(id) => Some(id),
        Err(status) => {
            error!("lf-webhook-guard: cannot define metric {name}: {status:?}");
            None
        }
    }
}

fn proxy_log_level(level: crate::ops::LogLevel) -> LogLevel {
    use crate::ops::LogLevel as L;
    match level {
        L::Trace => LogLevel::Trace,
        L::Debug => LogLevel::Debug,
        L::Info => LogLevel::Info,
        L::Warn => LogLevel::Warn,
        L::Error => LogLevel::Error,
        L::Critical => LogLevel::Critical,
    }
}

/// Hold-mode watchdog state of one worker, shared by the root context (which scans it on every
/// tick) and the HTTP contexts (which register when they pause on headers, refresh their entry
/// on every body chunk, and leave at the end of the body, or when they end).
#[derive(Default)]
struct HoldWatch {
    held: HashMap<u32, Held>,
    /// A body callback arrived after a header hold on this worker: Envoy does deliver bodies to
    /// held requests (`allow_on_headers_stop_iteration` is set), so a later timeout is a stalled
    /// client (408), not a misconfiguration (500).
    body_after_hold_seen: bool,
}

struct Held {
    /// When the request was held, or when its latest body chunk arrived.
    since_ms: u64,
    request_id: String,
    route: String,
    /// Part of the body arrived: a timeout now is a client that stalled mid-body (408).
    body_started: bool,
}

/// How often the root context scans held requests: a fifth of the timeout, 20 ms..1 s.
fn tick_period(hold_timeout_ms: u64) -> Duration {
    Duration::from_millis((hold_timeout_ms / 5).clamp(20, 1000))
}

impl GuardRoot {
    /// Count a failed `on_configure` (visible in /stats while Envoy keeps running, e.g. a
    /// rejected dynamic update; a failed static configuration stops Envoy).
    fn configure_failed(&mut self) -> bool {
        if self.config_failures.is_none() {
            self.config_failures = define_counter(CONFIG_FAILURES);
        }
        if let Some(id) = self.config_failures {
            if let Err(status) = hostcalls::increment_metric(id, 1) {
                error!("lf-webhook-guard: cannot count configuration failure: {status:?}");
            }
        }
        false
    }

    /// Answer a request that was held longer than `hold_timeout_ms` without a body callback.
    fn answer_expired(&self, context_id: u32, held: Held, body_seen: bool, timeout_ms: u64) {
        let (reason, detail) = if held.body_started {
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
            error!(
                "lf-webhook-guard: request_id={} route={} was held {} ms without any request body \
                 callback: Envoy does not deliver the body to a filter that paused on headers. Set \
                 `allow_on_headers_stop_iteration: true` in the Wasm filter's config (Envoy >= \
                 1.35), or set \"hold_headers\": false in the plugin configuration and place \
                 envoy.filters.http.buffer after this filter",
                held.request_id, held.route, timeout_ms
            );
            (
                Reason::FilterMisconfigured,
                "held request got no body callback: allow_on_headers_stop_iteration missing?",
            )
        };
        warn!(
            "{}",
            RejectionLog {
                request_id: &held.request_id,
                route: &held.route,
                scheme: "-",
                partner: None,
                category: reason.category(),
                status: reason.status(),
                mode: Mode::Enforce,
                detail,
            }
            .line()
        );
        if hostcalls::set_effective_context(context_id).is_err() {
            debug!("lf-webhook-guard: held request {context_id} is gone");
            return;
        }
        if let Some(ops) = &self.ops {
            ops.inc(Metric::Rejected(reason));
        }
        let body = reply_body(reason, &held.request_id);
        if let Err(status) = hostcalls::send_http_response(
            reason.status(),
            vec![("content-type", "application/json")],
            Some(body.as_bytes()),
        ) {
            error!("lf-webhook-guard: cannot send local reply: {status:?}; resetting");
            let _ = hostcalls::reset_http_request();
        }
    }
}

impl Context for GuardRoot {}

impl RootContext for GuardRoot {
    fn on_configure(&mut self, size: usize) -> bool {
        let raw = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size) {
            Ok(Some(raw)) => raw,
            Ok(None) => {
                error!("lf-webhook-guard: invalid configuration: no plugin configuration given");
                return self.configure_failed();
            }
            Err(status) => {
                error!("lf-webhook-guard: cannot read plugin configuration: {status:?}");
                return self.configure_failed();
            }
        };
        match Config::from_json(&raw, |name| std::env::var(name).ok()) {
            Ok(config) => {
                // Defined (at 0) by every good configuration, so that the first failure of a
                // later push is an increase an alert can see.
                if self.config_failures.is_none() {
                    self.config_failures = define_counter(CONFIG_FAILURES);
                }
                // Unset: the host's current level (Envoy's `wasm` component level), so debug
                // lines are not formatted per request when Envoy would drop them anyway.
                let level = match config.log_level {
                    Some(level) => proxy_log_level(level),
                    None => hostcalls::get_log_level().unwrap_or(LogLevel::Trace),
                };
                proxy_wasm::set_log_level(level);
                self.ops = Some(Rc::new(Ops::define(&config)));
                info!(
                    "lf-webhook-guard: configured: {} route(s), {} key(s), max_body_bytes={}",
                    config.routes.len(),
                    config.keys.len(),
                    config.max_body_bytes
                );
                info!(
                    "lf-webhook-guard: hold_headers={} hold_timeout_ms={}",
                    config.hold_headers, config.hold_timeout_ms
                );
                let period = if config.hold_headers && config.hold_timeout_ms > 0 {
                    tick_period(config.hold_timeout_ms)
                } else {
                    Duration::ZERO
                };
                if let Err(status) = hostcalls::set_tick_period(period) {
                    error!("lf-webhook-guard: cannot start the hold watchdog timer: {status:?}");
                    return false;
                }
                self.config = Some(Rc::new(config));
                true
            }
            Err(err) => {
                // Names the field, never a secret value. Returning false makes Envoy refuse the
                // plugin: a statically configured Envoy does not start (fail closed).
                error!("lf-webhook-guard: {err}");
                self.configure_failed()
            }
        }
    }

    fn on_tick(&mut self) {
        let timeout = self.config.as_ref().map_or(0, |c| c.hold_timeout_ms);
        if timeout == 0 {
            return;
        }
        let now = now_ms();
        // Take the expired entries out first: answering one can re-enter the HTTP context
        // (which then must be able to borrow the watch).
        let (expired, body_seen) = match self.watch.try_borrow_mut() {
            Ok(mut watch) => {
                let ids: Vec<u32> = watch
                    .held
                    .iter()
                    .filter(|(_, h)| now.saturating_sub(h.since_ms) >= timeout)
                    .map(|(id, _)| *id)
                    .collect();
                let expired: Vec<(u32, Held)> = ids
                    .into_iter()
                    .filter_map(|id| watch.held.remove(&id).map(|h| (id, h)))
                    .collect();
                (expired, watch.body_after_hold_seen)
            }
            Err(_) => return,
        };
        for (context_id, held) in expired {
            self.answer_expired(context_id, held, body_seen, timeout);
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(GuardHttp {
            config: self.config.clone(),
            state: State::Passthrough,
            request_id: String::new(),
            ops: self.ops.clone(),
            log_scheme: "-",
            log_partner: None,
            dedup_record: None,
            store_op: None,
            context_id,
            watch: Rc::clone(&self.watch),
            watched: false,
            headers_continued: false,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// The proxy's clock in epoch milliseconds (0 if unavailable: freshness then rejects).
fn now_ms() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

enum State {
    /// Unprotected route, or already decided: let everything through.
    Passthrough,
    /// Protected route: holding the request until the end of the body.
    Holding { pending: Pending, buffered: usize },
    /// A local reply was sent.
    Rejected,
}

struct GuardHttp {
    config: Option<Rc<Config>>,
    state: State,
    request_id: String,
    ops: Option<Rc<Ops>>,
    /// Scheme named in log lines: the route's, then the request's once known.
    log_scheme: &'static str,
    /// Partner code from the body (unverified, sanitized when logged), once the body was read.
    log_partner: Option<String>,
    /// A forwarded verified delivery to record for de-duplication if the backend answers 2xx.
    dedup_record: Option<DedupRecord>,
    /// A fleet-store (etcd) call in flight, and what it is for.
    store_op: Option<(StoreOp, InFlight)>,
    context_id: u32,
    watch: Rc<RefCell<HoldWatch>>,
    /// Registered in `watch` (held on headers, no body callback yet).
    watched: bool,
    /// Buffer mode: the request headers already continued (with `x-lf-verified` preset on
    /// enforce routes); the body callback must not touch request headers (the host call fails
    /// once the headers have continued).
    headers_continued: bool,
}

struct DedupRecord {
    route: usize,
    shared_key: String,
    identity: crate::dedup::Identity,
    window_ms: u64,
}

/// A dispatched fleet-store call.
struct InFlight {
    token: u32,
    sent_ms: u64,
    timeout_ms: u64,
}

/// What a fleet-store call in flight is for.
enum StoreOp {
    /// The lookup before forwarding a verified delivery (paused at the end of its body).
    Lookup {
        seq: StoreLookup,
        record: DedupRecord,
        verified: String,
        metric: Option<Metric>,
        key_id: String,
    },
    /// The record after a 2xx answer (response headers paused).
    Record { seq: StoreRecord, route: usize },
}

/// The fleet store of a route, if it has one.
fn route_store(config: &Config, route: usize) -> Option<&EtcdStore> {
    config.routes.get(route)?.dedup.as_ref()?.store.as_ref()
}

/// Send one fleet-store call to the store's Envoy cluster.
fn dispatch(store: &EtcdStore, call: &Call, timeout_ms: u64) -> Result<InFlight, String> {
    let headers = store.headers(call).to_vec();
    hostcalls::dispatch_http_call(
        &store.cluster,
        headers,
        Some(call.body.as_bytes()),
        vec![],
        Duration::from_millis(timeout_ms),
    )
    .map(|token| InFlight {
        token,
        sent_ms: now_ms(),
        timeout_ms,
    })
    .map_err(|status| format!("{status:?}"))
}

/// Attempts at a compare-and-swap write of a de-duplication slot before giving up (forwarding a
/// later duplicate is the safe direction).
const DEDUP_CAS_ATTEMPTS: usize = 4;

impl Context for GuardHttp {
    fn on_http_call_response(&mut self, token: u32, _headers: usize, body_size: usize, _t: usize) {
        self.store_answered(token, body_size);
    }
}

impl Drop for GuardHttp {
    fn drop(&mut self) {
        self.leave_watch();
    }
}

impl GuardHttp {
    fn route_name(&self, route: usize) -> &str {
        self.config
            .as_ref()
            .and_then(|c| c.routes.get(route))
            .map_or("-", |r| r.name.as_str())
    }

    /// Answer locally and stop the request: nothing reaches the upstream.
    fn reject(&mut self, route: Option<usize>, rejection: Rejection) -> Action {
        let reason = rejection.reason;
        let mode = route
            .and_then(|r| self.config.as_ref()?.routes.get(r))
            .map_or(Mode::Enforce, |r| r.mode);
        warn!(
            "{}",
            RejectionLog {
                request_id: &self.request_id,
                route: route.map_or("-", |r| self.route_name(r)),
                scheme: self.log_scheme,
                partner: self.log_partner.as_deref(),
                category: reason.category(),
                status: reason.status(),
                mode,
                detail: rejection.detail,
            }
            .line()
        );
        if mode == Mode::Shadow {
            return self.shadow_forward(reason);
        }
        self.count(Metric::Rejected(reason));
        let body = reply_body(reason, &self.request_id);
        let mut headers = vec![("content-type", "application/json")];
        let allow;
        if reason == Reason::MethodNotAllowed {
            allow = route
                .and_then(|r| self.config.as_ref()?.routes.get(r))
                .map(|r| r.allow.clone())
                .unwrap_or_default();
            headers.push(("allow", allow.as_str()));
        }
        if let Err(status) =
            hostcalls::send_http_response(reason.status(), headers, Some(body.as_bytes()))
        {
            error!("lf-webhook-guard: cannot send local reply: {status:?}; resetting");
            let _ = hostcalls::reset_http_request();
        }
        self.state = State::Rejected;
        Action::Pause
    }

    fn count(&self, metric: Metric) {
        if let Some(ops) = &self.ops {
            ops.inc(metric);
        }
    }

    /// Shadow mode: the request failed, but goes upstream marked `x-lf-verified: failed:<cat>`.
    /// If the header cannot be set any more (e.g. body callback in buffer mode) the request is
    /// forwarded without `x-lf-verified` (the client's was stripped): still visibly unverified.
    fn shadow_forward(&mut self, reason: Reason) -> Action {
        self.count(Metric::ShadowFailed(reason));
        let value = crate::ops::shadow_header_value(reason.category());
        if self.headers_continued {
            // Buffer mode: the headers are gone; the verdict is in the log line and metrics.
        } else if let Err(status) =
            hostcalls::set_map_value(MapType::HttpRequestHeaders, VERIFIED_HEADER, Some(&value))
        {
            warn!(
                "lf-webhook-guard: shadow request_id={} cannot set x-lf-verified ({status:?}); \
                 forwarded without it",
                self.request_id
            );
        }
        self.state = State::Passthrough;
        Action::Continue
    }

    /// Answer a recorded duplicate locally (200, `x-lf-duplicate: true`).
    fn duplicate_reply(&mut self, route: usize, key_id: &str, identity: &crate::dedup::Identity) {
        info!(
            "lf-webhook-guard: duplicate request_id={} route={} scheme={} key={} dedup_id={} \
             status=200 action=local_reply",
            self.request_id,
            self.route_name(route),
            self.log_scheme,
            key_id,
            identity.short()
        );
        self.count(Metric::DuplicatesAnswered);
        let body = format!(
            "{{\"status\":\"duplicate\",\"request_id\":\"{}\"}}",
            self.request_id
        );
        let headers = vec![
            ("content-type", "application/json"),
            ("x-lf-duplicate", "true"),
        ];
        if let Err(status) = hostcalls::send_http_response(200, headers, Some(body.as_bytes())) {
            error!("lf-webhook-guard: cannot send duplicate reply: {status:?}; resetting");
            let _ = hostcalls::reset_http_request();
        }
        self.state = State::Rejected;
    }

    /// Count an accepted request (verified per scheme and key, or unsigned).
    fn count_accepted(&self, accepted: &Accepted<'_>) {
        if let Some(metric) = self.accepted_metric(accepted) {
            self.count(metric);
        }
    }

    fn accepted_metric(&self, accepted: &Accepted<'_>) -> Option<Metric> {
        match accepted {
            Accepted::Unsigned => Some(Metric::UnsignedAllowed),
            Accepted::Verified { scheme, key_id } => self
                .config
                .as_ref()
                .and_then(|c| c.keys.iter().position(|k| k.id == *key_id))
                .map(|key| Metric::Verified {
                    scheme: *scheme,
                    key,
                }),
        }
    }

    /// Edge de-duplication after a successful verification (enforce-mode routes with `dedup`):
    /// a recorded, unexpired identical delivery is answered locally (`Some(action)`); otherwise
    /// the delivery is remembered, to be recorded if the backend answers 2xx (`None`).
    fn dedup_check(
        &mut self,
        config: &Config,
        pending: &Pending,
        body: &[u8],
        accepted: &Accepted<'_>,
    ) -> Option<Action> {
        let Accepted::Verified { key_id, .. } = accepted else {
            return None;
        };
        let route = config.routes.get(pending.route)?;
        let dedup = route.dedup.as_ref()?;
        if route.mode != Mode::Enforce {
            return None;
        }
        let identity = pending.dedup_identity(&route.name, body);
        let shared_key = crate::dedup::shared_key(&dedup.table, identity.slot(dedup.max_entries));
        let now = now_ms();
        let stored = match hostcalls::get_shared_data(&shared_key) {
            Ok((stored, _)) => stored,
            Err(status) => {
                warn!("lf-webhook-guard: dedup lookup failed ({status:?}); forwarding");
                None
            }
        };
        if crate::dedup::is_duplicate(stored.as_deref(), &identity, now) {
            self.count_accepted(accepted);
            self.duplicate_reply(pending.route, key_id, &identity);
            return Some(Action::Pause);
        }
        let record = DedupRecord {
            route: pending.route,
            shared_key,
            identity,
            window_ms: dedup.window_ms,
        };
        let Some(store) = dedup.store.as_ref() else {
            self.dedup_record = Some(record);
            return None;
        };
        let (seq, io) = store.lookup(identity);
        let op = StoreOp::Lookup {
            seq,
            record,
            verified: accepted.header_value(),
            metric: self.accepted_metric(accepted),
            key_id: key_id.to_string(),
        };
        Some(self.store_io(store, op, io))
    }

    /// Send the next call of a store operation (or finish it).
    fn store_io(&mut self, store: &EtcdStore, op: StoreOp, io: Io<LookupEnd>) -> Action {
        match io {
            Io::Done(end) => self.lookup_done(op, end),
            Io::Send { call, timeout_ms } => match dispatch(store, &call, timeout_ms) {
                Ok(flight) => {
                    self.store_op = Some((op, flight));
                    Action::Pause
                }
                Err(status) => {
                    debug!("lf-webhook-guard: dedup store dispatch failed: {status}");
                    let StoreOp::Lookup {
                        mut seq,
                        record,
                        verified,
                        metric,
                        key_id,
                    } = op
                    else {
                        return Action::Continue;
                    };
                    let failed = Answer {
                        status: None,
                        body: b"",
                        elapsed_ms: 0,
                        timeout_ms,
                    };
                    let io = seq.on_answer(store, &failed, now_ms());
                    let op = StoreOp::Lookup {
                        seq,
                        record,
                        verified,
                        metric,
                        key_id,
                    };
                    self.store_io(store, op, io)
                }
            },
        }
    }

    /// One warn line per store failure: the operation, the error class, the request, the route
    /// and the short de-dup id (never a key, a body or a signature).
    fn store_failed(
        &self,
        op: &str,
        route: usize,
        identity: &crate::dedup::Identity,
        error: &StoreError,
        action: &str,
    ) {
        self.count(if error.is_timeout() {
            Metric::DedupStoreTimeouts
        } else {
            Metric::DedupStoreErrors
        });
        warn!(
            "lf-webhook-guard: dedup store failure op={op} error={error} request_id={} route={} \
             dedup_id={} action={action}",
            self.request_id,
            self.route_name(route),
            identity.short()
        );
    }

    /// The lookup finished: answer the duplicate, forward, or apply `on_error`.
    fn lookup_done(&mut self, op: StoreOp, end: LookupEnd) -> Action {
        let StoreOp::Lookup {
            record,
            verified,
            metric,
            key_id,
            ..
        } = op
        else {
            return Action::Continue;
        };
        if let Some(m) = metric {
            self.count(m);
        }
        match end {
            LookupEnd::Duplicate { expires_ms } => {
                self.count(Metric::DedupStoreHits);
                // First tier: this replica answers the next copy without a store call.
                let now = now_ms();
                self.local_record(&record, now, expires_ms.saturating_sub(now));
                self.duplicate_reply(record.route, &key_id, &record.identity);
                Action::Pause
            }
            LookupEnd::Forward => self.forward_after_lookup(record, verified),
            LookupEnd::Failed { error, policy } => {
                self.store_failed(
                    "lookup",
                    record.route,
                    &record.identity,
                    &error,
                    policy.name(),
                );
                match policy {
                    OnError::Forward => self.forward_after_lookup(record, verified),
                    OnError::Reject => {
                        let route = Some(record.route);
                        self.reject(
                            route,
                            Rejection::new(
                                Reason::DedupStoreUnavailable,
                                "dedup store lookup failed (on_error: reject)",
                            ),
                        )
                    }
                }
            }
        }
    }

    /// Forward a verified delivery after its lookup; it is recorded if the backend answers 2xx.
    fn forward_after_lookup(&mut self, record: DedupRecord, verified: String) -> Action {
        let route = record.route;
        self.dedup_record = Some(record);
        if !self.headers_continued
            && hostcalls::set_map_value(
                MapType::HttpRequestHeaders,
                VERIFIED_HEADER,
                Some(&verified),
            )
            .is_err()
        {
            return self.internal(Some(route), "cannot set x-lf-verified");
        }
        self.state = State::Passthrough;
        Action::Continue
    }

    /// Write a delivery into this replica's table (one compare-and-swap attempt per try).
    fn local_record(&self, rec: &DedupRecord, now: u64, window_ms: u64) {
        for _ in 0..DEDUP_CAS_ATTEMPTS {
            let Ok((stored, cas)) = hostcalls::get_shared_data(&rec.shared_key) else {
                return;
            };
            let (value, _) = crate::dedup::record(stored.as_deref(), &rec.identity, now, window_ms);
            match hostcalls::set_shared_data(&rec.shared_key, Some(&value), cas) {
                Err(proxy_wasm::types::Status::CasMismatch) => continue,
                _ => return,
            }
        }
    }

    /// The backend answered: record a remembered delivery if the status is 2xx, here and (the
    /// response then waits for it) in the fleet store.
    fn dedup_record_response(&mut self) -> Action {
        let Some(rec) = self.dedup_record.take() else {
            return Action::Continue;
        };
        let config = self.config.clone();
        let store = config.as_deref().and_then(|c| route_store(c, rec.route));
        if !self.dedup_record_local(&rec) {
            return Action::Continue;
        }
        let Some(store) = store else {
            return Action::Continue;
        };
        let lease_key = store.lease_shared_key();
        let cached = hostcalls::get_shared_data(&lease_key)
            .ok()
            .and_then(|(v, _)| v);
        let (seq, io) = store.record(rec.identity, now_ms(), rec.window_ms, cached.as_deref());
        let op = StoreOp::Record {
            seq,
            route: rec.route,
        };
        self.record_io(store, op, io, &rec.identity)
    }

    /// Send the next call of a record, or finish it. `Continue`: the response can go on.
    fn record_io(
        &mut self,
        store: &EtcdStore,
        op: StoreOp,
        io: Io<RecordEnd>,
        identity: &crate::dedup::Identity,
    ) -> Action {
        let route = match &op {
            StoreOp::Record { route, .. } => *route,
            StoreOp::Lookup { record, .. } => record.route,
        };
        match io {
            Io::Done(RecordEnd::Recorded(inserted)) => {
                if inserted == crate::dedup::etcd::Inserted::Created {
                    self.count(Metric::DedupStoreRecorded);
                }
                Action::Continue
            }
            Io::Done(RecordEnd::Failed(error)) => {
                self.store_failed("record", route, identity, &error, "not_recorded");
                Action::Continue
            }
            Io::Send { call, timeout_ms } => match dispatch(store, &call, timeout_ms) {
                Ok(flight) => {
                    self.store_op = Some((op, flight));
                    Action::Pause
                }
                Err(status) => {
                    let error = StoreError::Unreachable;
                    debug!("lf-webhook-guard: dedup store dispatch failed: {status}");
                    self.store_failed("record", route, identity, &error, "not_recorded");
                    Action::Continue
                }
            },
        }
    }

    /// Record in this replica's table after a 2xx; false if the status is not 2xx.
    fn dedup_record_local(&mut self, rec: &DedupRecord) -> bool {
        let status = hostcalls::get_map_value(MapType::HttpResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| s.parse::<u32>().ok());
        if !matches!(status, Some(200..=299)) {
            debug!(
                "lf-webhook-guard: not recorded for dedup request_id={} status={status:?}",
                self.request_id
            );
            return false;
        }
        for _ in 0..DEDUP_CAS_ATTEMPTS {
            let (stored, cas) = match hostcalls::get_shared_data(&rec.shared_key) {
                Ok(found) => found,
                Err(status) => {
                    warn!("lf-webhook-guard: dedup read failed ({status:?}); not recorded");
                    return true;
                }
            };
            let (value, evicts) =
                crate::dedup::record(stored.as_deref(), &rec.identity, now_ms(), rec.window_ms);
            match hostcalls::set_shared_data(&rec.shared_key, Some(&value), cas) {
                Ok(()) => {
                    self.count(Metric::DedupRecorded);
                    if evicts {
                        self.count(Metric::DedupEvictions);
                    }
                    return true;
                }
                Err(proxy_wasm::types::Status::CasMismatch) => continue,
                Err(status) => {
                    warn!("lf-webhook-guard: dedup write failed ({status:?}); not recorded");
                    return true;
                }
            }
        }
        debug!("lf-webhook-guard: dedup slot busy; not recorded");
        true
    }

    /// A fleet-store call answered (or failed): feed it to its sequence and act on the result.
    fn store_answered(&mut self, token: u32, body_size: usize) {
        let Some((op, flight)) = self.store_op.take() else {
            return;
        };
        if flight.token != token {
            self.store_op = Some((op, flight));
            return;
        }
        let Some(config) = self.config.clone() else {
            return;
        };
        let route = match &op {
            StoreOp::Record { route, .. } => *route,
            StoreOp::Lookup { record, .. } => record.route,
        };
        let Some(store) = route_store(&config, route) else {
            return;
        };
        let status = hostcalls::get_map_value(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
            .and_then(|s| s.parse::<u32>().ok());
        let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        let now = now_ms();
        let answer = Answer {
            status,
            body: &body,
            elapsed_ms: now.saturating_sub(flight.sent_ms),
            timeout_ms: flight.timeout_ms,
        };
        match op {
            StoreOp::Lookup {
                mut seq,
                record,
                verified,
                metric,
                key_id,
            } => {
                let io = seq.on_answer(store, &answer, now);
                let op = StoreOp::Lookup {
                    seq,
                    record,
                    verified,
                    metric,
                    key_id,
                };
                if self.store_io(store, op, io) == Action::Continue {
                    if let Err(status) = hostcalls::resume_http_request() {
                        error!("lf-webhook-guard: cannot resume the request: {status:?}");
                    }
                }
            }
            StoreOp::Record { mut seq, route } => {
                let step = seq.on_answer(store, &answer);
                if let Some(slot) = step.cache_lease {
                    let key = store.lease_shared_key();
                    if let Err(status) =
                        hostcalls::set_shared_data(&key, Some(&slot.encode()), None)
                    {
                        debug!("lf-webhook-guard: cannot cache the dedup lease: {status:?}");
                    }
                }
                let identity = seq.identity();
                let op = StoreOp::Record { seq, route };
                if self.record_io(store, op, step.io, &identity) == Action::Continue {
                    if let Err(status) = hostcalls::resume_http_response() {
                        error!("lf-webhook-guard: cannot resume the response: {status:?}");
                    }
                }
            }
        }
    }

    /// Mark the request upstream and let it go.
    fn accept(&mut self, route: usize, accepted: Accepted<'_>) -> Action {
        let value = accepted.header_value();
        if !self.headers_continued
            && hostcalls::set_map_value(MapType::HttpRequestHeaders, VERIFIED_HEADER, Some(&value))
                .is_err()
        {
            return self.internal(Some(route), "cannot set x-lf-verified");
        }
        self.count_accepted(&accepted);
        debug!(
            "lf-webhook-guard: accepted request_id={} route={} verified=\"{}\"",
            self.request_id,
            self.route_name(route),
            value
        );
        self.state = State::Passthrough;
        Action::Continue
    }

    /// Hold mode: register this request with the root context's watchdog.
    fn watch_hold(&mut self, route: usize) {
        let held = Held {
            since_ms: now_ms(),
            request_id: self.request_id.clone(),
            route: self.route_name(route).to_string(),
            body_started: false,
        };
        if let Ok(mut watch) = self.watch.try_borrow_mut() {
            watch.held.insert(self.context_id, held);
            self.watched = true;
        }
    }

    /// Leave the watchdog (decided, or gone).
    fn leave_watch(&mut self) {
        if self.watched {
            if let Ok(mut watch) = self.watch.try_borrow_mut() {
                watch.held.remove(&self.context_id);
                self.watched = false;
            }
        }
    }

    /// A body or trailers callback arrived. At the end of the body leave the watchdog; before
    /// it, restart this request's clock (a client that stalls mid-body is answered 408 after
    /// `hold_timeout_ms`, not after Envoy's 300 s stream idle timeout). Returns false when the
    /// watchdog already answered this request (it must then stay stopped).
    fn body_arrived(&mut self, end_of_body: bool) -> bool {
        if !self.watched {
            return true;
        }
        let Ok(mut watch) = self.watch.try_borrow_mut() else {
            return true;
        };
        watch.body_after_hold_seen = true;
        if end_of_body {
            self.watched = false;
            return watch.held.remove(&self.context_id).is_some();
        }
        match watch.held.get_mut(&self.context_id) {
            Some(held) => {
                held.since_ms = now_ms();
                held.body_started = true;
                true
            }
            None => {
                self.watched = false;
                false
            }
        }
    }

    fn internal(&mut self, route: Option<usize>, detail: &'static str) -> Action {
        self.reject(route, Rejection::new(Reason::InternalError, detail))
    }

    /// The whole body is buffered: verify and forward or reject.
    fn finish(&mut self, size: usize) -> Action {
        let (pending, config) = match (
            std::mem::replace(&mut self.state, State::Passthrough),
            &self.config,
        ) {
            (State::Holding { pending, .. }, Some(config)) => (pending, Rc::clone(config)),
            (other, _) => {
                self.state = other;
                return Action::Continue;
            }
        };
        let route = Some(pending.route);
        if size > config.max_body_bytes {
            return self.reject(
                route,
                Rejection::new(Reason::BodyTooLarge, "body above max_body_bytes"),
            );
        }
        let body = match hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size) {
            Ok(body) => body.unwrap_or_default(),
            Err(_) => return self.internal(route, "cannot read request body"),
        };
        self.log_scheme = pending.scheme().name();
        match config.verify_body(&pending, &body, now_ms()) {
            Ok(accepted) => {
                if let Some(action) = self.dedup_check(&config, &pending, &body, &accepted) {
                    return action;
                }
                self.accept(pending.route, accepted)
            }
            Err(rejection) => {
                self.log_partner = pending.partner_hint(&config, &body);
                self.reject(route, rejection)
            }
        }
    }
}

impl HttpContext for GuardHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(config) = self.config.clone() else {
            return self.internal(None, "no valid configuration");
        };
        let headers = match hostcalls::get_map_bytes(MapType::HttpRequestHeaders) {
            Ok(headers) => headers,
            Err(_) => return self.internal(None, "cannot read request headers"),
        };
        #[cfg(feature = "crash-probe")]
        crash_probe(&headers);
        // Never trust a client-supplied verdict (any spelling) or path/method rewrite header,
        // on any route.
        for (name, _) in headers.iter().filter(|(name, _)| must_strip(name)) {
            if hostcalls::remove_map_value(MapType::HttpRequestHeaders, name).is_err() {
                return self.internal(
                    None,
                    "cannot remove a client x-lf-verified or rewrite header",
                );
            }
        }
        let path = headers
            .iter()
            .find(|(name, _)| name == ":path")
            .map_or(&[][..], |(_, v)| v.as_slice());
        let (route, non_canonical) = match config.classify(path) {
            Target::Exempt | Target::Unprotected => return Action::Continue,
            Target::Route(route) => (route, false),
            Target::NonCanonical(route) => (route, true),
        };
        self.count(Metric::Requests);
        self.log_scheme = config.routes.get(route).map_or("-", |r| match r.scheme {
            RouteScheme::Md5 => "md5",
            RouteScheme::Cube => "cube",
            RouteScheme::Auto => "auto",
        });
        self.request_id = headers
            .iter()
            .find(|(name, _)| name == "x-request-id")
            .map_or_else(String::new, |(_, v)| sanitize_request_id(v));
        if non_canonical {
            return self.reject(
                Some(route),
                Rejection::new(
                    Reason::NonCanonicalPath,
                    "alias of a protected path, not its canonical spelling",
                ),
            );
        }
        let head = RequestHead::from_pairs(headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
        match config.check_head(route, &head) {
            Err(rejection) => self.reject(Some(route), rejection),
            Ok(HeadVerdict::ForwardUnsigned) => self.accept(route, Accepted::Unsigned),
            Ok(HeadVerdict::NeedBody(pending)) => {
                self.state = State::Holding {
                    pending,
                    buffered: 0,
                };
                if end_of_stream {
                    // No body: decide now (headers can still be changed in either mode).
                    return self.finish(0);
                }
                if config.hold_headers {
                    self.watch_hold(route);
                    return Action::Pause;
                }
                // Buffer mode: the headers continue to envoy.filters.http.buffer, which holds
                // them until this filter lets the body go; a rejection later still answers
                // locally. Request headers can only be changed now, so the verdict header is
                // set now: on enforce routes only, because a failed request on a shadow route
                // is forwarded and must not carry a "verified" value (shadow verdicts are then
                // only in logs and metrics).
                self.headers_continued = true;
                let enforce = config
                    .routes
                    .get(route)
                    .is_some_and(|r| r.mode == Mode::Enforce);
                if enforce {
                    let value = match &self.state {
                        State::Holding { pending, .. } => config.verified_at_head(pending),
                        _ => return self.internal(Some(route), "lost pending request"),
                    };
                    if hostcalls::set_map_value(
                        MapType::HttpRequestHeaders,
                        VERIFIED_HEADER,
                        Some(&value),
                    )
                    .is_err()
                    {
                        return self.internal(Some(route), "cannot set x-lf-verified");
                    }
                }
                Action::Continue
            }
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.body_arrived(end_of_stream) {
            self.state = State::Rejected;
            return Action::Pause;
        }
        let limit = self.config.as_ref().map_or(0, |c| c.max_body_bytes);
        let action = match &mut self.state {
            State::Holding { pending, buffered } => {
                *buffered = body_size;
                let route = Some(pending.route);
                if body_size > limit {
                    self.reject(
                        route,
                        Rejection::new(Reason::BodyTooLarge, "body above max_body_bytes"),
                    )
                } else if end_of_stream {
                    self.finish(body_size)
                } else {
                    Action::Pause
                }
            }
            State::Rejected => Action::Pause,
            State::Passthrough => Action::Continue,
        };
        if !matches!(self.state, State::Holding { .. }) {
            self.leave_watch();
        }
        action
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.dedup_record_response()
    }

    /// While the fleet store records the delivery the response stays paused: a body callback
    /// that returned Continue would let the paused headers go too.
    fn on_http_response_body(&mut self, _body_size: usize, _end_of_stream: bool) -> Action {
        if matches!(self.store_op, Some((StoreOp::Record { .. }, _))) {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        if matches!(self.store_op, Some((StoreOp::Record { .. }, _))) {
            Action::Pause
        } else {
            Action::Continue
        }
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if !self.body_arrived(true) {
            self.state = State::Rejected;
            return Action::Pause;
        }
        match &self.state {
            State::Holding { buffered, .. } => {
                let size = *buffered;
                self.finish(size)
            }
            State::Rejected => Action::Pause,
            State::Passthrough => Action::Continue,
        }
    }
}
