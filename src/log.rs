//! What the filter logs: its own log level (`log_level`) and the one rejection log line. Every
//! field of the line is public, bounded data (never a secret, a signature, a digest or body text
//! other than the sanitised partner code).

use crate::verdict::{sanitize, Mode};

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

impl LogLevel {
    /// The level a `log_level` value names (`warning` is `warn`).
    pub fn from_name(name: &str) -> Option<LogLevel> {
        Some(match name {
            "trace" => LogLevel::Trace,
            "debug" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "warn" | "warning" => LogLevel::Warn,
            "error" => LogLevel::Error,
            "critical" => LogLevel::Critical,
            _ => return None,
        })
    }
}

/// Longest partner code a log line shows (after [`sanitize`]).
pub const MAX_PARTNER_CHARS: usize = 64;

/// The fields of one rejection log line.
#[derive(Debug, Clone, Copy)]
pub struct RejectionLog<'a> {
    pub request_id: &'a str,
    pub route: &'a str,
    pub scheme: &'a str,
    /// Unverified text from the body: sanitised here.
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
        let partner = self.partner.map_or_else(
            || "-".to_string(),
            |p| sanitize(p.chars(), MAX_PARTNER_CHARS),
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels() {
        assert_eq!(LogLevel::from_name("warn"), Some(LogLevel::Warn));
        assert_eq!(LogLevel::from_name("warning"), Some(LogLevel::Warn));
        assert_eq!(LogLevel::from_name("debug"), Some(LogLevel::Debug));
        assert_eq!(LogLevel::from_name("loud"), None);
        assert_eq!(LogLevel::default(), LogLevel::Trace);
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
        let long = "é".repeat(100);
        let line = RejectionLog {
            partner: Some(&long),
            ..RejectionLog {
                request_id: "r",
                route: "r",
                scheme: "md5",
                partner: None,
                category: "c",
                status: 400,
                mode: Mode::Enforce,
                detail: "d",
            }
        }
        .line();
        assert!(
            line.contains(&format!("partner={} ", "_".repeat(64))),
            "{line}"
        );
    }
}
