//! What the subcommands share: secrets, bodies, and captured requests (a raw HTTP/1.1 request
//! file, or `--header` lines plus a `--body` file); the body encoding flag; the md5
//! canonicalisation options from the command-line flags and as plugin-configuration JSON.
//! Subcommands import from here (or the library), never from each other.

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use lf_webhook_guard::body::sniff;
use lf_webhook_guard::config::{EmptyValues, Md5Options, NestedValues, ValueTypes};
use lf_webhook_guard::{MediaType, RequestHead};

/// A command-line error: a message for stderr plus an optional hint. Exit status 2.
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub hint: Option<String>,
}

impl CliError {
    pub fn new(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            hint: None,
        }
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl From<String> for CliError {
    fn from(message: String) -> Self {
        CliError::new(message)
    }
}

/// `--secret` / `--secret-env`.
#[derive(Args, Debug, Clone, Default)]
pub struct SecretArgs {
    /// The notification secret (md5) or key value (cube). Prefer --secret-env: command lines
    /// are visible to other local users.
    #[arg(long, conflicts_with = "secret_env")]
    pub secret: Option<String>,
    /// Read the secret from this environment variable.
    #[arg(long, value_name = "VAR")]
    pub secret_env: Option<String>,
}

impl SecretArgs {
    pub fn given(&self) -> bool {
        self.secret.is_some() || self.secret_env.is_some()
    }

    pub fn resolve(&self) -> Result<String, CliError> {
        let secret = match (&self.secret, &self.secret_env) {
            (Some(s), _) => s.clone(),
            (None, Some(var)) => std::env::var(var).map_err(|_| {
                CliError::new(format!("environment variable `{var}` is not set"))
                    .hint(format!("export {var}=... or pass --secret"))
            })?,
            (None, None) => {
                return Err(CliError::new("no key given").hint("pass --secret or --secret-env VAR"))
            }
        };
        if secret.is_empty() {
            return Err(CliError::new("the secret is empty"));
        }
        Ok(secret)
    }
}

/// Read a file, or standard input for `-`.
pub fn read_input(path: &Path) -> Result<Vec<u8>, CliError> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| CliError::new(format!("cannot read standard input: {e}")))?;
        Ok(buf)
    } else {
        std::fs::read(path)
            .map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
pub enum BodyKind {
    Auto,
    Json,
    Form,
}

impl BodyKind {
    pub fn media(self, body: &[u8]) -> MediaType {
        match self {
            BodyKind::Auto => sniff(body),
            BodyKind::Json => MediaType::Json,
            BodyKind::Form => MediaType::Form,
        }
    }
}

/// The legacy canonicalisation options from the `--skip-empty` / `--raw-nested` /
/// `--any-value-types` flags.
pub fn md5_options(skip_empty: bool, raw_nested: bool, any_value_types: bool) -> Md5Options {
    Md5Options {
        empty_values: if skip_empty {
            EmptyValues::Skip
        } else {
            EmptyValues::Keep
        },
        nested_values: if raw_nested {
            NestedValues::Raw
        } else {
            NestedValues::Reject
        },
        value_types: if any_value_types {
            ValueTypes::Any
        } else {
            ValueTypes::Strings
        },
    }
}

/// The `md5` object of a plugin configuration for these options (defaults left out).
pub fn md5_json(opts: &Md5Options) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    if opts.empty_values == EmptyValues::Skip {
        m.insert("empty_values".into(), "skip".into());
    }
    if opts.nested_values == NestedValues::Raw {
        m.insert("nested_values".into(), "raw".into());
    }
    if opts.value_types == ValueTypes::Any {
        m.insert("value_types".into(), "any".into());
    }
    serde_json::Value::Object(m)
}

/// The `"md5": {...}` fragment of a plugin configuration for these options.
pub fn md5_config_fragment(opts: &Md5Options) -> String {
    format!("\"md5\": {}", md5_json(opts))
}

/// How a captured request is given: `--request FILE`, or `--header` lines and `--body FILE`.
#[derive(Args, Debug, Clone, Default)]
pub struct RequestArgs {
    /// A raw HTTP/1.1 request as captured (`nc -l`, tcpdump, a proxy log): request line,
    /// headers, blank line, body. CRLF or LF line ends; Content-Length or chunked bodies.
    /// `-` reads standard input.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["header", "body"])]
    pub request: Option<PathBuf>,
    /// A request header, `name: value` (repeatable), when the body is given with --body.
    #[arg(long, short = 'H', value_name = "NAME: VALUE")]
    pub header: Vec<String>,
    /// The request body (`-` for standard input), with --header.
    #[arg(long, value_name = "FILE")]
    pub body: Option<PathBuf>,
    /// Method, with --header/--body (default POST).
    #[arg(long, conflicts_with = "request")]
    pub method: Option<String>,
    /// Request path, with --header/--body (selects the route of a --config).
    #[arg(long, conflicts_with = "request")]
    pub path: Option<String>,
}

