//! `diagnose`: which variant of the signing rules did the sender use?
//!
//! The provider leaves several rules open (reference: linksfield-protocols.md). This module
//! deliberately implements ALTERNATIVE rules, for diagnosis only; the filter never uses them.
//! The filter's own rules come from the core (`Params::parse`, `md5_prefix`, `sign_md5`,
//! `cube_json`, `CubeSigner`), and every match the filter can be configured for is confirmed by
//! the core (`sign_md5` with that configuration) before it is reported.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use clap::Args;
use lf_webhook_guard::body::{form_pairs_as_sent, json_members_as_sent, media_type, sniff, Json};
use lf_webhook_guard::body::{MediaType, Params, Value};
use lf_webhook_guard::canonical::{cube_json, md5_prefix};
use lf_webhook_guard::config::{EmptyValues, Md5Options, NestedValues, ValueTypes};
use lf_webhook_guard::scheme::cube::{self, CubeSigner};
use lf_webhook_guard::scheme::md5::hex32;
use lf_webhook_guard::{
    sign_md5, CUBE_ALGO_HEADER, CUBE_SIGNATURE_HEADER, CUBE_TIMESTAMP_HEADER, CUBE_VERSION_HEADER,
    MD5_HEADER,
};
use md5::{Digest, Md5};
use serde_json::json;

use crate::input::{md5_config_fragment, md5_json, Captured, CliError, RequestArgs, SecretArgs};

/// Exit status when only variants the filter cannot be configured for match.
pub const EXIT_UNSUPPORTED_VARIANT: u8 = 3;
/// Exit status when no variant matches.
pub const EXIT_NO_MATCH: u8 = 1;

#[derive(Args, Debug)]
pub struct DiagnoseArgs {
    #[command(flatten)]
    request: RequestArgs,
    #[command(flatten)]
    secret: SecretArgs,
    /// Cube: the key id you expect (default: the one in x-lf-signature).
    #[arg(long)]
    key_id: Option<String>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// One rule that differs from the filter's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Deviation {
    what: &'static str,
    /// Whether the filter can be configured for it (the md5 options).
    configurable: bool,
}

struct Match {
    deviations: Vec<Deviation>,
    /// For a configurable match: the md5 options the filter needs.
    opts: Option<Md5Options>,
}

