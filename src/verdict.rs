//! The outcome of verifying one request, and the ONE table that maps every rejection reason to
//! its HTTP status and its public category (metric names: [`crate::metrics`]). Also the one home
//! of what the filter tells others: the `x-lf-verified` values, the local reply body, the
//! enforcement [`Mode`] and the sanitiser for untrusted text in logs and replies.

/// Why a request was rejected. The public category (response body, logs, metrics) is
/// [`Reason::category`]; the HTTP status is [`Reason::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No signature header on a protected route.
    MissingSignature,
    /// The signature header is malformed (bad base64, wrong length, repeated header) or does not
    /// match the request.
    InvalidSignature,
    /// The body cannot be parsed unambiguously (bad JSON or form encoding, duplicate keys,
    /// nested values where not allowed, empty body, invalid UTF-8).
    MalformedBody,
    /// The `Content-Type` is not JSON or form, has an unsupported charset, or contradicts the body.
    UnsupportedMediaType,
    /// The method is not one the route allows (the response carries `Allow`).
    MethodNotAllowed,
    /// `Content-Length` or the buffered body exceeds `max_body_bytes`.
    BodyTooLarge,
    /// The partner in the body is not allowed on this route, or the matching key belongs to
    /// another partner.
    PartnerNotAllowed,
    /// The signature is valid but the notification is older than `max_age_seconds` (or too far
    /// in the future): a replay.
    StaleNotification,
    /// The filter could not complete a host call or has no valid configuration: it fails closed.
    InternalError,
    /// Hold mode: a held request got no body callback within `hold_timeout_ms` and this worker
    /// has never seen one: Envoy lacks `allow_on_headers_stop_iteration: true`.
    FilterMisconfigured,
    /// Hold mode: a held request got no body within `hold_timeout_ms`, or its body did not end
    /// within `hold_deadline_ms` of the headers, although body callbacks do arrive on this
    /// worker: the client stalled or trickled.
    RequestTimeout,
    /// The path is an alias of a protected route (case, `;params`, encodings, dot segments,
    /// suffixes, ...) but not its canonical spelling: rejected even when signed.
    NonCanonicalPath,
    /// A query string on a protected route that the route does not allow (queries are not
    /// signed, and many backends read them beside the body).
    QueryNotAllowed,
    /// A `Content-Encoding` other than `identity` on a protected route (a backend would act on
    /// the decoded bytes, which were never verified).
    UnsupportedEncoding,
    /// The fleet de-duplication store (etcd) could not answer the lookup of a verified delivery
    /// in time and the store's `on_error` is `reject`: 503, the provider retries later.
    DedupStoreUnavailable,
}

impl Reason {
    /// Every reason, in table order (docs, metrics and tests iterate over it).
    pub const ALL: [Reason; 15] = [
        Reason::MissingSignature,
        Reason::InvalidSignature,
        Reason::MalformedBody,
        Reason::UnsupportedMediaType,
        Reason::MethodNotAllowed,
        Reason::BodyTooLarge,
        Reason::PartnerNotAllowed,
        Reason::StaleNotification,
        Reason::InternalError,
        Reason::FilterMisconfigured,
        Reason::RequestTimeout,
        Reason::NonCanonicalPath,
        Reason::QueryNotAllowed,
        Reason::UnsupportedEncoding,
        Reason::DedupStoreUnavailable,
    ];

    /// HTTP status of the local reply.
    pub const fn status(self) -> u32 {
        match self {
            Reason::MissingSignature | Reason::InvalidSignature | Reason::StaleNotification => 401,
            Reason::PartnerNotAllowed => 403,
            Reason::MalformedBody | Reason::NonCanonicalPath | Reason::QueryNotAllowed => 400,
            Reason::UnsupportedMediaType | Reason::UnsupportedEncoding => 415,
            Reason::MethodNotAllowed => 405,
            Reason::BodyTooLarge => 413,
            Reason::InternalError | Reason::FilterMisconfigured => 500,
            Reason::RequestTimeout => 408,
            Reason::DedupStoreUnavailable => 503,
        }
    }

