//! Property tests on arbitrary and hostile input, through the crate's public API only: the
//! parsers never panic (body parsers, content types, canonicalisers, signature headers, the
//! whole head + body decision, the config parser, timestamps), and untrusted text that reaches
//! log lines and replies is sanitised.
//!
//! Case counts are modest so that `cargo test` stays quick; `PROPTEST_CASES` overrides them
//! (`make fuzz` runs many more in release).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use lf_webhook_guard::body::{self, Json};
use lf_webhook_guard::canonical::{cube_json, md5_prefix};
use lf_webhook_guard::config::{EmptyValues, Md5Options, NestedValues};
use lf_webhook_guard::scheme::{cube, md5 as md5_scheme};
use lf_webhook_guard::verify::HeaderValue;
use lf_webhook_guard::{
    freshness, sign_cube, sign_md5, Config, HeadVerdict, MediaType, Params, Reason, RequestHead,
    CUBE_ALGO_HEADER, CUBE_SIGNATURE_HEADER, CUBE_TIMESTAMP_HEADER, CUBE_VERSION_HEADER,
    MD5_HEADER,
};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::json;

use common::props::*;

/// Bytes that look like JSON or form text more often than uniform bytes do, so that the
/// parsers get past their first byte.
fn json_ish() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..64),
        3 => prop::collection::vec(
            prop_oneof![
                3 => prop::sample::select(
                    b"{}[]\",:\\/ \t\n0123456789.eE+-truefalsnu\\u00e9dD8&=%+aAbB".to_vec()
                ),
                1 => any::<u8>(),
            ],
            0..64,
        ),
        2 => (nested_object(), prop::collection::vec(any::<u8>(), 1..8), any::<Index>(), mutation_byte())
            .prop_map(|(m, ws, at, b)| {
                let body = render_body(&m, ws);
                mutate(&body, at, b).unwrap_or(body)
            }),
        1 => form_body().prop_map(|(_, b)| b),
    ]
}

fn content_type() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..40),
        3 => (
            prop::sample::select(vec![
                "application/json", "APPLICATION/X-WWW-FORM-URLENCODED", "text/plain", "", " ",
                "application/json ", "multipart/form-data",
            ]),
            prop::collection::vec(
                prop::sample::select(vec![
                    ";", "; charset=utf-8", ";charset=\"UTF-8\"", "; charset=", "; charset=\"",
                    "; charset=latin1", "; boundary=x", ";;", "=", "\"", "; charset=\"utf-8",
                ]),
                0..3,
            ),
        )
            .prop_map(|(e, ps)| format!("{e}{}", ps.concat()).into_bytes()),
    ]
}

/// A header as the filter may see it: absent, once (arbitrary or plausible bytes), repeated.
fn header(plausible: &'static [&'static str]) -> impl Strategy<Value = (u8, Vec<u8>)> {
    (
        0u8..4,
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..60),
            prop::sample::select(plausible.to_vec()).prop_map(|s| s.as_bytes().to_vec()),
        ],
    )
}

/// A rich valid configuration: every field of the schema is used somewhere.
fn full_config() -> serde_json::Value {
    json!({
        "keys": [
            {"id": "old", "secret": "first-secret"},
            {"id": "p1", "secret": "partner-one", "partners": ["P1"], "schemes": ["md5"]},
            {"id": "cube-key", "secret_env": "LF_SECRET", "schemes": ["cube", "md5"]},
            {"id_env": "LF_ID", "secret": "x"}
        ],
        "routes": [
            {"name": "lf", "path_prefix": "/linksfield/", "keys": ["old", "p1"], "methods": ["POST", "PUT"]},
            {"name": "cube", "path_exact": "/cube", "scheme": "cube", "keys": ["cube-key"],
             "freshness": {"max_age_seconds": 600, "max_future_skew_seconds": 60}},
            {"name": "auto", "path_prefix": "/auto/", "scheme": "auto", "allow_unsigned": true,
             "partner_field": "partner_code", "mode": "shadow", "dedup": false,
             "freshness": {"max_age_seconds": 86400, "body_field": "received_at",
                           "body_field_utc_offset": "+08:00"}},
            {"path_prefix": "/d/", "dedup": {"window_seconds": 60, "max_entries": 100}}
        ],
        "max_body_bytes": 4096,
        "md5": {"empty_values": "skip", "nested_values": "raw"},
        "mode": "enforce",
        "dedup": {"window_seconds": 30},
        "log_level": "debug",
        "hold_headers": true,
        "hold_timeout_ms": 2000
    })
}

