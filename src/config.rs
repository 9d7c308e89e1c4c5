//! Plugin configuration: the JSON given to the filter (Envoy `configuration`, Istio
//! `pluginConfig`), parsed and validated ONCE at configure time into a compiled [`Config`].
//!
//! Every error names the field path (`routes[0].path_prefix`, `keys[1].secret_env`) and never a
//! secret value. See the README's "Configuration reference" for the schema.

use std::fmt;

use serde::Deserialize;

use crate::route::{Exemption, PathMatch, PathPattern, Posture, DEFAULT_ROUTE_NAME};

/// Default and upper bound of `hold_timeout_ms` (0 turns the hold watchdog off).
pub const DEFAULT_HOLD_TIMEOUT_MS: u64 = 5_000;
pub const MAX_HOLD_TIMEOUT_MS: u64 = 600_000;
/// Default and upper bound of `hold_deadline_ms` (0: no total deadline).
pub const DEFAULT_HOLD_DEADLINE_MS: u64 = 30_000;
pub const MAX_HOLD_DEADLINE_MS: u64 = 600_000;

/// Default and upper bound of `max_body_bytes`.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
pub const MAX_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

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

// ---------------------------------------------------------------------------------------------
// Raw (serde) types: exactly the JSON schema, unknown fields rejected.
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    keys: Vec<RawKey>,
    #[serde(default)]
    routes: Vec<RawRoute>,
    /// `deny` (default) or `route_list`; see [`crate::route`].
    posture: Option<Posture>,
    /// Deny posture: the catch-all route's scheme, methods and keys.
    default_route: Option<RawDefaultRoute>,
    #[serde(default)]
    exempt: Vec<RawExempt>,
    max_body_bytes: Option<u64>,
    #[serde(default)]
    md5: RawMd5Options,
    /// `enforce` (default) or `shadow`; see [`crate::ops`].
    mode: Option<String>,
    /// Edge de-duplication for every route (off when absent); see [`crate::ops::Dedup`].
    dedup: Option<serde_json::Value>,
    /// The filter's log level (`trace` default: Envoy's `wasm` component level decides).
    log_level: Option<String>,
    hold_headers: Option<bool>,
    hold_timeout_ms: Option<u64>,
    hold_deadline_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    id: Option<String>,
    id_env: Option<String>,
    schemes: Option<Vec<String>>,
    secret: Option<String>,
    secret_env: Option<String>,
    partners: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    name: Option<String>,
    path_exact: Option<String>,
    path_prefix: Option<String>,
    methods: Option<Vec<String>>,
    scheme: Option<String>,
    keys: Option<Vec<String>>,
    #[serde(default)]
    allow_unsigned: bool,
    partner_field: Option<String>,
    freshness: Option<RawFreshness>,
    /// Overrides the top-level `mode`.
    mode: Option<String>,
    /// Overrides the top-level `dedup` (an object, or `false` for off).
    dedup: Option<serde_json::Value>,
    #[serde(default)]
    case_sensitive: bool,
    /// Exact query strings this route accepts (any other query: 400 `query_not_allowed`).
    #[serde(default)]
    allowed_queries: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDefaultRoute {
    methods: Option<Vec<String>>,
    scheme: Option<String>,
    keys: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExempt {
    path_exact: Option<String>,
    path_prefix: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFreshness {
    max_age_seconds: u64,
    max_future_skew_seconds: Option<u64>,
    body_field: Option<String>,
    body_field_utc_offset: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMd5Options {
    empty_values: Option<EmptyValues>,
    nested_values: Option<NestedValues>,
    value_types: Option<ValueTypes>,
}

// ---------------------------------------------------------------------------------------------
// Compiled configuration.
// ---------------------------------------------------------------------------------------------

/// What the legacy canonical string does with empty values (`""` and `null`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmptyValues {
    /// `key=` is part of the signed string (default).
    #[default]
    Keep,
    /// Pairs with an empty value are left out of the signed string (still forwarded).
    Skip,
}

/// What the legacy canonical string does with nested JSON objects and arrays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NestedValues {
    /// A nested object or array makes the body malformed (default).
    #[default]
    Reject,
    /// The value's JSON text exactly as it appears in the body is signed.
    Raw,
}

/// Which JSON value types the legacy scheme accepts. Its signed text does not carry the type
/// (`false` and `"false"`, `0` and `"0"`, `null` and `""` sign alike), and backends act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueTypes {
    /// Only JSON strings (the provider documents string values only); a number, boolean or
    /// `null` makes the body malformed (default).
    #[default]
    Strings,
    /// Numbers, booleans and `null` too, signed as their text (`null` as empty): their type is
    /// NOT bound by the signature.
    Any,
}

/// Canonicalisation options of the legacy scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Md5Options {
    pub empty_values: EmptyValues,
    pub nested_values: NestedValues,
    pub value_types: ValueTypes,
}

/// A secret. Its `Debug` never prints the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(bytes.into())
    }
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<redacted, {} bytes>)", self.0.len())
    }
}

/// A verification key: its public id, its (redacted) secret and, optionally, the partners
/// (`partner_code` values) it may sign for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub id: String,
    pub secret: Secret,
    /// `None`: any partner. `Some(list)`: only requests whose partner is in the list.
    pub partners: Option<Vec<String>>,
    /// Whether the key verifies `x-lf-md5` (legacy) signatures.
    pub md5: bool,
    /// Whether the key verifies `x-lf-signature` (Cube) signatures.
    pub cube: bool,
}

impl Key {
    /// Whether this key may sign for `partner` (the body's partner field, if any).
    pub fn allows_partner(&self, partner: Option<&str>) -> bool {
        match (&self.partners, partner) {
            (None, _) => true,
            (Some(list), Some(p)) => list.iter().any(|x| x == p),
            (Some(_), None) => false,
        }
    }
}

/// Which signature scheme a route verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteScheme {
    Md5,
    Cube,
    /// Chosen by the header present (`x-lf-md5` or `x-lf-signature`); both or neither: rejected.
    Auto,
}

