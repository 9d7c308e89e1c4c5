//! Which requests the filter protects: the posture, the exemptions and the alias-aware path
//! matcher. Pure Rust; decided once per request from the raw `:path` ([`classify`]).
//!
//! Backends reach one handler by many spellings of its path (Tomcat drops `;params` and resolves
//! `..;`, Express and ASP.NET match case-insensitively, Spring strips `.json` suffixes, Windows
//! hosts strip trailing dots and spaces, some proxies decode twice...). The matcher therefore
//! compares a route with the path's *skeleton*: the path as the broadest modelled backend reads
//! it (see [`skeleton`]). A request whose skeleton matches a route is for that route; unless its
//! raw spelling is the route's canonical one, it is rejected (`non_canonical_path`, even when
//! signed), so that no backend ever has to resolve an alias of a verified request.
//!
//! - Posture `deny` (default): a request that matches no route and no exemption goes to the
//!   catch-all route `default` (any signature scheme, POST): it needs a valid signature too.
//! - Posture `route_list`: such a request is forwarded unverified ([`Target::Unprotected`]).
//! - Exemptions: `path_exact` is a byte-exact match of the raw path (query ignored), with no
//!   aliasing at all; `path_prefix` exempts only canonical spellings that are no alias of a route.

use std::borrow::Cow;

use serde::Deserialize;

/// What happens to a request that matches no route and no exemption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Posture {
    /// It must carry a valid signature: it is verified by the catch-all route `default`.
    #[default]
    Deny,
    /// It is forwarded unverified (several applications behind one Envoy).
    RouteList,
}

/// Name of the deny posture's catch-all route (logs, metrics, `x-lf-verified` is as usual).
pub const DEFAULT_ROUTE_NAME: &str = "default";

/// How a route or an exemption matches the request path (the `:path` without its query).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    Prefix(String),
    /// The deny posture's catch-all.
    Any,
}

/// A route's path pattern, compiled at configure time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    pub path: PathMatch,
    /// `false` (default): ASCII case variants of the path are aliases of the route.
    pub case_sensitive: bool,
    /// The pattern's own skeleton (no trailing slash).
    skeleton: Vec<u8>,
    /// A prefix ending in `/`: it matches whole segments.
    whole_segments: bool,
}

impl PathPattern {
    pub fn new(path: PathMatch, case_sensitive: bool) -> Self {
        let (skeleton, whole_segments) = match &path {
            PathMatch::Exact(p) => (skeleton(p.as_bytes()).into_owned(), true),
            PathMatch::Prefix(p) => (skeleton(p.as_bytes()).into_owned(), p.ends_with('/')),
            PathMatch::Any => (b"/".to_vec(), true),
        };
        PathPattern {
            path,
            case_sensitive,
            skeleton,
            whole_segments,
        }
    }

    /// The raw path is this route's canonical spelling.
    fn matches_literally(&self, raw: &[u8]) -> bool {
        match &self.path {
            PathMatch::Exact(p) => raw == p.as_bytes(),
            PathMatch::Prefix(p) => raw.starts_with(p.as_bytes()),
            PathMatch::Any => true,
        }
    }

    /// The raw path matches the pattern ignoring ASCII case (unless case-sensitive): a backend
    /// that resolves nothing (no dot segments, no decoding) would route it here.
    fn matches_raw_loosely(&self, raw: &[u8]) -> bool {
        let p = match &self.path {
            PathMatch::Exact(p) | PathMatch::Prefix(p) => p.as_bytes(),
            PathMatch::Any => return true,
        };
        let head = raw.get(..p.len());
        let starts = head.is_some_and(|h| {
            if self.case_sensitive {
                h == p
            } else {
                h.eq_ignore_ascii_case(p)
            }
        });
        match self.path {
            PathMatch::Exact(_) => starts && raw.len() == p.len(),
            _ => starts,
        }
    }

    /// A path with this skeleton reaches the route's handler in some modelled backend.
    fn matches_skeleton(&self, s: &[u8]) -> bool {
        let eq = |a: &[u8], b: &[u8]| {
            if self.case_sensitive {
                a == b
            } else {
                a.eq_ignore_ascii_case(b)
            }
        };
        let p = self.skeleton.as_slice();
        match &self.path {
            PathMatch::Any => true,
            PathMatch::Exact(_) => eq(s, p) || strip_format_suffix(s).is_some_and(|t| eq(t, p)),
            PathMatch::Prefix(_) if p == b"/" => true,
            PathMatch::Prefix(_) => {
                let head = s.get(..p.len()).is_some_and(|h| eq(h, p));
                if !self.whole_segments {
                    return head;
                }
                head && matches!(s.get(p.len()), None | Some(b'/'))
            }
        }
    }
}

