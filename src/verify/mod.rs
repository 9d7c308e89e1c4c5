//! The decision: request head (+ body) -> accept or reject. Pure Rust, no proxy-wasm: the filter,
//! the CLI and the tests all call these free functions with the compiled [`Config`].
//!
//! 1. [`check_head`] runs when the request headers arrive: method, which scheme, the
//!    signature headers (present, single, well-formed; Cube key id known), content type,
//!    `Content-Length` against the limit. An unsigned request on an `allow_unsigned` route is
//!    accepted here, without reading the body.
//! 2. [`verify_body`] runs once the whole body is buffered: size, parse, partner,
//!    canonicalise, constant-time compare, freshness.

use crate::body::{media_type, Json, MediaType, Params};
use crate::canonical::{cube_json, md5_prefix};
use crate::config::{Config, Key, Route, RouteScheme};
use crate::freshness;
use crate::scheme::cube::{self, CubeSigner};
use crate::scheme::md5::Md5Signer;
use crate::verdict::{verified_at_head_value, Accepted, Reason, Rejection, Scheme};

/// Name of the legacy signature header.
pub const MD5_HEADER: &str = "x-lf-md5";
/// Cube headers.
pub const CUBE_SIGNATURE_HEADER: &str = "x-lf-signature";
pub const CUBE_VERSION_HEADER: &str = "x-lf-notification-version";
pub const CUBE_ALGO_HEADER: &str = "x-lf-algo";
pub const CUBE_TIMESTAMP_HEADER: &str = "x-lf-timestamp";
/// Header the filter sets on accepted requests (its values: [`crate::verdict`]).
pub use crate::verdict::VERIFIED_HEADER;

/// A request header as the filter saw it: absent, present once, or repeated (ambiguous).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HeaderValue<'a> {
    #[default]
    Absent,
    One(&'a [u8]),
    Many,
}

impl<'a> HeaderValue<'a> {
    /// Fold one more occurrence of the header into this value.
    pub fn push(&mut self, value: &'a [u8]) {
        *self = match self {
            HeaderValue::Absent => HeaderValue::One(value),
            _ => HeaderValue::Many,
        };
    }

    fn is_absent(&self) -> bool {
        matches!(self, HeaderValue::Absent)
    }

    /// The single value of a required header; absent or repeated is an invalid signature.
    fn required(&self, detail: &'static str) -> Result<&'a [u8], Rejection> {
        match self {
            HeaderValue::One(v) => Ok(v),
            _ => Err(Rejection::new(Reason::InvalidSignature, detail)),
        }
    }
}

/// What the decision needs from the request headers.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestHead<'a> {
    pub method: &'a [u8],
    /// The raw `:path`, query included.
    pub path: &'a [u8],
    pub content_encoding: HeaderValue<'a>,
    pub content_type: HeaderValue<'a>,
    pub content_length: HeaderValue<'a>,
    pub md5_signature: HeaderValue<'a>,
    pub cube_signature: HeaderValue<'a>,
    pub cube_version: HeaderValue<'a>,
    pub cube_algo: HeaderValue<'a>,
    pub cube_timestamp: HeaderValue<'a>,
}

impl<'a> RequestHead<'a> {
    /// Build from (lower-case name, value) header pairs, e.g. proxy-wasm's header map.
    pub fn from_pairs<I>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (&'a str, &'a [u8])>,
    {
        let mut head = RequestHead::default();
        for (name, value) in pairs {
            match name {
                ":method" => head.method = value,
                ":path" => head.path = value,
                "content-encoding" => head.content_encoding.push(value),
                "content-type" => head.content_type.push(value),
                "content-length" => head.content_length.push(value),
                MD5_HEADER => head.md5_signature.push(value),
                CUBE_SIGNATURE_HEADER => head.cube_signature.push(value),
                CUBE_VERSION_HEADER => head.cube_version.push(value),
                CUBE_ALGO_HEADER => head.cube_algo.push(value),
                CUBE_TIMESTAMP_HEADER => head.cube_timestamp.push(value),
                _ => {}
            }
        }
        head
    }
}

