use super::*;
use crate::config::Md5Options;

const CONFIG: &str = r#"{
    "keys": [
        {"id": "old", "secret": "first-secret"},
        {"id": "new", "secret": "second=secret&"},
        {"id": "p1-key", "secret": "partner-one", "partners": ["P1"]},
        {"id": "p2-key", "secret": "partner-two", "partners": ["P2"]},
        {"id": "Ou8a5lyzPjN86ikmLeFC", "secret": "3QY0I6jA6jOfeIQbOde3CG2DeOllV1zufpFR393my78h3tCn7P1IfyUIhV3cS8ks"},
        {"id": "cube-p1", "secret": "cube-partner-one", "partners": ["P1"]}
    ],
    "routes": [
        {"name": "lf", "path_prefix": "/linksfield/", "keys": ["old", "new"]},
        {"name": "partners", "path_prefix": "/partners/", "keys": ["p1-key", "p2-key"]},
        {"name": "cube", "path_prefix": "/cube/", "scheme": "cube", "keys": ["Ou8a5lyzPjN86ikmLeFC", "cube-p1"]},
        {"name": "auto", "path_prefix": "/auto/", "scheme": "auto", "keys": ["old", "Ou8a5lyzPjN86ikmLeFC"]},
        {"name": "plan", "path_prefix": "/plan/", "allow_unsigned": true, "keys": ["old"]},
        {"name": "fresh", "path_prefix": "/fresh/", "scheme": "auto", "keys": ["old", "Ou8a5lyzPjN86ikmLeFC"],
         "freshness": {"max_age_seconds": 600, "max_future_skew_seconds": 60}},
        {"name": "mixed", "path_prefix": "/mixed/", "keys": ["old", "p1-key"]}
    ],
    "max_body_bytes": 256
}"#;
const LF: usize = 0;
const PARTNERS: usize = 1;
const CUBE: usize = 2;
const AUTO: usize = 3;
const PLAN: usize = 4;
const FRESH: usize = 5;
const MIXED: usize = 6;

const BODY: &[u8] = br#"{"partner_code":"P123456","sim_id":"89860220190123456789","imsi":"4230001234567","message_type":"Binary","text_message":"device status: 1234","received_at":"1642385160000"}"#;
const FORM: &[u8] = b"partner_code=P123456&text_message=device+status%3A+1234";
const NOW: u64 = 1_642_385_160_000 + 60_000;

fn config() -> Config {
    Config::from_json(CONFIG.as_bytes(), |_| None).unwrap()
}

fn md5_head<'a>(ct: &'a [u8], sig: &'a [u8]) -> RequestHead<'a> {
    RequestHead::from_pairs([
        (":method", &b"POST"[..]),
        ("content-type", ct),
        (MD5_HEADER, sig),
    ])
}

fn cube_head<'a>(sig: &'a [u8], algo: &'a [u8], ts: &'a [u8]) -> RequestHead<'a> {
    RequestHead::from_pairs([
        (":method", &b"POST"[..]),
        ("content-type", b"application/json"),
        (CUBE_VERSION_HEADER, b"1.0"),
        (CUBE_ALGO_HEADER, algo),
        (CUBE_TIMESTAMP_HEADER, ts),
        (CUBE_SIGNATURE_HEADER, sig),
    ])
}

fn decide(c: &Config, route: usize, head: &RequestHead<'_>, body: &[u8]) -> Result<String, Reason> {
    decide_at(c, route, head, body, NOW)
}

fn decide_at(
    c: &Config,
    route: usize,
    head: &RequestHead<'_>,
    body: &[u8],
    now: u64,
) -> Result<String, Reason> {
    match check_head(c, route, head).map_err(|r| r.reason)? {
        HeadVerdict::ForwardUnsigned => Ok(Accepted::Unsigned.header_value()),
        HeadVerdict::NeedBody(p) => verify_body(c, &p, body, now)
            .map(|a| a.header_value())
            .map_err(|r| r.reason),
    }
}

fn md5(body: &[u8], media: MediaType, secret: &str) -> String {
    sign_md5(media, body, &Md5Options::default(), secret.as_bytes()).unwrap()
}

