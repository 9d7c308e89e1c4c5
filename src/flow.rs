//! The per-request state machine, sans-IO: events in, steps out. Every policy decision of the
//! filter lives here (shadow vs enforce, buffer-mode header preset, when to de-duplicate and to
//! record, the duplicate reply, what is counted and logged); [`crate::filter`] only reads what a
//! [`Flow`] asks for, executes the [`Steps`] it returns, and reports host-call failures back
//! ([`Flow::failed`]).
//!
//! Every event returns [`Steps`]: `effects` to execute in order, then `next`: answer the host
//! (`Continue` / `Pause`) or fetch an input and feed it to the matching event
//! ([`Next::ReadBody`] -> [`Flow::on_body_read`], [`Next::LookupDedup`] ->
//! [`Flow::on_dedup_lookup`], [`Next::ReadResponseStatus`] -> [`Flow::on_response_status`],
//! [`Next::RecordDedup`] -> [`Flow::on_dedup_written`]). When an effect fails, the remaining
//! effects are dropped and [`Flow::failed`] says what to do instead.
//!
//! Hold mode's watchdog ([`crate::hold`]) is shared by all requests of a worker; the events that
//! touch it take it as an argument, and [`expired_steps`] answers an expired hold.

use std::rc::Rc;

use crate::config::{Config, RouteScheme};
use crate::dedup::Identity;
use crate::headers::must_strip;
use crate::hold::{Expired, Held, HoldWatch};
use crate::log::RejectionLog;
use crate::metrics::Metric;
use crate::route::Target;
use crate::verdict::{
    duplicate_body, reply_body, sanitize_request_id, shadow_failed_value, Accepted, Mode, Reason,
    Rejection,
};
use crate::verify::{
    check_head, verified_at_head, verify_body_logged, HeadVerdict, Pending, RequestHead,
};

mod store;
#[cfg(test)]
mod tests;

pub use store::StoreCall;

/// Level of a [`Step::Log`] line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// A local reply: nothing reaches the upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u32,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Reply {
    /// A JSON local reply (every reply the filter sends is one).
    fn json(status: u32, body: String) -> Reply {
        Reply {
            status,
            headers: vec![("content-type", "application/json".to_string())],
            body,
        }
    }

    /// The local reply for a rejection: the Reason table's status and body.
    fn rejection(reason: Reason, request_id: &str) -> Reply {
        Reply::json(reason.status(), reply_body(reason, request_id))
    }
}

/// One thing for the glue to do. Effects that can fail name the [`Failure`] to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Remove a client request header (any spelling of `x-lf-verified`, rewrite headers).
    /// Failure: [`Failure::RemoveHeader`].
    RemoveRequestHeader(String),
    /// Set `x-lf-verified` to this verdict. Failure: [`Failure::SetVerified`].
    SetVerified(String),
    /// Shadow mode: set `x-lf-verified: failed:<category>`. Failure: [`Failure::SetShadow`].
    SetShadow(String),
    /// Register this request with the hold watchdog. Failure: [`Failure::Watch`].
    Hold(Held),
    /// Answer locally (if that fails, the glue resets the stream).
    Reply(Reply),
    /// Count one outcome.
    Count(Metric),
    /// Log one line.
    Log(Level, String),
    /// Copy a fleet-store record into this replica's table (best effort, like
    /// [`Next::RecordDedup`] without an answer).
    RecordLocal(DedupWrite),
    /// Cache a fleet-store lease in shared data (best effort).
    CacheLease { key: String, value: Vec<u8> },
}

/// What the glue does once the effects are done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Let the callback go on.
    Continue,
    /// Stop the callback (held, or answered locally).
    Pause,
    /// Read this many bytes of request body, then [`Flow::on_body_read`].
    ReadBody(usize),
    /// Read this shared-data key, then [`Flow::on_dedup_lookup`].
    LookupDedup(String),
    /// Read the response `:status`, then [`Flow::on_response_status`].
    ReadResponseStatus,
    /// Record this delivery (compare-and-swap with [`crate::dedup::record`]), then
    /// [`Flow::on_dedup_written`].
    RecordDedup(DedupWrite),
    /// Send this call to the fleet store's Envoy cluster (the callback pauses), then feed its
    /// answer to [`Flow::on_store_answer`]; a call that cannot be sent is an answer without a
    /// status. After an answer, `Continue` means: resume the paused request or response.
    StoreCall(StoreCall),
    /// Read this shared-data key (the fleet store's lease cache), then [`Flow::on_lease_read`].
    ReadLease(String),
}

