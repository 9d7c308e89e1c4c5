//! Operational settings (issue 6): enforcement mode (`enforce` / `shadow`), edge de-duplication
//! and the filter's log level. Plain Rust, validated once at configure time by
//! [`crate::config::Config::from_json`]; the filter only reads the compiled values.

use crate::config::ConfigError;

/// What the filter does with a request that fails verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Answer locally with the documented status; nothing reaches the backend (default).
    #[default]
    Enforce,
    /// Verify, count and log exactly as in enforce mode, but forward every request, marked
    /// `x-lf-verified: failed:<category>` when it failed.
    Shadow,
}

impl Mode {
    pub const fn name(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Shadow => "shadow",
        }
    }
}

/// Parse a `mode` field (`field` names it in errors).
pub fn compile_mode(raw: Option<&str>, default: Mode, field: &str) -> Result<Mode, ConfigError> {
    match raw {
        None => Ok(default),
        Some("enforce") => Ok(Mode::Enforce),
        Some("shadow") => Ok(Mode::Shadow),
        Some(other) => Err(ConfigError::new(
            field,
            format!("unknown mode `{other}` (expected `enforce` or `shadow`)"),
        )),
    }
}

/// Bounds of the de-duplication settings.
pub const MAX_DEDUP_WINDOW_SECONDS: u64 = 7 * 24 * 3600;
pub const MAX_DEDUP_ENTRIES: u64 = 1_000_000;
pub const DEFAULT_DEDUP_ENTRIES: u64 = 10_000;

/// Edge de-duplication of verified deliveries that the backend already answered 2xx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dedup {
    /// How long a recorded delivery is answered locally, in milliseconds.
    pub window_ms: u64,
    /// Number of slots of the table (the memory bound).
    pub max_entries: u32,
    /// Namespace of the table in proxy-wasm shared data: `global` for the top-level setting,
    /// `route.<name>` for a route's own setting.
    pub table: String,
    /// The fleet-wide store (`store`), if any: see [`crate::dedup::etcd`].
    pub store: Option<crate::dedup::etcd::EtcdStore>,
}

/// Parse a `dedup` value: an object `{"window_seconds": N, "max_entries": M}`, or (routes only,
/// `allow_false`) `false` to turn an inherited setting off. `Ok(None)` means off.
pub fn compile_dedup(
    raw: &serde_json::Value,
    field: &str,
    table: String,
    allow_false: bool,
) -> Result<Option<Dedup>, ConfigError> {
    let obj = match raw {
        serde_json::Value::Bool(false) if allow_false => return Ok(None),
        serde_json::Value::Object(obj) => obj,
        _ => {
            let expected = if allow_false {
                "must be an object {\"window_seconds\": N, \"max_entries\": M} or false"
            } else {
                "must be an object {\"window_seconds\": N, \"max_entries\": M}"
            };
            return Err(ConfigError::new(field, expected));
        }
    };
    if let Some(unknown) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "window_seconds" | "max_entries" | "store"))
    {
        return Err(ConfigError::new(
            format!("{field}.{unknown}"),
            "unknown field (expected `window_seconds`, `max_entries`, `store`)",
        ));
    }
    let window = match obj.get("window_seconds").map(serde_json::Value::as_u64) {
        Some(Some(n)) if (1..=MAX_DEDUP_WINDOW_SECONDS).contains(&n) => n,
        Some(_) => {
            return Err(ConfigError::new(
                format!("{field}.window_seconds"),
                format!("must be an integer between 1 and {MAX_DEDUP_WINDOW_SECONDS}"),
            ))
        }
        None => {
            return Err(ConfigError::new(
                format!("{field}.window_seconds"),
                "is required",
            ))
        }
    };
    let entries = match obj.get("max_entries").map(serde_json::Value::as_u64) {
        None => DEFAULT_DEDUP_ENTRIES,
        Some(Some(n)) if (1..=MAX_DEDUP_ENTRIES).contains(&n) => n,
        Some(_) => {
            return Err(ConfigError::new(
                format!("{field}.max_entries"),
                format!("must be an integer between 1 and {MAX_DEDUP_ENTRIES}"),
            ))
        }
    };
    let store = obj
        .get("store")
        .map(|v| crate::dedup::etcd::compile(v, &format!("{field}.store"), window * 1000))
        .transpose()?;
    Ok(Some(Dedup {
        window_ms: window * 1000,
        max_entries: u32::try_from(entries).unwrap_or(u32::MAX),
        table,
        store,
    }))
}

/// The filter's own log level (`log_level`), applied with `proxy_wasm::set_log_level` at
/// configure time. Envoy's `wasm` component level still filters on top of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogLevel {
    /// Everything goes to Envoy, which filters by its `wasm` component level (default).
    #[default]
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Critical,
}

pub fn compile_log_level(raw: Option<&str>) -> Result<LogLevel, ConfigError> {
    Ok(match raw {
        None | Some("trace") => LogLevel::Trace,
        Some("debug") => LogLevel::Debug,
        Some("info") => LogLevel::Info,
        Some("warn") | Some("warning") => LogLevel::Warn,
        Some("error") => LogLevel::Error,
        Some("critical") => LogLevel::Critical,
        Some(other) => {
            return Err(ConfigError::new(
                "log_level",
                format!(
                    "unknown level `{other}` (expected trace, debug, info, warn, error or critical)"
                ),
            ))
        }
    })
}