    /// Exit status of the CLI (`verify`) for a request rejected for this reason: `10 +` the
    /// reason's position in [`Reason::ALL`] (missing_signature 10, invalid_signature 11, ...).
    /// New reasons must be APPENDED to `ALL` so that existing codes never change.
    pub fn exit_code(self) -> u8 {
        let index = Reason::ALL.iter().position(|&r| r == self).unwrap_or(0);
        10u8.saturating_add(u8::try_from(index).unwrap_or(u8::MAX))
    }

    /// Stable public category: the `error` field of the reply body, the `reason=` of the log line
    /// and the metric suffix.
    pub const fn category(self) -> &'static str {
        match self {
            Reason::MissingSignature => "missing_signature",
            Reason::InvalidSignature => "invalid_signature",
            Reason::MalformedBody => "malformed_body",
            Reason::UnsupportedMediaType => "unsupported_media_type",
            Reason::MethodNotAllowed => "method_not_allowed",
            Reason::BodyTooLarge => "body_too_large",
            Reason::PartnerNotAllowed => "partner_not_allowed",
            Reason::StaleNotification => "stale_notification",
            Reason::InternalError => "internal_error",
            Reason::FilterMisconfigured => "filter_misconfigured",
            Reason::RequestTimeout => "request_timeout",
            Reason::NonCanonicalPath => "non_canonical_path",
            Reason::QueryNotAllowed => "query_not_allowed",
            Reason::UnsupportedEncoding => "unsupported_encoding",
            Reason::DedupStoreUnavailable => "dedup_store_unavailable",
        }
    }
}

/// A rejection: the public [`Reason`] plus a fixed, secret-free detail for the log line.
///
/// `detail` is `&'static str` on purpose: it can never carry request data, a secret or an
/// expected signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    pub reason: Reason,
    pub detail: &'static str,
}

impl Rejection {
    pub const fn new(reason: Reason, detail: &'static str) -> Self {
        Rejection { reason, detail }
    }
}

/// Signature schemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Legacy CSSS scheme, header `x-lf-md5`.
    Md5,
    /// Cube platform scheme, header `x-lf-signature` (HMAC-SHA1).
    Cube,
}

impl Scheme {
    pub const fn name(self) -> &'static str {
        match self {
            Scheme::Md5 => "md5",
            Scheme::Cube => "cube",
        }
    }
}

/// Header the filter sets on accepted requests (and strips from every client request, with its
/// aliases: [`crate::headers`]). Its values are built here and nowhere else.
pub const VERIFIED_HEADER: &str = "x-lf-verified";

/// What the filter does with a request that fails verification (`mode`, top level or route).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Answer locally with the documented status; nothing reaches the backend (default).
    #[default]
    Enforce,
    /// Verify, count and log exactly as in enforce mode, but forward every request, marked
    /// `x-lf-verified: failed:<category>` when it failed.
    Shadow,
}

impl Mode {
    pub const ALL: [Mode; 2] = [Mode::Enforce, Mode::Shadow];

    pub const fn name(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Shadow => "shadow",
        }
    }
}

/// A request the filter lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted<'c> {
    /// The signature matched: which scheme, and the id of the key that made it.
    Verified { scheme: Scheme, key_id: &'c str },
    /// No signature at all, on a route with `allow_unsigned: true`.
    Unsigned,
}

impl Accepted<'_> {
    /// Value of the `x-lf-verified` header sent upstream: `md5; key=primary`, `cube; key=Ou8a...`,
    /// or `none` for an unsigned request on an `allow_unsigned` route.
    pub fn header_value(&self) -> String {
        match self {
            Accepted::Verified { scheme, key_id } => {
                // Per accepted request: pushed, not `format!` (whose machinery costs more).
                let scheme = scheme.name();
                let mut value = String::with_capacity(scheme.len() + 6 + key_id.len());
                value.push_str(scheme);
                value.push_str("; key=");
                value.push_str(key_id);
                value
            }
            Accepted::Unsigned => "none".to_string(),
        }
    }
}

/// `x-lf-verified` in buffer mode, set while the headers pass and before the body is verified:
/// `<scheme>; key=<id>` when the headers already name the key, else just `<scheme>`.
pub fn verified_at_head_value(scheme: Scheme, key_id: Option<&str>) -> String {
    match key_id {
        Some(key_id) => Accepted::Verified { scheme, key_id }.header_value(),
        None => scheme.name().to_string(),
    }
}