/// The optional freshness window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freshness {
    /// Oldest accepted notification, in milliseconds before now.
    pub max_age_ms: u64,
    /// Furthest accepted notification time after now (clock skew), in milliseconds.
    pub max_future_skew_ms: u64,
    /// Legacy scheme: the body field holding the send time (epoch ms or a provider date format).
    pub body_field: String,
    /// UTC offset, in minutes, of provider date formats without a zone (`2022-01-19T201101`).
    pub body_field_utc_offset_minutes: i32,
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
    pub mode: crate::ops::Mode,
    /// Edge de-duplication on this route (top-level `dedup`, or the route's own), if any.
    pub dedup: Option<crate::ops::Dedup>,
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
    pub log_level: Option<crate::ops::LogLevel>,
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
        let de = &mut serde_json::Deserializer::from_slice(json);
        let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." { String::new() } else { path };
            // serde quotes the offending value ("invalid type: integer `123`"): never for a
            // field that holds a secret or names where one is.
            let secret_field = field.ends_with(".secret") || field.ends_with(".secret_env");
            let message = if secret_field {
                "must be a string (value not shown)".to_string()
            } else {
                e.into_inner().to_string()
            };
            ConfigError::new(field, message)
        })?;
        compile(raw, &env)
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// An environment variable name that may appear in an error message. Anything else given as a
/// variable name may be a secret pasted into the wrong field: it is never repeated.
pub fn printable_var(var: &str) -> Option<&str> {
    let mut bytes = var.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_uppercase() || b == b'_');
    let rest_ok = bytes.all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    (first_ok && rest_ok && var.len() <= 64).then_some(var)
}

/// `environment variable `NAME` <what>`, or without the name when it does not look like one.
fn env_error(field: String, var: &str, what: &str) -> ConfigError {
    match printable_var(var) {
        Some(name) => ConfigError::new(field, format!("environment variable `{name}` {what}")),
        None => ConfigError::new(
            field,
            format!(
                "the environment variable {what} (its name is not shown: it does not look like \
                 one, [A-Z_][A-Z0-9_]*, and may be a secret pasted into the wrong field)"
            ),
        ),
    }
}

const NOT_SET_HINT: &str = "is not set (Envoy: list it in vm_config.environment_variables; \
                            Istio: vmConfig.env)";

fn compile(raw: RawConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let mut keys: Vec<Key> = Vec::with_capacity(raw.keys.len());
    for (i, k) in raw.keys.into_iter().enumerate() {
        let key = compile_key(i, k, &keys, env)?;
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(ConfigError::new("keys", "at least one key is required"));
    }
    let ctx = RouteContext {
        keys: &keys,
        mode: crate::ops::compile_mode(raw.mode.as_deref(), Default::default(), "mode")?,
        dedup: match &raw.dedup {
            None => None,
            Some(v) => crate::ops::compile_dedup(v, "dedup", "global".to_string(), false)?,
        },
    };
    let log_level = match raw.log_level.as_deref() {
        None => None,
        Some(level) => Some(crate::ops::compile_log_level(Some(level))?),
    };
    let posture = raw.posture.unwrap_or_default();
    if posture == Posture::RouteList && raw.routes.is_empty() {
        return Err(ConfigError::new(
            "routes",
            "at least one protected route is required with posture `route_list`",
        ));
    }
    let mut routes: Vec<Route> = Vec::with_capacity(raw.routes.len() + 1);
    for (i, r) in raw.routes.into_iter().enumerate() {
        let route = ctx.route(&format!("routes[{i}]"), r, format!("route{i}"))?;
        if routes.iter().any(|other| other.name == route.name)
            || (posture == Posture::Deny && route.name == DEFAULT_ROUTE_NAME)
        {
            return Err(ConfigError::new(
                format!("routes[{i}].name"),
                format!(
                    "duplicate route name `{}` (`default` is the deny posture's catch-all)",
                    route.name
                ),
            ));
        }
        routes.push(route);
    }
    match (posture, raw.default_route) {
        (Posture::Deny, d) => {
            let d = d.unwrap_or_default();
            let r = RawRoute {
                name: Some(DEFAULT_ROUTE_NAME.to_string()),
                path_exact: None,
                path_prefix: Some("/".to_string()),
                methods: d.methods,
                scheme: Some(
                    d.scheme
                        .unwrap_or_else(|| catch_all_scheme(&keys, d.keys.as_deref())),
                ),
                keys: d.keys,
                allow_unsigned: false,
                partner_field: None,
                freshness: None,
                mode: None,
                dedup: None,
                case_sensitive: false,
                allowed_queries: Vec::new(),
            };
            let mut route = ctx.route("default_route", r, String::new())?;
            route.pattern = PathPattern::new(PathMatch::Any, false);
            routes.push(route);
        }
        (Posture::RouteList, Some(_)) => {
            return Err(ConfigError::new(
                "default_route",
                "only with posture `deny` (route_list forwards unmatched paths)",
            ))
        }
        (Posture::RouteList, None) => {}
    }
    let exempt = compile_exempt(raw.exempt)?;

    let max_body_bytes = match raw.max_body_bytes {
        None => DEFAULT_MAX_BODY_BYTES,
        Some(n) if n == 0 || n > MAX_MAX_BODY_BYTES as u64 => {
            return Err(ConfigError::new(
                "max_body_bytes",
                format!("must be between 1 and {MAX_MAX_BODY_BYTES}"),
            ))
        }
        Some(n) => usize::try_from(n).unwrap_or(DEFAULT_MAX_BODY_BYTES),
    };
    let hold_timeout_ms = match raw.hold_timeout_ms {
        None => DEFAULT_HOLD_TIMEOUT_MS,
        Some(n) if n > MAX_HOLD_TIMEOUT_MS => {
            return Err(ConfigError::new(
                "hold_timeout_ms",
                format!("must be between 0 (no watchdog) and {MAX_HOLD_TIMEOUT_MS}"),
            ))
        }
        Some(n) => n,
    };
    let hold_deadline_ms = match raw.hold_deadline_ms {
        None => DEFAULT_HOLD_DEADLINE_MS,
        Some(n) if n > MAX_HOLD_DEADLINE_MS => {
            return Err(ConfigError::new(
                "hold_deadline_ms",
                format!("must be between 0 (no total deadline) and {MAX_HOLD_DEADLINE_MS}"),
            ))
        }
        Some(n) => n,
    };

    Ok(Config {
        routes,
        posture,
        exempt,
        keys,
        max_body_bytes,
        hold_headers: raw.hold_headers.unwrap_or(true),
        hold_timeout_ms,
        hold_deadline_ms,
        md5: Md5Options {
            empty_values: raw.md5.empty_values.unwrap_or_default(),
            nested_values: raw.md5.nested_values.unwrap_or_default(),
            value_types: raw.md5.value_types.unwrap_or_default(),
        },
        log_level,
    })
}

