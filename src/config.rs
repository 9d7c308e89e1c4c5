//! Plugin configuration: the JSON given to the filter (Envoy `configuration`, Istio
//! `pluginConfig`), parsed and validated ONCE at configure time into a compiled [`Config`].
//!
//! Every error names the field path (`routes[0].path_prefix`, `keys[1].secret_env`) and never a
//! secret value. See the README's "Configuration reference" for the schema.

use std::fmt;

use serde::Deserialize;

/// Default and upper bound of `hold_timeout_ms` (0 turns the hold watchdog off).
pub const DEFAULT_HOLD_TIMEOUT_MS: u64 = 5_000;
pub const MAX_HOLD_TIMEOUT_MS: u64 = 600_000;

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
    routes: Vec<RawRoute>,
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

/// Canonicalisation options of the legacy scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Md5Options {
    pub empty_values: EmptyValues,
    pub nested_values: NestedValues,
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

/// How a route matches the request path (the `:path` without its query string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    Prefix(String),
}

impl PathMatch {
    fn matches(&self, path: &[u8]) -> bool {
        match self {
            // A trailing slash is tolerated: many backends serve `/hook/` as `/hook`.
            PathMatch::Exact(p) => {
                path == p.as_bytes() || path.strip_suffix(b"/") == Some(p.as_bytes())
            }
            PathMatch::Prefix(p) => path.starts_with(p.as_bytes()),
        }
    }
}

/// A protected route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub name: String,
    pub path: PathMatch,
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
    pub routes: Vec<Route>,
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
            ConfigError::new(field, e.into_inner().to_string())
        })?;
        compile(raw, &env)
    }

    /// The protected route for a request path (query string ignored), first match wins.
    /// See [`Config::route_index`] for how ambiguous paths are matched.
    pub fn route_for(&self, path: &[u8]) -> Option<&Route> {
        self.route_index(path).and_then(|i| self.routes.get(i))
    }

    /// Index of the protected route for a request path, first match wins. A path is matched
    /// as sent AND in its normalised form (dot segments removed, repeated slashes merged,
    /// `%2F`, `%5C` and `\` read as `/`, percent-encoded unreserved characters decoded), so
    /// that `/x/../linksfield/a` or `/%6Cinksfield/a` cannot slip past a route that a backend
    /// which normalises paths would serve. Envoy's own `normalize_path`/`merge_slashes` are
    /// recommended as well (the shipped configs set them).
    pub fn route_index(&self, path: &[u8]) -> Option<usize> {
        let raw = strip_query(path);
        let normalized = normalize_path(raw);
        self.routes.iter().position(|r| {
            r.path.matches(raw) || normalized.as_deref().is_some_and(|n| r.path.matches(n))
        })
    }
}

/// The normalised form of a path, or `None` when it is already normal (the common case: no
/// allocation). See [`Config::route_index`].
pub fn normalize_path(path: &[u8]) -> Option<Vec<u8>> {
    let suspicious = path.iter().any(|&b| b == b'%' || b == b'\\')
        || path.windows(2).any(|w| w == b"//" || w == b"/.");
    if !suspicious {
        return None;
    }
    // 1. Decode escapes of unreserved characters and of separators; keep other escapes.
    let mut decoded = Vec::with_capacity(path.len());
    let mut i = 0;
    while let Some(&b) = path.get(i) {
        let hex = |j: usize| path.get(j).and_then(|c| (*c as char).to_digit(16));
        match (b, hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                let c = u8::try_from(h * 16 + l).unwrap_or(0);
                if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                    decoded.push(c);
                } else if c == b'/' || c == b'\\' {
                    decoded.push(b'/');
                } else {
                    decoded.extend_from_slice(path.get(i..i + 3).unwrap_or_default());
                }
                i += 3;
            }
            (b'\\', ..) => {
                decoded.push(b'/');
                i += 1;
            }
            _ => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    // 2. Merge slashes and remove dot segments.
    let mut segments: Vec<&[u8]> = Vec::new();
    for seg in decoded.split(|&b| b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            _ => segments.push(seg),
        }
    }
    let mut out = Vec::with_capacity(decoded.len());
    for seg in &segments {
        out.push(b'/');
        out.extend_from_slice(seg);
    }
    let trailing = decoded.ends_with(b"/") || decoded.ends_with(b"/.") || decoded.ends_with(b"/..");
    if out.is_empty() || trailing {
        out.push(b'/');
    }
    Some(out)
}

