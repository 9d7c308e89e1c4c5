//! `cargo bench --bench profile -- <md5|cube|forged|plain> <size> <iterations>`: runs one core
//! operation in a loop, for callgrind (bench/callgrind.sh) and allocation counting. Prints the
//! number of heap allocations per call (a counting global allocator).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use lf_webhook_guard::{sign_cube, sign_md5, Config, HeadVerdict, MediaType, RequestHead};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);

#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(l.size(), Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(n, Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SECRET: &str = "bench-secret-0123=xyz";
const CUBE_ID: &str = "Ou8a5lyzPjN86ikmLeFC";
const CUBE_KEY: &str = "3QY0I6jA6jOfeIQbOde3CG2DeOllV1zufpFR393my78h3tCn7P1IfyUIhV3cS8ks";

fn body(size: usize) -> Vec<u8> {
    let mut out = String::from(
        r#"{"partner_code":"P123456","sim_id":"89860220190123456789","imsi":"4230001234567","message_type":"Text","text_message":"device status: 1234","received_at":"1642385160000""#,
    );
    let filler = "abcdefghij klmnopqrstuvwxyz:0123456789-".repeat(8);
    let mut i = 0;
    while out.len() + 1 < size {
        let room = size - out.len() - 1;
        let overhead = format!(r#","f{i:02}":"""#).len();
        if room <= overhead {
            out.push_str(&" ".repeat(room));
            break;
        }
        let n = (room - overhead).min(200);
        out.push_str(&format!(r#","f{i:02}":"{}""#, &filler[..n]));
        i += 1;
    }
    out.push('}');
    out.into_bytes()
}

#[inline(never)]
fn verify_loop(
    config: &Config,
    pending: &lf_webhook_guard::Pending,
    body: &[u8],
    n: usize,
) -> usize {
    let mut ok = 0;
    for _ in 0..n {
        ok += usize::from(
            lf_webhook_guard::verify::verify_body(config, pending, black_box(body), 0).is_ok(),
        );
    }
    ok
}

#[inline(never)]
fn plain_loop(text: &[u8], n: usize) -> u8 {
    use md5::{Digest, Md5};
    let mut x = 0;
    for _ in 0..n {
        x ^= Md5::digest(black_box(text))[0];
    }
    x
}

/// The request headers as Envoy hands them to the filter (HTTP/1.1 client, Python http.client).
fn envoy_headers<'a>(path: &'a str, sig: &'a str, len: &'a str) -> Vec<(&'a str, &'a [u8])> {
    let mut h: Vec<(&str, &[u8])> = vec![
        (":authority", b"127.0.0.1:10000"),
        (":path", path.as_bytes()),
        (":method", b"POST"),
        (":scheme", b"http"),
        ("accept-encoding", b"identity"),
        ("content-length", len.as_bytes()),
        ("content-type", b"application/json"),
    ];
    if !sig.is_empty() {
        h.push(("x-lf-md5", sig.as_bytes()));
    }
    h.push(("x-forwarded-proto", b"http"));
    h.push(("x-request-id", b"7d5e2a3c-8f1b-4c2d-9e6a-0b1c2d3e4f50"));
    h
}

/// The whole per-request flow as the glue drives it (headers, body, response), no host calls.
#[inline(never)]
fn flow_loop(
    config: &std::rc::Rc<Config>,
    headers: &[(&str, &[u8])],
    body: &[u8],
    n: usize,
) -> usize {
    use lf_webhook_guard::flow::{Flow, Next};
    let mut passed = 0;
    for i in 0..n {
        let mut flow = Flow::new(Some(config.clone()), i as u32, false);
        let clock = || 1_700_000_000_000u64;
        let steps = flow.on_request_headers(black_box(headers), body.is_empty(), clock);
        if steps.next == Next::Pause || steps.next == Next::Continue {
            let steps = flow.on_request_body(body.len(), true, clock, None);
            if let Next::ReadBody(size) = steps.next {
                let steps = flow.on_body_read(black_box(&body[..size]), clock());
                passed += usize::from(steps.next == Next::Continue);
            }
        }
        black_box(flow.on_response_headers());
        flow.on_done(None);
    }
    passed
}

fn flow_main(what: &str, size: usize, n: usize) {
    let json = br#"{"keys":[{"id":"demo","secret":"bench-secret-0123=xyz","schemes":["md5"]}],
        "posture":"deny","exempt":[{"path_exact":"/health"},{"path_exact":"/linksfield/health"}],
        "routes":[{"name":"linksfield","path_prefix":"/linksfield/","methods":["POST"],"scheme":"md5"}],
        "max_body_bytes":65536}"#;
    let config = std::rc::Rc::new(Config::from_json(json, |_| None).unwrap());
    let body = body(size);
    let sig = sign_md5(MediaType::Json, &body, &config.md5, SECRET.as_bytes()).unwrap();
    let len = body.len().to_string();
    let (path, sig) = match what {
        "flow-md5" => ("/linksfield/sms", sig.as_str()),
        _ => ("/health", ""),
    };
    let headers = envoy_headers(path, sig, &len);
    let passed = counted(n, || flow_loop(&config, &headers, &body, n));
    let (passed, allocs) = passed;
    println!("{what} {size} B x{n}: passed={passed}; {allocs}");
}

/// Run `f` (`n` calls of an operation) and say how many heap allocations each call made (the
/// line bench/callgrind.sh reads).
fn counted<T>(n: usize, f: impl FnOnce() -> T) -> (T, String) {
    let (a0, b0) = (ALLOCS.load(Relaxed), BYTES.load(Relaxed));
    let out = f();
    let (a1, b1) = (ALLOCS.load(Relaxed), BYTES.load(Relaxed));
    let line = format!(
        "heap allocations per call: {:.1} ({:.0} bytes)",
        (a1 - a0) as f64 / n as f64,
        (b1 - b0) as f64 / n as f64
    );
    (out, line)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let what = args.first().map_or("md5", String::as_str);
    let size: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1024);
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1000);
    if what.starts_with("flow-") {
        return flow_main(what, size, n);
    }
    let json = format!(
        r#"{{"keys":[{{"id":"bench","secret":"{SECRET}","schemes":["md5"]}},
                    {{"id":"{CUBE_ID}","secret":"{CUBE_KEY}","schemes":["cube"]}}],
            "routes":[{{"name":"md5","path_prefix":"/linksfield/","scheme":"md5"}},
                      {{"name":"cube","path_prefix":"/cube/","scheme":"cube"}}]}}"#
    );
    let config = Config::from_json(json.as_bytes(), |_| None).unwrap();
    let body = body(size);
    let (route, head_sig, cube_sig);
    let md5_sig = sign_md5(MediaType::Json, &body, &config.md5, SECRET.as_bytes()).unwrap();
    let forged_sig = sign_md5(MediaType::Json, &body, &config.md5, b"wrong").unwrap();
    cube_sig = sign_cube(
        &body,
        "1.0",
        "HMAC-SHA1",
        "1683524066000",
        CUBE_ID,
        CUBE_KEY.as_bytes(),
    )
    .unwrap();
    let head = match what {
        "cube" => {
            route = 1;
            RequestHead::from_pairs([
                (":method", &b"POST"[..]),
                ("content-type", b"application/json"),
                ("x-lf-signature", cube_sig.as_bytes()),
                ("x-lf-notification-version", b"1.0"),
                ("x-lf-algo", b"HMAC-SHA1"),
                ("x-lf-timestamp", b"1683524066000"),
            ])
        }
        _ => {
            route = 0;
            head_sig = if what == "forged" {
                &forged_sig
            } else {
                &md5_sig
            };
            RequestHead::from_pairs([
                (":method", &b"POST"[..]),
                ("content-type", b"application/json"),
                ("x-lf-md5", head_sig.as_bytes()),
            ])
        }
    };
    let Ok(HeadVerdict::NeedBody(pending)) =
        lf_webhook_guard::verify::check_head(&config, route, &head)
    else {
        panic!("head rejected")
    };
    if what == "plain" {
        let params = lf_webhook_guard::Params::parse(MediaType::Json, &body, &config.md5).unwrap();
        let mut text = Vec::new();
        lf_webhook_guard::canonical::md5_prefix(&params, config.md5.empty_values, |b| {
            text.extend_from_slice(b)
        });
        text.extend_from_slice(SECRET.as_bytes());
        let x = plain_loop(&text, n);
        println!("plain md5 over {} canonical bytes x{n}: {x}", text.len());
        return;
    }
    let (ok, allocs) = counted(n, || verify_loop(&config, &pending, &body, n));
    println!("{what} {size} B x{n}: ok={ok}; {allocs}");
}