/// The catch-all's scheme when `default_route.scheme` is left out: every scheme its keys can
/// verify (`auto` when they can do both).
fn catch_all_scheme(keys: &[Key], ids: Option<&[String]>) -> String {
    let chosen = keys.iter().filter(|k| match ids {
        None => true,
        Some(ids) => ids.contains(&k.id),
    });
    let (md5, cube) = chosen.fold((false, false), |(m, c), k| (m || k.md5, c || k.cube));
    match (md5, cube) {
        (false, true) => "cube",
        (true, false) => "md5",
        _ => "auto",
    }
    .to_string()
}

fn compile_exempt(raw: Vec<RawExempt>) -> Result<Vec<Exemption>, ConfigError> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, e) in raw.into_iter().enumerate() {
        let at = |f: &str| format!("exempt[{i}].{f}");
        let exemption = match (e.path_exact, e.path_prefix) {
            (Some(p), None) => {
                check_path(&p).map_err(|m| ConfigError::new(at("path_exact"), m))?;
                Exemption::Exact(p)
            }
            (None, Some(p)) => {
                check_path(&p).map_err(|m| ConfigError::new(at("path_prefix"), m))?;
                if !crate::route::is_canonical(p.as_bytes()) {
                    return Err(ConfigError::new(
                        at("path_prefix"),
                        "must be a canonical path (no `;`, `%`, `\\`, `//`, `.` or `..` segment)",
                    ));
                }
                Exemption::Prefix(p)
            }
            _ => {
                return Err(ConfigError::new(
                    format!("exempt[{i}]"),
                    "give exactly one of `path_exact` and `path_prefix`",
                ))
            }
        };
        out.push(exemption);
    }
    Ok(out)
}

fn compile_key(
    i: usize,
    k: RawKey,
    earlier: &[Key],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Key, ConfigError> {
    let at = |f: &str| format!("keys[{i}].{f}");
    let (id, id_field) = match (k.id, k.id_env) {
        (Some(id), None) => (id, at("id")),
        (None, Some(var)) => match env(&var) {
            Some(id) if !id.is_empty() => (id, at("id_env")),
            _ => return Err(env_error(at("id_env"), &var, "is not set or empty")),
        },
        _ => {
            return Err(ConfigError::new(
                format!("keys[{i}]"),
                "give exactly one of `id` and `id_env`",
            ))
        }
    };
    if !is_token(&id) || id.len() > 64 {
        return Err(ConfigError::new(
            id_field,
            "must be 1-64 characters from [A-Za-z0-9._-]",
        ));
    }
    if earlier.iter().any(|other| other.id == id) {
        return Err(ConfigError::new(
            id_field,
            format!("duplicate key id `{id}`"),
        ));
    }
    let (md5, cube) = compile_key_schemes(i, k.schemes.as_deref())?;
    let secret = match (k.secret, k.secret_env) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                format!("keys[{i}]"),
                "give exactly one of `secret` and `secret_env`, not both",
            ))
        }
        (None, None) => {
            return Err(ConfigError::new(
                format!("keys[{i}]"),
                "give exactly one of `secret` and `secret_env`",
            ))
        }
        (Some(s), None) if s.is_empty() => {
            return Err(ConfigError::new(at("secret"), "must not be empty"))
        }
        (Some(s), None) => s,
        (None, Some(var)) if var.is_empty() => {
            return Err(ConfigError::new(
                at("secret_env"),
                "must name an environment variable",
            ))
        }
        (None, Some(var)) => match env(&var) {
            Some(v) if !v.is_empty() => v,
            Some(_) => return Err(env_error(at("secret_env"), &var, "is empty")),
            None => return Err(env_error(at("secret_env"), &var, NOT_SET_HINT)),
        },
    };
    if let Some(partners) = &k.partners {
        if partners.is_empty() {
            return Err(ConfigError::new(
                at("partners"),
                "must list at least one partner (or be left out)",
            ));
        }
        if let Some(j) = partners.iter().position(String::is_empty) {
            return Err(ConfigError::new(
                format!("keys[{i}].partners[{j}]"),
                "must not be empty",
            ));
        }
    }
    Ok(Key {
        id,
        secret: Secret::new(secret.into_bytes()),
        partners: k.partners,
        md5,
        cube,
    })
}

/// `keys[i].schemes`: which schemes the key verifies (both when left out).
fn compile_key_schemes(i: usize, schemes: Option<&[String]>) -> Result<(bool, bool), ConfigError> {
    let Some(schemes) = schemes else {
        return Ok((true, true));
    };
    if schemes.is_empty() {
        return Err(ConfigError::new(
            format!("keys[{i}].schemes"),
            "must list `md5` and/or `cube` (or be left out)",
        ));
    }
    let (mut md5, mut cube) = (false, false);
    for (j, scheme) in schemes.iter().enumerate() {
        match scheme.as_str() {
            "md5" => md5 = true,
            "cube" => cube = true,
            other => {
                return Err(ConfigError::new(
                    format!("keys[{i}].schemes[{j}]"),
                    format!("unknown scheme `{other}` (expected `md5` or `cube`)"),
                ))
            }
        }
    }
    Ok((md5, cube))
}

/// What every route compiles against: the keys and the top-level defaults it inherits.
struct RouteContext<'k> {
    keys: &'k [Key],
    mode: crate::ops::Mode,
    dedup: Option<crate::ops::Dedup>,
}

