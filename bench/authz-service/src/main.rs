//! A small Envoy `ext_authz` HTTP authorization service on lf-webhook-guard's core
//! (`Config::from_json`, `check_head`, `verify_body`): the "external service" way to verify
//! Linksfield webhooks, for the side-by-side benchmark (bench/run.py).
//!
//! Usage: `lf-bench-authz-service <127.0.0.1:port> <plugin-config.json>` (secrets from the
//! environment, as in the filter). Plain std::net HTTP/1.1 with keep-alive, one thread per
//! connection (Envoy keeps a small pool of connections to the service).
//!
//! Envoy's ext_authz (HTTP) forwards the original method and path (no path_prefix), the headers
//! listed in `allowed_headers` and, with `with_request_body`, the buffered body. 200 allows (and
//! `x-lf-verified` goes upstream via `allowed_upstream_headers`); any other status denies and
//! Envoy answers the client with it.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use lf_webhook_guard::verdict::reply_body;
use lf_webhook_guard::{Accepted, Config, HeadVerdict, Rejection, RequestHead};

const MAX_HEAD: usize = 64 * 1024;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(config_path)) = (args.next(), args.next()) else {
        eprintln!("usage: lf-bench-authz-service <addr:port> <plugin-config.json>");
        std::process::exit(2);
    };
    let raw = std::fs::read(&config_path).unwrap_or_else(|e| {
        eprintln!("cannot read {config_path}: {e}");
        std::process::exit(2)
    });
    let config = Config::from_json(&raw, |name| std::env::var(name).ok()).unwrap_or_else(|e| {
        eprintln!("invalid configuration: {e}");
        std::process::exit(2)
    });
    let config = Arc::new(config);
    let listener = TcpListener::bind(&addr).unwrap_or_else(|e| {
        eprintln!("cannot listen on {addr}: {e}");
        std::process::exit(2)
    });
    eprintln!("lf-bench-authz-service listening on {addr}");
    for stream in listener.incoming().flatten() {
        let config = Arc::clone(&config);
        std::thread::spawn(move || {
            let _ = serve(stream, &config);
        });
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One keep-alive connection: parse request, decide, answer; until EOF or a protocol error.
fn serve(stream: TcpStream, config: &Config) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::with_capacity(32 * 1024, stream);
    let mut head = Vec::with_capacity(4096);
    let mut body = Vec::with_capacity(32 * 1024);
    let mut out = Vec::with_capacity(512);
    loop {
        head.clear();
        // Read the head up to the empty line.
        loop {
            let before = head.len();
            let n = reader.read_until(b'\n', &mut head)?;
            if n == 0 {
                return Ok(()); // EOF
            }
            if head.len() > MAX_HEAD {
                return Ok(());
            }
            let line = &head[before..];
            if line == b"\r\n" || line == b"\n" {
                if before == 0 {
                    head.clear(); // stray empty line between requests
                    continue;
                }
                break;
            }
        }
        let text = match std::str::from_utf8(&head) {
            Ok(t) => t,
            Err(_) => return Ok(()),
        };
        let mut lines = text.split("\r\n");
        let request_line = lines.next().unwrap_or("");
        let mut parts = request_line.split(' ');
        let method = parts.next().unwrap_or("");
        let target = parts.next().unwrap_or("/");
        let mut pairs: Vec<(String, &[u8])> = Vec::with_capacity(16);
        let mut content_length = 0usize;
        let mut close = false;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let name = name.trim().to_ascii_lowercase();
            let value = value.trim();
            match name.as_str() {
                "content-length" => content_length = value.parse().unwrap_or(usize::MAX),
                "connection" if value.eq_ignore_ascii_case("close") => close = true,
                "transfer-encoding" => return Ok(()), // not sent by Envoy's ext_authz
                _ => {}
            }
            pairs.push((name, value.as_bytes()));
        }
        if content_length > config.max_body_bytes.saturating_add(1) {
            return Ok(());
        }
        body.clear();
        body.resize(content_length, 0);
        reader.read_exact(&mut body)?;

        let (status, verified, error) = decide(config, method, target, &pairs, &body);
        out.clear();
        match verified {
            Some(v) => {
                let _ = write!(
                    out,
                    "HTTP/1.1 200 OK\r\nx-lf-verified: {v}\r\ncontent-length: 0\r\n\r\n"
                );
            }
            None => {
                let b = reply_body(error, "");
                let _ = write!(
                    out,
                    "HTTP/1.1 {status} Denied\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{b}",
                    b.len()
                );
            }
        }
        writer.write_all(&out)?;
        if close {
            return Ok(());
        }
    }
}

/// (status, x-lf-verified value if allowed, reason if denied)
fn decide(
    config: &Config,
    method: &str,
    target: &str,
    pairs: &[(String, &[u8])],
    body: &[u8],
) -> (u32, Option<String>, lf_webhook_guard::Reason) {
    let path = target.as_bytes();
    let Some(route) = config
        .route_for(path)
        .and_then(|r| config.routes.iter().position(|x| std::ptr::eq(x, r)))
    else {
        return (200, Some(String::from("unprotected")), lf_webhook_guard::Reason::InternalError);
    };
    let head = RequestHead::from_pairs(
        std::iter::once((":method", method.as_bytes()))
            .chain(pairs.iter().map(|(k, v)| (k.as_str(), *v))),
    );
    let result: Result<Accepted<'_>, Rejection> = match lf_webhook_guard::verify::check_head(&config, route, &head) {
        Err(r) => Err(r),
        Ok(HeadVerdict::ForwardUnsigned) => Ok(Accepted::Unsigned),
        Ok(HeadVerdict::NeedBody(pending)) => lf_webhook_guard::verify::verify_body(&config, &pending, body, now_ms()),
    };
    match result {
        Ok(a) => (200, Some(a.header_value()), lf_webhook_guard::Reason::InternalError),
        Err(r) => (r.reason.status(), None, r.reason),
    }
}
