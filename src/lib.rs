//! # lf-webhook-guard
//!
//! Verifies Linksfield webhook signatures at the edge. This crate is two things:
//!
//! - the **verification core** (this library, plain Rust, no proxy-wasm): plugin configuration,
//!   body parsing, the canonical signed text, signature schemes and the verdict table;
//! - the **Envoy filter** ([`filter`], compiled only for `wasm32`): a thin proxy-wasm layer that
//!   holds a request until its body is verified and then forwards it or answers locally.
//!
//! The CLI (`src/bin/lf-webhook-guard/main.rs`) uses the same core.
//!
//! ```
//! use lf_webhook_guard::{Config, HeadVerdict, RequestHead, MediaType, sign_md5};
//! use lf_webhook_guard::verify::{check_head, verify_body};
//!
//! let config = Config::from_json(
//!     br#"{"keys":[{"id":"k1","secret":"s3cret"}],"routes":[{"path_prefix":"/linksfield/"}]}"#,
//!     |_| None,
//! ).unwrap();
//! let body = br#"{"sim_id":"8986","text_message":"hi"}"#;
//! let sig = sign_md5(MediaType::Json, body, &config.md5, b"s3cret").unwrap();
//! let head = RequestHead::from_pairs([
//!     (":method", &b"POST"[..]),
//!     ("content-type", b"application/json"),
//!     ("x-lf-md5", sig.as_bytes()),
//! ]);
//! let route = config.routes.iter().position(|r| r.name == "route0").unwrap();
//! let HeadVerdict::NeedBody(pending) = check_head(&config, route, &head).unwrap() else { panic!() };
//! let now_ms = 1_700_000_000_000; // only used by routes with a freshness window
//! let accepted = verify_body(&config, &pending, body, now_ms).unwrap();
//! assert_eq!(accepted.header_value(), "md5; key=k1");
//! ```

pub mod body;
pub mod canonical;
pub mod config;
pub mod dedup;
pub mod flow;
pub mod freshness;
pub mod headers;
pub mod hold;
pub mod keys;
pub mod log;
pub mod metrics;
pub mod route;
pub mod scheme;
pub mod verdict;
pub mod verify;

#[cfg(target_arch = "wasm32")]
pub mod filter;

pub use body::{MediaType, Params};
pub use config::{Config, ConfigError};
pub use verdict::{Accepted, Reason, Rejection, Scheme, VERIFIED_HEADER};
pub use verify::{
    sign_cube, sign_md5, HeadVerdict, HeaderValue, Pending, RequestHead, CUBE_ALGO_HEADER,
    CUBE_SIGNATURE_HEADER, CUBE_TIMESTAMP_HEADER, CUBE_VERSION_HEADER, MD5_HEADER,
};