impl RouteContext<'_> {
    /// Compile one route; `at` is its field path (`routes[2]`, `default_route`).
    fn route(&self, at: &str, r: RawRoute, default_name: String) -> Result<Route, ConfigError> {
        let field = |f: &str| format!("{at}.{f}");
        let path = match (r.path_exact, r.path_prefix) {
            (Some(p), None) => {
                check_path(&p).map_err(|m| ConfigError::new(field("path_exact"), m))?;
                PathMatch::Exact(p)
            }
            (None, Some(p)) => {
                check_path(&p).map_err(|m| ConfigError::new(field("path_prefix"), m))?;
                PathMatch::Prefix(p)
            }
            _ => {
                return Err(ConfigError::new(
                    at,
                    "give exactly one of `path_exact` and `path_prefix`",
                ))
            }
        };
        let name = match r.name {
            Some(n) if is_token(&n) && n.len() <= 64 => n,
            Some(_) => {
                return Err(ConfigError::new(
                    field("name"),
                    "must be 1-64 characters from [A-Za-z0-9._-]",
                ))
            }
            None => default_name,
        };
        let methods = compile_methods(at, r.methods)?;
        let scheme = match r.scheme.as_deref() {
            None | Some("md5") => RouteScheme::Md5,
            Some("cube") => RouteScheme::Cube,
            Some("auto") => RouteScheme::Auto,
            Some(other) => {
                return Err(ConfigError::new(
                    field("scheme"),
                    format!("unknown scheme `{other}` (expected `md5`, `cube` or `auto`)"),
                ))
            }
        };
        let route_keys = self.route_keys(at, r.keys)?;
        let usable = |pred: fn(&Key) -> bool| -> Vec<usize> {
            route_keys
                .iter()
                .copied()
                .filter(|&x| self.keys.get(x).is_some_and(pred))
                .collect()
        };
        let (md5_keys, cube_keys) = (usable(|k| k.md5), usable(|k| k.cube));
        let missing = match scheme {
            RouteScheme::Md5 | RouteScheme::Auto if md5_keys.is_empty() => Some("md5"),
            RouteScheme::Cube | RouteScheme::Auto if cube_keys.is_empty() => Some("cube"),
            _ => None,
        };
        if let Some(missing) = missing {
            let f = if self.keys.is_empty() {
                "keys".to_string()
            } else {
                at.to_string()
            };
            return Err(ConfigError::new(
                f,
                format!("route `{name}` verifies `{missing}` signatures but none of its keys can (see keys[].schemes, routes[].keys)"),
            ));
        }
        let partner_bound = route_keys
            .iter()
            .any(|&x| self.keys.get(x).is_some_and(|k| k.partners.is_some()));
        let partner_field = r
            .partner_field
            .unwrap_or_else(|| "partner_code".to_string());
        if partner_field.is_empty() {
            return Err(ConfigError::new(
                field("partner_field"),
                "must not be empty",
            ));
        }
        let freshness = match r.freshness {
            None => None,
            Some(f) => Some(compile_freshness(f, &field("freshness"))?),
        };
        let mode = crate::ops::compile_mode(r.mode.as_deref(), self.mode, &field("mode"))?;
        let dedup = match &r.dedup {
            None => self.dedup.clone(),
            Some(v) => {
                crate::ops::compile_dedup(v, &field("dedup"), format!("route.{name}"), true)?
            }
        };
        let allowed_queries = compile_queries(at, r.allowed_queries)?;
        Ok(Route {
            name,
            pattern: PathPattern::new(path, r.case_sensitive),
            allowed_queries,
            allow: methods.join(", "),
            methods,
            scheme,
            keys: route_keys,
            md5_keys,
            cube_keys,
            allow_unsigned: r.allow_unsigned,
            partner_field,
            partner_bound,
            freshness,
            mode,
            dedup,
        })
    }

    /// `routes[i].keys`: indices into the keys (default: all of them).
    fn route_keys(&self, at: &str, ids: Option<Vec<String>>) -> Result<Vec<usize>, ConfigError> {
        let Some(ids) = ids else {
            return Ok((0..self.keys.len()).collect());
        };
        if ids.is_empty() {
            return Err(ConfigError::new(
                format!("{at}.keys"),
                "must list at least one key id (or be left out)",
            ));
        }
        let mut out = Vec::with_capacity(ids.len());
        for (j, id) in ids.iter().enumerate() {
            match self.keys.iter().position(|k| &k.id == id) {
                Some(x) if !out.contains(&x) => out.push(x),
                Some(_) => {
                    return Err(ConfigError::new(
                        format!("{at}.keys[{j}]"),
                        format!("key `{id}` listed twice"),
                    ))
                }
                None => {
                    return Err(ConfigError::new(
                        format!("{at}.keys[{j}]"),
                        format!("no key with id `{id}` in `keys`"),
                    ))
                }
            }
        }
        Ok(out)
    }
}

fn compile_methods(at: &str, methods: Option<Vec<String>>) -> Result<Vec<String>, ConfigError> {
    let methods = methods.unwrap_or_else(|| vec!["POST".to_string()]);
    if methods.is_empty() {
        return Err(ConfigError::new(
            format!("{at}.methods"),
            "must list at least one method",
        ));
    }
    if let Some(j) = methods
        .iter()
        .position(|m| m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()))
    {
        return Err(ConfigError::new(
            format!("{at}.methods[{j}]"),
            "must be an upper-case HTTP method such as POST",
        ));
    }
    Ok(methods)
}

fn compile_queries(at: &str, queries: Vec<String>) -> Result<Vec<Vec<u8>>, ConfigError> {
    for (j, q) in queries.iter().enumerate() {
        if q.is_empty()
            || q.contains(['?', '#'])
            || q.bytes().any(|b| b.is_ascii_control() || b == b' ')
        {
            return Err(ConfigError::new(
                format!("{at}.allowed_queries[{j}]"),
                "must be a non-empty query string as sent, without `?`, `#`, spaces or control characters",
            ));
        }
    }
    Ok(queries.into_iter().map(String::into_bytes).collect())
}