/// The time in epoch milliseconds, read only when a step needs it: the glue's clock is a host
/// call, so exempt and unprotected requests (and bodies that start no watchdog) never read it.
pub trait Clock {
    fn now_ms(&self) -> u64;
}

/// A time already known (the tests' fixed clock).
impl Clock for u64 {
    fn now_ms(&self) -> u64 {
        *self
    }
}

/// A clock read on demand (the glue's host call).
impl<F: Fn() -> u64> Clock for F {
    fn now_ms(&self) -> u64 {
        self()
    }
}

/// The effects of one event and what comes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Steps {
    pub effects: Vec<Step>,
    pub next: Next,
}

impl Steps {
    fn new(effects: Vec<Step>, next: Next) -> Steps {
        Steps { effects, next }
    }

    fn only(next: Next) -> Steps {
        Steps::new(Vec::new(), next)
    }
}

/// A verified delivery to record for de-duplication once the backend answered 2xx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DedupWrite {
    pub shared_key: String,
    pub identity: Identity,
    pub window_ms: u64,
}

/// How writing a de-duplication record went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DedupWritten {
    /// Written; `evicts`: it overwrote another, still live delivery.
    Recorded { evicts: bool },
    /// Reading the slot failed (host status).
    ReadFailed(String),
    /// Writing the slot failed (host status).
    WriteFailed(String),
    /// Every compare-and-swap attempt lost to another writer.
    Busy,
}

/// A host call that failed (with the host's status text where a log line names it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The request headers could not be read.
    ReadHeaders,
    RemoveHeader,
    SetVerified,
    SetShadow(String),
    ReadBody,
    /// The worker's hold watchdog was not available to register this request.
    Watch,
}

/// Whether the request headers have already gone on (buffer mode): they cannot be changed any
/// more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Headers {
    /// Still in this filter (hold mode, or no body); `watched`: registered with the watchdog.
    Paused { watched: bool },
    /// Buffer mode: continued to `envoy.filters.http.buffer` (`x-lf-verified` preset on
    /// enforce routes).
    Continued,
}

impl Headers {
    fn continued(self) -> bool {
        self == Headers::Continued
    }
}

/// An accepted request: its `x-lf-verified` value and its counter.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Verdict {
    header: String,
    metric: Option<Metric>,
}

/// The one state of a request. Every field a state needs is inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// No request headers yet.
    New,
    /// Unprotected route, or decided and forwarded: let everything through.
    Passthrough,
    /// Protected route: receiving the body (`buffered` bytes so far).
    Receiving {
        pending: Pending,
        buffered: usize,
        headers: Headers,
    },
    /// The body is complete; its bytes were asked for ([`Next::ReadBody`]).
    Reading { pending: Pending, headers: Headers },
    /// Verified on a de-duplicating enforce route; the slot was asked for.
    Deduplicating {
        verdict: Verdict,
        key_id: String,
        headers: Headers,
        record: DedupWrite,
    },
    /// Verified and forwarded; to be recorded if the backend answers 2xx.
    Forwarded { record: DedupWrite },
    /// The response status was asked for.
    AwaitingStatus { record: DedupWrite },
    /// The record is being written.
    Recording(DedupWrite),
    /// Not in the local table: the fleet store is being asked (request paused).
    StoreLookup(store::Lookup),
    /// Recorded locally after a 2xx: the fleet store's lease cache was asked for.
    LeaseReading(DedupWrite),
    /// The fleet store is recording (response paused until it answers).
    StoreRecording(crate::dedup::etcd::StoreRecord),
    /// Answered locally (by this flow or by the watchdog): stop everything.
    Answered,
}

/// The state machine of one HTTP request.
#[derive(Debug)]
pub struct Flow {
    config: Option<Rc<Config>>,
    context_id: u32,
    /// Debug lines are only built when the host would keep them.
    debug: bool,
    state: State,
    /// Protected route (index into `Config::routes`), once known.
    route: Option<usize>,
    /// Sanitized `x-request-id` (empty when absent).
    request_id: String,
    /// Scheme named in log lines: the route's, then the request's once known.
    log_scheme: &'static str,
    /// Partner code from the body (unverified, sanitized when logged), once the body was read.
    log_partner: Option<String>,
}

