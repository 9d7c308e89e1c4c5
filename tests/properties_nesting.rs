//! Property tests of nesting, through the crate's public API only: nesting never recurses
//! without bound. 10,000 and 100,000 levels deep, and arbitrary depth, are checked on a thread
//! with a small stack (`SMALL_STACK`); arbitrary depth is accepted exactly when the oracle's
//! strict parser, with the documented limit of 32 levels, accepts it.

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
use lf_webhook_guard::{sign_cube, sign_md5, Config, MediaType, Params};
use proptest::prelude::*;

use common::oracle_cube;
use common::props::*;

/// Bodies nested `depth` levels deep, in every shape: objects, arrays, mixed, unclosed, and
/// the same brackets inside a string (which is plain text and must be accepted).
fn deep_bodies(depth: usize) -> Vec<(&'static str, Vec<u8>)> {
    let closed = |open: &str, close: &str, leaf: &str| {
        let mut s = String::from("{\"a\":");
        s.push_str(&open.repeat(depth));
        s.push_str(leaf);
        s.push_str(&close.repeat(depth));
        s.push('}');
        s.into_bytes()
    };
    vec![
        ("objects", closed("{\"a\":", "}", "1")),
        ("arrays", closed("[", "]", "1")),
        ("mixed", closed("[{\"a\":", "}]", "null")),
        (
            "bare arrays",
            format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes(),
        ),
        ("unclosed objects", "{\"a\":".repeat(depth).into_bytes()),
        (
            "unclosed arrays",
            format!("{{\"a\":{}", "[".repeat(depth)).into_bytes(),
        ),
        (
            "form brackets",
            format!("a={}", "[".repeat(depth)).into_bytes(),
        ),
        (
            "in a string",
            format!("{{\"a\":\"{}{}\"}}", "[{".repeat(depth), "}]".repeat(depth)).into_bytes(),
        ),
    ]
}

/// Every parser that sees a body or a config, on one deep input. Returns whether the md5 and
/// Cube decisions accepted it.
fn parse_deep(body: &[u8]) -> (bool, bool) {
    let c = config("s3cret", "kid", "key");
    for media in [MediaType::Json, MediaType::Form] {
        for nested_values in [NestedValues::Reject, NestedValues::Raw] {
            let opts = Md5Options {
                nested_values,
                ..Md5Options::default()
            };
            if let Ok(p) = Params::parse(media, body, &opts) {
                md5_prefix(&p, EmptyValues::Keep, |_| {});
            }
        }
    }
    if let Ok(j) = Json::parse(body) {
        cube_json(&j, &mut |_| {});
    }
    let _ = body::json_members_as_sent(body);
    let _ = Config::from_json(body, env);
    let _ = oracle_cube(body);
    let md5 = sign_md5(MediaType::Json, body, &Md5Options::default(), b"s3cret")
        .map(|sig| {
            decide(
                &c,
                MD5_PATH,
                &md5_head(b"application/json", sig.as_bytes()),
                body,
            )
            .is_ok()
        })
        .unwrap_or(false);
    let h = CubeHeaders {
        version: "1.0".into(),
        algo: "HMAC-SHA1".into(),
        timestamp: "1".into(),
    };
    let cube = sign_cube(body, "1.0", "HMAC-SHA1", "1", "kid", b"key")
        .map(|sig| decide(&c, CUBE_PATH, &cube_head(&h, sig.as_bytes()), body).is_ok())
        .unwrap_or(false);
    (md5, cube)
}

#[test]
fn deep_nesting_is_rejected_without_deep_recursion() {
    for depth in [10_000, 100_000] {
        for (shape, body) in deep_bodies(depth) {
            let (md5, cube) = on_small_stack(move || parse_deep(&body));
            let in_string = shape == "in a string";
            assert_eq!(
                (md5, cube),
                (in_string, in_string),
                "{shape} at depth {depth}"
            );
        }
        // A config nested as deep, in a field the parser keeps as a JSON value (`dedup`).
        let config = format!(
            r#"{{"keys":[{{"id":"k","secret":"s"}}],"routes":[{{"path_prefix":"/a"}}],"dedup":{}1{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let err = on_stack(CONFIG_STACK, move || {
            Config::from_json(config.as_bytes(), env).map(|_| ())
        });
        assert!(err.is_err(), "deep config at depth {depth}");
    }
}

proptest! {
    #![proptest_config(cases(64, 4))]

    /// Arbitrary depth and shape: accepted (Cube) exactly when the independent parser, with
    /// the documented limit of 32 levels, accepts it; never a stack overflow.
    #[test]
    fn arbitrary_depth(
        shape in prop::collection::vec(0u8..3, 0..3000),
        leaf in prop::sample::select(vec!["1", "\"x\"", "null", "[]", "{}"]),
        close in any::<bool>(),
    ) {
        let mut body = String::from("{\"k\":");
        for s in &shape {
            body.push_str(match s { 0 => "[", 1 => "{\"a\":", _ => "[0," });
        }
        body.push_str(leaf);
        if close {
            for s in shape.iter().rev() {
                body.push_str(if *s == 1 { "}" } else { "]" });
            }
        }
        body.push('}');
        let expected = oracle_cube(body.as_bytes()).is_some();
        let bytes = body.into_bytes();
        let (_, cube) = on_small_stack(move || parse_deep(&bytes));
        prop_assert_eq!(cube, expected);
    }
}