/// Independent vector (Python hashlib) for BODY signed with "first-secret".
#[test]
fn genuine_json_with_python_vector() {
    let c = config();
    let s = md5(BODY, MediaType::Json, "first-secret");
    assert_eq!(s, "MzQyMjUyYTExMjUxZTlhZjY1ZjY4YTQ3MDAyNzU1YTA=");
    assert_eq!(
        decide(&c, LF, &md5_head(b"application/json", s.as_bytes()), BODY),
        Ok("md5; key=old".into())
    );
}

#[test]
fn rotation_old_new_unknown() {
    let c = config();
    let h = |s: &str| md5(FORM, MediaType::Form, s);
    let ct = b"application/x-www-form-urlencoded; charset=UTF-8";
    assert_eq!(
        decide(&c, LF, &md5_head(ct, h("first-secret").as_bytes()), FORM),
        Ok("md5; key=old".into())
    );
    assert_eq!(
        decide(&c, LF, &md5_head(ct, h("second=secret&").as_bytes()), FORM),
        Ok("md5; key=new".into())
    );
    assert_eq!(
        decide(&c, LF, &md5_head(ct, h("third").as_bytes()), FORM),
        Err(Reason::InvalidSignature)
    );
    // A configured key that the route does not list is not accepted.
    assert_eq!(
        decide(&c, LF, &md5_head(ct, h("partner-one").as_bytes()), FORM),
        Err(Reason::InvalidSignature)
    );
}

#[test]
fn every_md5_rejection() {
    let c = config();
    let s = md5(BODY, MediaType::Json, "first-secret");
    let good = md5_head(b"application/json", s.as_bytes());
    let mut tampered = BODY.to_vec();
    tampered[20] ^= 1;
    assert_eq!(
        decide(&c, LF, &good, &tampered),
        Err(Reason::InvalidSignature)
    );
    assert_eq!(
        decide(&c, LF, &md5_head(b"application/json", b"AAAA"), BODY),
        Err(Reason::InvalidSignature)
    );
    assert_eq!(
        decide(&c, LF, &md5_head(b"text/plain", s.as_bytes()), BODY),
        Err(Reason::UnsupportedMediaType)
    );
    assert_eq!(decide(&c, LF, &good, b"[1]"), Err(Reason::MalformedBody));
    assert_eq!(decide(&c, LF, &good, b""), Err(Reason::MalformedBody));

    let no_sig = RequestHead::from_pairs([
        (":method", &b"POST"[..]),
        ("content-type", b"application/json"),
    ]);
    assert_eq!(decide(&c, LF, &no_sig, BODY), Err(Reason::MissingSignature));
    let two_sigs = RequestHead::from_pairs([
        (":method", &b"POST"[..]),
        ("content-type", b"application/json"),
        (MD5_HEADER, s.as_bytes()),
        (MD5_HEADER, s.as_bytes()),
    ]);
    assert_eq!(
        decide(&c, LF, &two_sigs, BODY),
        Err(Reason::InvalidSignature)
    );
    let get = RequestHead {
        method: b"GET",
        ..good
    };
    assert_eq!(decide(&c, LF, &get, BODY), Err(Reason::MethodNotAllowed));
    let big = RequestHead {
        content_length: HeaderValue::One(b"257"),
        ..good
    };
    assert_eq!(decide(&c, LF, &big, BODY), Err(Reason::BodyTooLarge));
    let fits = RequestHead {
        content_length: HeaderValue::One(b"256"),
        ..good
    };
    assert!(check_head(&c, LF, &fits).is_ok());
    let HeadVerdict::NeedBody(p) = check_head(&c, LF, &good).unwrap() else {
        panic!()
    };
    assert_eq!(p.scheme(), Scheme::Md5);
    assert_eq!(
        verify_body(&c, &p, &[b' '; 257], NOW).unwrap_err().reason,
        Reason::BodyTooLarge
    );
}

#[test]
fn order_of_head_checks() {
    let c = config();
    // Wrong method wins over everything; a missing signature over a bad content type.
    let h = RequestHead::from_pairs([(":method", &b"GET"[..])]);
    assert_eq!(
        check_head(&c, LF, &h).unwrap_err().reason,
        Reason::MethodNotAllowed
    );
    let h = RequestHead::from_pairs([(":method", &b"POST"[..]), ("content-type", b"text/plain")]);
    assert_eq!(
        check_head(&c, LF, &h).unwrap_err().reason,
        Reason::MissingSignature
    );
    assert_eq!(
        check_head(&c, 99, &h).unwrap_err().reason,
        Reason::InternalError
    );
}

