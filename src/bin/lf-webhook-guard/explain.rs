//! `explain`: the exact text the filter signs for a body, with the secret redacted, and every
//! canonicalisation decision that applied. The text comes from the core (`Params::parse`,
//! `md5_prefix`, `Json::parse`, `cube_json`); the decisions are descriptions only.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use lf_webhook_guard::body::{
    form_pairs_as_sent, json_members_as_sent, media_type, Json, MediaType, Params, Value,
};
use lf_webhook_guard::canonical::{cube_json, md5_prefix};
use lf_webhook_guard::config::{EmptyValues, Md5Options, NestedValues};
use lf_webhook_guard::scheme::cube;
use lf_webhook_guard::{
    Config, Rejection, CUBE_ALGO_HEADER, CUBE_SIGNATURE_HEADER, CUBE_TIMESTAMP_HEADER,
    CUBE_VERSION_HEADER,
};
use serde_json::json;

use crate::input::{read_input, BodyKind, Captured, CliError, RequestArgs};

/// Placeholder printed where the secret goes.
pub const SECRET_PLACEHOLDER: &str = "<secret>";

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
pub enum ExplainScheme {
    /// Cube if the request has x-lf-signature / x-lf-timestamp (or --timestamp is given), else md5.
    Auto,
    Md5,
    Cube,
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    #[command(flatten)]
    request: RequestArgs,
    #[arg(long, value_enum, default_value_t = ExplainScheme::Auto)]
    scheme: ExplainScheme,
    /// Body encoding; `auto`: the request's Content-Type, else JSON when the body starts with `{`.
    #[arg(long, value_enum, default_value_t = BodyKind::Auto)]
    content_type: BodyKind,
    /// md5: leave out empty values (`md5.empty_values: skip`).
    #[arg(long, conflicts_with = "config")]
    skip_empty: bool,
    /// md5: sign nested values as raw JSON text (`md5.nested_values: raw`).
    #[arg(long, conflicts_with = "config")]
    raw_nested: bool,
    /// md5: accept JSON numbers, booleans and null (`md5.value_types: any`).
    #[arg(long, conflicts_with = "config")]
    any_value_types: bool,
    /// Take the md5 options from this plugin configuration (secrets are not needed).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Cube: x-lf-notification-version (default: the request's, else 1.0).
    #[arg(long)]
    notification_version: Option<String>,
    /// Cube: x-lf-algo (default: the request's, else HMAC-SHA1).
    #[arg(long)]
    algo: Option<String>,
    /// Cube: x-lf-timestamp (default: the request's).
    #[arg(long)]
    timestamp: Option<String>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// Show bytes as text, control characters escaped (`\n`, `\x01`); invalid UTF-8 as `\xNN`.
pub fn printable(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

fn list(keys: &[String]) -> String {
    keys.join(", ")
}

struct Explained {
    scheme: &'static str,
    signed_text: Vec<u8>,
    formula: &'static str,
    decisions: Vec<String>,
}

fn md5_options(args: &ExplainArgs) -> Result<Md5Options, CliError> {
    if let Some(path) = &args.config {
        let n = std::cell::Cell::new(0u32);
        let config = Config::from_json(&read_input(path)?, |_| {
            n.set(n.get() + 1);
            Some(format!("explain-placeholder-{}", n.get()))
        })
        .map_err(|e| CliError::new(format!("{}: {e}", path.display())))?;
        return Ok(config.md5);
    }
    Ok(crate::input::md5_options(
        args.skip_empty,
        args.raw_nested,
        args.any_value_types,
    ))
}

fn media_of(args: &ExplainArgs, req: &Captured) -> Result<(MediaType, String), Rejection> {
    match (args.content_type, req.header("content-type")) {
        (BodyKind::Auto, Some(ct)) => Ok((
            media_type(ct)?,
            format!("from Content-Type `{}`", printable(ct)),
        )),
        (BodyKind::Auto, None) => Ok((
            args.content_type.media(&req.body),
            "guessed from the body (no Content-Type given)".into(),
        )),
        (forced, _) => Ok((forced.media(&req.body), "forced by --content-type".into())),
    }
}

fn explain_md5(
    media: MediaType,
    how: &str,
    body: &[u8],
    opts: &Md5Options,
) -> Result<Explained, Rejection> {
    let params = Params::parse(media, body, opts)?;
    let mut text = Vec::new();
    md5_prefix(&params, opts.empty_values, |b| text.extend_from_slice(b));
    text.extend_from_slice(SECRET_PLACEHOLDER.as_bytes());
    let mut d = Vec::new();
    let kind = match media {
        MediaType::Json => "a JSON object",
        MediaType::Form => "a form (application/x-www-form-urlencoded)",
    };
    d.push(format!(
        "body read as {kind}, {how}; text is UTF-8, signed as UTF-8 bytes"
    ));
    order_decisions(media, body, &params, opts, &mut d)?;
    match media {
        MediaType::Json => json_value_decisions(body, opts, &mut d)?,
        MediaType::Form => form_decisions(body, &mut d),
    }
    d.push("values signed as plain text, not URL-encoded".into());
    d.push(format!(
        "then `&` and the secret (shown as {SECRET_PLACEHOLDER}; a secret's own `=`/`&` are kept)"
    ));
    Ok(Explained {
        scheme: "md5",
        signed_text: text,
        formula: "x-lf-md5 = base64(lowercase hex(MD5(signed text))), 44 characters",
        decisions: d,
    })
}

/// The key order (sent vs signed) and the empty values.
fn order_decisions(
    media: MediaType,
    body: &[u8],
    params: &Params,
    opts: &Md5Options,
    d: &mut Vec<String>,
) -> Result<(), Rejection> {
    let sent_order: Vec<String> = match media {
        MediaType::Json => json_members_as_sent(body)?
            .into_iter()
            .map(|(k, _)| k.into_owned())
            .collect(),
        MediaType::Form => params.pairs().iter().map(|(k, _)| k.to_string()).collect(),
    };
    let sorted: Vec<String> = params.pairs().iter().map(|(k, _)| k.to_string()).collect();
    if media == MediaType::Json && sent_order != sorted {
        d.push(format!(
            "pairs sorted by key (byte-wise): sent {}; signed {}",
            list(&sent_order),
            list(&sorted)
        ));
    } else {
        d.push("pairs sorted by key (byte-wise)".into());
    }
    let empty: Vec<String> = params
        .pairs()
        .iter()
        .filter(|(_, v)| matches!(v, Value::Empty))
        .map(|(k, _)| k.to_string())
        .collect();
    if !empty.is_empty() {
        d.push(match opts.empty_values {
            EmptyValues::Keep => format!(
                "empty values (\"\", null, `k=`) kept as `key=` (md5.empty_values: keep): {}",
                list(&empty)
            ),
            EmptyValues::Skip => format!(
                "empty values left out of the signed text (md5.empty_values: skip): {}",
                list(&empty)
            ),
        });
    }
    Ok(())
}

/// How JSON values are signed: numbers as sent, booleans, escapes, raw nested values.
fn json_value_decisions(
    body: &[u8],
    opts: &Md5Options,
    d: &mut Vec<String>,
) -> Result<(), Rejection> {
    let (mut numbers, mut escaped, mut bools, mut nested) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (k, raw) in json_members_as_sent(body)? {
        let raw = raw.get();
        match raw.as_bytes().first() {
            Some(b'"') if raw.contains('\\') => escaped.push(k.into_owned()),
            Some(b'"') | Some(b'n') => {}
            Some(b't') | Some(b'f') => bools.push(k.into_owned()),
            Some(b'{') | Some(b'[') => nested.push(k.into_owned()),
            Some(_) => numbers.push(format!("{k}={raw}")),
            None => {}
        }
    }
    if !numbers.is_empty() {
        d.push(format!(
            "numbers signed as their literal text exactly as sent (never re-formatted): {}",
            list(&numbers)
        ));
    }
    if !bools.is_empty() {
        d.push(format!(
            "booleans signed as `true`/`false`: {}",
            list(&bools)
        ));
    }
    if !escaped.is_empty() {
        d.push(format!(
            "JSON string escapes decoded (\\u00e9 -> é, \\\" -> \"): {}",
            list(&escaped)
        ));
    }
    if !nested.is_empty() && opts.nested_values == NestedValues::Raw {
        d.push(format!(
            "nested objects/arrays signed as their raw JSON text as sent (md5.nested_values: raw): {}",
            list(&nested)
        ));
    }
    Ok(())
}

/// Whether form pairs were decoded.
fn form_decisions(body: &[u8], d: &mut Vec<String>) {
    let decoded: Vec<String> = form_pairs_as_sent(body)
        .into_iter()
        .filter_map(|(k, v)| {
            let changed = k.iter().chain(v).any(|&b| b == b'+' || b == b'%');
            changed.then(|| String::from_utf8_lossy(k).into_owned())
        })
        .collect();
    if decoded.is_empty() {
        d.push("form pairs need no decoding (no `+` or %XX)".into());
    } else {
        d.push(format!(
            "form-decoded before signing (`+` -> space, %XX -> byte): {}",
            list(&decoded)
        ));
    }
}

fn explain_cube(args: &ExplainArgs, req: &Captured) -> Result<Explained, CliError> {
    let pick = |flag: &Option<String>,
                header: &str,
                default: Option<&str>|
     -> Result<(String, String), CliError> {
        if let Some(v) = flag {
            return Ok((v.clone(), "from the command line".into()));
        }
        if let Some(v) = req.header(header) {
            return Ok((
                String::from_utf8_lossy(v).into_owned(),
                format!("from {header}"),
            ));
        }
        default
            .map(|d| (d.to_string(), "default".to_string()))
            .ok_or_else(|| {
                CliError::new(format!("no {header}"))
                    .hint("pass --timestamp MS (or a request with the Cube headers)")
            })
    };
    let (version, vsrc) = pick(&args.notification_version, CUBE_VERSION_HEADER, Some("1.0"))?;
    let (algo, asrc) = pick(&args.algo, CUBE_ALGO_HEADER, Some(cube::ALGORITHM))?;
    let (ts, tsrc) = pick(&args.timestamp, CUBE_TIMESTAMP_HEADER, None)?;
    let (prefix, _) = cube::signed_prefix(version.as_bytes(), algo.as_bytes(), ts.as_bytes())
        .map_err(|r| rejection_error(&r))?;
    let json = Json::parse(&req.body).map_err(|r| rejection_error(&r))?;
    let mut text = prefix;
    let start = text.len();
    cube_json(&json, &mut |b: &[u8]| text.extend_from_slice(b));
    let canonical_body = text.get(start..).unwrap_or_default();
    let mut d = vec![
        format!("`{{version}}:{{algo}}:{{timestamp}}` = `{version}:{algo}:{ts}` (version {vsrc}, algo {asrc}, timestamp {tsrc}), then the body with no separator"),
        format!("x-lf-algo signed exactly as sent (`{algo}`); accepted case-insensitively as {}", cube::ALGORITHM),
        "body re-serialised as compact JSON: object keys sorted at every level (byte-wise), arrays in order, no white space".into(),
        "numbers kept as their literal text; strings re-escaped minimally (non-ASCII and `/` as UTF-8)".into(),
    ];
    if req.body.trim_ascii() == canonical_body {
        d.push("the body as sent is already canonical".into());
    } else {
        d.push(
            "the body as sent differs from the canonical text (white space, key order or escapes)"
                .into(),
        );
    }
    Ok(Explained {
        scheme: "cube",
        signed_text: text,
        formula: "x-lf-signature = {key id}/base64(HMAC-SHA1(key value, signed text))",
        decisions: d,
    })
}

fn rejection_error(r: &Rejection) -> CliError {
    CliError::new(format!(
        "the filter rejects this body: {} {} ({})",
        r.reason.status(),
        r.reason.category(),
        r.detail
    ))
}

pub fn run(args: ExplainArgs) -> Result<u8, CliError> {
    let req = args.request.load()?;
    let cube = match args.scheme {
        ExplainScheme::Cube => true,
        ExplainScheme::Md5 => false,
        ExplainScheme::Auto => {
            args.timestamp.is_some()
                || req.header(CUBE_SIGNATURE_HEADER).is_some()
                || req.header(CUBE_TIMESTAMP_HEADER).is_some()
        }
    };
    let result = if cube {
        explain_cube(&args, &req).map_err(|e| (e, None))
    } else {
        let opts = md5_options(&args)?;
        media_of(&args, &req)
            .and_then(|(media, how)| explain_md5(media, &how, &req.body, &opts))
            .map_err(|r| (rejection_error(&r), Some(r)))
    };
    let explained = match result {
        Ok(e) => e,
        Err((e, Some(r))) => {
            let hint = match r.detail {
                "nested object or array" => "the filter accepts nested values with \"md5\": {\"nested_values\": \"raw\"} (explain --raw-nested)",
                "JSON body declared as form" => "the Content-Type says form but the body is JSON",
                _ => "see docs/signing.md",
            };
            if args.json {
                println!(
                    "{}",
                    json!({"signed_text": null, "status": r.reason.status(), "category": r.reason.category(), "detail": r.detail, "exit_code": r.reason.exit_code()})
                );
            } else {
                eprintln!("lf-webhook-guard: {}", e.message);
                eprintln!("hint: {hint}");
            }
            return Ok(r.reason.exit_code());
        }
        Err((e, None)) => return Err(e),
    };
    if args.json {
        println!(
            "{}",
            json!({
                "scheme": explained.scheme,
                "signed_text": String::from_utf8_lossy(&explained.signed_text),
                "secret_placeholder": (explained.scheme == "md5").then_some(SECRET_PLACEHOLDER),
                "signature": explained.formula,
                "decisions": explained.decisions,
            })
        );
        return Ok(0);
    }
    for note in &req.notes {
        eprintln!("note: {note}");
    }
    println!("scheme: {}", explained.scheme);
    println!("signed text (secret redacted):");
    println!("  {}", printable(&explained.signed_text));
    println!("signature: {}", explained.formula);
    println!("decisions:");
    for d in &explained.decisions {
        println!("  - {d}");
    }
    Ok(0)
}