/// Where a request goes, decided from its raw `:path`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Protected by route `i` of [`crate::Config::routes`] (in the deny posture the catch-all is the
    /// last route, named `default`).
    Route(usize),
    /// An alias of route `i` that is not its canonical spelling: 400 `non_canonical_path`.
    NonCanonical(usize),
    /// Exempt: passes untouched (the filter still strips `x-lf-verified` and its aliases).
    Exempt,
    /// Route-list posture only: matches no route, forwarded unverified.
    Unprotected,
}

/// An exemption from the deny posture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exemption {
    /// The raw path (query ignored) is exactly this.
    Exact(String),
    /// A canonical path under this prefix that is no alias of a route.
    Prefix(String),
}

/// Where a request with this raw `:path` (query included) goes, given the routes' patterns in
/// match order and the exemptions. See the module docs.
pub fn classify<'p>(
    patterns: impl IntoIterator<Item = &'p PathPattern>,
    exempt: &[Exemption],
    path: &[u8],
) -> Target {
    let raw = strip_query(path);
    if exempt
        .iter()
        .any(|e| matches!(e, Exemption::Exact(p) if p.as_bytes() == raw))
    {
        return Target::Exempt;
    }
    let canonical = is_canonical(raw);
    let mut catch_all = None;
    let mut aliases = Aliases::new(raw);
    for (i, pattern) in patterns.into_iter().enumerate() {
        if pattern.path == PathMatch::Any {
            catch_all = Some(i);
            continue;
        }
        if canonical && pattern.matches_literally(raw) {
            return Target::Route(i);
        }
        if aliases.reach(pattern) {
            return Target::NonCanonical(i);
        }
    }
    let exempt_prefix = canonical
        && exempt
            .iter()
            .any(|e| matches!(e, Exemption::Prefix(p) if raw.starts_with(p.as_bytes())));
    match (exempt_prefix, catch_all) {
        (true, _) => Target::Exempt,
        (false, Some(i)) => Target::Route(i),
        (false, None) => Target::Unprotected,
    }
}

/// The readings of one raw path that modelled backends may resolve, computed lazily once.
struct Aliases<'r> {
    raw: &'r [u8],
    skel: Option<Cow<'r, [u8]>>,
    /// Servlet containers drop `;parameters` from the raw segments BEFORE decoding (so
    /// `/;%00/linksfield/sms` is `/linksfield/sms` to Tomcat, while a decode-first reader
    /// truncates it at the NUL): both readings are checked.
    servlet: Option<Option<Vec<u8>>>,
}

impl<'r> Aliases<'r> {
    fn new(raw: &'r [u8]) -> Self {
        Aliases {
            raw,
            skel: None,
            servlet: None,
        }
    }

    /// Some modelled backend reads this path as one for `pattern`.
    fn reach(&mut self, pattern: &PathPattern) -> bool {
        let raw = self.raw;
        let s = self.skel.get_or_insert_with(|| skeleton(raw));
        let sv = self.servlet.get_or_insert_with(|| {
            raw.contains(&b';')
                .then(|| skeleton(&strip_path_params(raw)).into_owned())
        });
        pattern.matches_skeleton(s)
            || sv.as_deref().is_some_and(|v| pattern.matches_skeleton(v))
            || pattern.matches_raw_loosely(raw)
    }
}

/// A configured path (`path_exact`, `path_prefix`, exemptions): why it is not a plain path.
pub fn check_path(p: &str) -> Result<(), &'static str> {
    if !p.starts_with('/') {
        return Err("must start with `/`");
    }
    if p.contains(['?', '#']) || p.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err("must be a plain path (no query, fragment, spaces or control characters)");
    }
    Ok(())
}

/// The path without `?query` or `#fragment`.
pub fn strip_query(path: &[u8]) -> &[u8] {
    match path.iter().position(|&b| b == b'?' || b == b'#') {
        Some(i) => path.get(..i).unwrap_or(path),
        None => path,
    }
}

/// The query string (after the first `?`, without a `#fragment`), if the path has one.
pub fn query(path: &[u8]) -> Option<&[u8]> {
    let start = path.iter().position(|&b| b == b'?')?;
    let rest = path.get(start + 1..).unwrap_or_default();
    Some(strip_query(rest))
}