impl Flow {
    /// A request on `context_id`; `config` is `None` when the plugin has no valid configuration
    /// (every request is then answered 500). `debug`: whether debug lines are wanted.
    pub fn new(config: Option<Rc<Config>>, context_id: u32, debug: bool) -> Flow {
        Flow {
            config,
            context_id,
            debug,
            state: State::New,
            route: None,
            request_id: String::new(),
            log_scheme: "-",
            log_partner: None,
        }
    }

    fn route_name(&self, route: Option<usize>) -> String {
        route
            .and_then(|r| self.config.as_ref()?.routes.get(r))
            .map_or_else(|| "-".to_string(), |r| r.name.clone())
    }

    /// The request headers (as read from the host) arrived; `end_of_stream`: no body follows.
    pub fn on_request_headers<N: AsRef<str>, V: AsRef<[u8]>>(
        &mut self,
        headers: &[(N, V)],
        end_of_stream: bool,
        now: impl Clock,
    ) -> Steps {
        let Some(config) = self.config.clone() else {
            return self.internal(None, "no valid configuration", false);
        };
        // Never trust a client-supplied verdict (any spelling) or path/method rewrite header,
        // on any route.
        let mut fx: Vec<Step> = headers
            .iter()
            .filter(|(name, _)| must_strip(name.as_ref()))
            .map(|(name, _)| Step::RemoveRequestHeader(name.as_ref().to_string()))
            .collect();
        let value = |wanted: &str| {
            headers
                .iter()
                .find(|(name, _)| name.as_ref() == wanted)
                .map(|(_, v)| v.as_ref())
        };
        let (route, non_canonical) = match config.classify(value(":path").unwrap_or_default()) {
            Target::Exempt | Target::Unprotected => {
                self.state = State::Passthrough;
                return Steps::new(fx, Next::Continue);
            }
            Target::Route(route) => (route, false),
            Target::NonCanonical(route) => (route, true),
        };
        self.route = Some(route);
        fx.push(Step::Count(Metric::Requests));
        self.log_scheme = config.routes.get(route).map_or("-", |r| match r.scheme {
            RouteScheme::Md5 => "md5",
            RouteScheme::Cube => "cube",
            RouteScheme::Auto => "auto",
        });
        self.request_id = value("x-request-id").map_or_else(String::new, sanitize_request_id);
        if non_canonical {
            let rejection = Rejection::new(
                Reason::NonCanonicalPath,
                "alias of a protected path, not its canonical spelling",
            );
            return self.reject(fx, Some(route), rejection, false);
        }
        let head = RequestHead::from_pairs(headers.iter().map(|(k, v)| (k.as_ref(), v.as_ref())));
        let pending = match check_head(&config, route, &head) {
            Err(rejection) => return self.reject(fx, Some(route), rejection, false),
            Ok(HeadVerdict::ForwardUnsigned) => {
                let verdict = self.verdict(&Accepted::Unsigned);
                return self.accept(fx, route, verdict, false, None);
            }
            Ok(HeadVerdict::NeedBody(pending)) => pending,
        };
        self.await_body(&config, fx, pending, end_of_stream, &now)
    }

    /// The headers need the body: decide now if there is none, else hold them (hold mode) or
    /// let them go with the verdict preset (buffer mode).
    fn await_body(
        &mut self,
        config: &Config,
        mut fx: Vec<Step>,
        pending: Pending,
        end_of_stream: bool,
        now: &dyn Clock,
    ) -> Steps {
        let route = pending.route;
        if end_of_stream {
            // No body: decide now (headers can still be changed in either mode).
            return self.finish(fx, pending, Headers::Paused { watched: false }, 0);
        }
        if config.hold_headers {
            let now_ms = now.now_ms();
            fx.push(Step::Hold(Held {
                since_ms: now_ms,
                held_at_ms: now_ms,
                request_id: self.request_id.clone(),
                route: self.route_name(Some(route)),
                body_started: false,
            }));
            self.state = State::Receiving {
                pending,
                buffered: 0,
                headers: Headers::Paused { watched: true },
            };
            return Steps::new(fx, Next::Pause);
        }
        // Buffer mode: the headers continue to envoy.filters.http.buffer, which holds them until
        // this filter lets the body go; a rejection later still answers locally. Request headers
        // can only be changed now, so the verdict header is set now: on enforce routes only,
        // because a failed request on a shadow route is forwarded and must not carry a
        // "verified" value (shadow verdicts are then only in logs and metrics).
        if config
            .routes
            .get(route)
            .is_some_and(|r| r.mode == Mode::Enforce)
        {
            fx.push(Step::SetVerified(verified_at_head(config, &pending)));
        }
        self.state = State::Receiving {
            pending,
            buffered: 0,
            headers: Headers::Continued,
        };
        Steps::new(fx, Next::Continue)
    }

