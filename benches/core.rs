//! Micro-benchmarks of the native verification core (run with `make bench`, or
//! `cargo bench --bench core`). For each body size: the whole md5 path (`verify_body`: parse,
//! canonicalise, sign, constant-time compare) next to plain MD5 over the same canonical bytes
//! (the physical floor of the legacy scheme), the head checks, the forged path and the Cube path.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lf_webhook_guard::{sign_cube, sign_md5, Config, HeadVerdict, MediaType, RequestHead};
use md5::{Digest, Md5};

const SECRET: &str = "bench-secret-0123=xyz";
const CUBE_ID: &str = "Ou8a5lyzPjN86ikmLeFC";
const CUBE_KEY: &str = "3QY0I6jA6jOfeIQbOde3CG2DeOllV1zufpFR393my78h3tCn7P1IfyUIhV3cS8ks";
const SIZES: [usize; 3] = [256, 1024, 16384];

/// A flat JSON notification of exactly `size` bytes, as bench/run.py makes them.
fn body(size: usize) -> Vec<u8> {
    let mut out = String::from(
        r#"{"partner_code":"P123456","sim_id":"89860220190123456789","imsi":"4230001234567","message_type":"Text","text_message":"device status: 1234","received_at":"1642385160000""#,
    );
    let filler = "abcdefghij klmnopqrstuvwxyz:0123456789-".repeat(8);
    let mut i = 0;
    while out.len() + 1 < size {
        let room = size - out.len() - 1; // keep one byte for `}`
        let overhead = format!(r#","f{i:02}":"""#).len();
        if room <= overhead {
            out.push_str(&" ".repeat(room)); // white space: still the same object
            break;
        }
        let n = (room - overhead).min(200);
        out.push_str(&format!(r#","f{i:02}":"{}""#, &filler[..n]));
        i += 1;
    }
    out.push('}');
    assert_eq!(out.len(), size);
    out.into_bytes()
}

/// The legacy signed text for `body` (sorted `k=v&...&SECRET`), for the plain-MD5 floor.
fn canonical(body: &[u8]) -> Vec<u8> {
    let opts = Default::default();
    let params = lf_webhook_guard::Params::parse(MediaType::Json, body, &opts).unwrap();
    let mut out = Vec::new();
    lf_webhook_guard::canonical::md5_prefix(&params, opts.empty_values, |b| {
        out.extend_from_slice(b)
    });
    out.extend_from_slice(SECRET.as_bytes());
    out
}

fn config() -> Config {
    let json = format!(
        r#"{{"keys":[{{"id":"bench","secret":"{SECRET}","schemes":["md5"]}},
                    {{"id":"{CUBE_ID}","secret":"{CUBE_KEY}","schemes":["cube"]}}],
            "routes":[{{"name":"md5","path_prefix":"/linksfield/","scheme":"md5"}},
                      {{"name":"cube","path_prefix":"/cube/","scheme":"cube"}}]}}"#
    );
    Config::from_json(json.as_bytes(), |_| None).unwrap()
}

fn md5(c: &mut Criterion) {
    let config = config();
    let route = 0;
    let mut g = c.benchmark_group("md5");
    for size in SIZES {
        let body = body(size);
        let sig = sign_md5(MediaType::Json, &body, &config.md5, SECRET.as_bytes()).unwrap();
        let forged = sign_md5(MediaType::Json, &body, &config.md5, b"wrong").unwrap();
        let head = |sig: &'static [u8]| {
            RequestHead::from_pairs([
                (":method", &b"POST"[..]),
                ("content-type", b"application/json"),
                ("x-lf-md5", sig),
            ])
        };
        let sig: &'static [u8] = Box::leak(sig.into_bytes().into_boxed_slice());
        let forged: &'static [u8] = Box::leak(forged.into_bytes().into_boxed_slice());
        let Ok(HeadVerdict::NeedBody(pending)) =
            lf_webhook_guard::verify::check_head(&config, route, &head(sig))
        else {
            panic!("head rejected")
        };
        let Ok(HeadVerdict::NeedBody(pending_forged)) =
            lf_webhook_guard::verify::check_head(&config, route, &head(forged))
        else {
            panic!("head rejected")
        };
        let text = canonical(&body);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("verify_body", size), &body, |b, body| {
            b.iter(|| {
                lf_webhook_guard::verify::verify_body(&config, &pending, black_box(body), 0)
                    .unwrap()
            })
        });
        g.bench_with_input(
            BenchmarkId::new("plain_md5_floor", size),
            &text,
            |b, text| b.iter(|| Md5::digest(black_box(text))),
        );
        g.bench_with_input(BenchmarkId::new("head+verify", size), &body, |b, body| {
            b.iter(|| {
                let Ok(HeadVerdict::NeedBody(p)) =
                    lf_webhook_guard::verify::check_head(&config, route, &head(sig))
                else {
                    unreachable!()
                };
                lf_webhook_guard::verify::verify_body(&config, &p, black_box(body), 0).unwrap()
            })
        });
        g.bench_with_input(BenchmarkId::new("forged", size), &body, |b, body| {
            b.iter(|| {
                lf_webhook_guard::verify::verify_body(&config, &pending_forged, black_box(body), 0)
                    .unwrap_err()
            })
        });
    }
    g.finish();
}

fn cube(c: &mut Criterion) {
    let config = config();
    let route = 1;
    let mut g = c.benchmark_group("cube");
    for size in SIZES {
        let body = body(size);
        let sig = sign_cube(
            &body,
            "1.0",
            "HMAC-SHA1",
            "1683524066000",
            CUBE_ID,
            CUBE_KEY.as_bytes(),
        )
        .unwrap();
        let head = RequestHead::from_pairs([
            (":method", &b"POST"[..]),
            ("content-type", b"application/json"),
            ("x-lf-signature", sig.as_bytes()),
            ("x-lf-notification-version", b"1.0"),
            ("x-lf-algo", b"HMAC-SHA1"),
            ("x-lf-timestamp", b"1683524066000"),
        ]);
        let Ok(HeadVerdict::NeedBody(pending)) =
            lf_webhook_guard::verify::check_head(&config, route, &head)
        else {
            panic!("head rejected")
        };
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("verify_body", size), &body, |b, body| {
            b.iter(|| {
                lf_webhook_guard::verify::verify_body(&config, &pending, black_box(body), 0)
                    .unwrap()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, md5, cube);
criterion_main!(benches);