/// Arbitrary JSON values, with the schema's own words and edge numbers among the leaves.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        prop::sample::select(vec![
            0u64,
            1,
            59,
            60,
            600_000,
            600_001,
            604_800,
            604_801,
            1_000_000,
            1_000_001,
            8_388_608,
            8_388_609,
            u64::from(u32::MAX) + 1,
            u64::MAX
        ])
        .prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(serde_json::Value::String),
        prop::sample::select(vec![
            "",
            "md5",
            "cube",
            "auto",
            "shadow",
            "enforce",
            "skip",
            "keep",
            "raw",
            "reject",
            "trace",
            "debug",
            "off",
            "POST",
            "post",
            "/",
            "/a",
            "a",
            "x y",
            "LF_SECRET",
            "EMPTY",
            "NOPE",
            "+08:00",
            "-99:99",
            "+14:59",
            "Z",
            "+2147483647:00",
            "old",
            "cube-key",
            "partner_code",
            "received_at",
            "window_seconds",
        ])
        .prop_map(|s| serde_json::Value::String(s.into())),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::vec((field_name(), inner), 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "keys",
            "routes",
            "id",
            "id_env",
            "secret",
            "secret_env",
            "schemes",
            "partners",
            "name",
            "path_exact",
            "path_prefix",
            "methods",
            "scheme",
            "allow_unsigned",
            "partner_field",
            "freshness",
            "max_age_seconds",
            "max_future_skew_seconds",
            "body_field",
            "body_field_utc_offset",
            "mode",
            "dedup",
            "window_seconds",
            "max_entries",
            "max_body_bytes",
            "md5",
            "empty_values",
            "nested_values",
            "log_level",
            "hold_headers",
            "hold_timeout_ms",
            "hold_deadline_ms",
        ])
        .prop_map(String::from),
        ".{0,8}",
    ]
}