/// Largest accepted `max_age_seconds` / `max_future_skew_seconds` (one year).
const MAX_WINDOW_SECONDS: u64 = 366 * 24 * 3600;

fn compile_freshness(f: RawFreshness, at: &str) -> Result<Freshness, ConfigError> {
    if f.max_age_seconds == 0 || f.max_age_seconds > MAX_WINDOW_SECONDS {
        return Err(ConfigError::new(
            format!("{at}.max_age_seconds"),
            format!("must be between 1 and {MAX_WINDOW_SECONDS}"),
        ));
    }
    let skew = f.max_future_skew_seconds.unwrap_or(300);
    if skew > MAX_WINDOW_SECONDS {
        return Err(ConfigError::new(
            format!("{at}.max_future_skew_seconds"),
            format!("must be at most {MAX_WINDOW_SECONDS}"),
        ));
    }
    let body_field = f.body_field.unwrap_or_else(|| "received_at".to_string());
    if body_field.is_empty() {
        return Err(ConfigError::new(
            format!("{at}.body_field"),
            "must not be empty",
        ));
    }
    let offset = match f.body_field_utc_offset.as_deref() {
        None => 0,
        Some(text) => parse_utc_offset(text).ok_or_else(|| {
            ConfigError::new(
                format!("{at}.body_field_utc_offset"),
                "must look like +08:00 or -05:30",
            )
        })?,
    };
    Ok(Freshness {
        max_age_ms: f.max_age_seconds * 1000,
        max_future_skew_ms: skew * 1000,
        body_field,
        body_field_utc_offset_minutes: offset,
    })
}

/// `+08:00` -> 480, `-05:30` -> -330, `Z` -> 0.
fn parse_utc_offset(text: &str) -> Option<i32> {
    if text == "Z" {
        return Some(0);
    }
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, text.get(1..)?),
        b'-' => (-1, text.get(1..)?),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if h > 14 || m > 59 {
        return None;
    }
    Some(sign * (h * 60 + m))
}

