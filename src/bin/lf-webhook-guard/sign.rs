//! `sign`: the signature header(s) for a body, or a complete curl command.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use lf_webhook_guard::{
    sign_cube, sign_md5, MediaType, Rejection, CUBE_ALGO_HEADER, CUBE_SIGNATURE_HEADER,
    CUBE_TIMESTAMP_HEADER, CUBE_VERSION_HEADER, MD5_HEADER,
};

use crate::input::{md5_options, read_input, BodyKind, CliError, SecretArgs};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
pub enum SignScheme {
    Md5,
    Cube,
}

fn content_type(media: MediaType) -> &'static str {
    match media {
        MediaType::Json => "application/json",
        MediaType::Form => "application/x-www-form-urlencoded",
    }
}

#[derive(Args, Debug)]
pub struct SignArgs {
    /// Signature scheme.
    #[arg(long, value_enum, default_value_t = SignScheme::Md5)]
    scheme: SignScheme,
    /// Cube: the key id (the part before `/` in x-lf-signature).
    #[arg(long, required_if_eq("scheme", "cube"))]
    key_id: Option<String>,
    /// Cube: x-lf-timestamp (epoch milliseconds); default: now.
    #[arg(long)]
    timestamp: Option<String>,
    /// Cube: x-lf-notification-version.
    #[arg(long, default_value = "1.0")]
    notification_version: String,
    /// Cube: x-lf-algo.
    #[arg(long, default_value = "HMAC-SHA1")]
    algo: String,
    #[command(flatten)]
    secret: SecretArgs,
    /// Body file (`-` for standard input).
    #[arg(long)]
    body: PathBuf,
    /// Body encoding; `auto` treats a body starting with `{` as JSON, anything else as form.
    #[arg(long, value_enum, default_value_t = BodyKind::Auto)]
    content_type: BodyKind,
    /// Leave pairs with empty values out of the signed text (filter option `md5.empty_values: skip`).
    #[arg(long)]
    skip_empty: bool,
    /// Sign nested JSON values as their raw text (filter option `md5.nested_values: raw`).
    #[arg(long)]
    raw_nested: bool,
    /// Accept JSON numbers, booleans and null (filter option `md5.value_types: any`).
    #[arg(long)]
    any_value_types: bool,
    /// Print every signature header as `name: value` lines (cube: all four headers).
    #[arg(long, conflicts_with = "curl")]
    headers: bool,
    /// Print a complete curl command that POSTs the signed body to URL.
    #[arg(long, value_name = "URL")]
    curl: Option<String>,
}

fn rejected(what: &str, r: Rejection, hint: &str) -> CliError {
    CliError::new(format!(
        "the filter would reject this {what} ({}: {})",
        r.reason.category(),
        r.detail
    ))
    .hint(hint)
}

/// POSIX shell single quoting: safe for any bytes except NUL.
pub fn shell_quote(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 2);
    out.push(b'\'');
    for &b in text {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    out
}

pub fn run(args: SignArgs) -> Result<(), CliError> {
    let secret = args.secret.resolve()?;
    let body = read_input(&args.body)?;
    let (media, headers) = signature_headers(&args, &secret, &body)?;
    let out = render(&args, media, &headers, &body)?;
    std::io::stdout()
        .write_all(&out)
        .map_err(|e| CliError::new(format!("cannot write output: {e}")))
}

/// Signature headers (name, value), in the order printed.
type Headers = Vec<(&'static str, String)>;

/// The media type the body is sent as, and the signature header(s).
fn signature_headers(
    args: &SignArgs,
    secret: &str,
    body: &[u8],
) -> Result<(MediaType, Headers), CliError> {
    Ok(match args.scheme {
        SignScheme::Cube => {
            let key_id = args
                .key_id
                .clone()
                .ok_or_else(|| CliError::new("--key-id is required with --scheme cube"))?;
            let timestamp = match &args.timestamp {
                Some(t) => t.clone(),
                None => std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_err(|e| CliError::new(e.to_string()))?
                    .as_millis()
                    .to_string(),
            };
            let sig = sign_cube(
                body,
                &args.notification_version,
                &args.algo,
                &timestamp,
                &key_id,
                secret.as_bytes(),
            )
            .map_err(|r| {
                rejected(
                    "request",
                    r,
                    "Cube bodies are one JSON object; `lf-webhook-guard explain` shows how it is read",
                )
            })?;
            (
                MediaType::Json,
                vec![
                    (CUBE_VERSION_HEADER, args.notification_version.clone()),
                    (CUBE_ALGO_HEADER, args.algo.clone()),
                    (CUBE_TIMESTAMP_HEADER, timestamp),
                    (CUBE_SIGNATURE_HEADER, sig),
                ],
            )
        }
        SignScheme::Md5 => {
            let media = args.content_type.media(body);
            let opts = md5_options(args.skip_empty, args.raw_nested, args.any_value_types);
            let sig = sign_md5(media, body, &opts, secret.as_bytes()).map_err(|r| {
                rejected(
                    "body",
                    r,
                    "check the encoding with --content-type; `lf-webhook-guard explain --body FILE` shows how the body is read",
                )
            })?;
            (media, vec![(MD5_HEADER, sig)])
        }
    })
}

/// What `sign` prints: a curl command (`--curl`), every header (`--headers`), or the value.
fn render(
    args: &SignArgs,
    media: MediaType,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<Vec<u8>, CliError> {
    let mut out = Vec::new();
    if let Some(url) = &args.curl {
        if body.contains(&0) {
            return Err(CliError::new(
                "the body contains a NUL byte, which cannot be passed on a command line",
            )
            .hint("use --headers and run curl with --data-binary @FILE"));
        }
        out.extend_from_slice(b"curl -sS -i -X POST ");
        out.extend_from_slice(&shell_quote(url.as_bytes()));
        let ct = format!("content-type: {}", content_type(media));
        for h in std::iter::once(ct).chain(headers.iter().map(|(n, v)| format!("{n}: {v}"))) {
            out.extend_from_slice(b" \\\n  -H ");
            out.extend_from_slice(&shell_quote(h.as_bytes()));
        }
        out.extend_from_slice(b" \\\n  --data-binary ");
        out.extend_from_slice(&shell_quote(body));
        out.push(b'\n');
    } else if args.headers {
        for (n, v) in headers {
            out.extend_from_slice(format!("{n}: {v}\n").as_bytes());
        }
    } else {
        // Default: the x-lf-md5 / x-lf-signature value only (scripts use it in -H "...: $(...)").
        let value = headers.last().map(|(_, v)| v.as_str()).unwrap_or_default();
        out.extend_from_slice(format!("{value}\n").as_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote(b"a b"), b"'a b'");
        assert_eq!(shell_quote(b"it's $x"), b"'it'\\''s $x'");
    }
}