/// Bytes a canonical path may hold: unreserved characters, `/` and the sub-delimiters other
/// than `;` (RFC 3986). No `%`, `;`, `\`, space, control or non-ASCII byte.
fn canonical_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~/!$&'()*+,=:@".contains(&b)
}

/// A spelling no modelled backend reads differently: starts with `/`, only canonical bytes, no
/// empty, `.` or `..` segment.
pub fn is_canonical(raw: &[u8]) -> bool {
    raw.first() == Some(&b'/')
        && raw.iter().all(|&b| canonical_byte(b))
        && !raw.windows(2).any(|w| w == b"//")
        && raw
            .split(|&b| b == b'/')
            .all(|seg| seg != b"." && seg != b"..")
}

/// The path as the broadest modelled backend reads it, used to find aliases of routes:
///
/// 1. an absolute-form target (`http://host/x`) is reduced to its path;
/// 2. percent-escapes are decoded, up to three times (double encoding through a proxy), also
///    IIS-style `%uXXXX`;
/// 3. everything from a NUL on is dropped (C-string truncation);
/// 4. overlong UTF-8 encodings of ASCII and look-alikes that some backends fold to ASCII are
///    read as that ASCII (fullwidth forms, `ſ`, `K`, `ı`, `İ`, fraction and division slashes);
/// 5. `\` is a separator;
/// 6. per segment: `;parameters` are dropped (Servlet), `.` and `..` are resolved, trailing
///    spaces and dots are dropped (Windows), empty segments are merged;
/// 7. no trailing slash.
///
/// Case is kept (routes compare ASCII case-insensitively unless `case_sensitive`). Returns the
/// input itself when no step changes it (the common case: no allocation).
pub fn skeleton(raw: &[u8]) -> Cow<'_, [u8]> {
    if is_plain(raw) {
        return Cow::Borrowed(raw);
    }
    let mut path: Cow<'_, [u8]> = Cow::Borrowed(raw);
    if path.first() != Some(&b'/') {
        if let Some(at) = path.windows(3).position(|w| w == b"://") {
            let after = path.get(at + 3..).unwrap_or_default();
            let rest = after
                .iter()
                .position(|&b| b == b'/')
                .and_then(|i| after.get(i..))
                .unwrap_or(b"/");
            path = Cow::Owned(rest.to_vec());
        }
    }
    for _ in 0..3 {
        if !path.contains(&b'%') {
            break;
        }
        let next = percent_decode_once(&path);
        if next.as_slice() == path.as_ref() {
            break;
        }
        path = Cow::Owned(next);
    }
    if let Some(nul) = path.iter().position(|&b| b == 0) {
        path = Cow::Owned(path.get(..nul).unwrap_or_default().to_vec());
    }
    let folded = fold_lookalikes(&path);
    let mut segments: Vec<&[u8]> = Vec::new();
    for seg in folded.split(|&b| b == b'/' || b == b'\\') {
        let seg = seg
            .iter()
            .position(|&b| b == b';')
            .and_then(|i| seg.get(..i))
            .unwrap_or(seg);
        let seg = trim_end(seg, |b| b.is_ascii_whitespace());
        match seg {
            b"." => {}
            b".." => {
                segments.pop();
            }
            _ => {
                let seg = trim_end(seg, |b| b == b'.' || b.is_ascii_whitespace());
                if !seg.is_empty() {
                    segments.push(seg);
                }
            }
        }
    }
    let mut out = Vec::with_capacity(folded.len() + 1);
    for seg in &segments {
        out.push(b'/');
        out.extend_from_slice(seg);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    Cow::Owned(out)
}

/// The raw path with every segment's `;parameters` removed, as a Servlet container does before
/// it decodes anything.
fn strip_path_params(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, seg) in raw.split(|&b| b == b'/').enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        let end = seg.iter().position(|&b| b == b';').unwrap_or(seg.len());
        out.extend_from_slice(seg.get(..end).unwrap_or(seg));
    }
    out
}

/// Whether [`skeleton`] would return the path unchanged.
fn is_plain(raw: &[u8]) -> bool {
    raw.first() == Some(&b'/')
        && raw.iter().all(|&b| canonical_byte(b))
        && !raw
            .windows(2)
            .any(|w| w == b"//" || w == b"/." || w == b"./")
        && !matches!(raw.last(), Some(b'/' | b'.'))
        || raw == b"/"
}

