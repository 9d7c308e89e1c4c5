//! The proxy-wasm glue (wasm32 only): headers -> (hold) -> body -> core -> forward or local reply.
//! No signing logic lives here; see [`crate::verify`].
//!
//! Host calls go through `proxy_wasm::hostcalls` directly and every error is handled: the SDK's
//! trait helpers unwrap, and a panic would kill the VM.
#![allow(unsafe_code)] // `proxy_wasm::main!` expands to an unsafe call of the Wasm constructors.

use std::rc::Rc;

use log::{debug, error, info, warn};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};

use crate::config::Config;
use crate::verdict::Accepted;
use crate::verdict::{reply_body, sanitize_request_id, Reason, Rejection};
use crate::verify::{HeadVerdict, Pending, RequestHead, VERIFIED_HEADER};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(GuardRoot { config: None }) });
}}

struct GuardRoot {
    config: Option<Rc<Config>>,
}

impl Context for GuardRoot {}

impl RootContext for GuardRoot {
    fn on_configure(&mut self, size: usize) -> bool {
        let raw = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size) {
            Ok(Some(raw)) => raw,
            Ok(None) => {
                error!("lf-webhook-guard: invalid configuration: no plugin configuration given");
                return false;
            }
            Err(status) => {
                error!("lf-webhook-guard: cannot read plugin configuration: {status:?}");
                return false;
            }
        };
        match Config::from_json(&raw, |name| std::env::var(name).ok()) {
            Ok(config) => {
                info!(
                    "lf-webhook-guard: configured: {} route(s), {} key(s), max_body_bytes={}",
                    config.routes.len(),
                    config.keys.len(),
                    config.max_body_bytes
                );
                self.config = Some(Rc::new(config));
                true
            }
            Err(err) => {
                // Names the field, never a secret value. Returning false makes Envoy refuse the
                // plugin: a statically configured Envoy does not start (fail closed).
                error!("lf-webhook-guard: {err}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(GuardHttp {
            config: self.config.clone(),
            state: State::Passthrough,
            request_id: String::new(),
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
}

impl Context for GuardHttp {}

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
        let route_name = route.map_or("-", |r| self.route_name(r));
        warn!(
            "lf-webhook-guard: rejected request_id={} route={} reason={} status={} detail=\"{}\"",
            self.request_id,
            route_name,
            reason.category(),
            reason.status(),
            rejection.detail
        );
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

    /// Mark the request upstream and let it go.
    fn accept(&mut self, route: usize, accepted: Accepted<'_>) -> Action {
        let value = accepted.header_value();
        if hostcalls::set_map_value(MapType::HttpRequestHeaders, VERIFIED_HEADER, Some(&value))
            .is_err()
        {
            return self.internal(Some(route), "cannot set x-lf-verified");
        }
        debug!(
            "lf-webhook-guard: accepted request_id={} route={} verified=\"{}\"",
            self.request_id,
            self.route_name(route),
            value
        );
        self.state = State::Passthrough;
        Action::Continue
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
        match config.verify_body(&pending, &body, now_ms()) {
            Ok(accepted) => self.accept(pending.route, accepted),
            Err(rejection) => self.reject(route, rejection),
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
        // Never trust a client-supplied verdict, on any route.
        if headers.iter().any(|(name, _)| name == VERIFIED_HEADER)
            && hostcalls::remove_map_value(MapType::HttpRequestHeaders, VERIFIED_HEADER).is_err()
        {
            return self.internal(None, "cannot remove client x-lf-verified");
        }
        let path = headers
            .iter()
            .find(|(name, _)| name == ":path")
            .map_or(&[][..], |(_, v)| v.as_slice());
        let Some(route) = config.route_index(path) else {
            return Action::Continue;
        };
        self.request_id = headers
            .iter()
            .find(|(name, _)| name == "x-request-id")
            .map_or_else(String::new, |(_, v)| sanitize_request_id(v));
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
                    // No body: decide now.
                    self.finish(0)
                } else {
                    Action::Pause
                }
            }
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let limit = self.config.as_ref().map_or(0, |c| c.max_body_bytes);
        match &mut self.state {
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
        }
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
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