/// The signature captured from the headers.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Signature {
    Md5(Vec<u8>),
    Cube {
        /// Index into `Config::keys` of the key named by the key id.
        key: usize,
        mac: [u8; 20],
        /// `{version}:{algo}:{timestamp}`.
        prefix: Vec<u8>,
        timestamp_ms: u64,
    },
}

/// What the headers decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadVerdict {
    /// Hold the request and verify the body with [`verify_body`].
    NeedBody(Pending),
    /// Forward now without reading the body: an unsigned request on an `allow_unsigned` route.
    ForwardUnsigned,
}

/// State carried from the headers to the end of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub route: usize,
    pub media: MediaType,
    signature: Signature,
    /// `METHOD path?query`, kept only on routes with de-duplication (part of the identity).
    dedup_target: Option<Vec<u8>>,
}

impl Pending {
    /// The scheme being verified.
    pub fn scheme(&self) -> Scheme {
        match self.signature {
            Signature::Md5(_) => Scheme::Md5,
            Signature::Cube { .. } => Scheme::Cube,
        }
    }

    /// The de-duplication identity of this delivery (a hash over the route, method, path and
    /// query, signature and body; see [`crate::dedup`]). The signature never leaves this type.
    pub fn dedup_identity(&self, route_name: &str, body: &[u8]) -> crate::dedup::Identity {
        let material: Vec<u8> = match &self.signature {
            Signature::Md5(header) => header.clone(),
            Signature::Cube {
                key, mac, prefix, ..
            } => {
                let mut m = (*key as u64).to_be_bytes().to_vec();
                m.extend_from_slice(mac);
                m.extend_from_slice(prefix);
                m
            }
        };
        let target = self.dedup_target.as_deref().unwrap_or_default();
        crate::dedup::Identity::new(route_name, target, self.scheme(), &material, body)
    }

    /// The partner named in the body (route's `partner_field`), for log lines only: unverified
    /// and best-effort (`None` when the body does not parse). Sanitize before logging.
    pub fn partner_hint(&self, config: &Config, body: &[u8]) -> Option<String> {
        let field = &config.routes.get(self.route)?.partner_field;
        match self.signature {
            Signature::Md5(_) => Params::parse(self.media, body, &config.md5)
                .ok()?
                .get(field)
                .map(|v| v.as_str().to_string()),
            Signature::Cube { .. } => Json::parse(body)
                .ok()?
                .top_level_str(field)
                .map(str::to_string),
        }
    }
}

const fn reject(reason: Reason, detail: &'static str) -> Rejection {
    Rejection::new(reason, detail)
}

/// Checks that need only the headers. `route` is an index into `config.routes`.
pub fn check_head(
    config: &Config,
    route: usize,
    head: &RequestHead<'_>,
) -> Result<HeadVerdict, Rejection> {
    let r = config
        .routes
        .get(route)
        .ok_or(reject(Reason::InternalError, "unknown route"))?;
    check_request_line(r, head)?;
    let Some(scheme) = choose_scheme(r, head)? else {
        return Ok(HeadVerdict::ForwardUnsigned);
    };
    let signature = match scheme {
        Scheme::Md5 => Signature::Md5(
            head.md5_signature
                .required("repeated x-lf-md5 header")?
                .to_vec(),
        ),
        Scheme::Cube => cube_signature(config, r, head)?,
    };
    let media = check_content_type(scheme, head)?;
    check_content_length(config, head)?;
    let dedup_target = r.dedup.as_ref().map(|_| {
        let mut t = Vec::with_capacity(head.method.len() + 1 + head.path.len());
        t.extend_from_slice(head.method);
        t.push(b' ');
        t.extend_from_slice(head.path);
        t
    });
    Ok(HeadVerdict::NeedBody(Pending {
        route,
        media,
        signature,
        dedup_target,
    }))
}