    /// A body chunk arrived: `size` is the body buffered so far; `end_of_stream`: it is complete.
    pub fn on_request_body(
        &mut self,
        size: usize,
        end_of_stream: bool,
        now: impl Clock,
        mut watch: Option<&mut HoldWatch>,
    ) -> Steps {
        let (pending, headers) = match std::mem::replace(&mut self.state, State::Passthrough) {
            State::Receiving {
                pending, headers, ..
            } => (pending, headers),
            State::Answered => return self.answered(),
            other => {
                self.state = other;
                return Steps::only(Next::Continue);
            }
        };
        let Some(headers) = self.body_arrived(headers, end_of_stream, &now, watch.as_deref_mut())
        else {
            return self.answered();
        };
        let limit = self.config.as_ref().map_or(0, |c| c.max_body_bytes);
        if size > limit {
            if let (Headers::Paused { watched: true }, Some(watch)) = (headers, watch) {
                watch.leave(self.context_id);
            }
            let rejection = Rejection::new(Reason::BodyTooLarge, "body above max_body_bytes");
            return self.reject(
                Vec::new(),
                Some(pending.route),
                rejection,
                headers.continued(),
            );
        }
        if end_of_stream {
            return self.finish(Vec::new(), pending, headers, size);
        }
        self.state = State::Receiving {
            pending,
            buffered: size,
            headers,
        };
        Steps::only(Next::Pause)
    }

    /// Request trailers arrived: the body (as buffered so far) is complete.
    pub fn on_request_trailers(&mut self, now: impl Clock, watch: Option<&mut HoldWatch>) -> Steps {
        let (pending, buffered, headers) =
            match std::mem::replace(&mut self.state, State::Passthrough) {
                State::Receiving {
                    pending,
                    buffered,
                    headers,
                } => (pending, buffered, headers),
                State::Answered => return self.answered(),
                other => {
                    self.state = other;
                    return Steps::only(Next::Continue);
                }
            };
        match self.body_arrived(headers, true, &now, watch) {
            Some(headers) => self.finish(Vec::new(), pending, headers, buffered),
            None => self.answered(),
        }
    }

    /// The request ends (context destroyed): leave the watchdog if still registered.
    pub fn on_done(&mut self, watch: Option<&mut HoldWatch>) {
        if let (
            State::Receiving {
                headers: Headers::Paused { watched: true },
                ..
            },
            Some(watch),
        ) = (&self.state, watch)
        {
            watch.leave(self.context_id);
        }
    }

    /// The body bytes asked for by [`Next::ReadBody`].
    pub fn on_body_read(&mut self, body: &[u8], now: impl Clock) -> Steps {
        let (State::Reading { pending, headers }, Some(config)) = (
            std::mem::replace(&mut self.state, State::Passthrough),
            self.config.clone(),
        ) else {
            return Steps::only(Next::Continue);
        };
        self.log_scheme = pending.scheme().name();
        let accepted = match verify_body_logged(&config, &pending, body, &|| now.now_ms()) {
            Ok(accepted) => accepted,
            Err((rejection, partner)) => {
                self.log_partner = partner;
                return self.reject(
                    Vec::new(),
                    Some(pending.route),
                    rejection,
                    headers.continued(),
                );
            }
        };
        let verdict = self.verdict(&accepted);
        // Edge de-duplication: verified deliveries on enforce routes with `dedup`.
        let dedup = config
            .routes
            .get(pending.route)
            .filter(|r| r.mode == Mode::Enforce)
            .and_then(|r| Some((r, r.dedup.as_ref()?)));
        match (accepted, dedup) {
            (Accepted::Verified { key_id, .. }, Some((route, dedup))) => {
                let identity = pending.dedup_identity(&route.name, body);
                let record = DedupWrite {
                    shared_key: crate::dedup::shared_key(
                        &dedup.table,
                        identity.slot(dedup.max_entries),
                    ),
                    identity,
                    window_ms: dedup.window_ms,
                };
                let key = record.shared_key.clone();
                self.state = State::Deduplicating {
                    verdict,
                    key_id: key_id.to_string(),
                    headers,
                    record,
                };
                Steps::only(Next::LookupDedup(key))
            }
            _ => self.accept(
                Vec::new(),
                pending.route,
                verdict,
                headers.continued(),
                None,
            ),
        }
    }