/// A captured request.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    pub method: String,
    pub path: Option<String>,
    /// (lower-case name, value), in order.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// What the parser had to decide (shown with the verdict).
    pub notes: Vec<String>,
}

impl Captured {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The head as the filter sees it (`:method` plus the headers).
    pub fn head(&self) -> RequestHead<'_> {
        RequestHead::from_pairs(
            std::iter::once((":method", self.method.as_bytes()))
                .chain(self.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice()))),
        )
    }
}

impl RequestArgs {
    pub fn load(&self) -> Result<Captured, CliError> {
        if let Some(path) = &self.request {
            return parse_raw_request(&read_input(path)?).map_err(|e| {
                CliError::new(format!("{}: {e}", path.display())).hint(
                    "give a raw HTTP/1.1 request (request line, headers, blank line, body), \
                     or use --header 'name: value' and --body FILE",
                )
            });
        }
        let body_path = self.body.as_ref().ok_or_else(|| {
            CliError::new("no request given")
                .hint("pass --request FILE, or --body FILE with --header 'name: value'")
        })?;
        let mut headers = Vec::with_capacity(self.header.len());
        for line in &self.header {
            let (name, value) = split_header(line.as_bytes()).map_err(|e| {
                CliError::new(format!("--header {line:?}: {e}")).hint(
                    "write headers as 'name: value', e.g. -H 'content-type: application/json'",
                )
            })?;
            headers.push((name, value));
        }
        Ok(Captured {
            method: self.method.clone().unwrap_or_else(|| "POST".into()),
            path: self.path.clone(),
            headers,
            body: read_input(body_path)?,
            notes: Vec::new(),
        })
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `name: value` -> (lower-case name, trimmed value).
fn split_header(line: &[u8]) -> Result<(String, Vec<u8>), String> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or("no `:` in header line")?;
    let (name, rest) = line.split_at(colon);
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err("bad header name".into());
    }
    let value = rest.get(1..).unwrap_or_default().trim_ascii();
    Ok((
        String::from_utf8_lossy(name).to_ascii_lowercase(),
        value.to_vec(),
    ))
}

/// Parse a raw HTTP/1.x request.
pub fn parse_raw_request(data: &[u8]) -> Result<Captured, String> {
    let mut notes = Vec::new();
    let (lines, body_start) = split_head(data, &mut notes);
    let (request_line, header_lines) = lines.split_first().ok_or("empty request")?;
    let (method, path) = request_target(request_line)?;
    let mut headers = Vec::with_capacity(header_lines.len());
    for line in header_lines {
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            return Err("folded header line (obsolete line folding) is not supported".into());
        }
        headers.push(
            split_header(line)
                .map_err(|e| format!("header line {:?}: {e}", String::from_utf8_lossy(line)))?,
        );
    }
    let rest = match body_start {
        Some(start) => data.get(start..).unwrap_or_default(),
        None => {
            notes.push("no blank line after the headers: empty body".into());
            &[][..]
        }
    };
    let body = decode_body(&headers, rest, &mut notes)?;
    Ok(Captured {
        method,
        path: Some(path),
        headers,
        body,
        notes,
    })
}

/// The head's lines (line ends stripped, blank lines before the request line skipped) and
/// where the body starts (after the blank line), noting LF or mixed line ends.
fn split_head<'a>(data: &'a [u8], notes: &mut Vec<String>) -> (Vec<&'a [u8]>, Option<usize>) {
    let mut pos = 0usize;
    let mut lines: Vec<&[u8]> = Vec::new();
    let mut saw_crlf = false;
    let mut saw_lf = false;
    let mut body_start = None;
    while pos < data.len() {
        let rest = data.get(pos..).unwrap_or_default();
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (rest.get(..i).unwrap_or_default(), pos + i + 1),
            None => (rest, data.len()),
        };
        let line = match line.strip_suffix(b"\r") {
            Some(l) => {
                saw_crlf = true;
                l
            }
            None => {
                if next <= data.len() && data.get(next.wrapping_sub(1)) == Some(&b'\n') {
                    saw_lf = true;
                }
                line
            }
        };
        pos = next;
        if line.is_empty() {
            if lines.is_empty() {
                continue; // tolerate blank lines before the request line
            }
            body_start = Some(pos);
            break;
        }
        lines.push(line);
    }
    if saw_lf {
        notes.push(if saw_crlf {
            "mixed CRLF and LF line ends in the head".to_string()
        } else {
            "LF line ends (not CRLF) in the head: read as CRLF".to_string()
        });
    }
    (lines, body_start)
}