/// Method, query and content encoding against the route.
fn check_request_line(r: &Route, head: &RequestHead<'_>) -> Result<(), Rejection> {
    if !r.allows_method(head.method) {
        return Err(reject(
            Reason::MethodNotAllowed,
            "method not allowed on route",
        ));
    }
    if let Some(q) = crate::route::query(head.path) {
        if !r.allowed_queries.iter().any(|a| a.as_slice() == q) {
            return Err(reject(
                Reason::QueryNotAllowed,
                "query string not in the route's allowed_queries",
            ));
        }
    }
    match head.content_encoding {
        HeaderValue::Absent => Ok(()),
        HeaderValue::One(v) if v.trim_ascii().eq_ignore_ascii_case(b"identity") => Ok(()),
        _ => Err(reject(
            Reason::UnsupportedEncoding,
            "content-encoding other than identity",
        )),
    }
}

/// The scheme to verify, from the route and the signature headers present; `None`: an unsigned
/// request on an `allow_unsigned` route.
fn choose_scheme(r: &Route, head: &RequestHead<'_>) -> Result<Option<Scheme>, Rejection> {
    let (has_md5, has_cube) = (
        !head.md5_signature.is_absent(),
        !head.cube_signature.is_absent(),
    );
    match (r.scheme, has_md5, has_cube) {
        (RouteScheme::Auto, true, true) => Err(reject(
            Reason::InvalidSignature,
            "both x-lf-md5 and x-lf-signature",
        )),
        (RouteScheme::Md5, true, _) | (RouteScheme::Auto, true, false) => Ok(Some(Scheme::Md5)),
        (RouteScheme::Cube, _, true) | (RouteScheme::Auto, false, true) => Ok(Some(Scheme::Cube)),
        _ if r.allow_unsigned && !has_md5 && !has_cube => Ok(None),
        (RouteScheme::Md5, ..) => Err(reject(Reason::MissingSignature, "no x-lf-md5 header")),
        (RouteScheme::Cube, ..) => {
            Err(reject(Reason::MissingSignature, "no x-lf-signature header"))
        }
        (RouteScheme::Auto, ..) => Err(reject(Reason::MissingSignature, "no signature header")),
    }
}

fn check_content_type(scheme: Scheme, head: &RequestHead<'_>) -> Result<MediaType, Rejection> {
    let media = match head.content_type {
        HeaderValue::One(ct) => media_type(ct)?,
        HeaderValue::Absent => return Err(reject(Reason::UnsupportedMediaType, "no content-type")),
        HeaderValue::Many => {
            return Err(reject(
                Reason::UnsupportedMediaType,
                "repeated content-type",
            ))
        }
    };
    if scheme == Scheme::Cube && media != MediaType::Json {
        return Err(reject(
            Reason::UnsupportedMediaType,
            "cube notifications are JSON",
        ));
    }
    Ok(media)
}

fn check_content_length(config: &Config, head: &RequestHead<'_>) -> Result<(), Rejection> {
    match head.content_length {
        HeaderValue::One(len) => match std::str::from_utf8(len)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
        {
            Some(n) if n > config.max_body_bytes as u64 => Err(reject(
                Reason::BodyTooLarge,
                "content-length above max_body_bytes",
            )),
            Some(_) => Ok(()),
            None => Err(reject(Reason::MalformedBody, "bad content-length")),
        },
        HeaderValue::Many => Err(reject(Reason::MalformedBody, "repeated content-length")),
        HeaderValue::Absent => Ok(()),
    }
}

fn cube_signature(
    config: &Config,
    route: &Route,
    head: &RequestHead<'_>,
) -> Result<Signature, Rejection> {
    let sig = cube::parse_signature(
        head.cube_signature
            .required("repeated x-lf-signature header")?,
    )?;
    let (prefix, timestamp_ms) = cube::signed_prefix(
        head.cube_version
            .required("missing or repeated x-lf-notification-version")?,
        head.cube_algo.required("missing or repeated x-lf-algo")?,
        head.cube_timestamp
            .required("missing or repeated x-lf-timestamp")?,
    )?;
    // Key ids are public: a plain lookup is fine; only the MAC comparison is constant-time.
    let key = route
        .cube_keys
        .iter()
        .copied()
        .find(|&k| config.keys.get(k).is_some_and(|key| key.id == sig.key_id))
        .ok_or(reject(Reason::InvalidSignature, "unknown key id"))?;
    Ok(Signature::Cube {
        key,
        mac: sig.mac,
        prefix,
        timestamp_ms,
    })
}