fn trim_end(mut s: &[u8], drop: impl Fn(u8) -> bool) -> &[u8] {
    while let Some((&last, rest)) = s.split_last() {
        if !drop(last) {
            break;
        }
        s = rest;
    }
    s
}

fn hex(b: Option<&u8>) -> Option<u8> {
    b.and_then(|&c| (c as char).to_digit(16))
        .and_then(|d| u8::try_from(d).ok())
}

fn percent_decode_once(p: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(p.len());
    let mut i = 0;
    while let Some(&b) = p.get(i) {
        if b == b'%' {
            if let (Some(h), Some(l)) = (hex(p.get(i + 1)), hex(p.get(i + 2))) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
            if matches!(p.get(i + 1), Some(b'u' | b'U')) {
                let code = (0..4).try_fold(0u32, |acc, k| {
                    hex(p.get(i + 2 + k)).map(|d| acc * 16 + u32::from(d))
                });
                if let Some(c) = code.and_then(char::from_u32) {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    i += 6;
                    continue;
                }
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

/// ASCII that a non-ASCII character may be read as by some backend (case folding, NFKC,
/// lenient UTF-8 decoders).
fn lookalike(c: char) -> Option<u8> {
    let code = u32::from(c);
    match c {
        '\u{FF01}'..='\u{FF5E}' => u8::try_from(code - 0xFEE0).ok(),
        '\u{017F}' => Some(b's'),
        '\u{212A}' => Some(b'k'),
        '\u{0131}' | '\u{0130}' => Some(b'i'),
        '\u{2024}' | '\u{FE52}' => Some(b'.'),
        '\u{2215}' | '\u{2044}' | '\u{29F8}' => Some(b'/'),
        '\u{2216}' | '\u{29F9}' | '\u{FE68}' => Some(b'\\'),
        '\u{00A0}' | '\u{3000}' => Some(b' '),
        _ => None,
    }
}

fn fold_lookalikes(p: &[u8]) -> Cow<'_, [u8]> {
    if p.is_ascii() {
        return Cow::Borrowed(p);
    }
    let mut out = Vec::with_capacity(p.len());
    let mut i = 0;
    while let Some(&b) = p.get(i) {
        let cont = |j: usize| p.get(j).copied().filter(|c| (0x80..=0xBF).contains(c));
        // Overlong encodings of ASCII (`%C0%AF` is `/` to a lenient decoder).
        if let (0xC0 | 0xC1, Some(c1)) = (b, cont(i + 1)) {
            out.push(((b & 0x1F) << 6) | (c1 & 0x3F));
            i += 2;
            continue;
        }
        if let (0xE0, Some(c1), Some(c2)) = (b, cont(i + 1), cont(i + 2)) {
            if c1 < 0x82 {
                out.push(((c1 & 0x3F) << 6) | (c2 & 0x3F));
                i += 3;
                continue;
            }
        }
        let len = match b {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => 1,
        };
        let ch = p
            .get(i..i + len)
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(|s| s.chars().next());
        match ch.and_then(lookalike) {
            Some(a) => {
                out.push(a);
                i += len;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(out)
}

/// `/a/sms.json` -> `/a/sms`: the path without a format suffix (`.` and 1-16 ASCII
/// alphanumerics) on its last segment, as Spring's suffix matching and Rails formats read it.
fn strip_format_suffix(s: &[u8]) -> Option<&[u8]> {
    let dot = s.iter().rposition(|&b| b == b'.')?;
    let ext = s.get(dot + 1..)?;
    let stem = s.get(..dot)?;
    let ok = (1..=16).contains(&ext.len())
        && ext.iter().all(u8::is_ascii_alphanumeric)
        && !stem.is_empty()
        && !stem.ends_with(b"/");
    ok.then_some(stem)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::Config;

    fn config(json: &str) -> Config {
        Config::from_json(json.as_bytes(), |_| None).unwrap()
    }

    fn parse_ok(json: &str) -> Result<Config, crate::ConfigError> {
        Config::from_json(json.as_bytes(), |_| None)
    }

    #[test]
    fn route_matching_ignores_query_and_takes_first() {
        let c = parse_ok(
            r#"{"keys":[{"id":"k","secret":"s"}],"posture":"route_list","routes":[
            {"name":"exact","path_exact":"/lf/sms"},{"name":"prefix","path_prefix":"/lf/"}]}"#,
        )
        .unwrap();
        assert_eq!(c.route_for(b"/lf/sms?x=1").unwrap().name, "exact");
        assert_eq!(c.route_for(b"/lf/sms/2").unwrap().name, "prefix");
        assert_eq!(c.route_for(b"/lf/").unwrap().name, "prefix");
        // `/lf` may be the prefix's own handler (Express `app.use("/lf", ...)`): an alias.
        assert_eq!(c.route_for(b"/lf").unwrap().name, "prefix");
        assert_eq!(c.route_for(b"/lf/sms/").unwrap().name, "exact");
        assert!(c.route_for(b"/other").is_none());
        assert!(c.route_for(b"").is_none());
    }

    #[test]
    fn ambiguous_paths_are_protected() {
        let c = parse_ok(r#"{"keys":[{"id":"k","secret":"s"}],"posture":"route_list","routes":[{"name":"lf","path_prefix":"/linksfield/"},{"name":"x","path_exact":"/hook"}]}"#).unwrap();
        for p in [
            &b"/x/../linksfield/sms"[..],
            b"//linksfield/sms",
            b"/linksfield//sms",
            b"/./linksfield/sms",
            b"/%6Cinksfield/sms",
            b"/%6cinksfield/sms",
            b"/linksfield%2Fsms",
            b"/linksfield%2fsms",
            b"/linksfield\\sms",
            b"/linksfield%5Csms",
            b"/a/b/../../linksfield/sms?q=/other",
            b"/linksfield/../linksfield/x",
            b"/linksfield/../other",
        ] {
            assert_eq!(
                c.route_for(p).map(|r| r.name.as_str()),
                Some("lf"),
                "{}",
                String::from_utf8_lossy(p)
            );
        }
        for p in [&b"/hook/."[..], b"//hook", b"/x/../hook", b"/ho%6Fk"] {
            assert_eq!(
                c.route_for(p).map(|r| r.name.as_str()),
                Some("x"),
                "{}",
                String::from_utf8_lossy(p)
            );
        }
        for p in [
            &b"/other"[..],
            b"/linksfieldx",
            b"/%2e%2e/other",
            b"/linksfield%3Fsms",
            b"/lf%zz",
        ] {
            assert!(c.route_for(p).is_none(), "{}", String::from_utf8_lossy(p));
        }
    }

    const ROUTES: &str = r#"{"keys":[{"id":"k","secret":"s"}],"posture":"route_list",
        "routes":[{"name":"lf","path_prefix":"/linksfield/"},{"name":"hook","path_exact":"/hook"},
                  {"name":"cs","path_prefix":"/Exact/","case_sensitive":true}]}"#;
    const DENY: &str = r#"{"keys":[{"id":"k","secret":"s"}],
        "exempt":[{"path_exact":"/health"},{"path_exact":"/linksfield/health"},{"path_prefix":"/static/"}],
        "routes":[{"name":"lf","path_prefix":"/linksfield/"}]}"#;

    fn s(p: &str) -> String {
        String::from_utf8_lossy(&skeleton(p.as_bytes())).into_owned()
    }

    #[test]
    fn skeletons() {
        for (raw, want) in [
            ("/linksfield/sms", "/linksfield/sms"),
            ("/linksfield;jsessionid=x/sms", "/linksfield/sms"),
            ("/app2/..;/linksfield/sms", "/linksfield/sms"),
            ("/linksfield/sms/", "/linksfield/sms"),
            ("/linksfield/sms.", "/linksfield/sms"),
            ("/linksfield/sms%20", "/linksfield/sms"),
            ("/linksfield/sms%00.jpg", "/linksfield/sms"),
            ("/%6Cinksfield/sms", "/linksfield/sms"),
            ("/%256Cinksfield/sms", "/linksfield/sms"),
            ("/%25256cinksfield/sms", "/linksfield/sms"),
            ("/linksfield%2Fsms", "/linksfield/sms"),
            ("/linksfield%5csms", "/linksfield/sms"),
            ("/linksfield\\sms", "/linksfield/sms"),
            ("//linksfield///sms", "/linksfield/sms"),
            ("/x/../linksfield/./sms", "/linksfield/sms"),
            ("/%2e%2e/linksfield/sms", "/linksfield/sms"),
            ("/%u006Cinksfield/sms", "/linksfield/sms"),
            ("/linksfield%C0%AFsms", "/linksfield/sms"),
            ("/linksfield/%EF%BD%93ms", "/linksfield/sms"),
            ("/linksfield/\u{17F}ms", "/linksfield/sms"),
            ("/lin\u{212A}sfield/sms", "/linksfield/sms"),
            ("http://h:1/linksfield/sms", "/linksfield/sms"),
            ("/..", "/"),
            ("/", "/"),
            ("", "/"),
        ] {
            assert_eq!(s(raw), want, "{raw}");
        }
        assert!(matches!(skeleton(b"/plain/path"), Cow::Borrowed(_)));
        assert_eq!(s("/a/b.c/d"), "/a/b.c/d");
    }

    #[test]
    fn canonical_spellings() {
        for ok in ["/linksfield/sms", "/a-b/c_d.e~f", "/", "/x/a.b"] {
            assert!(is_canonical(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "linksfield",
            "/a;b",
            "/a%41",
            "/a\\b",
            "//a",
            "/a/./b",
            "/a/../b",
            "/a/..",
            "/a b",
            "/\u{e9}",
        ] {
            assert!(!is_canonical(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn route_list_aliases_are_protected() {
        let c = config(ROUTES);
        assert_eq!(c.classify(b"/linksfield/sms"), Target::Route(0));
        assert_eq!(c.classify(b"/linksfield/sms?x=1"), Target::Route(0));
        assert_eq!(c.classify(b"/hook"), Target::Route(1));
        assert_eq!(c.classify(b"/Exact/a"), Target::Route(2));
        for alias in [
            "/LinksField/sms",
            "/linksfield;jsessionid=x/sms",
            "/app2/..;/linksfield/sms",
            "/linksfield",
            "/LINKSFIELD/",
            "/%6Cinksfield/sms",
            "/x/../linksfield/sms",
            "//linksfield/sms",
            "/linksfield//sms",
            "/;%00/linksfield/sms",
            "/;%00/linksfield;jsessionid=x/sms",
        ] {
            assert_eq!(
                c.classify(alias.as_bytes()),
                Target::NonCanonical(0),
                "{alias}"
            );
        }
        for alias in [
            "/hook/",
            "/hook.",
            "/hook.json",
            "/HOOK",
            "/hook;a",
            "/hook%20",
            "/ho%6Fk",
        ] {
            assert_eq!(
                c.classify(alias.as_bytes()),
                Target::NonCanonical(1),
                "{alias}"
            );
        }
        assert_eq!(c.classify(b"/Exact;x/a"), Target::NonCanonical(2));
        for other in [
            "/other",
            "/linksfieldx/sms",
            "/hook/x",
            "/hookx",
            "/exact/a",
            "/linksfield%3Fsms",
            "/",
        ] {
            assert_eq!(c.classify(other.as_bytes()), Target::Unprotected, "{other}");
        }
    }

    #[test]
    fn deny_posture_and_exemptions() {
        let c = config(DENY);
        let default = c.routes.len() - 1;
        assert_eq!(c.routes[default].name, DEFAULT_ROUTE_NAME);
        assert_eq!(c.classify(b"/health"), Target::Exempt);
        assert_eq!(c.classify(b"/health?probe=1"), Target::Exempt);
        assert_eq!(c.classify(b"/linksfield/health"), Target::Exempt);
        assert_eq!(c.classify(b"/static/app.js"), Target::Exempt);
        assert_eq!(c.classify(b"/linksfield/sms"), Target::Route(0));
        assert_eq!(c.classify(b"/other"), Target::Route(default));
        assert_eq!(c.classify(b"/health/"), Target::Route(default));
        assert_eq!(c.classify(b"/Health"), Target::Route(default));
        for alias in [
            "/health/../linksfield/sms",
            "/linksfield/health/../sms",
            "/static/..;/linksfield/sms",
            "/static/../linksfield/sms",
            "/LinksField/health",
        ] {
            assert_eq!(
                c.classify(alias.as_bytes()),
                Target::NonCanonical(0),
                "{alias}"
            );
        }
        for not_exempt in ["/static/a;b", "/static/%61", "/static//a"] {
            assert_eq!(
                c.classify(not_exempt.as_bytes()),
                Target::Route(default),
                "{not_exempt}"
            );
        }
    }

    #[test]
    fn queries() {
        assert_eq!(query(b"/a"), None);
        assert_eq!(query(b"/a?"), Some(&b""[..]));
        assert_eq!(query(b"/a?x=1#f"), Some(&b"x=1"[..]));
        assert_eq!(strip_query(b"/a?x"), b"/a");
    }
}