// ------------------------------------------------------------------------------------ cube ----

const CUBE_BODY: &[u8] = br#"{"name": "liguoli","age": 18}"#;
const CUBE_SIG: &[u8] = b"Ou8a5lyzPjN86ikmLeFC/pnWR3hcrEXQWV8S+RY0DMjEN9ec=";

/// The provider's worked example, end to end through the decision.
#[test]
fn cube_worked_example() {
    let c = config();
    let head = cube_head(CUBE_SIG, b"HMAC-SHA1", b"12345648444");
    assert_eq!(
        decide(&c, CUBE, &head, CUBE_BODY),
        Ok("cube; key=Ou8a5lyzPjN86ikmLeFC".into())
    );
    // The same through `auto`, and the signer reproduces the header.
    assert_eq!(
        decide(&c, AUTO, &head, CUBE_BODY),
        Ok("cube; key=Ou8a5lyzPjN86ikmLeFC".into())
    );
    let key = "3QY0I6jA6jOfeIQbOde3CG2DeOllV1zufpFR393my78h3tCn7P1IfyUIhV3cS8ks";
    let signed = sign_cube(
        CUBE_BODY,
        "1.0",
        "HMAC-SHA1",
        "12345648444",
        "Ou8a5lyzPjN86ikmLeFC",
        key.as_bytes(),
    );
    assert_eq!(signed.unwrap().as_bytes(), CUBE_SIG);
    // Re-ordered and re-spaced body: same canonical JSON, still valid.
    assert!(decide(&c, CUBE, &head, br#"{ "age" : 18 , "name" : "liguoli" }"#).is_ok());
}

#[test]
fn cube_rejections() {
    let c = config();
    let ts = b"12345648444";
    // Forged: one changed body value, header timestamp, or MAC character.
    assert_eq!(
        decide(
            &c,
            CUBE,
            &cube_head(CUBE_SIG, b"HMAC-SHA1", ts),
            br#"{"name":"liguoli","age":19}"#
        ),
        Err(Reason::InvalidSignature)
    );
    assert_eq!(
        decide(
            &c,
            CUBE,
            &cube_head(CUBE_SIG, b"HMAC-SHA1", b"12345648445"),
            CUBE_BODY
        ),
        Err(Reason::InvalidSignature)
    );
    assert_eq!(
        decide(
            &c,
            CUBE,
            &cube_head(
                b"Ou8a5lyzPjN86ikmLeFC/pnWR3hcrEXQWV8S+RY0DMjEN9eC=",
                b"HMAC-SHA1",
                ts
            ),
            CUBE_BODY
        ),
        Err(Reason::InvalidSignature)
    );
    // Algorithm header: case-insensitive match is accepted but still signed as sent.
    assert_eq!(
        decide(&c, CUBE, &cube_head(CUBE_SIG, b"hmac-sha1", ts), CUBE_BODY),
        Err(Reason::InvalidSignature)
    );
    assert_eq!(
        decide(
            &c,
            CUBE,
            &cube_head(CUBE_SIG, b"HMAC-SHA256", ts),
            CUBE_BODY
        ),
        Err(Reason::InvalidSignature)
    );
    // Unknown key id, and a configured key the route does not list.
    assert_eq!(
        decide(
            &c,
            CUBE,
            &cube_head(b"nope/pnWR3hcrEXQWV8S+RY0DMjEN9ec=", b"HMAC-SHA1", ts),
            CUBE_BODY
        ),
        Err(Reason::InvalidSignature)
    );
    assert_eq!(
        decide(
            &c,
            CUBE,
            &cube_head(b"old/pnWR3hcrEXQWV8S+RY0DMjEN9ec=", b"HMAC-SHA1", ts),
            CUBE_BODY
        ),
        Err(Reason::InvalidSignature)
    );
    // Missing companion header.
    let h = RequestHead {
        cube_timestamp: HeaderValue::Absent,
        ..cube_head(CUBE_SIG, b"HMAC-SHA1", ts)
    };
    assert_eq!(
        decide(&c, CUBE, &h, CUBE_BODY),
        Err(Reason::InvalidSignature)
    );
    // No signature at all; form content; duplicate key in the body.
    let h = RequestHead::from_pairs([
        (":method", &b"POST"[..]),
        ("content-type", b"application/json"),
    ]);
    assert_eq!(
        decide(&c, CUBE, &h, CUBE_BODY),
        Err(Reason::MissingSignature)
    );
    let h = RequestHead {
        content_type: HeaderValue::One(b"application/x-www-form-urlencoded"),
        ..cube_head(CUBE_SIG, b"HMAC-SHA1", ts)
    };
    assert_eq!(
        decide(&c, CUBE, &h, b"age=18&name=liguoli"),
        Err(Reason::UnsupportedMediaType)
    );
    assert_eq!(
        decide(
            &c,
            CUBE,
            &cube_head(CUBE_SIG, b"HMAC-SHA1", ts),
            br#"{"name":"liguoli","age":18,"age":18}"#
        ),
        Err(Reason::MalformedBody)
    );
}

#[test]
fn auto_scheme_needs_exactly_one_signature() {
    let c = config();
    let s = md5(BODY, MediaType::Json, "first-secret");
    assert_eq!(
        decide(&c, AUTO, &md5_head(b"application/json", s.as_bytes()), BODY),
        Ok("md5; key=old".into())
    );
    let both = RequestHead {
        md5_signature: HeaderValue::One(s.as_bytes()),
        ..cube_head(CUBE_SIG, b"HMAC-SHA1", b"12345648444")
    };
    assert_eq!(
        decide(&c, AUTO, &both, CUBE_BODY),
        Err(Reason::InvalidSignature)
    );
    let neither = RequestHead::from_pairs([
        (":method", &b"POST"[..]),
        ("content-type", b"application/json"),
    ]);
    assert_eq!(
        decide(&c, AUTO, &neither, BODY),
        Err(Reason::MissingSignature)
    );
    // An md5 route ignores a Cube signature: it needs x-lf-md5.
    assert_eq!(
        decide(
            &c,
            LF,
            &cube_head(CUBE_SIG, b"HMAC-SHA1", b"12345648444"),
            CUBE_BODY
        ),
        Err(Reason::MissingSignature)
    );
}

// -------------------------------------------------------------------------------- partners ----

#[test]
fn partner_binding() {
    let c = config();
    let p1 = br#"{"partner_code":"P1","sim_id":"1"}"#;
    let p3 = br#"{"partner_code":"P3","sim_id":"1"}"#;
    let none = br#"{"sim_id":"1"}"#;
    let ct = b"application/json";
    let sig = |body: &[u8], s: &str| md5(body, MediaType::Json, s);
    assert_eq!(
        decide(
            &c,
            PARTNERS,
            &md5_head(ct, sig(p1, "partner-one").as_bytes()),
            p1
        ),
        Ok("md5; key=p1-key".into())
    );
    // Signed with the other partner's (valid, configured) key.
    assert_eq!(
        decide(
            &c,
            PARTNERS,
            &md5_head(ct, sig(p1, "partner-two").as_bytes()),
            p1
        ),
        Err(Reason::PartnerNotAllowed)
    );
    // Partner not allowed on the route, or absent: 403 once the signature is valid...
    assert_eq!(
        decide(
            &c,
            PARTNERS,
            &md5_head(ct, sig(p3, "partner-one").as_bytes()),
            p3
        ),
        Err(Reason::PartnerNotAllowed)
    );
    // ...but a forged request is always `invalid_signature`: no partner oracle.
    assert_eq!(
        decide(&c, PARTNERS, &md5_head(ct, b"junk"), p3),
        Err(Reason::InvalidSignature)
    );
    assert_eq!(
        decide(&c, PARTNERS, &md5_head(ct, sig(p3, "wrong").as_bytes()), p3),
        Err(Reason::InvalidSignature)
    );
    assert_eq!(
        decide(
            &c,
            PARTNERS,
            &md5_head(ct, sig(none, "partner-one").as_bytes()),
            none
        ),
        Err(Reason::PartnerNotAllowed)
    );
    // Mixed route: the unbound key signs for anyone; the bound one only for P1.
    assert_eq!(
        decide(
            &c,
            MIXED,
            &md5_head(ct, sig(p3, "first-secret").as_bytes()),
            p3
        ),
        Ok("md5; key=old".into())
    );
    assert_eq!(
        decide(
            &c,
            MIXED,
            &md5_head(ct, sig(p1, "partner-one").as_bytes()),
            p1
        ),
        Ok("md5; key=p1-key".into())
    );
    assert_eq!(
        decide(
            &c,
            MIXED,
            &md5_head(ct, sig(p3, "partner-one").as_bytes()),
            p3
        ),
        Err(Reason::PartnerNotAllowed)
    );
    assert_eq!(
        decide(
            &c,
            MIXED,
            &md5_head(ct, sig(none, "partner-one").as_bytes()),
            none
        ),
        Err(Reason::PartnerNotAllowed)
    );
}

#[test]
fn cube_partner_binding() {
    let c = config();
    let body = br#"{"partner_code":"P2","x":1}"#;
    let sig = sign_cube(
        body,
        "1.0",
        "HMAC-SHA1",
        "1",
        "cube-p1",
        b"cube-partner-one",
    )
    .unwrap();
    let head = cube_head(sig.as_bytes(), b"HMAC-SHA1", b"1");
    assert_eq!(
        decide(&c, CUBE, &head, body),
        Err(Reason::PartnerNotAllowed)
    );
    let body = br#"{"partner_code":"P1","x":1}"#;
    let sig = sign_cube(
        body,
        "1.0",
        "HMAC-SHA1",
        "1",
        "cube-p1",
        b"cube-partner-one",
    )
    .unwrap();
    assert_eq!(
        decide(
            &c,
            CUBE,
            &cube_head(sig.as_bytes(), b"HMAC-SHA1", b"1"),
            body
        ),
        Ok("cube; key=cube-p1".into())
    );
}

// ------------------------------------------------------------------------- freshness, unsigned ----

#[test]
fn freshness_window() {
    let c = config();
    let s = md5(BODY, MediaType::Json, "first-secret");
    let head = md5_head(b"application/json", s.as_bytes());
    let sent = 1_642_385_160_000;
    assert!(decide_at(&c, FRESH, &head, BODY, sent + 600_000).is_ok());
    assert_eq!(
        decide_at(&c, FRESH, &head, BODY, sent + 600_001),
        Err(Reason::StaleNotification)
    );
    assert!(decide_at(&c, FRESH, &head, BODY, sent - 60_000).is_ok());
    assert_eq!(
        decide_at(&c, FRESH, &head, BODY, sent - 60_001),
        Err(Reason::StaleNotification)
    );
    // The same stale request passes where freshness is off (the default).
    assert!(decide_at(&c, AUTO, &head, BODY, sent + 10 * 86_400_000).is_ok());
    // No timestamp field in a signed body.
    let nots = br#"{"sim_id":"1"}"#;
    let s2 = md5(nots, MediaType::Json, "first-secret");
    assert_eq!(
        decide(
            &c,
            FRESH,
            &md5_head(b"application/json", s2.as_bytes()),
            nots
        ),
        Err(Reason::StaleNotification)
    );
    // Cube: x-lf-timestamp.
    let cube = cube_head(CUBE_SIG, b"HMAC-SHA1", b"12345648444");
    assert!(decide_at(&c, FRESH, &cube, CUBE_BODY, 12_345_648_444 + 1000).is_ok());
    assert_eq!(
        decide_at(&c, FRESH, &cube, CUBE_BODY, 12_345_648_444 + 600_001),
        Err(Reason::StaleNotification)
    );
    // A forged stale request is a bad signature, not stale: the signature is checked first.
    let mut forged = BODY.to_vec();
    forged[20] ^= 1;
    assert_eq!(
        decide_at(&c, FRESH, &head, &forged, sent + 600_001),
        Err(Reason::InvalidSignature)
    );
}

#[test]
fn unsigned_routes() {
    let c = config();
    let none = RequestHead::from_pairs([
        (":method", &b"POST"[..]),
        ("content-type", b"application/json"),
    ]);
    assert_eq!(
        check_head(&c, PLAN, &none).unwrap(),
        HeadVerdict::ForwardUnsigned
    );
    assert_eq!(Accepted::Unsigned.header_value(), "none");
    // A present but wrong signature is still rejected; a good one is verified.
    assert_eq!(
        decide(&c, PLAN, &md5_head(b"application/json", b"AAAA"), BODY),
        Err(Reason::InvalidSignature)
    );
    let s = md5(BODY, MediaType::Json, "first-secret");
    assert_eq!(
        decide(&c, PLAN, &md5_head(b"application/json", s.as_bytes()), BODY),
        Ok("md5; key=old".into())
    );
    // The method rule still applies.
    let get = RequestHead {
        method: b"GET",
        ..none
    };
    assert_eq!(
        check_head(&c, PLAN, &get).unwrap_err().reason,
        Reason::MethodNotAllowed
    );
    // Default is reject.
    assert_eq!(
        check_head(&c, LF, &none).unwrap_err().reason,
        Reason::MissingSignature
    );
}

fn pending(c: &Config, route: usize, head: &RequestHead<'_>) -> Pending {
    match check_head(c, route, head).unwrap() {
        HeadVerdict::NeedBody(p) => p,
        HeadVerdict::ForwardUnsigned => panic!("expected NeedBody"),
    }
}

#[test]
fn dedup_identity_and_partner_hint() {
    let c = config();
    let sig = md5(BODY, MediaType::Json, "first-secret");
    let p = pending(&c, LF, &md5_head(b"application/json", sig.as_bytes()));
    let id = p.dedup_identity("lf", BODY);
    assert_eq!(id, p.dedup_identity("lf", BODY));
    assert_ne!(id, p.dedup_identity("lf", FORM));
    assert_ne!(id, p.dedup_identity("other", BODY));
    let other = pending(&c, LF, &md5_head(b"application/json", b"AAAA"));
    assert_ne!(id, other.dedup_identity("lf", BODY));
    assert_eq!(p.partner_hint(&c, BODY).as_deref(), Some("P123456"));
    assert_eq!(p.partner_hint(&c, b"{not json").as_deref(), None);
    assert_eq!(p.partner_hint(&c, br#"{"a":"b"}"#).as_deref(), None);

    let cube = pending(&c, CUBE, &cube_head(CUBE_SIG, b"HMAC-SHA1", b"12345648444"));
    let later = pending(&c, CUBE, &cube_head(CUBE_SIG, b"HMAC-SHA1", b"12345648445"));
    assert_ne!(
        cube.dedup_identity("cube", CUBE_BODY),
        later.dedup_identity("cube", CUBE_BODY),
        "the signed timestamp is part of the identity"
    );
    assert_eq!(
        cube.partner_hint(&c, br#"{"partner_code":"P9","x":1}"#)
            .as_deref(),
        Some("P9")
    );
}

/// Buffer mode: the x-lf-verified value known from the headers alone.
#[test]
fn verified_value_at_head_time() {
    let c = config();
    let pending = |route: usize, head: &RequestHead<'_>| match check_head(&c, route, head) {
        Ok(HeadVerdict::NeedBody(p)) => p,
        other => panic!("{other:?}"),
    };
    let cube = cube_head(CUBE_SIG, b"HMAC-SHA1", b"12345648444");
    assert_eq!(
        verified_at_head(&c, &pending(CUBE, &cube)),
        "cube; key=Ou8a5lyzPjN86ikmLeFC"
    );
    assert_eq!(
        verified_at_head(&c, &pending(AUTO, &cube)),
        "cube; key=Ou8a5lyzPjN86ikmLeFC"
    );
    let sig = md5(BODY, MediaType::Json, "first-secret");
    let head = md5_head(b"application/json", sig.as_bytes());
    // Two md5 keys on the route: which one matches is only known from the body.
    assert_eq!(verified_at_head(&c, &pending(LF, &head)), "md5");
    // `auto`: both of its keys can verify md5 (no `schemes` restriction).
    assert_eq!(verified_at_head(&c, &pending(AUTO, &head)), "md5");
    // One md5 key on the route: the key is determined by the headers.
    assert_eq!(verified_at_head(&c, &pending(PLAN, &head)), "md5; key=old");
    // Whenever the key is named at head time, it is the one verify_body reports.
    let p = pending(PLAN, &head);
    assert_eq!(
        verify_body(&c, &p, BODY, NOW).unwrap().header_value(),
        verified_at_head(&c, &p)
    );
}