/// Buffer mode (`hold_headers: false`): the `x-lf-verified` value the filter sets while the
/// headers pass, before the body is verified (a rejected request never reaches the upstream,
/// so the header only ever arrives on accepted requests). It names the key only when the
/// headers already determine it: always for Cube (the key id is in `x-lf-signature`), and for
/// `x-lf-md5` only when the route has exactly one md5 key; otherwise it is just `md5`.
pub fn verified_at_head(config: &Config, pending: &Pending) -> String {
    let key_id = match &pending.signature {
        Signature::Cube { key, .. } => config.keys.get(*key).map(|k| k.id.as_str()),
        Signature::Md5(_) => match config
            .routes
            .get(pending.route)
            .map(|r| r.md5_keys.as_slice())
        {
            Some([only]) => config.keys.get(*only).map(|k| k.id.as_str()),
            _ => None,
        },
    };
    verified_at_head_value(pending.scheme(), key_id)
}

/// Verify the complete body at time `now_ms` (epoch milliseconds; only used when the route
/// has a freshness window). Returns the scheme and the id of the matching key.
pub fn verify_body<'c>(
    config: &'c Config,
    pending: &Pending,
    body: &[u8],
    now_ms: u64,
) -> Result<Accepted<'c>, Rejection> {
    verify_body_logged(config, pending, body, &|| now_ms).map_err(|(rejection, _)| rejection)
}

/// A rejection, and the partner the body names (the route's `partner_field`) when it parsed:
/// unverified, for the log line only (sanitize before logging).
pub type LoggedRejection = (Rejection, Option<String>);

/// [`verify_body`], parsing the body once: a rejection also carries the partner the body names,
/// the same value as [`Pending::partner_hint`] (which would parse the body a second time).
/// `now` (epoch milliseconds) is called only on a route with a freshness window (the filter's
/// clock is a host call).
pub fn verify_body_logged<'c>(
    config: &'c Config,
    pending: &Pending,
    body: &[u8],
    now: &dyn Fn() -> u64,
) -> Result<Accepted<'c>, LoggedRejection> {
    let bare = |r: Rejection| (r, None);
    let route = config
        .routes
        .get(pending.route)
        .ok_or(bare(reject(Reason::InternalError, "unknown route")))?;
    if body.len() > config.max_body_bytes {
        return Err(bare(reject(
            Reason::BodyTooLarge,
            "body above max_body_bytes",
        )));
    }
    let key = match &pending.signature {
        Signature::Md5(header) => verify_md5(config, route, pending.media, header, body, now)?,
        Signature::Cube {
            key,
            mac,
            prefix,
            timestamp_ms,
        } => {
            let key = config
                .keys
                .get(*key)
                .ok_or(bare(reject(Reason::InternalError, "unknown key")))?;
            let json = Json::parse(body).map_err(bare)?;
            let partner = json.top_level_str(&route.partner_field);
            verify_cube(route, key, mac, prefix, &json, partner)
                .and_then(|()| match &route.freshness {
                    Some(window) => freshness::check(window, *timestamp_ms, now()),
                    None => Ok(()),
                })
                .map_err(|r| (r, partner.map(str::to_string)))?;
            key
        }
    };
    Ok(Accepted::Verified {
        scheme: pending.scheme(),
        key_id: &key.id,
    })
}

