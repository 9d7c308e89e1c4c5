//! Schema -> compiled [`Config`], once, at configure time: every value checked, every default
//! applied, every lookup the request path needs precomputed. One function per section; every
//! error names its field (`routes[0].path_prefix`, `keys[1].secret_env`), never a secret value.

use super::schema::{
    Integer, Named, RawConfig, RawDedup, RawDedupSetting, RawDefaultRoute, RawExempt, RawFreshness,
    RawKey, RawMd5Options, RawRoute,
};
use super::{
    Config, ConfigError, Key, Route, RouteScheme, Secret, DEFAULT_HOLD_DEADLINE_MS,
    DEFAULT_HOLD_TIMEOUT_MS, DEFAULT_MAX_BODY_BYTES, DEFAULT_METHOD, DEFAULT_PARTNER_FIELD,
    MAX_HOLD_DEADLINE_MS, MAX_HOLD_TIMEOUT_MS, MAX_MAX_BODY_BYTES,
};
use crate::body::Md5Options;
use crate::dedup::{
    Dedup, DEFAULT_DEDUP_ENTRIES, GLOBAL_TABLE, MAX_DEDUP_ENTRIES, MAX_DEDUP_WINDOW_SECONDS,
};
use crate::freshness::{
    parse_utc_offset, Freshness, DEFAULT_BODY_FIELD, DEFAULT_FUTURE_SKEW_SECONDS,
    MAX_WINDOW_SECONDS,
};
use crate::route::{
    check_path, is_canonical, Exemption, PathMatch, PathPattern, Posture, DEFAULT_ROUTE_NAME,
};
use crate::verdict::{Mode, Scheme};

type Env<'e> = &'e dyn Fn(&str) -> Option<String>;

pub(super) fn compile(raw: RawConfig, env: Env<'_>) -> Result<Config, ConfigError> {
    let keys = compile_keys(raw.keys, env)?;
    let ctx = RouteContext {
        keys: &keys,
        mode: choice(raw.mode, Mode::default(), "mode")?,
        dedup: match raw.dedup {
            None => None,
            Some(d) => compile_dedup(d, "dedup", GLOBAL_TABLE.to_string(), false)?,
        },
    };
    let log_level = match raw.log_level {
        None => None,
        Some(level) => Some(level.choice("log_level")?),
    };
    let posture = raw.posture.unwrap_or_default();
    let routes = ctx.routes(posture, raw.routes, raw.default_route)?;
    Ok(Config {
        routes,
        posture,
        exempt: compile_exempt(raw.exempt)?,
        max_body_bytes: compile_max_body_bytes(raw.max_body_bytes)?,
        hold_headers: raw.hold_headers.unwrap_or(true),
        hold_timeout_ms: compile_hold_timeout(raw.hold_timeout_ms)?,
        hold_deadline_ms: compile_hold_deadline(raw.hold_deadline_ms)?,
        md5: compile_md5(raw.md5),
        log_level,
        keys,
    })
}

/// `field` as given, or `default` when left out.
fn choice<T: super::schema::Choice>(
    raw: Option<Named<T>>,
    default: T,
    field: &str,
) -> Result<T, ConfigError> {
    raw.map_or(Ok(default), |n| n.choice(field))
}

fn compile_md5(raw: RawMd5Options) -> Md5Options {
    Md5Options {
        empty_values: raw.empty_values.unwrap_or_default(),
        nested_values: raw.nested_values.unwrap_or_default(),
        value_types: raw.value_types.unwrap_or_default(),
    }
}

fn compile_max_body_bytes(raw: Option<u64>) -> Result<usize, ConfigError> {
    match raw {
        None => Ok(DEFAULT_MAX_BODY_BYTES),
        Some(n) if n == 0 || n > MAX_MAX_BODY_BYTES as u64 => Err(ConfigError::new(
            "max_body_bytes",
            format!("must be between 1 and {MAX_MAX_BODY_BYTES}"),
        )),
        Some(n) => Ok(usize::try_from(n).unwrap_or(DEFAULT_MAX_BODY_BYTES)),
    }
}

fn compile_hold_timeout(raw: Option<u64>) -> Result<u64, ConfigError> {
    match raw {
        None => Ok(DEFAULT_HOLD_TIMEOUT_MS),
        Some(n) if n > MAX_HOLD_TIMEOUT_MS => Err(ConfigError::new(
            "hold_timeout_ms",
            format!("must be between 0 (no watchdog) and {MAX_HOLD_TIMEOUT_MS}"),
        )),
        Some(n) => Ok(n),
    }
}

