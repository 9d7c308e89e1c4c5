//! The proxy-wasm glue (wasm32 only): a thin executor of [`crate::flow`]. Each callback feeds an
//! event to the request's [`Flow`], reads what it asks for and executes the steps it returns; no
//! policy is decided here (see [`crate::flow`], [`crate::hold`], [`crate::verify`]).
//!
//! Host calls go through `proxy_wasm::hostcalls` directly and every error is handled: the SDK's
//! trait helpers unwrap, and a panic would kill the VM.
#![allow(unsafe_code)] // `proxy_wasm::main!` expands to an unsafe call of the Wasm constructors.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use log::{debug, error, info};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType, Status};

use crate::config::Config;
use crate::dedup::etcd::Answer;
use crate::flow::StoreCall;
use crate::flow::{DedupWrite, DedupWritten, Failure, Flow, Level, Next, Reply, Step, Steps};
use crate::hold::HoldWatch;
use crate::metrics::{Metric, MetricTable, CONFIG_FAILURES};
use crate::verdict::VERIFIED_HEADER;

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
/// Proven by tests/e2e/ops/test_crash.py with the `crash-probe` build.
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
/// logs at critical level and that Envoy then fails closed (tests/e2e/ops/test_crash.py).
#[cfg(feature = "crash-probe")]
#[allow(clippy::panic)]
fn crash_probe(headers: &[(&str, &[u8])]) {
    if headers.iter().any(|(name, _)| *name == "x-lf-crash-probe") {
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
        let table = MetricTable::new(&config.keys);
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

fn proxy_log_level(level: crate::log::LogLevel) -> LogLevel {
    use crate::log::LogLevel as L;
    match level {
        L::Trace => LogLevel::Trace,
        L::Debug => LogLevel::Debug,
        L::Info => LogLevel::Info,
        L::Warn => LogLevel::Warn,
        L::Error => LogLevel::Error,
        L::Critical => LogLevel::Critical,
    }
}

/// Execute one effect; `Err` is the failure to report to the flow (effects that cannot fail
/// log their host errors here).
fn apply(
    step: Step,
    ops: Option<&Ops>,
    watch: &RefCell<HoldWatch>,
    context_id: u32,
) -> Result<(), Failure> {
    match step {
        Step::RemoveRequestHeader(name) => {
            hostcalls::remove_map_value(MapType::HttpRequestHeaders, &name)
                .map_err(|_| Failure::RemoveHeader)
        }
        Step::SetVerified(value) => {
            hostcalls::set_map_value(MapType::HttpRequestHeaders, VERIFIED_HEADER, Some(&value))
                .map_err(|_| Failure::SetVerified)
        }
        Step::SetShadow(value) => {
            hostcalls::set_map_value(MapType::HttpRequestHeaders, VERIFIED_HEADER, Some(&value))
                .map_err(|status| Failure::SetShadow(format!("{status:?}")))
        }
        Step::Hold(held) => match watch.try_borrow_mut() {
            Ok(mut watch) => {
                watch.hold(context_id, held);
                Ok(())
            }
            Err(_) => Err(Failure::Watch),
        },
        Step::Reply(reply) => {
            send_reply(&reply);
            Ok(())
        }
        Step::Count(metric) => {
            if let Some(ops) = ops {
                ops.inc(metric);
            }
            Ok(())
        }
        Step::Log(level, line) => {
            let level = match level {
                Level::Debug => log::Level::Debug,
                Level::Info => log::Level::Info,
                Level::Warn => log::Level::Warn,
                Level::Error => log::Level::Error,
            };
            log::log!(level, "{line}");
            Ok(())
        }
        Step::RecordLocal(record) => {
            let _ = record_dedup(&record);
            Ok(())
        }
        Step::CacheLease { key, value } => {
            if let Err(status) = hostcalls::set_shared_data(&key, Some(&value), None) {
                debug!("lf-webhook-guard: cannot cache the dedup store lease: {status:?}");
            }
            Ok(())
        }
    }
}

/// Send a local reply; if that fails, reset the stream (nothing reaches the upstream either way).
fn send_reply(reply: &Reply) {
    let headers: Vec<(&str, &str)> = reply
        .headers
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    if let Err(status) =
        hostcalls::send_http_response(reply.status, headers, Some(reply.body.as_bytes()))
    {
        error!("lf-webhook-guard: cannot send local reply: {status:?}; resetting");
        let _ = hostcalls::reset_http_request();
    }
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
                    "lf-webhook-guard: hold_headers={} hold_timeout_ms={} hold_deadline_ms={}",
                    config.hold_headers, config.hold_timeout_ms, config.hold_deadline_ms
                );
                if let Err(status) = hostcalls::set_tick_period(crate::hold::tick_period(&config)) {
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

    /// Answer the holds that expired, each through its own context id.
    fn on_tick(&mut self) {
        let (timeout, deadline) = self
            .config
            .as_ref()
            .map_or((0, 0), |c| (c.hold_timeout_ms, c.hold_deadline_ms));
        // Take the expired entries out first: answering one can re-enter the HTTP context
        // (which then must be able to borrow the watch).
        let expired = match self.watch.try_borrow_mut() {
            Ok(mut watch) => watch.expire(now_ms(), timeout, deadline),
            Err(_) => return,
        };
        for expired in expired {
            let (log, answer) = crate::flow::expired_steps(&expired, timeout);
            let ops = self.ops.as_deref();
            for step in log {
                let _ = apply(step, ops, &self.watch, expired.context_id);
            }
            if hostcalls::set_effective_context(expired.context_id).is_err() {
                debug!(
                    "lf-webhook-guard: held request {} is gone",
                    expired.context_id
                );
                continue;
            }
            for step in answer {
                let _ = apply(step, ops, &self.watch, expired.context_id);
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(GuardHttp {
            flow: Flow::new(
                self.config.clone(),
                context_id,
                log::log_enabled!(log::Level::Debug),
            ),
            ops: self.ops.clone(),
            context_id,
            watch: Rc::clone(&self.watch),
            phase: Phase::Request,
            callout: None,
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

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(
        map_type: MapType,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> Status;
}

/// The request header map as the host serialized it, decoded in place by
/// [`crate::headers::decode_map`] (the SDK's `get_map_bytes` copies every name and value into
/// its own `String` and `Vec`, and panics on a failed call or a non-UTF-8 name). `None`: the
/// host call failed.
fn request_header_map() -> Option<Vec<u8>> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the host writes a buffer it allocated through this module's
    // `proxy_on_memory_allocate` (the SDK's, a `Vec<u8>` of capacity `size`), which this call then
    // owns; that is how the SDK's own `get_map_bytes` takes it.
    match unsafe { proxy_get_header_map_pairs(MapType::HttpRequestHeaders, &mut data, &mut size) } {
        Status::Ok if data.is_null() => Some(Vec::new()),
        Status::Ok => Some(unsafe { Vec::from_raw_parts(data, size, size) }),
        _ => None,
    }
}

struct GuardHttp {
    flow: Flow,
    ops: Option<Rc<Ops>>,
    context_id: u32,
    watch: Rc<RefCell<HoldWatch>>,
    /// Which side the current callback is on (what a paused store call resumes).
    phase: Phase,
    /// The fleet-store call in flight.
    callout: Option<Callout>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Request,
    Response,
}

/// A dispatched fleet-store call.
struct Callout {
    token: u32,
    sent_ms: u64,
    timeout_ms: u64,
    phase: Phase,
}

/// Attempts at a compare-and-swap write of a de-duplication slot before giving up (forwarding a
/// later duplicate is the safe direction).
const DEDUP_CAS_ATTEMPTS: usize = 4;

impl Context for GuardHttp {
    /// A fleet-store call answered (or failed, or timed out): feed it to the flow, then resume
    /// the side it paused if the flow lets it go on.
    fn on_http_call_response(&mut self, token: u32, _headers: usize, body_size: usize, _t: usize) {
        let Some(callout) = self.callout.take_if(|c| c.token == token) else {
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
            elapsed_ms: now.saturating_sub(callout.sent_ms),
            timeout_ms: callout.timeout_ms,
        };
        self.phase = callout.phase;
        let steps = self.flow.on_store_answer(&answer, now);
        if self.run(steps) != Action::Continue {
            return;
        }
        let resumed = match callout.phase {
            Phase::Request => hostcalls::resume_http_request(),
            Phase::Response => hostcalls::resume_http_response(),
        };
        if let Err(status) = resumed {
            error!("lf-webhook-guard: cannot resume after the dedup store call: {status:?}");
        }
    }
}

impl Drop for GuardHttp {
    fn drop(&mut self) {
        let mut watch = self.watch.try_borrow_mut().ok();
        self.flow.on_done(watch.as_deref_mut());
    }
}

impl GuardHttp {
    /// Execute steps until the flow answers the host.
    fn run(&mut self, mut steps: Steps) -> Action {
        loop {
            steps = match self.execute(steps) {
                Ok(next) => match next {
                    Next::Continue => return Action::Continue,
                    Next::Pause => return Action::Pause,
                    Next::ReadBody(size) => {
                        match hostcalls::get_buffer(BufferType::HttpRequestBody, 0, size) {
                            Ok(body) => self.flow.on_body_read(&body.unwrap_or_default(), now_ms),
                            Err(_) => self.flow.failed(Failure::ReadBody),
                        }
                    }
                    Next::LookupDedup(key) => {
                        let stored = hostcalls::get_shared_data(&key)
                            .map(|(stored, _)| stored)
                            .map_err(|status| format!("{status:?}"));
                        self.flow.on_dedup_lookup(stored, now_ms())
                    }
                    Next::ReadResponseStatus => {
                        let status =
                            hostcalls::get_map_value(MapType::HttpResponseHeaders, ":status")
                                .ok()
                                .flatten()
                                .and_then(|s| s.parse::<u32>().ok());
                        self.flow.on_response_status(status)
                    }
                    Next::RecordDedup(record) => {
                        let written = record_dedup(&record);
                        self.flow.on_dedup_written(written)
                    }
                    Next::ReadLease(key) => {
                        let cached = hostcalls::get_shared_data(&key).ok().and_then(|(v, _)| v);
                        self.flow.on_lease_read(cached.as_deref(), now_ms())
                    }
                    Next::StoreCall(call) => match self.dispatch(&call) {
                        Ok(()) => return Action::Pause,
                        Err(status) => {
                            debug!("lf-webhook-guard: dedup store call not sent: {status}");
                            let none = Answer {
                                status: None,
                                body: b"",
                                elapsed_ms: 0,
                                timeout_ms: call.timeout_ms,
                            };
                            self.flow.on_store_answer(&none, now_ms())
                        }
                    },
                },
                Err(failure) => self.flow.failed(failure),
            };
        }
    }

    /// Send a fleet-store call to its Envoy cluster; its answer comes to `on_http_call_response`.
    fn dispatch(&mut self, call: &StoreCall) -> Result<(), String> {
        let headers: Vec<(&str, &str)> = call
            .headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        let token = hostcalls::dispatch_http_call(
            &call.cluster,
            headers,
            Some(call.body.as_bytes()),
            Vec::new(),
            Duration::from_millis(call.timeout_ms),
        )
        .map_err(|status| format!("{status:?}"))?;
        self.callout = Some(Callout {
            token,
            sent_ms: now_ms(),
            timeout_ms: call.timeout_ms,
            phase: self.phase,
        });
        Ok(())
    }

    /// Execute the effects in order; stop at the first failure.
    fn execute(&self, steps: Steps) -> Result<Next, Failure> {
        for step in steps.effects {
            apply(step, self.ops.as_deref(), &self.watch, self.context_id)?;
        }
        Ok(steps.next)
    }
}

/// Write a de-duplication record with compare-and-swap (retried while another worker wins).
fn record_dedup(record: &DedupWrite) -> DedupWritten {
    for _ in 0..DEDUP_CAS_ATTEMPTS {
        let (stored, cas) = match hostcalls::get_shared_data(&record.shared_key) {
            Ok(found) => found,
            Err(status) => return DedupWritten::ReadFailed(format!("{status:?}")),
        };
        let (value, evicts) = crate::dedup::record(
            stored.as_deref(),
            &record.identity,
            now_ms(),
            record.window_ms,
        );
        match hostcalls::set_shared_data(&record.shared_key, Some(&value), cas) {
            Ok(()) => return DedupWritten::Recorded { evicts },
            Err(Status::CasMismatch) => continue,
            Err(status) => return DedupWritten::WriteFailed(format!("{status:?}")),
        }
    }
    DedupWritten::Busy
}

impl HttpContext for GuardHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        self.phase = Phase::Request;
        let serialized = request_header_map();
        let steps = match serialized.as_deref().and_then(crate::headers::decode_map) {
            Some(headers) => {
                #[cfg(feature = "crash-probe")]
                crash_probe(&headers);
                self.flow
                    .on_request_headers(&headers, end_of_stream, now_ms)
            }
            None => self.flow.failed(Failure::ReadHeaders),
        };
        self.run(steps)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let watch = Rc::clone(&self.watch);
        let mut watch = watch.try_borrow_mut().ok();
        let steps =
            self.flow
                .on_request_body(body_size, end_of_stream, now_ms, watch.as_deref_mut());
        drop(watch);
        self.run(steps)
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        let watch = Rc::clone(&self.watch);
        let mut watch = watch.try_borrow_mut().ok();
        let steps = self.flow.on_request_trailers(now_ms, watch.as_deref_mut());
        drop(watch);
        self.run(steps)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.phase = Phase::Response;
        let steps = self.flow.on_response_headers();
        self.run(steps)
    }

    fn on_http_response_body(&mut self, _body_size: usize, _end_of_stream: bool) -> Action {
        self.phase = Phase::Response;
        let steps = self.flow.on_response_body();
        self.run(steps)
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        self.phase = Phase::Response;
        let steps = self.flow.on_response_body();
        self.run(steps)
    }
}