/// The legacy scheme: parse, then [`check_md5`]. Returns the key that made the signature.
fn verify_md5<'c>(
    config: &'c Config,
    route: &Route,
    media: MediaType,
    header: &[u8],
    body: &[u8],
    now: &dyn Fn() -> u64,
) -> Result<&'c Key, LoggedRejection> {
    let params = Params::parse(media, body, &config.md5).map_err(|r| (r, None))?;
    let partner = params.get(&route.partner_field).map(|v| v.as_str());
    check_md5(config, route, header, &params, partner, now)
        .map_err(|r| (r, partner.map(str::to_string)))
}

/// Canonicalise, compare with every md5 key of the route, partner, freshness (the body's time
/// field).
fn check_md5<'c>(
    config: &'c Config,
    route: &Route,
    header: &[u8],
    params: &Params<'_>,
    partner: Option<&str>,
    now: &dyn Fn() -> u64,
) -> Result<&'c Key, Rejection> {
    let mut signer = Md5Signer::new();
    md5_prefix(params, config.md5.empty_values, |b| signer.update(b));
    let secrets = route
        .md5_keys
        .iter()
        .filter_map(|&k| config.keys.get(k))
        .map(|k| k.secret.expose());
    let matched = signer.verify(header, secrets)?;
    let key = route
        .md5_keys
        .get(matched)
        .and_then(|&k| config.keys.get(k))
        .ok_or(reject(Reason::InvalidSignature, "signature mismatch"))?;
    check_key_partner(route, key, partner)?;
    if let Some(window) = &route.freshness {
        let sent = params
            .get(&window.body_field)
            .and_then(|v| {
                freshness::parse_body_time(v.as_str(), window.body_field_utc_offset_minutes)
            })
            .ok_or(reject(
                Reason::StaleNotification,
                "no parseable timestamp field",
            ))?;
        freshness::check(window, sent, now())?;
    }
    Ok(key)
}

/// The Cube scheme on a parsed body: canonicalise, constant-time MAC compare, partner.
fn verify_cube(
    route: &Route,
    key: &Key,
    mac: &[u8; 20],
    prefix: &[u8],
    json: &Json<'_>,
    partner: Option<&str>,
) -> Result<(), Rejection> {
    let mut signer = CubeSigner::new(key.secret.expose());
    signer.update(prefix);
    cube_json(json, &mut |b: &[u8]| signer.update(b));
    signer.verify(mac)?;
    check_key_partner(route, key, partner)
}

/// The key that made the signature must be allowed to sign for the body's partner. Checked
/// AFTER the signature, so a forged request is always `invalid_signature` and learns nothing
/// about which partners a route serves.
fn check_key_partner(route: &Route, key: &Key, partner: Option<&str>) -> Result<(), Rejection> {
    if !route.partner_bound || key.allows_partner(partner) {
        Ok(())
    } else {
        Err(reject(
            Reason::PartnerNotAllowed,
            "signed with another partner's key",
        ))
    }
}

/// Sign a body with one secret under the given options (CLI and tests): the `x-lf-md5` value.
pub fn sign_md5(
    media: MediaType,
    body: &[u8],
    opts: &crate::config::Md5Options,
    secret: &[u8],
) -> Result<String, Rejection> {
    let params = Params::parse(media, body, opts)?;
    let mut signer = Md5Signer::new();
    md5_prefix(&params, opts.empty_values, |b| signer.update(b));
    Ok(signer.header_with_secret(secret))
}

/// Sign a Cube notification (CLI and tests): the `x-lf-signature` value.
pub fn sign_cube(
    body: &[u8],
    version: &str,
    algo: &str,
    timestamp: &str,
    key_id: &str,
    key: &[u8],
) -> Result<String, Rejection> {
    let (prefix, _) =
        cube::signed_prefix(version.as_bytes(), algo.as_bytes(), timestamp.as_bytes())?;
    let json = Json::parse(body)?;
    let mut signer = CubeSigner::new(key);
    signer.update(&prefix);
    cube_json(&json, &mut |b: &[u8]| signer.update(b));
    Ok(cube::header_value(key_id, &signer.finish()))
}

#[cfg(test)]
mod tests;