fn compile_hold_deadline(raw: Option<u64>) -> Result<u64, ConfigError> {
    match raw {
        None => Ok(DEFAULT_HOLD_DEADLINE_MS),
        Some(n) if n > MAX_HOLD_DEADLINE_MS => Err(ConfigError::new(
            "hold_deadline_ms",
            format!("must be between 0 (no total deadline) and {MAX_HOLD_DEADLINE_MS}"),
        )),
        Some(n) => Ok(n),
    }
}

// ------------------------------------------------------------------------------------- keys ---

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

fn compile_keys(raw: Vec<RawKey>, env: Env<'_>) -> Result<Vec<Key>, ConfigError> {
    let mut keys: Vec<Key> = Vec::with_capacity(raw.len());
    for (i, k) in raw.into_iter().enumerate() {
        let key = compile_key(i, k, &keys, env)?;
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(ConfigError::new("keys", "at least one key is required"));
    }
    Ok(keys)
}

fn compile_key(i: usize, k: RawKey, earlier: &[Key], env: Env<'_>) -> Result<Key, ConfigError> {
    let id = key_id(i, k.id, k.id_env, earlier, env)?;
    let (md5, cube) = compile_key_schemes(i, k.schemes)?;
    let secret = key_secret(i, k.secret, k.secret_env, env)?;
    if let Some(partners) = &k.partners {
        if partners.is_empty() {
            return Err(ConfigError::new(
                format!("keys[{i}].partners"),
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

/// `keys[i].id` or `keys[i].id_env`: a unique token.
fn key_id(
    i: usize,
    id: Option<String>,
    id_env: Option<String>,
    earlier: &[Key],
    env: Env<'_>,
) -> Result<String, ConfigError> {
    let at = |f: &str| format!("keys[{i}].{f}");
    let (id, id_field) = match (id, id_env) {
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
    Ok(id)
}

/// `keys[i].secret` or `keys[i].secret_env`: the secret text (never in an error).
fn key_secret(
    i: usize,
    secret: Option<String>,
    secret_env: Option<String>,
    env: Env<'_>,
) -> Result<String, ConfigError> {
    let at = |f: &str| format!("keys[{i}].{f}");
    match (secret, secret_env) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            format!("keys[{i}]"),
            "give exactly one of `secret` and `secret_env`, not both",
        )),
        (None, None) => Err(ConfigError::new(
            format!("keys[{i}]"),
            "give exactly one of `secret` and `secret_env`",
        )),
        (Some(s), None) if s.is_empty() => Err(ConfigError::new(at("secret"), "must not be empty")),
        (Some(s), None) => Ok(s),
        (None, Some(var)) if var.is_empty() => Err(ConfigError::new(
            at("secret_env"),
            "must name an environment variable",
        )),
        (None, Some(var)) => match env(&var) {
            Some(v) if !v.is_empty() => Ok(v),
            Some(_) => Err(env_error(at("secret_env"), &var, "is empty")),
            None => Err(env_error(at("secret_env"), &var, NOT_SET_HINT)),
        },
    }
}

/// `keys[i].schemes`: which schemes the key verifies (both when left out).
fn compile_key_schemes(
    i: usize,
    schemes: Option<Vec<Named<Scheme>>>,
) -> Result<(bool, bool), ConfigError> {
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
    for (j, scheme) in schemes.into_iter().enumerate() {
        match scheme.choice(&format!("keys[{i}].schemes[{j}]"))? {
            Scheme::Md5 => md5 = true,
            Scheme::Cube => cube = true,
        }
    }
    Ok((md5, cube))
}

// ----------------------------------------------------------------------------------- routes ---

/// What every route compiles against: the keys and the top-level defaults it inherits.
struct RouteContext<'k> {
    keys: &'k [Key],
    mode: Mode,
    dedup: Option<Dedup>,
}

impl RouteContext<'_> {
    /// The routes in match order; in the deny posture the catch-all `default` comes last.
    fn routes(
        &self,
        posture: Posture,
        raw: Vec<RawRoute>,
        default_route: Option<RawDefaultRoute>,
    ) -> Result<Vec<Route>, ConfigError> {
        if posture == Posture::RouteList && raw.is_empty() {
            return Err(ConfigError::new(
                "routes",
                "at least one protected route is required with posture `route_list`",
            ));
        }
        let mut routes: Vec<Route> = Vec::with_capacity(raw.len() + 1);
        for (i, r) in raw.into_iter().enumerate() {
            let route = self.route(&format!("routes[{i}]"), r, format!("route{i}"))?;
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
        match (posture, default_route) {
            (Posture::Deny, d) => routes.push(self.catch_all(d.unwrap_or_default())?),
            (Posture::RouteList, Some(_)) => {
                return Err(ConfigError::new(
                    "default_route",
                    "only with posture `deny` (route_list forwards unmatched paths)",
                ))
            }
            (Posture::RouteList, None) => {}
        }
        Ok(routes)
    }

    /// The deny posture's catch-all route `default`.
    fn catch_all(&self, d: RawDefaultRoute) -> Result<Route, ConfigError> {
        let scheme = match d.scheme {
            Some(s) => s,
            None => Named::Known(catch_all_scheme(self.keys, d.keys.as_deref())),
        };
        let r = RawRoute {
            name: Some(DEFAULT_ROUTE_NAME.to_string()),
            path_exact: None,
            path_prefix: Some("/".to_string()),
            methods: d.methods,
            scheme: Some(scheme),
            keys: d.keys,
            allow_unsigned: false,
            partner_field: None,
            freshness: None,
            mode: None,
            dedup: None,
            case_sensitive: false,
            allowed_queries: Vec::new(),
        };
        let mut route = self.route("default_route", r, String::new())?;
        route.pattern = PathPattern::new(PathMatch::Any, false);
        Ok(route)
    }

    /// Compile one route; `at` is its field path (`routes[2]`, `default_route`).
    fn route(&self, at: &str, r: RawRoute, default_name: String) -> Result<Route, ConfigError> {
        let field = |f: &str| format!("{at}.{f}");
        let path = route_path(at, r.path_exact, r.path_prefix)?;
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
        let scheme = choice(r.scheme, RouteScheme::Md5, &field("scheme"))?;
        let keys = self.route_keys(at, r.keys)?;
        let (md5_keys, cube_keys) = self.usable_keys(at, &name, scheme, &keys)?;
        let partner_bound = keys
            .iter()
            .any(|&x| self.keys.get(x).is_some_and(|k| k.partners.is_some()));
        let partner_field = r
            .partner_field
            .unwrap_or_else(|| DEFAULT_PARTNER_FIELD.to_string());
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
        let mode = choice(r.mode, self.mode, &field("mode"))?;
        let dedup = match r.dedup {
            None => self.dedup.clone(),
            Some(d) => compile_dedup(d, &field("dedup"), format!("route.{name}"), true)?,
        };
        Ok(Route {
            allowed_queries: compile_queries(at, r.allowed_queries)?,
            pattern: PathPattern::new(path, r.case_sensitive),
            allow: methods.join(", "),
            methods,
            scheme,
            keys,
            md5_keys,
            cube_keys,
            allow_unsigned: r.allow_unsigned,
            partner_field,
            partner_bound,
            freshness,
            mode,
            dedup,
            name,
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

    /// The route's keys usable for `x-lf-md5` and for `x-lf-signature`; the route's scheme
    /// needs at least one of each it verifies.
    fn usable_keys(
        &self,
        at: &str,
        name: &str,
        scheme: RouteScheme,
        keys: &[usize],
    ) -> Result<(Vec<usize>, Vec<usize>), ConfigError> {
        let usable = |pred: fn(&Key) -> bool| -> Vec<usize> {
            keys.iter()
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
            let f = if self.keys.is_empty() { "keys" } else { at };
            return Err(ConfigError::new(
                f,
                format!("route `{name}` verifies `{missing}` signatures but none of its keys can (see keys[].schemes, routes[].keys)"),
            ));
        }
        Ok((md5_keys, cube_keys))
    }
}

/// The catch-all's scheme when `default_route.scheme` is left out: every scheme its keys can
/// verify (`auto` when they can do both).
fn catch_all_scheme(keys: &[Key], ids: Option<&[String]>) -> RouteScheme {
    let chosen = keys.iter().filter(|k| match ids {
        None => true,
        Some(ids) => ids.contains(&k.id),
    });
    let (md5, cube) = chosen.fold((false, false), |(m, c), k| (m || k.md5, c || k.cube));
    match (md5, cube) {
        (false, true) => RouteScheme::Cube,
        (true, false) => RouteScheme::Md5,
        _ => RouteScheme::Auto,
    }
}

fn route_path(
    at: &str,
    exact: Option<String>,
    prefix: Option<String>,
) -> Result<PathMatch, ConfigError> {
    let field = |f: &str| format!("{at}.{f}");
    match (exact, prefix) {
        (Some(p), None) => {
            check_path(&p).map_err(|m| ConfigError::new(field("path_exact"), m))?;
            Ok(PathMatch::Exact(p))
        }
        (None, Some(p)) => {
            check_path(&p).map_err(|m| ConfigError::new(field("path_prefix"), m))?;
            Ok(PathMatch::Prefix(p))
        }
        _ => Err(ConfigError::new(
            at,
            "give exactly one of `path_exact` and `path_prefix`",
        )),
    }
}

fn compile_methods(at: &str, methods: Option<Vec<String>>) -> Result<Vec<String>, ConfigError> {
    let methods = methods.unwrap_or_else(|| vec![DEFAULT_METHOD.to_string()]);
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
                if !is_canonical(p.as_bytes()) {
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

// ------------------------------------------------------------------ freshness and de-dup ---

fn compile_freshness(f: RawFreshness, at: &str) -> Result<Freshness, ConfigError> {
    if f.max_age_seconds == 0 || f.max_age_seconds > MAX_WINDOW_SECONDS {
        return Err(ConfigError::new(
            format!("{at}.max_age_seconds"),
            format!("must be between 1 and {MAX_WINDOW_SECONDS}"),
        ));
    }
    let skew = f
        .max_future_skew_seconds
        .unwrap_or(DEFAULT_FUTURE_SKEW_SECONDS);
    if skew > MAX_WINDOW_SECONDS {
        return Err(ConfigError::new(
            format!("{at}.max_future_skew_seconds"),
            format!("must be at most {MAX_WINDOW_SECONDS}"),
        ));
    }
    let body_field = f
        .body_field
        .unwrap_or_else(|| DEFAULT_BODY_FIELD.to_string());
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

/// A `dedup` value at `field`: an object, or (routes only, `allow_false`) `false` to turn an
/// inherited setting off. `Ok(None)` means off.
fn compile_dedup(
    raw: RawDedupSetting,
    field: &str,
    table: String,
    allow_false: bool,
) -> Result<Option<Dedup>, ConfigError> {
    let d: RawDedup = match raw {
        RawDedupSetting::Off if allow_false => return Ok(None),
        RawDedupSetting::On(d) => d,
        RawDedupSetting::Off | RawDedupSetting::Invalid => {
            let expected = if allow_false {
                "must be an object {\"window_seconds\": N, \"max_entries\": M} or false"
            } else {
                "must be an object {\"window_seconds\": N, \"max_entries\": M}"
            };
            return Err(ConfigError::new(field, expected));
        }
    };
    let window = match d.window_seconds {
        Integer::Given(n) if (1..=MAX_DEDUP_WINDOW_SECONDS).contains(&n) => n,
        Integer::Missing => {
            return Err(ConfigError::new(
                format!("{field}.window_seconds"),
                "is required",
            ))
        }
        Integer::Given(_) | Integer::Invalid => {
            return Err(ConfigError::new(
                format!("{field}.window_seconds"),
                format!("must be an integer between 1 and {MAX_DEDUP_WINDOW_SECONDS}"),
            ))
        }
    };
    let entries = match d.max_entries {
        Integer::Missing => DEFAULT_DEDUP_ENTRIES,
        Integer::Given(n) if (1..=MAX_DEDUP_ENTRIES).contains(&n) => n,
        Integer::Given(_) | Integer::Invalid => {
            return Err(ConfigError::new(
                format!("{field}.max_entries"),
                format!("must be an integer between 1 and {MAX_DEDUP_ENTRIES}"),
            ))
        }
    };
    let store = d
        .store
        .map(|raw| crate::dedup::etcd::compile_raw(raw, &format!("{field}.store"), window * 1000))
        .transpose()?;
    Ok(Some(Dedup {
        window_ms: window * 1000,
        max_entries: u32::try_from(entries).unwrap_or(u32::MAX),
        table,
        store,
    }))
}
