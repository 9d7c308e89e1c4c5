//! `verify`: the verdict the filter would give for a captured request, computed by the core
//! (`Config::from_json`, `check_head`, `verify_body`).

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use lf_webhook_guard::config::Md5Options;
use lf_webhook_guard::route::Target;
use lf_webhook_guard::{Accepted, Config, HeadVerdict, Reason, Rejection};
use serde_json::json;

use crate::input::{
    md5_json, md5_options, read_input, Captured, CliError, RequestArgs, SecretArgs,
};

/// Exit status of `verify` for a request on no protected route.
pub const EXIT_NOT_PROTECTED: u8 = 3;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
pub enum VerifyScheme {
    /// Whichever signature header the request carries.
    Auto,
    Md5,
    Cube,
}

impl VerifyScheme {
    fn name(self) -> &'static str {
        match self {
            VerifyScheme::Auto => "auto",
            VerifyScheme::Md5 => "md5",
            VerifyScheme::Cube => "cube",
        }
    }
}

/// Where the keys come from: a plugin config, or one key on the command line.
#[derive(Args, Debug, Clone)]
pub struct KeyArgs {
    /// Plugin configuration (JSON, the filter's format); `secret_env`/`id_env` are read from
    /// this process's environment.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["secret", "secret_env", "key_id", "scheme", "skip_empty", "raw_nested", "any_value_types"])]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub secret: SecretArgs,
    /// Key id (cube: must equal the id before `/` in x-lf-signature); default `cli`.
    #[arg(long)]
    pub key_id: Option<String>,
    /// Scheme of the one-key configuration.
    #[arg(long, value_enum)]
    pub scheme: Option<VerifyScheme>,
    /// One-key configuration: `md5.empty_values: skip`.
    #[arg(long)]
    pub skip_empty: bool,
    /// One-key configuration: `md5.nested_values: raw`.
    #[arg(long)]
    pub raw_nested: bool,
    /// One-key configuration: `md5.value_types: any` (JSON numbers, booleans and null).
    #[arg(long)]
    pub any_value_types: bool,
}

/// A one-key plugin configuration (protecting every path), compiled by the core.
pub fn one_key_config(
    secret: &str,
    key_id: &str,
    scheme: &str,
    md5: &Md5Options,
) -> Result<Config, CliError> {
    let json = json!({
        "keys": [ { "id": key_id, "secret": secret } ],
        "routes": [ { "name": "cli", "path_prefix": "/", "scheme": scheme } ],
        "md5": md5_json(md5),
    });
    Config::from_json(json.to_string().as_bytes(), |_| None).map_err(|e| {
        CliError::new(e.to_string()).hint("key ids are 1-64 characters from [A-Za-z0-9._-]")
    })
}