    /// The de-duplication slot asked for by [`Next::LookupDedup`] (`Err`: the host's status).
    /// A recorded, unexpired identical delivery is answered locally (200, `x-lf-duplicate`);
    /// otherwise the request goes on, to be recorded if the backend answers 2xx.
    pub fn on_dedup_lookup(
        &mut self,
        stored: Result<Option<Vec<u8>>, String>,
        now_ms: u64,
    ) -> Steps {
        let State::Deduplicating {
            verdict,
            key_id,
            headers,
            record,
        } = std::mem::replace(&mut self.state, State::Passthrough)
        else {
            return Steps::only(Next::Continue);
        };
        let mut fx = Vec::new();
        let stored = stored.unwrap_or_else(|status| {
            fx.push(Step::Log(
                Level::Warn,
                format!("lf-webhook-guard: dedup lookup failed ({status}); forwarding"),
            ));
            None
        });
        if !crate::dedup::is_duplicate(stored.as_deref(), &record.identity, now_ms) {
            return self.after_local_miss(fx, verdict, key_id, headers, record, now_ms);
        }
        self.duplicate(fx, verdict, &key_id, &record.identity)
    }

    /// Answer a recorded duplicate locally (200, `x-lf-duplicate: true`); it counts as verified.
    fn duplicate(
        &mut self,
        mut fx: Vec<Step>,
        verdict: Verdict,
        key_id: &str,
        identity: &Identity,
    ) -> Steps {
        let route = self.route;
        fx.push(Step::Log(
            Level::Info,
            format!(
                "lf-webhook-guard: duplicate request_id={} route={} scheme={} key={} dedup_id={} \
                 status=200 action=local_reply",
                self.request_id,
                self.route_name(route),
                self.log_scheme,
                key_id,
                identity.short()
            ),
        ));
        fx.push(Step::Count(Metric::DuplicatesAnswered));
        let mut reply = Reply::json(200, duplicate_body(&self.request_id));
        reply.headers.push(("x-lf-duplicate", "true".to_string()));
        fx.push(Step::Reply(reply));
        fx.extend(verdict.metric.map(Step::Count));
        self.state = State::Answered;
        Steps::new(fx, Next::Pause)
    }

    /// The upstream's response headers arrived.
    pub fn on_response_headers(&mut self) -> Steps {
        match std::mem::replace(&mut self.state, State::Passthrough) {
            State::Forwarded { record } => {
                self.state = State::AwaitingStatus { record };
                Steps::only(Next::ReadResponseStatus)
            }
            other => {
                self.state = other;
                Steps::only(Next::Continue)
            }
        }
    }

    /// The response `:status` asked for by [`Next::ReadResponseStatus`]: record after a 2xx.
    pub fn on_response_status(&mut self, status: Option<u32>) -> Steps {
        let State::AwaitingStatus { record } =
            std::mem::replace(&mut self.state, State::Passthrough)
        else {
            return Steps::only(Next::Continue);
        };
        if matches!(status, Some(200..=299)) {
            self.state = State::Recording(record.clone());
            return Steps::only(Next::RecordDedup(record));
        }
        let mut fx = Vec::new();
        if self.debug {
            fx.push(Step::Log(
                Level::Debug,
                format!(
                    "lf-webhook-guard: not recorded for dedup request_id={} status={status:?}",
                    self.request_id
                ),
            ));
        }
        Steps::new(fx, Next::Continue)
    }