fn check_path(p: &str) -> Result<(), &'static str> {
    if !p.starts_with('/') {
        return Err("must start with `/`");
    }
    if p.contains(['?', '#']) || p.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err("must be a plain path (no query, fragment, spaces or control characters)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "LF_SECRET" => Some("s3cr3t=value&x".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn parse(json: &str) -> Result<Config, ConfigError> {
        Config::from_json(json.as_bytes(), env)
    }

    const MINIMAL: &str =
        r#"{"keys":[{"id":"k1","secret":"abc"}],"routes":[{"path_prefix":"/lf/"}]}"#;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(c.routes[0].methods, vec!["POST"]);
        assert_eq!(c.routes[0].allow, "POST");
        assert_eq!(c.routes[0].name, "route0");
        assert_eq!(c.routes[0].scheme, RouteScheme::Md5);
        assert_eq!(c.routes[0].keys, vec![0]);
        assert!(!c.routes[0].allow_unsigned);
        assert_eq!(c.routes[0].partner_field, "partner_code");
        assert!(!c.routes[0].partner_bound);
        assert_eq!(c.routes[0].freshness, None);
        assert_eq!(c.md5, Md5Options::default());
        assert_eq!(c.md5.empty_values, EmptyValues::Keep);
        assert_eq!(c.md5.nested_values, NestedValues::Reject);
    }

    #[test]
    fn full_config() {
        let c = parse(
            r#"{"keys":[{"id":"a","secret_env":"LF_SECRET"},{"id":"b","secret":"x"}],
                "routes":[{"name":"sms","path_exact":"/sms","methods":["POST","PUT"],"scheme":"md5"}],
                "max_body_bytes":1024,"md5":{"empty_values":"skip","nested_values":"raw"}}"#,
        )
        .unwrap();
        assert_eq!(c.keys[0].secret.expose(), b"s3cr3t=value&x");
        assert_eq!(c.routes[0].allow, "POST, PUT");
        assert_eq!(c.max_body_bytes, 1024);
        assert_eq!(c.md5.empty_values, EmptyValues::Skip);
        assert_eq!(c.md5.nested_values, NestedValues::Raw);
    }

    #[test]
    fn route_matching_ignores_query_and_takes_first() {
        let c = parse(
            r#"{"keys":[{"id":"k","secret":"s"}],"posture":"route_list","routes":[
                {"name":"exact","path_exact":"/lf/sms"},{"name":"prefix","path_prefix":"/lf/"}]}"#,
        )
        .unwrap();
        assert_eq!(c.route_for(b"/lf/sms?x=1").unwrap().name, "exact");
        assert_eq!(c.route_for(b"/lf/sms/2").unwrap().name, "prefix");
        assert_eq!(c.route_for(b"/lf/").unwrap().name, "prefix");
        // `/lf` may be the prefix's own handler (Express `app.use("/lf", ...)`): an alias.
        assert_eq!(c.route_for(b"/lf").unwrap().name, "prefix");
        assert_eq!(c.route_for(b"/lf/sms/").unwrap().name, "exact");
        assert!(c.route_for(b"/other").is_none());
        assert!(c.route_for(b"").is_none());
    }

    #[test]
    fn ambiguous_paths_are_protected() {
        let c = parse(r#"{"keys":[{"id":"k","secret":"s"}],"posture":"route_list","routes":[{"name":"lf","path_prefix":"/linksfield/"},{"name":"x","path_exact":"/hook"}]}"#).unwrap();
        for p in [
            &b"/x/../linksfield/sms"[..],
            b"//linksfield/sms",
            b"/linksfield//sms",
            b"/./linksfield/sms",
            b"/%6Cinksfield/sms",
            b"/%6cinksfield/sms",
            b"/linksfield%2Fsms",
            b"/linksfield%2fsms",
            b"/linksfield\\sms",
            b"/linksfield%5Csms",
            b"/a/b/../../linksfield/sms?q=/other",
            b"/linksfield/../linksfield/x",
            b"/linksfield/../other",
        ] {
            assert_eq!(
                c.route_for(p).map(|r| r.name.as_str()),
                Some("lf"),
                "{}",
                String::from_utf8_lossy(p)
            );
        }
        for p in [&b"/hook/."[..], b"//hook", b"/x/../hook", b"/ho%6Fk"] {
            assert_eq!(
                c.route_for(p).map(|r| r.name.as_str()),
                Some("x"),
                "{}",
                String::from_utf8_lossy(p)
            );
        }
        for p in [
            &b"/other"[..],
            b"/linksfieldx",
            b"/%2e%2e/other",
            b"/linksfield%3Fsms",
            b"/lf%zz",
        ] {
            assert!(c.route_for(p).is_none(), "{}", String::from_utf8_lossy(p));
        }
    }

    /// Every config error names its field.
    #[test]
    fn errors_name_the_field() {
        let cases: &[(&str, &str)] = &[
            ("not json", ""),
            (r#"{"routes":[]}"#, "keys"),
            (
                r#"{"keys":[{"id":"k","secret":"s"}],"posture":"route_list","routes":[]}"#,
                "routes",
            ),
            (
                r#"{"keys":[{"id":"k","secret":"s"}],"posture":"open"}"#,
                "posture",
            ),
            (
                r#"{"keys":[{"id":"k","secret":"s"}],"posture":"route_list","routes":[{"path_prefix":"/a"}],"default_route":{}}"#,
                "default_route",
            ),
            (
                r#"{"keys":[{"id":"k","secret":"s"}],"default_route":{"scheme":"x"}}"#,
                "default_route.scheme",
            ),
            (
                r#"{"keys":[{"id":"k","secret":"s"}],"default_route":{"path_prefix":"/"}}"#,
                "default_route.path_prefix",
            ),
            (
                r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a","name":"default"}]}"#,
                "routes[0].name",
            ),
            (
                r#"{"keys":[{"id":"k","secret":"s"}],"exempt":[{"path_exact":"/a","path_prefix":"/b"}]}"#,
                "exempt[0]",
            ),
            (
                r#"{"keys":[{"id":"k","secret":"s"}],"exempt":[{"path_prefix":"/a;b/"}]}"#,
                "exempt[0].path_prefix",
            ),
            (
                r#"{"keys":[{"id":"k","secret":"s"}],"exempt":[{"path_exact":"a"}]}"#,
                "exempt[0].path_exact",
            ),
            (
                r#"{"keys":[{"id":"k","secret":"s"}],"exempt":[{"path_exact":"/a","methods":["GET"]}]}"#,
                "exempt[0].methods",
            ),
            (
                r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a","allowed_queries":[""]}]}"#,
                "routes[0].allowed_queries[0]",
            ),
            (
                r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a","allowed_queries":["?a=1"]}]}"#,
                "routes[0].allowed_queries[0]",
            ),
            (
                r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a","case_sensitive":"yes"}]}"#,
                "routes[0].case_sensitive",
            ),
            (
                r#"{"keys":[{"id":"k","secret":"s"}],"md5":{"value_types":"numbers"}}"#,
                "md5.value_types",
            ),
            (
                r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a"}],"extra":1}"#,
                "extra",
            ),
            (
                r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a","pathprefix":"/b"}]}"#,
                "routes[0].pathprefix",
            ),
            (
                r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a","path_exact":"/b"}]}"#,
                "routes[0]",
            ),
            (
                r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"name":"r"}]}"#,
                "routes[0]",
            ),
            (
                r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"a"}]}"#,
                "routes[0].path_prefix",
            ),
            (
                r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_exact":"/a?b"}]}"#,
                "routes[0].path_exact",
            ),
            (
                r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a","methods":[]}]}"#,
                "routes[0].methods",
            ),
            (
                r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a","methods":["post"]}]}"#,
                "routes[0].methods[0]",
            ),
            (
                r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a","methods":[1]}]}"#,
                "routes[0].methods[0]",
            ),
            (
                r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a","scheme":"sha"}]}"#,
                "routes[0].scheme",
            ),
            (
                r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a","name":"bad name"}]}"#,
                "routes[0].name",
            ),
            (
                r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a","name":"x"},{"path_prefix":"/b","name":"x"}]}"#,
                "routes[1].name",
            ),
            (r#"{"routes":[{"path_prefix":"/a"}]}"#, "keys"),
            (
                r#"{"keys":[{"id":"","secret":"s"}],"routes":[{"path_prefix":"/a"}]}"#,
                "keys[0].id",
            ),
            (
                r#"{"keys":[{"id":"k","secret":"s"},{"id":"k","secret":"t"}],"routes":[{"path_prefix":"/a"}]}"#,
                "keys[1].id",
            ),
            (
                r#"{"keys":[{"id":"k"}],"routes":[{"path_prefix":"/a"}]}"#,
                "keys[0]",
            ),
            (
                r#"{"keys":[{"id":"k","secret":"s","secret_env":"LF_SECRET"}],"routes":[{"path_prefix":"/a"}]}"#,
                "keys[0]",
            ),
            (
                r#"{"keys":[{"id":"k","secret":""}],"routes":[{"path_prefix":"/a"}]}"#,
                "keys[0].secret",
            ),
            (
                r#"{"keys":[{"id":"k","secret_env":"NOPE"}],"routes":[{"path_prefix":"/a"}]}"#,
                "keys[0].secret_env",
            ),
            (
                r#"{"keys":[{"id":"k","secret_env":"EMPTY"}],"routes":[{"path_prefix":"/a"}]}"#,
                "keys[0].secret_env",
            ),
            (
                r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a"}],"max_body_bytes":0}"#,
                "max_body_bytes",
            ),
            (
                r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a"}],"max_body_bytes":-1}"#,
                "max_body_bytes",
            ),
            (
                r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a"}],"max_body_bytes":99999999999}"#,
                "max_body_bytes",
            ),
            (
                r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a"}],"md5":{"empty_values":"drop"}}"#,
                "md5.empty_values",
            ),
            (
                r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a"}],"md5":{"nested_values":"json"}}"#,
                "md5.nested_values",
            ),
        ];
        for (json, field) in cases {
            let err = parse(json).expect_err(json);
            assert_eq!(&err.field, field, "{json}: {err}");
            assert!(
                err.to_string().starts_with("invalid configuration"),
                "{err}"
            );
        }
    }

    #[test]
    fn hold_mode_fields() {
        let c = parse(MINIMAL).unwrap();
        assert!(c.hold_headers);
        assert_eq!(c.hold_timeout_ms, DEFAULT_HOLD_TIMEOUT_MS);
        assert_eq!(c.hold_deadline_ms, DEFAULT_HOLD_DEADLINE_MS);
        let c = parse(
            r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a"}],
                "hold_headers":false,"hold_timeout_ms":0,"hold_deadline_ms":0}"#,
        )
        .unwrap();
        assert!(!c.hold_headers);
        assert_eq!(c.hold_timeout_ms, 0);
        assert_eq!(c.hold_deadline_ms, 0);
        for (json, field) in [
            (r#""hold_headers":"no""#, "hold_headers"),
            (r#""hold_headers":0"#, "hold_headers"),
            (r#""hold_timeout_ms":600001"#, "hold_timeout_ms"),
            (r#""hold_timeout_ms":-5"#, "hold_timeout_ms"),
            (r#""hold_timeout_ms":1.5"#, "hold_timeout_ms"),
            (r#""hold_deadline_ms":600001"#, "hold_deadline_ms"),
            (r#""hold_deadline_ms":-1"#, "hold_deadline_ms"),
        ] {
            let full = format!(
                r#"{{"keys":[{{"id":"k","secret":"s"}}],"routes":[{{"path_prefix":"/a"}}],{json}}}"#
            );
            let err = parse(&full).expect_err(&full);
            assert_eq!(err.field, field, "{full}: {err}");
        }
    }

    #[test]
    fn schemes_keys_partners_freshness() {
        let c = parse(
            r#"{"keys":[{"id":"md5-old","secret":"a"},{"id":"md5-new","secret":"b","partners":["P1","P2"]},
                        {"id":"cube1","secret_env":"LF_SECRET","partners":["P3"]}],
                "posture":"route_list",
                "routes":[{"name":"legacy","path_prefix":"/lf/","keys":["md5-new","md5-old"]},
                          {"name":"cube","path_prefix":"/cube/","scheme":"cube","keys":["cube1"],
                           "freshness":{"max_age_seconds":600}},
                          {"name":"both","path_prefix":"/x/","scheme":"auto","allow_unsigned":true,
                           "partner_field":"pc","freshness":{"max_age_seconds":60,"max_future_skew_seconds":5,
                           "body_field":"sent","body_field_utc_offset":"+08:00"}}]}"#,
        )
        .unwrap();
        let [legacy, cube, both] = &c.routes[..] else {
            panic!()
        };
        assert_eq!(legacy.keys, vec![1, 0]);
        assert!(legacy.partner_bound);
        assert_eq!(cube.scheme, RouteScheme::Cube);
        let f = cube.freshness.as_ref().unwrap();
        assert_eq!(
            (
                f.max_age_ms,
                f.max_future_skew_ms,
                f.body_field.as_str(),
                f.body_field_utc_offset_minutes
            ),
            (600_000, 300_000, "received_at", 0)
        );
        assert_eq!(both.scheme, RouteScheme::Auto);
        assert!(both.allow_unsigned);
        assert_eq!(both.keys, vec![0, 1, 2]);
        assert_eq!(both.partner_field, "pc");
        let f = both.freshness.as_ref().unwrap();
        assert_eq!(
            (
                f.max_future_skew_ms,
                f.body_field.as_str(),
                f.body_field_utc_offset_minutes
            ),
            (5_000, "sent", 480)
        );
        assert!(c.keys[1].allows_partner(Some("P2")));
        assert!(!c.keys[1].allows_partner(Some("P3")));
        assert!(!c.keys[1].allows_partner(None));
        assert!(c.keys[0].allows_partner(None));
    }

    #[test]
    fn key_ids_from_env_and_scheme_restrictions() {
        let c = parse(
            r#"{"keys":[{"id":"demo","secret":"a","schemes":["md5"]},
                        {"id_env":"CUBE_ID","secret_env":"LF_SECRET","schemes":["cube"]}],
                "routes":[{"path_prefix":"/lf/"},{"path_prefix":"/cube/","scheme":"cube"},
                          {"path_prefix":"/x/","scheme":"auto"}]}"#,
        );
        // CUBE_ID is not in this test's environment.
        assert_eq!(c.unwrap_err().field, "keys[1].id_env");
        let env2 = |n: &str| match n {
            "CUBE_ID" => Some("Ou8a5lyzPjN86ikmLeFC".to_string()),
            other => env(other),
        };
        let c = Config::from_json(
            br#"{"keys":[{"id":"demo","secret":"a","schemes":["md5"]},
                        {"id_env":"CUBE_ID","secret_env":"LF_SECRET","schemes":["cube"]}],
                "routes":[{"path_prefix":"/lf/"},{"path_prefix":"/cube/","scheme":"cube"},
                          {"path_prefix":"/x/","scheme":"auto"}]}"#,
            env2,
        )
        .unwrap();
        assert_eq!(c.keys[1].id, "Ou8a5lyzPjN86ikmLeFC");
        assert!(c.keys[0].md5 && !c.keys[0].cube && !c.keys[1].md5 && c.keys[1].cube);
        assert_eq!(
            (c.routes[2].md5_keys.clone(), c.routes[2].cube_keys.clone()),
            (vec![0], vec![1])
        );
    }

    #[test]
    fn utc_offsets() {
        assert_eq!(parse_utc_offset("+08:00"), Some(480));
        assert_eq!(parse_utc_offset("-05:30"), Some(-330));
        assert_eq!(parse_utc_offset("Z"), Some(0));
        for bad in [
            "08:00", "+8:00", "+08", "+15:00", "+08:60", "", "+", "+aa:bb",
        ] {
            assert_eq!(parse_utc_offset(bad), None, "{bad}");
        }
    }

    #[test]
    fn mode_dedup_and_log_level_inherit_and_override() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.routes[0].mode, crate::ops::Mode::Enforce);
        assert_eq!(c.routes[0].dedup, None);
        assert_eq!(c.log_level, None);
        let c = parse(
            r#"{"keys":[{"id":"k1","secret":"abc"}],"mode":"shadow","log_level":"warn",
                "dedup":{"window_seconds":60,"max_entries":16},
                "routes":[{"name":"a","path_prefix":"/a/"},
                          {"name":"b","path_prefix":"/b/","mode":"enforce","dedup":false},
                          {"name":"c","path_prefix":"/c/","dedup":{"window_seconds":2}}]}"#,
        )
        .unwrap();
        assert_eq!(c.log_level, Some(crate::ops::LogLevel::Warn));
        assert_eq!(c.routes[0].mode, crate::ops::Mode::Shadow);
        assert_eq!(c.routes[1].mode, crate::ops::Mode::Enforce);
        assert_eq!(c.routes[2].mode, crate::ops::Mode::Shadow);
        let a = c.routes[0].dedup.as_ref().unwrap();
        assert_eq!(
            (a.window_ms, a.max_entries, a.table.as_str()),
            (60_000, 16, "global")
        );
        assert_eq!(c.routes[1].dedup, None);
        let r = c.routes[2].dedup.as_ref().unwrap();
        assert_eq!(
            (r.window_ms, r.max_entries, r.table.as_str()),
            (2000, 10_000, "route.c")
        );
        for (json, field) in [
            (r#""mode":"audit","#, "mode"),
            (r#""log_level":"loud","#, "log_level"),
            (r#""dedup":false,"#, "dedup"),
            (r#""dedup":{"window_seconds":0},"#, "dedup.window_seconds"),
        ] {
            let text = format!(
                r#"{{"keys":[{{"id":"k1","secret":"abc"}}],{json}"routes":[{{"path_prefix":"/a/"}}]}}"#
            );
            assert_eq!(parse(&text).unwrap_err().field, field, "{json}");
        }
        let err = parse(
            r#"{"keys":[{"id":"k1","secret":"abc"}],"routes":[{"path_prefix":"/a/","mode":"x"}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.field, "routes[0].mode");
        let err = parse(
            r#"{"keys":[{"id":"k1","secret":"abc"}],"routes":[{"path_prefix":"/a/","dedup":{"max_entries":5}}]}"#,
        )
        .unwrap_err();
        assert_eq!(err.field, "routes[0].dedup.window_seconds");
    }

    #[test]
    fn secret_values_never_reach_an_error() {
        for (json, field) in [
            (
                r#"{"keys":[{"id":"k","secret":918273645}]}"#,
                "keys[0].secret",
            ),
            (
                r#"{"keys":[{"id":"k","secret":["918273645"]}]}"#,
                "keys[0].secret",
            ),
            (
                r#"{"keys":[{"id":"k","secret_env":918273645}]}"#,
                "keys[0].secret_env",
            ),
            (
                r#"{"keys":[{"id":"k","secret_env":"918273645xGl64jNW=n"}]}"#,
                "keys[0].secret_env",
            ),
            (
                r#"{"keys":[{"id":"k","secret_env":"lowercase918273645"}]}"#,
                "keys[0].secret_env",
            ),
            (
                r#"{"keys":[{"id_env":"918273645 x","secret":"s"}]}"#,
                "keys[0].id_env",
            ),
        ] {
            let err = parse(json).unwrap_err();
            assert_eq!(err.field, field, "{json}");
            assert!(!err.to_string().contains("918273645"), "{err}");
        }
        let err = parse(r#"{"keys":[{"id":"k","secret_env":"LF_NOT_SET_1"}]}"#).unwrap_err();
        assert!(
            err.to_string().contains("`LF_NOT_SET_1` is not set"),
            "{err}"
        );
    }

    #[test]
    fn deny_posture_catch_all() {
        let c = parse(r#"{"keys":[{"id":"k","secret":"s","schemes":["md5"]}]}"#).unwrap();
        assert_eq!(c.posture, Posture::Deny);
        let d = c.routes.last().unwrap();
        assert_eq!(
            (d.name.as_str(), d.scheme, d.allow.as_str()),
            ("default", RouteScheme::Md5, "POST")
        );
        let c = parse(
            r#"{"keys":[{"id":"a","secret":"s","schemes":["md5"]},{"id":"b","secret":"t","schemes":["cube"]}],
                "default_route":{"methods":["POST","PUT"]}}"#,
        )
        .unwrap();
        let d = c.routes.last().unwrap();
        assert_eq!(
            (d.scheme, d.allow.as_str()),
            (RouteScheme::Auto, "POST, PUT")
        );
        let c = parse(
            r#"{"keys":[{"id":"a","secret":"s","schemes":["md5"]},{"id":"b","secret":"t","schemes":["cube"]}],
                "default_route":{"keys":["b"]}}"#,
        )
        .unwrap();
        assert_eq!(c.routes.last().unwrap().scheme, RouteScheme::Cube);
        let c = parse(MINIMAL_ROUTES).unwrap();
        assert_eq!((c.posture, c.routes.len()), (Posture::RouteList, 1));
    }

    const MINIMAL_ROUTES: &str = r#"{"keys":[{"id":"k1","secret":"abc"}],"posture":"route_list","routes":[{"path_prefix":"/lf/"}]}"#;

    #[test]
    fn errors_name_the_variable_not_the_value() {
        let err =
            parse(r#"{"keys":[{"id":"k","secret_env":"NOPE"}],"routes":[{"path_prefix":"/a"}]}"#)
                .unwrap_err();
        assert!(err.to_string().contains("`NOPE` is not set"), "{err}");
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let c = Config::from_json(
            br#"{"keys":[{"id":"k1","secret":"topsecret-inline"},{"id":"k2","secret_env":"LF_SECRET"}],
                 "routes":[{"path_prefix":"/a"}]}"#,
            env,
        )
        .unwrap();
        let dbg = format!("{c:?} {:#?}", c);
        assert!(!dbg.contains("topsecret-inline"), "{dbg}");
        assert!(!dbg.contains("s3cr3t"), "{dbg}");
        assert!(dbg.contains("redacted"));
        assert!(dbg.contains("k1"));
    }
}