/// The path without `?query` or `#fragment`.
pub fn strip_query(path: &[u8]) -> &[u8] {
    match path.iter().position(|&b| b == b'?' || b == b'#') {
        Some(i) => path.get(..i).unwrap_or(path),
        None => path,
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn compile(raw: RawConfig, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let mut keys: Vec<Key> = Vec::with_capacity(raw.keys.len());
    for (i, k) in raw.keys.into_iter().enumerate() {
        let at = |f: &str| format!("keys[{i}].{f}");
        let (id, id_field) = match (k.id, k.id_env) {
            (Some(id), None) => (id, at("id")),
            (None, Some(var)) => match env(&var) {
                Some(id) if !id.is_empty() => (id, at("id_env")),
                _ => {
                    return Err(ConfigError::new(
                        at("id_env"),
                        format!("environment variable `{var}` is not set or empty"),
                    ))
                }
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
        if keys.iter().any(|other| other.id == id) {
            return Err(ConfigError::new(
                id_field,
                format!("duplicate key id `{id}`"),
            ));
        }
        let (mut md5, mut cube) = (k.schemes.is_none(), k.schemes.is_none());
        if let Some(schemes) = &k.schemes {
            if schemes.is_empty() {
                return Err(ConfigError::new(
                    at("schemes"),
                    "must list `md5` and/or `cube` (or be left out)",
                ));
            }
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
        }
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
            (Some(s), None) => {
                if s.is_empty() {
                    return Err(ConfigError::new(at("secret"), "must not be empty"));
                }
                s
            }
            (None, Some(var)) => {
                if var.is_empty() {
                    return Err(ConfigError::new(
                        at("secret_env"),
                        "must name an environment variable",
                    ));
                }
                match env(&var) {
                    Some(v) if !v.is_empty() => v,
                    Some(_) => {
                        return Err(ConfigError::new(
                            at("secret_env"),
                            format!("environment variable `{var}` is empty"),
                        ))
                    }
                    None => {
                        return Err(ConfigError::new(
                            at("secret_env"),
                            format!(
                                "environment variable `{var}` is not set (Envoy: list it in \
                                 vm_config.environment_variables; Istio: vmConfig.env)"
                            ),
                        ))
                    }
                }
            }
        };
        if let Some(partners) = &k.partners {
            if partners.is_empty() {
                return Err(ConfigError::new(
                    at("partners"),
                    "must list at least one partner (or be left out)",
                ));
            }
            for (j, p) in partners.iter().enumerate() {
                if p.is_empty() {
                    return Err(ConfigError::new(
                        format!("keys[{i}].partners[{j}]"),
                        "must not be empty",
                    ));
                }
            }
        }
        keys.push(Key {
            id,
            secret: Secret::new(secret.into_bytes()),
            partners: k.partners,
            md5,
            cube,
        });
    }

    let global_mode = crate::ops::compile_mode(raw.mode.as_deref(), Default::default(), "mode")?;
    let global_dedup = match &raw.dedup {
        None => None,
        Some(v) => crate::ops::compile_dedup(v, "dedup", "global".to_string(), false)?,
    };
    let log_level = match raw.log_level.as_deref() {
        None => None,
        Some(level) => Some(crate::ops::compile_log_level(Some(level))?),
    };

    if raw.routes.is_empty() {
        return Err(ConfigError::new(
            "routes",
            "at least one protected route is required",
        ));
    }
    let mut routes: Vec<Route> = Vec::with_capacity(raw.routes.len());
    for (i, r) in raw.routes.into_iter().enumerate() {
        let at = |f: &str| format!("routes[{i}].{f}");
        let path = match (r.path_exact, r.path_prefix) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(ConfigError::new(
                    format!("routes[{i}]"),
                    "give exactly one of `path_exact` and `path_prefix`",
                ))
            }
            (Some(p), None) => {
                check_path(&p).map_err(|m| ConfigError::new(at("path_exact"), m))?;
                PathMatch::Exact(p)
            }
            (None, Some(p)) => {
                check_path(&p).map_err(|m| ConfigError::new(at("path_prefix"), m))?;
                PathMatch::Prefix(p)
            }
        };
        let name = match r.name {
            Some(n) if is_token(&n) && n.len() <= 64 => n,
            Some(_) => {
                return Err(ConfigError::new(
                    at("name"),
                    "must be 1-64 characters from [A-Za-z0-9._-]",
                ))
            }
            None => format!("route{i}"),
        };
        if routes.iter().any(|other| other.name == name) {
            return Err(ConfigError::new(
                at("name"),
                format!("duplicate route name `{name}`"),
            ));
        }
        let methods = r.methods.unwrap_or_else(|| vec!["POST".to_string()]);
        if methods.is_empty() {
            return Err(ConfigError::new(
                at("methods"),
                "must list at least one method",
            ));
        }
        for (j, m) in methods.iter().enumerate() {
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(ConfigError::new(
                    format!("routes[{i}].methods[{j}]"),
                    "must be an upper-case HTTP method such as POST",
                ));
            }
        }
        let scheme = match r.scheme.as_deref() {
            None | Some("md5") => RouteScheme::Md5,
            Some("cube") => RouteScheme::Cube,
            Some("auto") => RouteScheme::Auto,
            Some(other) => {
                return Err(ConfigError::new(
                    at("scheme"),
                    format!("unknown scheme `{other}` (expected `md5`, `cube` or `auto`)"),
                ))
            }
        };
        let route_keys: Vec<usize> = match r.keys {
            None => (0..keys.len()).collect(),
            Some(ids) => {
                if ids.is_empty() {
                    return Err(ConfigError::new(
                        at("keys"),
                        "must list at least one key id (or be left out)",
                    ));
                }
                let mut out = Vec::with_capacity(ids.len());
                for (j, id) in ids.iter().enumerate() {
                    match keys.iter().position(|k| &k.id == id) {
                        Some(x) if !out.contains(&x) => out.push(x),
                        Some(_) => {
                            return Err(ConfigError::new(
                                format!("routes[{i}].keys[{j}]"),
                                format!("key `{id}` listed twice"),
                            ))
                        }
                        None => {
                            return Err(ConfigError::new(
                                format!("routes[{i}].keys[{j}]"),
                                format!("no key with id `{id}` in `keys`"),
                            ))
                        }
                    }
                }
                out
            }
        };
        let usable = |pred: fn(&Key) -> bool| -> Vec<usize> {
            route_keys
                .iter()
                .copied()
                .filter(|&x| keys.get(x).is_some_and(pred))
                .collect()
        };
        let (md5_keys, cube_keys) = (usable(|k| k.md5), usable(|k| k.cube));
        let needs = match scheme {
            RouteScheme::Md5 => [("md5", md5_keys.is_empty())].to_vec(),
            RouteScheme::Cube => [("cube", cube_keys.is_empty())].to_vec(),
            RouteScheme::Auto => {
                [("md5", md5_keys.is_empty()), ("cube", cube_keys.is_empty())].to_vec()
            }
        };
        if let Some((missing, _)) = needs.into_iter().find(|(_, empty)| *empty) {
            let field = if keys.is_empty() {
                "keys".to_string()
            } else {
                format!("routes[{i}]")
            };
            return Err(ConfigError::new(
                field,
                format!("route `{name}` verifies `{missing}` signatures but none of its keys can (see keys[].schemes, routes[].keys)"),
            ));
        }
        let partner_bound = route_keys
            .iter()
            .any(|&x| keys.get(x).is_some_and(|k| k.partners.is_some()));
        let partner_field = r
            .partner_field
            .unwrap_or_else(|| "partner_code".to_string());
        if partner_field.is_empty() {
            return Err(ConfigError::new(at("partner_field"), "must not be empty"));
        }
        let freshness = match r.freshness {
            None => None,
            Some(f) => Some(compile_freshness(f, &format!("routes[{i}].freshness"))?),
        };
        let mode = crate::ops::compile_mode(r.mode.as_deref(), global_mode, &at("mode"))?;
        let dedup = match &r.dedup {
            None => global_dedup.clone(),
            Some(v) => crate::ops::compile_dedup(v, &at("dedup"), format!("route.{name}"), true)?,
        };
        let allow = methods.join(", ");
        routes.push(Route {
            name,
            path,
            methods,
            allow,
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
        });
    }

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

    Ok(Config {
        routes,
        keys,
        max_body_bytes,
        hold_headers: raw.hold_headers.unwrap_or(true),
        hold_timeout_ms,
        md5: Md5Options {
            empty_values: raw.md5.empty_values.unwrap_or_default(),
            nested_values: raw.md5.nested_values.unwrap_or_default(),
        },
        log_level,
    })
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
            r#"{"keys":[{"id":"k","secret":"s"}],"routes":[
                {"name":"exact","path_exact":"/lf/sms"},{"name":"prefix","path_prefix":"/lf/"}]}"#,
        )
        .unwrap();
        assert_eq!(c.route_for(b"/lf/sms?x=1").unwrap().name, "exact");
        assert_eq!(c.route_for(b"/lf/sms/2").unwrap().name, "prefix");
        assert_eq!(c.route_for(b"/lf/").unwrap().name, "prefix");
        assert!(c.route_for(b"/lf").is_none());
        assert_eq!(c.route_for(b"/lf/sms/").unwrap().name, "exact");
        assert!(c.route_for(b"/other").is_none());
        assert!(c.route_for(b"").is_none());
    }

    #[test]
    fn ambiguous_paths_are_protected() {
        let c = parse(r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"name":"lf","path_prefix":"/linksfield/"},{"name":"x","path_exact":"/hook"}]}"#).unwrap();
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
        assert_eq!(normalize_path(b"/plain/path"), None);
        assert_eq!(
            normalize_path(b"/a/./b/../c//d/").as_deref(),
            Some(&b"/a/c/d/"[..])
        );
        assert_eq!(normalize_path(b"/..").as_deref(), Some(&b"/"[..]));
        assert_eq!(normalize_path(b"/%41%2x%").as_deref(), Some(&b"/A%2x%"[..]));
    }

    /// Every config error names its field.
    #[test]
    fn errors_name_the_field() {
        let cases: &[(&str, &str)] = &[
            ("not json", ""),
            (r#"{"routes":[]}"#, "routes"),
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
        let c = parse(
            r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a"}],
                "hold_headers":false,"hold_timeout_ms":0}"#,
        )
        .unwrap();
        assert!(!c.hold_headers);
        assert_eq!(c.hold_timeout_ms, 0);
        for (json, field) in [
            (r#""hold_headers":"no""#, "hold_headers"),
            (r#""hold_headers":0"#, "hold_headers"),
            (r#""hold_timeout_ms":600001"#, "hold_timeout_ms"),
            (r#""hold_timeout_ms":-5"#, "hold_timeout_ms"),
            (r#""hold_timeout_ms":1.5"#, "hold_timeout_ms"),
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