// ------------------------------------------------------------------------------- md5 ----

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Numbers {
    Literal,
    JavaDouble,
    Shortest,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Encoding {
    B64LowerHex,
    B64UpperHex,
    B64Digest,
    LowerHex,
}

/// Java's `Double.toString`: what a sender that parses JSON numbers into `Double` (e.g. Gson into
/// `Map<String, Object>`) signs: `18` -> `18.0`, `1.50` -> `1.5`, `1642385160000` -> `1.64238516E12`.
pub fn java_double(literal: &str) -> Option<String> {
    let d: f64 = literal.parse().ok()?;
    if !d.is_finite() {
        return None;
    }
    if d == 0.0 {
        return Some(if d.is_sign_negative() { "-0.0" } else { "0.0" }.into());
    }
    if (1e-3..1e7).contains(&d.abs()) {
        let s = format!("{d}");
        Some(if s.contains('.') { s } else { format!("{s}.0") })
    } else {
        let s = format!("{d:e}");
        let (m, e) = s.split_once('e')?;
        let m = if m.contains('.') {
            m.to_string()
        } else {
            format!("{m}.0")
        };
        Some(format!("{m}E{e}"))
    }
}

/// The shortest plain decimal form (JavaScript-like): `1.50` -> `1.5`, `1e3` -> `1000`, `18.0` -> `18`.
pub fn shortest_number(literal: &str) -> Option<String> {
    let d: f64 = literal.parse().ok()?;
    d.is_finite().then(|| format!("{d}"))
}

/// The legacy signed text WITHOUT the secret under one variant of the text rules, or `None` when
/// the variant does not apply to this body. The defaults (literal numbers, decoded form values)
/// come straight from the core.
fn md5_text(
    media: MediaType,
    body: &[u8],
    opts: &Md5Options,
    numbers: Numbers,
    form_as_sent: bool,
) -> Option<Vec<u8>> {
    if (media == MediaType::Json && form_as_sent)
        || (media == MediaType::Form && numbers != Numbers::Literal)
    {
        return None;
    }
    let params = Params::parse(media, body, opts).ok()?;
    if numbers == Numbers::Literal && !form_as_sent {
        let mut text = Vec::new();
        md5_prefix(&params, opts.empty_values, |b| text.extend_from_slice(b));
        return Some(text);
    }
    // Alternative rules: (key, value) with `None` for an empty value.
    let mut pairs: Vec<(String, Option<String>)> = if form_as_sent {
        form_pairs_as_sent(body)
            .into_iter()
            .map(|(k, v)| {
                let v = String::from_utf8_lossy(v).into_owned();
                (
                    String::from_utf8_lossy(k).into_owned(),
                    (!v.is_empty()).then_some(v),
                )
            })
            .collect()
    } else {
        let members = json_members_as_sent(body).ok()?;
        params
            .pairs()
            .iter()
            .map(|(k, v)| {
                let raw = members
                    .iter()
                    .find(|(m, _)| m == k)
                    .map(|(_, r)| r.get())
                    .unwrap_or_default();
                let is_number = raw
                    .as_bytes()
                    .first()
                    .is_some_and(|b| *b == b'-' || b.is_ascii_digit());
                let value = match v {
                    Value::Empty => None,
                    Value::Text(t) if is_number => Some(
                        match numbers {
                            Numbers::JavaDouble => java_double(t),
                            Numbers::Shortest => shortest_number(t),
                            Numbers::Literal => None,
                        }
                        .unwrap_or_else(|| t.to_string()),
                    ),
                    Value::Text(t) => Some(t.to_string()),
                };
                (k.to_string(), value)
            })
            .collect()
    };
    pairs.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut text = Vec::new();
    for (k, v) in pairs {
        if v.is_none() && opts.empty_values == EmptyValues::Skip {
            continue;
        }
        text.extend_from_slice(k.as_bytes());
        text.push(b'=');
        text.extend_from_slice(v.unwrap_or_default().as_bytes());
        text.push(b'&');
    }
    Some(text)
}

fn encode(digest: &[u8], encoding: Encoding) -> String {
    let hex = hex32(digest);
    match encoding {
        Encoding::B64LowerHex => STANDARD.encode(hex),
        Encoding::B64UpperHex => STANDARD.encode(hex.to_ascii_uppercase()),
        Encoding::B64Digest => STANDARD.encode(digest),
        Encoding::LowerHex => String::from_utf8_lossy(&hex).into_owned(),
    }
}

/// The media type the md5 variants read the body as (the filter's, or sniffed when the filter
/// would reject the Content-Type, with a note).
fn md5_media(req: &Captured, notes: &mut Vec<String>) -> MediaType {
    match req.header("content-type").map(media_type) {
        Some(Ok(m)) => m,
        other => {
            let m = sniff(&req.body);
            notes.push(format!(
                "the filter would reject this Content-Type ({}); reading the body as {}",
                match other {
                    Some(Err(r)) => r.detail,
                    _ => "no content-type",
                },
                if m == MediaType::Json { "JSON" } else { "form" }
            ));
            m
        }
    }
}

/// How one md5 variant deviates from the filter's default rules.
fn md5_deviations(
    empty: EmptyValues,
    nested: NestedValues,
    numbers: Numbers,
    form_as_sent: bool,
    amp: bool,
    encoding: Encoding,
) -> Vec<Deviation> {
    let mut dev = Vec::new();
    let mut push = |what, configurable| dev.push(Deviation { what, configurable });
    if empty == EmptyValues::Skip {
        push("empty values left out of the signed text", true);
    }
    if nested == NestedValues::Raw {
        push("nested objects/arrays signed as their raw JSON text", true);
    }
    match numbers {
        Numbers::Literal => {}
        Numbers::JavaDouble => push(
            "numbers re-formatted as Java doubles (18 -> 18.0, 1642385160000 -> 1.64238516E12)",
            false,
        ),
        Numbers::Shortest => push(
            "numbers re-formatted to their shortest decimal form (1.50 -> 1.5, 1e3 -> 1000)",
            false,
        ),
    }
    if form_as_sent {
        push(
            "form values signed as sent, still URL-encoded (not decoded)",
            false,
        );
    }
    if !amp {
        push("secret appended without the `&` separator", false);
    }
    match encoding {
        Encoding::B64LowerHex => {}
        Encoding::B64UpperHex => push("base64 of the UPPER-case hex digest", false),
        Encoding::B64Digest => push(
            "base64 of the raw 16-byte digest (not of the hex string)",
            false,
        ),
        Encoding::LowerHex => push("the hex digest itself, not base64-encoded", false),
    }
    dev
}

fn diagnose_md5(
    req: &Captured,
    header: &[u8],
    secret: &[u8],
    notes: &mut Vec<String>,
) -> (usize, Vec<Match>) {
    let provided = String::from_utf8_lossy(header.trim_ascii()).into_owned();
    let media = md5_media(req, notes);
    let mut seen: Vec<Vec<u8>> = Vec::new();
    let mut tried = 0usize;
    let mut matches = Vec::new();
    for empty in [EmptyValues::Keep, EmptyValues::Skip] {
        for nested in [NestedValues::Reject, NestedValues::Raw] {
            for numbers in [Numbers::Literal, Numbers::JavaDouble, Numbers::Shortest] {
                for form_as_sent in [false, true] {
                    // Strings only (the default) where the body allows it, else `any`.
                    let strict = Md5Options {
                        empty_values: empty,
                        nested_values: nested,
                        value_types: ValueTypes::Strings,
                    };
                    let any = Md5Options {
                        value_types: ValueTypes::Any,
                        ..strict
                    };
                    let Some((opts, text)) = [strict, any].into_iter().find_map(|o| {
                        md5_text(media, &req.body, &o, numbers, form_as_sent).map(|t| (o, t))
                    }) else {
                        continue;
                    };
                    // Variants that produce the same text are the same variant for this body.
                    if seen.contains(&text) {
                        continue;
                    }
                    seen.push(text.clone());
                    for amp in [true, false] {
                        let mut h = Md5::new();
                        h.update(&text);
                        if !amp {
                            // The text ends with `&` (or is empty): drop it before the secret.
                            h = Md5::new();
                            h.update(text.strip_suffix(b"&").unwrap_or(&text));
                        }
                        h.update(secret);
                        let digest = h.finalize();
                        for encoding in [
                            Encoding::B64LowerHex,
                            Encoding::B64UpperHex,
                            Encoding::B64Digest,
                            Encoding::LowerHex,
                        ] {
                            tried += 1;
                            if encode(&digest, encoding) != provided {
                                continue;
                            }
                            let dev =
                                md5_deviations(empty, nested, numbers, form_as_sent, amp, encoding);
                            let configurable = dev.iter().all(|d| d.configurable);
                            // Confirm with the core before promising a configuration.
                            let confirmed = configurable
                                && sign_md5(media, &req.body, &opts, secret)
                                    .is_ok_and(|s| s == provided);
                            matches.push(Match {
                                deviations: dev,
                                opts: confirmed.then_some(opts),
                            });
                        }
                    }
                }
            }
        }
    }
    (tried, matches)
}

// ------------------------------------------------------------------------------ cube ----

/// The body's Cube canonical JSON, or None (noted) when the filter would not accept it.
fn cube_canonical(req: &Captured, notes: &mut Vec<String>) -> Option<Vec<u8>> {
    let canonical = Json::parse(&req.body).ok().map(|json| {
        let mut out = Vec::new();
        cube_json(&json, &mut |b: &[u8]| out.extend_from_slice(b));
        out
    });
    if canonical.is_none() {
        notes.push(
            "the body is not a JSON object the filter accepts: only `body as sent` is tried".into(),
        );
    }
    canonical
}

/// The x-lf-algo texts a sender may have signed, with the deviation each one is.
fn cube_algos(algo: &[u8]) -> [(Vec<u8>, Option<&'static str>); 3] {
    [
        (algo.to_vec(), None),
        (
            algo.to_ascii_uppercase(),
            Some("x-lf-algo upper-cased in the signed text (header sent in another case)"),
        ),
        (
            algo.to_ascii_lowercase(),
            Some("x-lf-algo lower-cased in the signed text"),
        ),
    ]
}

fn diagnose_cube(
    req: &Captured,
    header: &[u8],
    key: &[u8],
    expected_id: Option<&str>,
    notes: &mut Vec<String>,
) -> Result<(usize, Vec<Match>), CliError> {
    let sig = cube::parse_signature(header).map_err(|r| {
        CliError::new(format!("x-lf-signature is malformed ({})", r.detail))
            .hint("it must be `{keyId}/{base64 of 20 bytes}`")
    })?;
    if let Some(id) = expected_id {
        if id != sig.key_id {
            notes.push(format!(
                "x-lf-signature names key id `{}`, not `{id}`: the filter would answer 401 (unknown key id)",
                sig.key_id
            ));
        }
    }
    let get = |name: &str| -> Result<&[u8], CliError> {
        req.header(name)
            .ok_or_else(|| CliError::new(format!("the request has no {name} header")))
    };
    let (version, algo, ts) = (
        get(CUBE_VERSION_HEADER)?,
        get(CUBE_ALGO_HEADER)?,
        get(CUBE_TIMESTAMP_HEADER)?,
    );
    let canonical = cube_canonical(req, notes);
    let mut tried = 0;
    let mut matches = Vec::new();
    let mut seen: Vec<Vec<u8>> = Vec::new();
    let algos = cube_algos(algo);
    for (algo_text, algo_dev) in &algos {
        let bodies = [
            (canonical.clone(), None),
            (
                Some(req.body.clone()),
                Some("body signed exactly as sent, not re-serialised as sorted compact JSON"),
            ),
        ];
        for (body, body_dev) in bodies {
            let Some(body) = body else { continue };
            let mut text = Vec::new();
            for part in [version, b":", algo_text, b":", ts] {
                text.extend_from_slice(part);
            }
            text.extend_from_slice(&body);
            if seen.contains(&text) {
                continue;
            }
            seen.push(text.clone());
            tried += 1;
            let mut signer = CubeSigner::new(key);
            signer.update(&text);
            if signer.finish() != sig.mac {
                continue;
            }
            let deviations: Vec<Deviation> = [*algo_dev, body_dev]
                .into_iter()
                .flatten()
                .map(|what| Deviation {
                    what,
                    configurable: false,
                })
                .collect();
            let opts = deviations.is_empty().then(Md5Options::default);
            matches.push(Match { deviations, opts });
        }
    }
    Ok((tried, matches))
}

/// The configuration that makes the filter accept a match, as printed.
fn config_text(scheme: &str, m: &Match) -> Option<String> {
    m.opts.map(|o| {
        if scheme == "cube" || o == Md5Options::default() {
            "the default rules (no option needed)".to_string()
        } else {
            md5_config_fragment(&o)
        }
    })
}

/// The human-readable report (notes and hints on stderr).
fn print_text(scheme: &str, tried: usize, matches: &[Match], notes: &[String]) {
    for n in notes {
        eprintln!("note: {n}");
    }
    println!("scheme: {scheme}; tried {tried} distinct variants of the rules");
    match matches.first() {
        None => {
            println!("no variant matches: the key is probably wrong (or the body was changed after signing)");
            eprintln!("hint: check the secret (--secret-env) and that the capture is the exact body that was sent");
        }
        Some(_) => {
            for (i, m) in matches.iter().enumerate() {
                let label = if i == 0 { "match" } else { "also matches" };
                if m.deviations.is_empty() {
                    println!("{label}: the filter's own rules");
                } else {
                    let what: Vec<&str> = m.deviations.iter().map(|d| d.what).collect();
                    println!("{label}: {}", what.join("; "));
                }
                match config_text(scheme, m) {
                    Some(c) => println!("  the filter accepts it with: {c}"),
                    None => {
                        let bad: Vec<&str> = m
                            .deviations
                            .iter()
                            .filter(|d| !d.configurable)
                            .map(|d| d.what)
                            .collect();
                        println!("  the filter cannot be configured for: {}", bad.join("; "));
                    }
                }
            }
        }
    }
}

pub fn run(args: DiagnoseArgs) -> Result<u8, CliError> {
    let req = args.request.load()?;
    let secret = args.secret.resolve()?;
    let mut notes = req.notes.clone();
    let (scheme, (tried, mut matches)) = if let Some(h) = req.header(CUBE_SIGNATURE_HEADER) {
        (
            "cube",
            diagnose_cube(
                &req,
                h,
                secret.as_bytes(),
                args.key_id.as_deref(),
                &mut notes,
            )?,
        )
    } else if let Some(h) = req.header(MD5_HEADER) {
        ("md5", diagnose_md5(&req, h, secret.as_bytes(), &mut notes))
    } else {
        return Err(
            CliError::new("the request has no x-lf-md5 or x-lf-signature header")
                .hint("diagnose needs a signed request; check the capture"),
        );
    };
    matches.sort_by_key(|m| (m.opts.is_none(), m.deviations.len()));
    let code = match matches.first() {
        Some(m) if m.opts.is_some() => 0,
        Some(_) => EXIT_UNSUPPORTED_VARIANT,
        None => EXIT_NO_MATCH,
    };
    if args.json {
        let list: Vec<serde_json::Value> = matches
            .iter()
            .map(|m| {
                json!({
                    "variant": m.deviations.iter().map(|d| d.what).collect::<Vec<_>>(),
                    "filter_accepts": m.opts.is_some(),
                    "config": m.opts.map(|o| if scheme == "md5" { json!({"md5": md5_json(&o)}) } else { json!({}) }),
                })
            })
            .collect();
        let verdict = match code {
            0 => "filter_accepts",
            EXIT_UNSUPPORTED_VARIANT => "unsupported_variant",
            _ => "no_match",
        };
        println!(
            "{}",
            json!({"scheme": scheme, "tried": tried, "verdict": verdict, "matches": list, "notes": notes, "exit_code": code})
        );
        return Ok(code);
    }
    print_text(scheme, tried, &matches, &notes);
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_and_shortest_number_forms() {
        assert_eq!(java_double("18").as_deref(), Some("18.0"));
        assert_eq!(java_double("1.50").as_deref(), Some("1.5"));
        assert_eq!(
            java_double("1642385160000").as_deref(),
            Some("1.64238516E12")
        );
        assert_eq!(java_double("0.0001").as_deref(), Some("1.0E-4"));
        assert_eq!(java_double("-0").as_deref(), Some("-0.0"));
        assert_eq!(shortest_number("1e3").as_deref(), Some("1000"));
        assert_eq!(shortest_number("1.50").as_deref(), Some("1.5"));
        assert_eq!(java_double("x"), None);
    }
}