    /// How [`Next::RecordDedup`] went.
    pub fn on_dedup_written(&mut self, written: DedupWritten) -> Steps {
        let State::Recording(record) = std::mem::replace(&mut self.state, State::Passthrough)
        else {
            return Steps::only(Next::Continue);
        };
        let fx = match written {
            DedupWritten::Recorded { evicts: false } => vec![Step::Count(Metric::DedupRecorded)],
            DedupWritten::Recorded { evicts: true } => vec![
                Step::Count(Metric::DedupRecorded),
                Step::Count(Metric::DedupEvictions),
            ],
            DedupWritten::ReadFailed(status) => vec![Step::Log(
                Level::Warn,
                format!("lf-webhook-guard: dedup read failed ({status}); not recorded"),
            )],
            DedupWritten::WriteFailed(status) => vec![Step::Log(
                Level::Warn,
                format!("lf-webhook-guard: dedup write failed ({status}); not recorded"),
            )],
            DedupWritten::Busy if self.debug => vec![Step::Log(
                Level::Debug,
                "lf-webhook-guard: dedup slot busy; not recorded".to_string(),
            )],
            DedupWritten::Busy => Vec::new(),
        };
        self.after_local_record(fx, record)
    }

    /// An effect (or an input read) failed: what to do instead of the rest.
    pub fn failed(&mut self, failure: Failure) -> Steps {
        let continued = matches!(
            self.state,
            State::Receiving {
                headers: Headers::Continued,
                ..
            } | State::Reading {
                headers: Headers::Continued,
                ..
            }
        );
        if matches!(failure, Failure::ReadHeaders | Failure::RemoveHeader) {
            // Before the route is known: the line names none of it.
            self.route = None;
            self.request_id.clear();
            self.log_scheme = "-";
        }
        match failure {
            Failure::ReadHeaders => self.internal(None, "cannot read request headers", false),
            Failure::RemoveHeader => self.internal(
                None,
                "cannot remove a client x-lf-verified or rewrite header",
                false,
            ),
            // Only set while the headers are still here.
            Failure::SetVerified => self.internal(self.route, "cannot set x-lf-verified", false),
            Failure::ReadBody => self.internal(self.route, "cannot read request body", continued),
            Failure::Watch => {
                // As before the watchdog existed: held until the body ends, without a timeout.
                if let State::Receiving { headers, .. } = &mut self.state {
                    *headers = Headers::Paused { watched: false };
                }
                Steps::new(
                    vec![Step::Log(
                        Level::Warn,
                        format!(
                            "lf-webhook-guard: request_id={} cannot register with the hold \
                             watchdog; held without hold_timeout_ms",
                            self.request_id
                        ),
                    )],
                    Next::Pause,
                )
            }
            Failure::SetShadow(status) => {
                // Forwarded without `x-lf-verified` (the client's was stripped): still visibly
                // unverified.
                self.state = State::Passthrough;
                Steps::new(
                    vec![Step::Log(
                        Level::Warn,
                        format!(
                            "lf-webhook-guard: shadow request_id={} cannot set x-lf-verified \
                             ({status}); forwarded without it",
                            self.request_id
                        ),
                    )],
                    Next::Continue,
                )
            }
        }
    }

    /// Stop: already answered (by this flow or the watchdog).
    fn answered(&mut self) -> Steps {
        self.state = State::Answered;
        Steps::only(Next::Pause)
    }

    /// A body or trailers callback arrived: a watched request restarts its watchdog clock, or
    /// leaves the watch at the end of the body. `None`: the watchdog already answered it.
    fn body_arrived(
        &self,
        headers: Headers,
        end_of_body: bool,
        now: &dyn Clock,
        watch: Option<&mut HoldWatch>,
    ) -> Option<Headers> {
        // No watch to consult (never in practice): go on, as an unwatched request.
        match (headers, watch) {
            (Headers::Paused { watched: true }, Some(watch)) => {
                if !watch.body_arrived(self.context_id, end_of_body, || now.now_ms()) {
                    None
                } else {
                    Some(Headers::Paused {
                        watched: !end_of_body,
                    })
                }
            }
            (other, _) => Some(other),
        }
    }

    /// The whole body (`size` bytes) is buffered: check its size and ask for it.
    fn finish(&mut self, fx: Vec<Step>, pending: Pending, headers: Headers, size: usize) -> Steps {
        let limit = self.config.as_ref().map_or(0, |c| c.max_body_bytes);
        if size > limit {
            let rejection = Rejection::new(Reason::BodyTooLarge, "body above max_body_bytes");
            return self.reject(fx, Some(pending.route), rejection, headers.continued());
        }
        self.state = State::Reading { pending, headers };
        Steps::new(fx, Next::ReadBody(size))
    }