impl KeyArgs {
    pub fn config(&self) -> Result<Config, CliError> {
        if let Some(path) = &self.config {
            let bytes = read_input(path)?;
            return Config::from_json(&bytes, |var| std::env::var(var).ok()).map_err(|e| {
                CliError::new(format!("{}: {e}", path.display())).hint(format!(
                    "`lf-webhook-guard check-config {}` lists every problem",
                    path.display()
                ))
            });
        }
        if !self.secret.given() {
            return Err(CliError::new("no key given")
                .hint("pass --config FILE, or --secret/--secret-env (with --key-id for cube)"));
        }
        let secret = self.secret.resolve()?;
        let opts = md5_options(self.skip_empty, self.raw_nested, self.any_value_types);
        let scheme = self.scheme.unwrap_or(VerifyScheme::Auto);
        one_key_config(
            &secret,
            self.key_id.as_deref().unwrap_or("cli"),
            scheme.name(),
            &opts,
        )
    }
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub request: RequestArgs,
    #[command(flatten)]
    pub keys: KeyArgs,
    /// "Now" in epoch milliseconds for freshness windows (default: the clock); use the send
    /// time to check an old capture.
    #[arg(long, value_name = "MS")]
    pub now: Option<u64>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// The filter's verdict for a request.
pub enum Verdict {
    Accepted {
        route: String,
        header: String,
    },
    Rejected {
        route: Option<String>,
        rejection: Rejection,
    },
    NotProtected {
        path: String,
    },
}

impl Verdict {
    pub fn exit_code(&self) -> u8 {
        match self {
            Verdict::Accepted { .. } => 0,
            Verdict::Rejected { rejection, .. } => rejection.reason.exit_code(),
            Verdict::NotProtected { .. } => EXIT_NOT_PROTECTED,
        }
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Run the request through the core exactly as the filter does.
pub fn decide(config: &Config, req: &Captured, now: u64) -> Verdict {
    let path = req.path.clone().unwrap_or_else(|| "/".into());
    let route = match config.classify(path.as_bytes()) {
        Target::Route(route) => route,
        Target::NonCanonical(route) => {
            return Verdict::Rejected {
                route: config.routes.get(route).map(|r| r.name.clone()),
                rejection: Rejection::new(
                    Reason::NonCanonicalPath,
                    "alias of a protected path, not its canonical spelling",
                ),
            }
        }
        Target::Exempt | Target::Unprotected => return Verdict::NotProtected { path },
    };
    let name = config.routes.get(route).map(|r| r.name.clone());
    let head = req.head();
    let result = lf_webhook_guard::verify::check_head(config, route, &head).and_then(|v| match v {
        HeadVerdict::ForwardUnsigned => Ok(Accepted::Unsigned.header_value()),
        HeadVerdict::NeedBody(pending) => {
            lf_webhook_guard::verify::verify_body(config, &pending, &req.body, now)
                .map(|a| a.header_value())
        }
    });
    match result {
        Ok(header) => Verdict::Accepted {
            route: name.unwrap_or_default(),
            header,
        },
        Err(rejection) => Verdict::Rejected {
            route: name,
            rejection,
        },
    }
}

fn hint(r: &Rejection) -> &'static str {
    match r.reason {
        Reason::InvalidSignature if r.detail == "signature mismatch" => {
            "`lf-webhook-guard diagnose` with the same request and key tries the signing variants a sender may use"
        }
        Reason::InvalidSignature if r.detail == "unknown key id" => {
            "the key id before `/` in x-lf-signature is not a key of this route (--key-id, keys[].id)"
        }
        Reason::InvalidSignature => "the signature header is malformed: `lf-webhook-guard diagnose` recognises other encodings",
        Reason::MissingSignature => "no x-lf-md5 / x-lf-signature header in the request (allow_unsigned: true accepts unsigned requests)",
        Reason::MalformedBody => "`lf-webhook-guard explain` shows how the filter reads the body",
        Reason::UnsupportedMediaType => "Content-Type must be application/json or application/x-www-form-urlencoded (charset utf-8 only)",
        Reason::MethodNotAllowed => "the route's `methods` do not include this method",
        Reason::BodyTooLarge => "raise max_body_bytes, or check Content-Length",
        Reason::StaleNotification => "pass --now with the time the notification was received",
        Reason::PartnerNotAllowed => "check keys[].partners and the body's partner field",
        Reason::InternalError => "the configuration does not cover this request",
        Reason::NonCanonicalPath => "send to the route's exact spelling (case, no `;`, `%`, `//`, dot segments or suffixes): `check-config` lists the routes",
        Reason::QueryNotAllowed => "queries are not signed: drop it, or list the exact query in the route's allowed_queries",
        Reason::UnsupportedEncoding => "send the body uncompressed (no Content-Encoding, or identity)",
        Reason::DedupStoreUnavailable => {
            "only the running filter answers this (the fleet de-dup store, docs/fleet.md)"
        }
        Reason::FilterMisconfigured | Reason::RequestTimeout => {
            "only the running filter answers this (hold watchdog): see `check-config` on the Envoy YAML"
        }
    }
}

pub fn run(args: VerifyArgs) -> Result<u8, CliError> {
    let config = args.keys.config()?;
    let req = args.request.load()?;
    let verdict = decide(&config, &req, args.now.unwrap_or_else(now_ms));
    let code = verdict.exit_code();
    if args.json {
        let mut v = match &verdict {
            Verdict::Accepted { route, header } => json!({
                "verdict": "accepted", "route": route, "x_lf_verified": header,
            }),
            Verdict::Rejected { route, rejection } => json!({
                "verdict": "rejected", "route": route,
                "status": rejection.reason.status(),
                "category": rejection.reason.category(),
                "detail": rejection.detail,
            }),
            Verdict::NotProtected { path } => json!({ "verdict": "not_protected", "path": path }),
        };
        if let Some(m) = v.as_object_mut() {
            m.insert("exit_code".into(), code.into());
            m.insert("notes".into(), req.notes.clone().into());
        }
        println!("{v}");
        return Ok(code);
    }
    for note in &req.notes {
        eprintln!("note: {note}");
    }
    match &verdict {
        Verdict::Accepted { route, header } => {
            println!("accepted (route {route}): forwarded with x-lf-verified: {header}")
        }
        Verdict::Rejected { route, rejection } => {
            println!(
                "rejected{}: {} {} ({})",
                route
                    .as_ref()
                    .map(|r| format!(" (route {r})"))
                    .unwrap_or_default(),
                rejection.reason.status(),
                rejection.reason.category(),
                rejection.detail
            );
            eprintln!("hint: {}", hint(rejection));
        }
        Verdict::NotProtected { path } => {
            println!("not protected: no route matches {path}; the filter forwards it unverified");
            eprintln!("hint: give the request path (--path) or check routes[].path_prefix");
        }
    }
    Ok(code)
}