/// Every node of a JSON value, as a path of object keys / array indices.
fn paths(
    v: &serde_json::Value,
    at: &mut Vec<serde_json::Value>,
    out: &mut Vec<Vec<serde_json::Value>>,
) {
    out.push(at.clone());
    match v {
        serde_json::Value::Object(m) => {
            for (k, child) in m {
                at.push(json!(k));
                paths(child, at, out);
                at.pop();
            }
        }
        serde_json::Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                at.push(json!(i));
                paths(child, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn node_mut<'v>(
    v: &'v mut serde_json::Value,
    path: &[serde_json::Value],
) -> &'v mut serde_json::Value {
    path.iter().fold(v, |v, step| match step {
        serde_json::Value::String(k) => v.get_mut(k.as_str()).unwrap(),
        n => v.get_mut(n.as_u64().unwrap() as usize).unwrap(),
    })
}

/// A valid config with one structural change: a node replaced by an arbitrary value, removed,
/// given an extra (known or unknown) field, or an array element duplicated.
fn mutated_config() -> impl Strategy<Value = serde_json::Value> {
    (any::<Index>(), 0u8..4, json_value(), field_name()).prop_map(|(at, op, value, name)| {
        let mut config = full_config();
        let mut all = Vec::new();
        paths(&config, &mut Vec::new(), &mut all);
        let path = at.get(&all).clone();
        match (op, path.split_last()) {
            (1, Some((last, parent))) => match node_mut(&mut config, parent) {
                serde_json::Value::Object(m) => {
                    m.remove(last.as_str().unwrap());
                }
                serde_json::Value::Array(items) => {
                    items.remove(last.as_u64().unwrap() as usize);
                }
                _ => {}
            },
            (2, _) => {
                if let serde_json::Value::Object(m) = node_mut(&mut config, &path) {
                    m.insert(name, value);
                }
            }
            (3, _) => {
                if let serde_json::Value::Array(items) = node_mut(&mut config, &path) {
                    if let Some(first) = items.first().cloned() {
                        items.push(first);
                    }
                }
            }
            _ => *node_mut(&mut config, &path) = value,
        }
        config
    })
}

/// Everything the filter does with a request, on arbitrary input: must return, never panic.
fn run_everything(c: &Config, route: usize, head: &RequestHead<'_>, body: &[u8], now: u64) {
    if let Ok(HeadVerdict::NeedBody(p)) = lf_webhook_guard::verify::check_head(c, route, head) {
        let _ = lf_webhook_guard::verify::verified_at_head(c, &p);
        let _ = p.partner_hint(c, body);
        let _ = p.dedup_identity("route", body);
        if let Ok(a) = lf_webhook_guard::verify::verify_body(c, &p, body, now) {
            let _ = a.header_value();
        }
    }
}

proptest! {
    #![proptest_config(cases(256, 1))]

    /// Body parsers, under every media type and md5 option, and both canonicalisers.
    #[test]
    fn body_parsers_never_panic(body in json_ish(), ct in content_type()) {
        let _ = body::media_type(&ct);
        let _ = body::sniff(&body);
        for media in [MediaType::Json, MediaType::Form] {
            for empty_values in [EmptyValues::Keep, EmptyValues::Skip] {
                for nested_values in [NestedValues::Reject, NestedValues::Raw] {
                    let opts = Md5Options { empty_values, nested_values, value_types: lf_webhook_guard::config::ValueTypes::Any };
                    match Params::parse(media, &body, &opts) {
                        Ok(p) => {
                            let mut n = 0;
                            md5_prefix(&p, empty_values, |b| n += b.len());
                            let _ = p.signed(empty_values).count();
                            let _ = p.get("partner_code");
                        }
                        Err(r) => prop_assert!(matches!(
                            r.reason,
                            Reason::MalformedBody | Reason::UnsupportedMediaType
                        )),
                    }
                    let _ = sign_md5(media, &body, &opts, b"k");
                }
            }
        }
        match Json::parse(&body) {
            Ok(j) => {
                let mut n = 0;
                cube_json(&j, &mut |b: &[u8]| n += b.len());
                let _ = j.top_level_str("partner_code");
            }
            Err(r) => prop_assert_eq!(r.reason, Reason::MalformedBody),
        }
        let _ = sign_cube(&body, "1.0", "HMAC-SHA1", "1", "k", b"k");
        let _ = body::json_members_as_sent(&body);
        let _ = body::form_pairs_as_sent(&body);
    }

    /// The whole decision with arbitrary header values (absent, once, repeated) and bodies,
    /// on every route of a configuration that uses every option.
    #[test]
    fn decision_never_panics(
        method in prop_oneof![
            prop::sample::select(vec!["POST", "PUT", "GET", "post", ""]).prop_map(|s| s.as_bytes().to_vec()),
            prop::collection::vec(any::<u8>(), 0..8),
        ],
        ct in content_type(),
        cl in header(&["0", "12", " 12 ", "-1", "99999999999999999999999", "4097", "1e3"]),
        md5h in header(&["MzQyMjUyYTExMjUxZTlhZjY1ZjY4YTQ3MDAyNzU1YTA=", "AAAA", " "]),
        sig in header(&["cube-key/pnWR3hcrEXQWV8S+RY0DMjEN9ec=", "old/", "/", "cube-key//////////////////////////////"]),
        ver in header(&["1.0", "1:0", ""]),
        algo in header(&["HMAC-SHA1", "hmac-sha1", "HMAC-SHA256"]),
        ts in header(&["12345648444", "99999999999999999999", "0", "1700000000000"]),
        ct_count in 0u8..4,
        body in json_ish(),
        now in any::<u64>(),
    ) {
        let c = Config::from_json(&serde_json::to_vec(&full_config()).unwrap(), env).unwrap();
        let push = |name: &'static str, (count, value): &(u8, Vec<u8>), pairs: &mut Vec<(&'static str, Vec<u8>)>| {
            for _ in 0..(*count).min(2) {
                pairs.push((name, value.clone()));
            }
        };
        let mut pairs: Vec<(&'static str, Vec<u8>)> = vec![(":method", method)];
        push("content-type", &(ct_count, ct), &mut pairs);
        push("content-length", &cl, &mut pairs);
        push(MD5_HEADER, &md5h, &mut pairs);
        push(CUBE_SIGNATURE_HEADER, &sig, &mut pairs);
        push(CUBE_VERSION_HEADER, &ver, &mut pairs);
        push(CUBE_ALGO_HEADER, &algo, &mut pairs);
        push(CUBE_TIMESTAMP_HEADER, &ts, &mut pairs);
        let head = RequestHead::from_pairs(pairs.iter().map(|(n, v)| (*n, v.as_slice())));
        for route in 0..c.routes.len() + 1 {
            run_everything(&c, route, &head, &body, now);
        }
    }

    /// Signature header parsers and the md5 comparison, on arbitrary bytes.
    #[test]
    fn signature_parsers_never_panic(
        h in prop::collection::vec(any::<u8>(), 0..64),
        a in prop::collection::vec(any::<u8>(), 0..16),
        b in prop::collection::vec(any::<u8>(), 0..24),
    ) {
        let _ = cube::parse_signature(&h);
        let _ = cube::signed_prefix(&h, &a, &b);
        let _ = cube::signed_prefix(b"1.0", b"HMAC-SHA1", &b);
        let mut s = md5_scheme::Md5Signer::new();
        s.update(&a);
        let secrets: [&[u8]; 2] = [&b, b"k"];
        prop_assert!(s.verify(&h, secrets).is_err() || h.trim_ascii().len() == 44);
        let mut v = HeaderValue::Absent;
        v.push(&h);
    }

    /// Timestamps: legacy body times (epoch ms, provider date formats, garbage), any UTC
    /// offset, and the window check at the extremes of u64.
    #[test]
    fn timestamps_never_panic(
        text in prop_oneof![
            ".{0,24}",
            "[0-9]{0,22}",
            "[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:?[0-9]{2}:?[0-9]{2}Z?",
            "[-+0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{6}",
        ],
        offset in any::<i32>(),
        sent in any::<u64>(),
        now in any::<u64>(),
        age in any::<u64>(),
        skew in any::<u64>(),
    ) {
        let _ = freshness::parse_body_time(&text, offset);
        let _ = freshness::parse_body_time(&text, 0);
        let window = lf_webhook_guard::config::Freshness {
            max_age_ms: age,
            max_future_skew_ms: skew,
            body_field: "received_at".into(),
            body_field_utc_offset_minutes: offset,
        };
        if let Err(r) = freshness::check(&window, sent, now) {
            prop_assert_eq!(r.reason, Reason::StaleNotification);
        }
    }

    /// The config parser on arbitrary bytes and arbitrary JSON values: Ok or a ConfigError.
    #[test]
    fn config_parser_never_panics_on_arbitrary_json(
        raw in prop::collection::vec(any::<u8>(), 0..64),
        value in json_value(),
    ) {
        let _ = Config::from_json(&raw, env);
        if let Ok(c) = Config::from_json(&serde_json::to_vec(&value).unwrap(), env) {
            let _ = c.route_index(b"/a");
        }
    }

    /// The config parser on a valid config with one structural change. When it is still
    /// accepted, the compiled config works: routes, paths and a decision.
    #[test]
    fn config_parser_never_panics_on_mutated_config(
        value in mutated_config(),
        path in prop::collection::vec(any::<u8>(), 0..24),
        body in json_ish(),
    ) {
        let text = serde_json::to_vec(&value).unwrap();
        match Config::from_json(&text, env) {
            Ok(c) => {
                let _ = lf_webhook_guard::route::skeleton(&path);
                let _ = c.classify(&path);
                let _ = c.route_for(&path);
                let head = md5_head(b"application/json", b"MzQyMjUyYTExMjUxZTlhZjY1ZjY4YTQ3MDAyNzU1YTA=");
                for route in 0..c.routes.len() {
                    run_everything(&c, route, &head, &body, NOW);
                }
                let _ = lf_webhook_guard::metrics::MetricTable::new(&c.keys);
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}

proptest! {
    #![proptest_config(cases(256, 1))]

    /// Untrusted text that reaches log lines and JSON replies (request ids, partner codes) is
    /// bounded and confined to `[A-Za-z0-9._:-]`, whatever it was; the reply stays valid JSON.
    #[test]
    fn log_and_reply_text_is_sanitized(raw in prop::collection::vec(any::<u8>(), 0..300), text in ".{0,100}") {
        let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-');
        let id = lf_webhook_guard::verdict::sanitize_request_id(&raw);
        prop_assert!(id.len() <= 128 && id.chars().all(ok));
        let token = lf_webhook_guard::verdict::sanitize(text.chars(), lf_webhook_guard::log::MAX_PARTNER_CHARS);
        prop_assert!(token.chars().count() <= 64 && token.chars().all(ok));
        for reason in Reason::ALL {
            let reply: serde_json::Value =
                serde_json::from_str(&lf_webhook_guard::verdict::reply_body(reason, &id)).unwrap();
            prop_assert_eq!(&reply["request_id"], &json!(id));
            prop_assert_eq!(&reply["error"], &json!(reason.category()));
        }
    }
}

#[test]
fn full_config_is_valid() {
    Config::from_json(&serde_json::to_vec(&full_config()).unwrap(), env).unwrap();
}