/// `x-lf-verified` of a request forwarded in shadow mode although it failed: `failed:<category>`.
pub fn shadow_failed_value(reason: Reason) -> String {
    format!("failed:{}", reason.category())
}

/// Keep untrusted text printable and bounded before it goes into a log line or a JSON reply:
/// at most `max` characters from `[A-Za-z0-9._:-]`, anything else replaced by `_`. The ONE
/// sanitiser: [`sanitize_request_id`] and the log line's partner ([`crate::log`]) use it.
pub fn sanitize(text: impl IntoIterator<Item = char>, max: usize) -> String {
    text.into_iter()
        .take(max)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A request id (raw header bytes) for a log line or a JSON reply: [`sanitize`]d, at most 128
/// characters (every non-ASCII byte becomes one `_`).
pub fn sanitize_request_id(raw: &[u8]) -> String {
    sanitize(raw.iter().map(|&b| char::from(b)), 128)
}

/// The small JSON body of a local reply: `{"error":"<category>","request_id":"<id>"}`.
/// `request_id` must already be sanitized (it is then JSON-safe).
pub fn reply_body(reason: Reason, request_id: &str) -> String {
    format!(
        "{{\"error\":\"{}\",\"request_id\":\"{}\"}}",
        reason.category(),
        request_id
    )
}

/// The body of the local answer to a recorded duplicate:
/// `{"status":"duplicate","request_id":"<id>"}` (`request_id` already sanitized).
pub fn duplicate_body(request_id: &str) -> String {
    format!("{{\"status\":\"duplicate\",\"request_id\":\"{request_id}\"}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_complete_and_distinct() {
        let mut cats: Vec<_> = Reason::ALL.iter().map(|r| r.category()).collect();
        cats.sort();
        cats.dedup();
        assert_eq!(cats.len(), Reason::ALL.len());
        for r in Reason::ALL {
            assert!((400..=503).contains(&r.status()), "{r:?}");
        }
        assert_eq!(Reason::DedupStoreUnavailable.status(), 503);
        assert_eq!(Reason::MethodNotAllowed.status(), 405);
        assert_eq!(Reason::BodyTooLarge.status(), 413);
        assert_eq!(Reason::PartnerNotAllowed.status(), 403);
        assert_eq!(Reason::FilterMisconfigured.status(), 500);
        assert_eq!(Reason::RequestTimeout.status(), 408);
    }

    #[test]
    fn verified_values() {
        assert_eq!(
            shadow_failed_value(Reason::InvalidSignature),
            "failed:invalid_signature"
        );
        assert_eq!(verified_at_head_value(Scheme::Md5, None), "md5");
        assert_eq!(
            verified_at_head_value(Scheme::Cube, Some("k")),
            "cube; key=k"
        );
        assert_eq!(Accepted::Unsigned.header_value(), "none");
    }

    #[test]
    fn exit_codes_are_stable_and_distinct() {
        let codes: Vec<u8> = Reason::ALL.iter().map(|r| r.exit_code()).collect();
        assert_eq!(
            codes,
            (10..10 + Reason::ALL.len() as u8).collect::<Vec<_>>()
        );
        assert_eq!(Reason::MissingSignature.exit_code(), 10);
        assert_eq!(Reason::InvalidSignature.exit_code(), 11);
        assert_eq!(Reason::MalformedBody.exit_code(), 12);
        assert_eq!(Reason::InternalError.exit_code(), 18);
    }

    #[test]
    fn request_id_is_sanitized() {
        assert_eq!(sanitize_request_id(b"ab-12_x.y:z"), "ab-12_x.y:z");
        assert_eq!(sanitize_request_id(b"a\"b\n{c}"), "a_b__c_");
        assert_eq!(sanitize_request_id(&[b'a'; 500]).len(), 128);
        assert_eq!(sanitize_request_id("é".as_bytes()), "__");
        assert_eq!(sanitize("é\n".repeat(100).chars(), 64), "_".repeat(64));
    }

    #[test]
    fn reply_body_is_json_with_category_only() {
        let body = reply_body(Reason::InvalidSignature, "rid-1");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"], "invalid_signature");
        assert_eq!(v["request_id"], "rid-1");
        assert_eq!(v.as_object().unwrap().len(), 2);
    }
}