    /// The header value and counter of an accepted request (verified per scheme and key, or
    /// unsigned).
    fn verdict(&self, accepted: &Accepted<'_>) -> Verdict {
        let metric = match accepted {
            Accepted::Unsigned => Some(Metric::UnsignedAllowed),
            Accepted::Verified { scheme, key_id } => self
                .config
                .as_ref()
                .and_then(|c| c.keys.iter().position(|k| k.id == *key_id))
                .map(|key| Metric::Verified {
                    scheme: *scheme,
                    key,
                }),
        };
        Verdict {
            header: accepted.header_value(),
            metric,
        }
    }

    /// Mark the request upstream (unless its headers are gone) and let it go.
    fn accept(
        &mut self,
        mut fx: Vec<Step>,
        route: usize,
        verdict: Verdict,
        continued: bool,
        record: Option<DedupWrite>,
    ) -> Steps {
        let line = self.debug.then(|| {
            format!(
                "lf-webhook-guard: accepted request_id={} route={} verified=\"{}\"",
                self.request_id,
                self.route_name(Some(route)),
                verdict.header
            )
        });
        if !continued {
            fx.push(Step::SetVerified(verdict.header));
        }
        fx.extend(verdict.metric.map(Step::Count));
        fx.extend(line.map(|line| Step::Log(Level::Debug, line)));
        self.state = record.map_or(State::Passthrough, |record| State::Forwarded { record });
        Steps::new(fx, Next::Continue)
    }

    fn internal(&mut self, route: Option<usize>, detail: &'static str, continued: bool) -> Steps {
        let rejection = Rejection::new(Reason::InternalError, detail);
        self.reject(Vec::new(), route, rejection, continued)
    }

    /// A failed request: one log line; enforce: one counter and a local reply; shadow: one
    /// counter and forwarded marked `x-lf-verified: failed:<category>` (if the headers are still
    /// here; buffer mode: the verdict is then only in the log line and metrics).
    fn reject(
        &mut self,
        mut fx: Vec<Step>,
        route: Option<usize>,
        rejection: Rejection,
        continued: bool,
    ) -> Steps {
        let reason = rejection.reason;
        let r = route.and_then(|r| self.config.as_ref()?.routes.get(r));
        let mode = r.map_or(Mode::Enforce, |r| r.mode);
        let allow = r.map(|r| r.allow.clone()).unwrap_or_default();
        fx.push(Step::Log(
            Level::Warn,
            RejectionLog {
                request_id: &self.request_id,
                route: &self.route_name(route),
                scheme: self.log_scheme,
                partner: self.log_partner.as_deref(),
                category: reason.category(),
                status: reason.status(),
                mode,
                detail: rejection.detail,
            }
            .line(),
        ));
        if mode == Mode::Shadow {
            fx.push(Step::Count(Metric::ShadowFailed(reason)));
            if !continued {
                fx.push(Step::SetShadow(shadow_failed_value(reason)));
            }
            self.state = State::Passthrough;
            return Steps::new(fx, Next::Continue);
        }
        fx.push(Step::Count(Metric::Rejected(reason)));
        let mut reply = Reply::rejection(reason, &self.request_id);
        if reason == Reason::MethodNotAllowed {
            reply.headers.push(("allow", allow));
        }
        fx.push(Step::Reply(reply));
        self.state = State::Answered;
        Steps::new(fx, Next::Pause)
    }
}

/// The answer to a hold that expired ([`HoldWatch::expire`]): `log` lines first, then (if the
/// request still exists: the root context makes it the effective context) `answer`.
pub fn expired_steps(expired: &Expired, timeout_ms: u64) -> (Vec<Step>, Vec<Step>) {
    let Expired {
        held,
        reason,
        detail,
        ..
    } = expired;
    let mut log = Vec::new();
    if *reason == Reason::FilterMisconfigured {
        log.push(Step::Log(
            Level::Error,
            format!(
                "lf-webhook-guard: request_id={} route={} was held {} ms without any request body \
                 callback: Envoy does not deliver the body to a filter that paused on headers. Set \
                 `allow_on_headers_stop_iteration: true` in the Wasm filter's config (Envoy >= \
                 1.35), or set \"hold_headers\": false in the plugin configuration and place \
                 envoy.filters.http.buffer after this filter",
                held.request_id, held.route, timeout_ms
            ),
        ));
    }
    log.push(Step::Log(
        Level::Warn,
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
        .line(),
    ));
    let answer = vec![
        Step::Count(Metric::Rejected(*reason)),
        Step::Reply(Reply::rejection(*reason, &held.request_id)),
    ];
    (log, answer)
}