/// `METHOD /path HTTP/1.x` -> (method, path); an absolute-form target loses its authority.
fn request_target(request_line: &[u8]) -> Result<(String, String), String> {
    let request_line = std::str::from_utf8(request_line).map_err(|_| "request line is not text")?;
    if request_line.starts_with("== Info:") || request_line.starts_with("=> Send") {
        return Err(
            "this is curl --trace-ascii output, not a raw request; save the request \
                    itself (e.g. `nc -l 8081 > request.txt` and point the sender at it)"
                .into(),
        );
    }
    let parts: Vec<&str> = request_line.split_ascii_whitespace().collect();
    let (method, target) = match parts.as_slice() {
        [m, t, v] if v.starts_with("HTTP/") => (*m, *t),
        _ => {
            return Err(format!(
                "first line is not an HTTP request line (`METHOD /path HTTP/1.1`): {request_line:?}"
            ))
        }
    };
    let path = match target.find("://") {
        Some(i) => {
            let after = target.get(i + 3..).unwrap_or_default();
            after
                .find('/')
                .map_or("/", |j| after.get(j..).unwrap_or("/"))
        }
        None => target,
    };
    Ok((method.to_string(), path.to_string()))
}

/// The body after the head: chunked (decoded), Content-Length bytes, or the rest of the file.
fn decode_body(
    headers: &[(String, Vec<u8>)],
    rest: &[u8],
    notes: &mut Vec<String>,
) -> Result<Vec<u8>, String> {
    let find = |name: &str| -> Vec<&[u8]> {
        headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
            .collect()
    };
    let chunked = find("transfer-encoding").last().is_some_and(|te| {
        String::from_utf8_lossy(te)
            .to_ascii_lowercase()
            .trim_end()
            .ends_with("chunked")
    });
    if chunked {
        if !find("content-length").is_empty() {
            notes.push("both Transfer-Encoding: chunked and Content-Length: chunked wins".into());
        }
        notes.push("chunked body decoded".into());
        decode_chunked(rest)
    } else if let Some(cl) = find("content-length").first() {
        let n: usize = std::str::from_utf8(cl)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or("bad Content-Length value")?;
        if rest.len() < n {
            return Err(format!(
                "body is shorter than its Content-Length ({} < {n} bytes): truncated capture?",
                rest.len()
            ));
        }
        if rest.len() > n {
            notes.push(format!(
                "{} byte(s) after Content-Length ignored",
                rest.len() - n
            ));
        }
        Ok(rest.get(..n).unwrap_or_default().to_vec())
    } else {
        if !rest.is_empty() {
            notes.push(
                "no Content-Length or chunked encoding: the rest of the file is the body".into(),
            );
        }
        Ok(rest.to_vec())
    }
}

/// Decode a chunked body (CRLF or LF line ends; extensions and trailers ignored).
fn decode_chunked(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = data
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("chunked body: missing chunk size line")?;
        let line = data.get(..eol).unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let size_text = line.split(|&b| b == b';').next().unwrap_or_default();
        let size_text = std::str::from_utf8(size_text)
            .map_err(|_| "chunked body: bad chunk size")?
            .trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("chunked body: bad chunk size {size_text:?}"))?;
        data = data.get(eol + 1..).unwrap_or_default();
        if size == 0 {
            return Ok(out);
        }
        let chunk = data
            .get(..size)
            .ok_or("chunked body: chunk shorter than its size (truncated capture?)")?;
        out.extend_from_slice(chunk);
        data = data.get(size..).unwrap_or_default();
        data = data
            .strip_prefix(b"\r\n")
            .or_else(|| data.strip_prefix(b"\n"))
            .ok_or("chunked body: no line end after a chunk")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_content_length() {
        let c = parse_raw_request(
            b"POST /linksfield/sms HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}",
        )
        .unwrap();
        assert_eq!(c.method, "POST");
        assert_eq!(c.path.as_deref(), Some("/linksfield/sms"));
        assert_eq!(c.header("content-type"), Some(&b"application/json"[..]));
        assert_eq!(c.body, b"{\"a\":1}");
        assert!(c.notes.is_empty(), "{:?}", c.notes);
    }

    #[test]
    fn lf_chunked_and_absolute_uri() {
        let c = parse_raw_request(
            b"POST http://h:1/cube/x?q=1 HTTP/1.1\nTransfer-Encoding: chunked\n\n3\n{\"a\n4;ext=1\n\":1}\n0\n\n",
        )
        .unwrap();
        assert_eq!(c.path.as_deref(), Some("/cube/x?q=1"));
        assert_eq!(c.body, b"{\"a\":1}");
        assert!(c.notes.iter().any(|n| n.contains("LF line ends")));
    }

    #[test]
    fn errors_not_panics() {
        for bad in [
            &b""[..],
            b"\n\n",
            b"hello",
            b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
            b"POST / HTTP/1.1\r\nbad header\r\n\r\n",
            b"== Info: Trying\n=> Send header\n",
        ] {
            assert!(
                parse_raw_request(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