/// Keep untrusted text (e.g. a partner code taken from a body that failed verification)
/// printable and bounded before it goes into a log line: at most 64 characters from
/// `[A-Za-z0-9._:-]`, anything else replaced by `_`.
pub fn sanitize_log_token(raw: &str) -> String {
    raw.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The fields of one rejection log line. Every field is public, bounded data: never a secret,
/// a signature, a digest or request body text other than the (sanitized) partner code.
#[derive(Debug, Clone, Copy)]
pub struct RejectionLog<'a> {
    pub request_id: &'a str,
    pub route: &'a str,
    pub scheme: &'a str,
    pub partner: Option<&'a str>,
    pub category: &'static str,
    pub status: u32,
    pub mode: Mode,
    pub detail: &'static str,
}

impl RejectionLog<'_> {
    /// `lf-webhook-guard: rejected request_id=.. route=.. scheme=.. partner=.. reason=..
    /// status=.. mode=enforce action=local_reply detail=".."` (one line; shadow mode says
    /// `mode=shadow action=forwarded`).
    pub fn line(&self) -> String {
        let partner = self
            .partner
            .map_or_else(|| "-".to_string(), sanitize_log_token);
        let action = match self.mode {
            Mode::Enforce => "local_reply",
            Mode::Shadow => "forwarded",
        };
        format!(
            "lf-webhook-guard: rejected request_id={} route={} scheme={} partner={} reason={} \
             status={} mode={} action={} detail=\"{}\"",
            if self.request_id.is_empty() {
                "-"
            } else {
                self.request_id
            },
            self.route,
            self.scheme,
            partner,
            self.category,
            self.status,
            self.mode.name(),
            action,
            self.detail
        )
    }
}

/// Value of `x-lf-verified` for a request forwarded in shadow mode although it failed.
pub fn shadow_header_value(category: &str) -> String {
    format!("failed:{category}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn modes() {
        assert_eq!(
            compile_mode(None, Mode::Enforce, "mode").unwrap(),
            Mode::Enforce
        );
        assert_eq!(
            compile_mode(None, Mode::Shadow, "mode").unwrap(),
            Mode::Shadow
        );
        assert_eq!(
            compile_mode(Some("shadow"), Mode::Enforce, "m").unwrap(),
            Mode::Shadow
        );
        let err = compile_mode(Some("audit"), Mode::Enforce, "routes[1].mode").unwrap_err();
        assert_eq!(err.field, "routes[1].mode");
        assert!(err.message.contains("audit"));
    }

    #[test]
    fn dedup_bounds() {
        let d = compile_dedup(
            &json!({"window_seconds": 2}),
            "dedup",
            "global".into(),
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(d.window_ms, 2000);
        assert_eq!(u64::from(d.max_entries), DEFAULT_DEDUP_ENTRIES);
        assert_eq!(d.table, "global");
        let d = compile_dedup(
            &json!({"window_seconds": 3600, "max_entries": 16}),
            "dedup",
            "t".into(),
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(d.max_entries, 16);
        assert_eq!(
            compile_dedup(&json!(false), "routes[0].dedup", "t".into(), true).unwrap(),
            None
        );
        for (bad, field) in [
            (json!(false), "dedup"),
            (json!(true), "dedup"),
            (json!({}), "dedup.window_seconds"),
            (json!({"window_seconds": 0}), "dedup.window_seconds"),
            (json!({"window_seconds": 604801}), "dedup.window_seconds"),
            (json!({"window_seconds": 1.5}), "dedup.window_seconds"),
            (json!({"window_seconds": "60"}), "dedup.window_seconds"),
            (
                json!({"window_seconds": 60, "max_entries": 0}),
                "dedup.max_entries",
            ),
            (
                json!({"window_seconds": 60, "max_entries": 1000001}),
                "dedup.max_entries",
            ),
            (
                json!({"window_seconds": 60, "max_entries": -1}),
                "dedup.max_entries",
            ),
            (json!({"window_seconds": 60, "slots": 5}), "dedup.slots"),
        ] {
            let err = compile_dedup(&bad, "dedup", "t".into(), false).unwrap_err();
            assert_eq!(err.field, field, "{bad}");
        }
    }

    #[test]
    fn log_levels() {
        assert_eq!(compile_log_level(None).unwrap(), LogLevel::Trace);
        assert_eq!(compile_log_level(Some("warn")).unwrap(), LogLevel::Warn);
        assert_eq!(compile_log_level(Some("debug")).unwrap(), LogLevel::Debug);
        assert_eq!(
            compile_log_level(Some("loud")).unwrap_err().field,
            "log_level"
        );
    }

    #[test]
    fn rejection_line_has_fields_and_sanitizes_partner() {
        let line = RejectionLog {
            request_id: "rid-1",
            route: "linksfield",
            scheme: "md5",
            partner: Some("P1 \"x\"\nwarn fake"),
            category: "invalid_signature",
            status: 401,
            mode: Mode::Shadow,
            detail: "signature mismatch",
        }
        .line();
        assert_eq!(
            line,
            "lf-webhook-guard: rejected request_id=rid-1 route=linksfield scheme=md5 \
             partner=P1__x__warn_fake reason=invalid_signature status=401 mode=shadow \
             action=forwarded detail=\"signature mismatch\""
        );
        let line = RejectionLog {
            request_id: "",
            route: "-",
            scheme: "-",
            partner: None,
            category: "internal_error",
            status: 500,
            mode: Mode::Enforce,
            detail: "x",
        }
        .line();
        assert!(line.contains("request_id=- route=- scheme=- partner=- "));
        assert!(line.contains("mode=enforce action=local_reply"));
        assert_eq!(sanitize_log_token(&"é".repeat(100)).len(), 64);
    }

    #[test]
    fn shadow_header() {
        assert_eq!(
            shadow_header_value("invalid_signature"),
            "failed:invalid_signature"
        );
    }
}
