//! Plugin configuration: the JSON given to the filter (Envoy `configuration`, Istio
//! `pluginConfig`), parsed and validated ONCE at configure time into a compiled [`Config`].
//!
//! - `schema.rs`: the JSON schema as serde types (unknown fields rejected everywhere);
//! - `compile.rs`: schema -> [`Config`], one function per section, errors naming the field;
//! - this module: the compiled types the request path reads.
//!
//! Each rule module owns its options: [`Md5Options`] (`md5`) in [`crate::body`], [`Freshness`]
//! in [`crate::freshness`], [`Dedup`] in [`crate::dedup`], [`Mode`] in [`crate::verdict`],
//! [`LogLevel`] in [`crate::log`], [`Key`] in [`crate::keys`], paths and [`Posture`] in [`crate::route`]. They are
//! re-exported here.
//!
//! To add a field: declare it in `schema.rs` (typed; a name list is an enum read through
//! `schema::Named`), give its compiled form a home in the rule module that reads it, and check
//! it in one `compile` function whose errors name the field; then document it.
//!
//! Every error names the field path (`routes[0].path_prefix`, `keys[1].secret_env`) and never a
//! secret value. See docs/configuration.md for the schema.

mod compile;
mod schema;

use std::fmt;

use crate::route::{Exemption, PathPattern, Target};
use crate::verdict::Scheme;

pub use crate::body::{EmptyValues, Md5Options, NestedValues, ValueTypes};
pub use crate::dedup::Dedup;
pub use crate::freshness::Freshness;
pub use crate::keys::{Key, Secret};
pub use crate::log::LogLevel;
pub use crate::route::Posture;
pub use crate::verdict::Mode;
pub use compile::printable_var;

/// Default and upper bound of `hold_timeout_ms` (0 turns the hold watchdog off).
pub const DEFAULT_HOLD_TIMEOUT_MS: u64 = 5_000;
pub const MAX_HOLD_TIMEOUT_MS: u64 = 600_000;
/// Default and upper bound of `hold_deadline_ms` (0: no total deadline).
pub const DEFAULT_HOLD_DEADLINE_MS: u64 = 30_000;
pub const MAX_HOLD_DEADLINE_MS: u64 = 600_000;

/// Default and upper bound of `max_body_bytes`.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
pub const MAX_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// A route's `methods` when left out.
pub const DEFAULT_METHOD: &str = "POST";
/// A route's `partner_field` when left out.
pub const DEFAULT_PARTNER_FIELD: &str = "partner_code";

/// A configuration error: the field path and what is wrong with it (never a secret value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "invalid configuration: {}", self.message)
        } else {
            write!(f, "invalid configuration: {}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Which signature scheme a route verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteScheme {
    Md5,
    Cube,
    /// Chosen by the header present (`x-lf-md5` or `x-lf-signature`); both or neither: rejected.
    Auto,
}

impl From<Scheme> for RouteScheme {
    fn from(s: Scheme) -> Self {
        match s {
            Scheme::Md5 => RouteScheme::Md5,
            Scheme::Cube => RouteScheme::Cube,
        }
    }
}

/// A protected route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub name: String,
    /// The path pattern and its alias rules (see [`crate::route`]).
    pub pattern: PathPattern,
    /// Query strings accepted as sent (any other query is rejected).
    pub allowed_queries: Vec<Vec<u8>>,
    pub methods: Vec<String>,
    /// The `Allow` header value for 405 replies, computed once.
    pub allow: String,
    pub scheme: RouteScheme,
    /// Indices into [`Config::keys`] of the keys this route accepts (default: all).
    pub keys: Vec<usize>,
    /// The subset of `keys` usable for `x-lf-md5` (computed once).
    pub md5_keys: Vec<usize>,
    /// The subset of `keys` usable for `x-lf-signature` (computed once).
    pub cube_keys: Vec<usize>,
    /// Forward requests that carry no signature header at all, marked `x-lf-verified: none`.
    pub allow_unsigned: bool,
    /// Body field naming the partner (default `partner_code`).
    pub partner_field: String,
    /// Whether any of the route's keys is bound to partners (then the partner is checked).
    pub partner_bound: bool,
    pub freshness: Option<Freshness>,
    /// What a failed verification does on this route (top-level `mode`, or the route's own).
    pub mode: Mode,
    /// Edge de-duplication on this route (top-level `dedup`, or the route's own), if any.
    pub dedup: Option<Dedup>,
}

impl Route {
    pub fn allows_method(&self, method: &[u8]) -> bool {
        self.methods.iter().any(|m| m.as_bytes() == method)
    }
}

/// The validated, compiled configuration. Built once by [`Config::from_json`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The routes in match order; in the deny posture the last one is the catch-all `default`.
    pub routes: Vec<Route>,
    pub posture: Posture,
    pub exempt: Vec<Exemption>,
    pub keys: Vec<Key>,
    pub max_body_bytes: usize,
    pub md5: Md5Options,
    /// The filter's log level, applied at configure time.
    /// `None`: follow the host's level at configure time (Envoy's `wasm` component level), so
    /// that lines Envoy would drop are not even formatted.
    pub log_level: Option<LogLevel>,
    /// Hold mode (default): pause in the request headers until the body is verified (Envoy
    /// needs `allow_on_headers_stop_iteration: true`). `false`: buffer mode, for hosts that
    /// cannot set that flag (Istio): headers continue and `envoy.filters.http.buffer`, placed
    /// after this filter, holds the request until the body is verified.
    pub hold_headers: bool,
    /// Hold mode: a request held this long without any body callback is answered (500
    /// `filter_misconfigured` or 408 `request_timeout`). 0: no watchdog.
    pub hold_timeout_ms: u64,
    /// Hold mode: a held request whose body is not complete this long after its headers is
    /// answered 408 `request_timeout`, however it trickles. 0: no total deadline.
    pub hold_deadline_ms: u64,
}

impl Config {
    /// Parse and validate the plugin configuration. `env` resolves `secret_env` names (the filter
    /// passes the Wasm VM's environment; tests pass a map).
    pub fn from_json(
        json: &[u8],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        compile::compile(schema::parse(json)?, &env)
    }

    /// Where a request with this raw `:path` (query included) goes: [`crate::route::classify`].
    pub fn classify(&self, path: &[u8]) -> Target {
        crate::route::classify(self.routes.iter().map(|r| &r.pattern), &self.exempt, path)
    }

    /// Index of the route protecting this path (canonically or as an alias), if any.
    pub fn route_index(&self, path: &[u8]) -> Option<usize> {
        match self.classify(path) {
            Target::Route(i) | Target::NonCanonical(i) => Some(i),
            Target::Exempt | Target::Unprotected => None,
        }
    }

    /// The route protecting this path (canonically or as an alias), if any.
    pub fn route_for(&self, path: &[u8]) -> Option<&Route> {
        self.route_index(path).and_then(|i| self.routes.get(i))
    }
}

#[cfg(test)]
mod tests;
