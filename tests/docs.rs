//! The documentation holds together: every relative link in every tracked `*.md` file resolves
//! (the file or directory exists; a `#anchor` into a markdown file names one of its headings by
//! GitHub's slug rules, or an explicit `<a id>`/`<a name>`), and README.md stays a front page
//! (at most 250 lines; the reference lives in docs/).
//!
//! What counts as a link: inline links and images `[text](target "title")`, `<target>` in them,
//! and reference definitions `[label]: target`, outside fenced code blocks and code spans.
//! External targets (`scheme:`, `//host`) are not fetched. Files come from `git ls-files`; a
//! missing `git` fails the test (it does not skip).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

const README_MAX_LINES: usize = 250;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Tracked markdown files, repo-relative.
fn tracked_markdown() -> Vec<PathBuf> {
    let out = Command::new("git")
        .args(["ls-files", "-z", "--cached", "--", "*.md"])
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| {
            panic!("tests/docs.rs needs `git` to list tracked *.md files ({e}); install git (Debian: apt-get install git)")
        });
    assert!(
        out.status.success(),
        "git ls-files failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files: Vec<PathBuf> = out
        .stdout
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| PathBuf::from(String::from_utf8(s.to_vec()).expect("UTF-8 path")))
        .filter(|p| repo().join(p).is_file())
        .collect();
    assert!(
        files.iter().any(|p| p == Path::new("README.md")),
        "git ls-files found no README.md: {files:?}"
    );
    files
}

/// Lines of `text` outside fenced code blocks, with their 1-based numbers.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut fence: Option<(char, usize)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start_matches(' ');
        let indent = line.len() - trimmed.len();
        let run = |c: char| trimmed.chars().take_while(|&x| x == c).count();
        match fence {
            Some((c, n)) => {
                if indent <= 3 && run(c) >= n && trimmed.trim_start_matches(c).trim().is_empty() {
                    fence = None;
                }
            }
            None => {
                let (bt, tl) = (run('`'), run('~'));
                if indent <= 3 && (bt >= 3 || tl >= 3) {
                    fence = Some(if bt >= 3 { ('`', bt) } else { ('~', tl) });
                } else {
                    out.push((i + 1, line));
                }
            }
        }
    }
    out
}

/// `line` with every code span (`` `x` ``, ``` ``x`` ```) blanked out.
fn without_code_spans(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '`' {
            let n = chars[i..].iter().take_while(|&&c| c == '`').count();
            let mut j = i + n;
            let mut close = None;
            while j < chars.len() {
                if chars[j] == '`' {
                    let m = chars[j..].iter().take_while(|&&c| c == '`').count();
                    if m == n {
                        close = Some(j);
                        break;
                    }
                    j += m;
                } else {
                    j += 1;
                }
            }
            match close {
                Some(j) => {
                    out.push(' ');
                    i = j + n;
                }
                None => {
                    // An unmatched run of backticks is literal text.
                    out.push_str(&"`".repeat(n));
                    i += n;
                }
            }
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// Link targets on one prose line: inline `](target)` and reference definitions.
fn link_targets(line: &str) -> Vec<String> {
    let text = without_code_spans(line);
    let mut out = Vec::new();
    let t = text.trim_start();
    if t.starts_with('[') && text.len() - t.len() <= 3 {
        if let Some(end) = t.find("]:") {
            if !t[1..end].contains('[') {
                if let Some(dest) = t[end + 2..].split_whitespace().next() {
                    out.push(
                        dest.trim_start_matches('<')
                            .trim_end_matches('>')
                            .to_string(),
                    );
                }
            }
        }
    }
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("](") {
        let start = i + pos + 2;
        let mut j = start;
        let dest = if bytes.get(j) == Some(&b'<') {
            let close = text[j..].find('>').map_or(text.len(), |k| j + k);
            let d = text[j + 1..close].to_string();
            j = close;
            d
        } else {
            let mut depth = 0usize;
            while j < bytes.len() {
                match bytes[j] {
                    b'(' => depth += 1,
                    b')' if depth == 0 => break,
                    b')' => depth -= 1,
                    b' ' | b'\t' => break,
                    _ => {}
                }
                j += 1;
            }
            text[start..j].to_string()
        };
        out.push(dest);
        i = j.max(start);
    }
    out
}

/// GitHub's heading slug: rendered text, lower-cased, punctuation other than `-` and `_`
/// removed, each space a `-`.
fn slug(heading: &str) -> String {
    // Rendered text: code-span markers dropped, `[text](url)` -> `text`.
    let mut text = String::new();
    let mut rest = heading;
    while let Some(open) = rest.find('[') {
        let (before, after) = rest.split_at(open);
        text.push_str(before);
        match after.find("](") {
            Some(mid) => {
                let close = after[mid..].find(')').map_or(after.len(), |k| mid + k + 1);
                text.push_str(&after[1..mid]);
                rest = &after[close..];
            }
            None => {
                text.push('[');
                rest = &after[1..];
            }
        }
    }
    text.push_str(rest);
    text.chars()
        .flat_map(char::to_lowercase)
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every anchor a markdown text defines: heading slugs (a repeated slug gets `-1`, `-2`, ...)
/// and explicit `<a id="x">` / `<a name="x">`.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for (_, line) in prose_lines(text) {
        let t = line.trim_start_matches(' ');
        let level = t.chars().take_while(|&c| c == '#').count();
        if line.len() - t.len() <= 3
            && (1..=6).contains(&level)
            && t[level..]
                .chars()
                .next()
                .map_or(true, |c| c == ' ' || c == '\t')
        {
            let title = t[level..].trim().trim_end_matches('#').trim_end();
            let base = slug(title);
            let n = seen.entry(base.clone()).or_insert(0);
            out.insert(if *n == 0 {
                base.clone()
            } else {
                format!("{base}-{n}")
            });
            *n += 1;
        }
        for attr in ["id=\"", "name=\""] {
            let mut rest = line;
            while let Some(p) = rest.find(attr) {
                let v = &rest[p + attr.len()..];
                if let Some(end) = v.find('"') {
                    if rest[..p].contains("<a ") {
                        out.insert(v[..end].to_string());
                    }
                }
                rest = &rest[p + attr.len()..];
            }
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let Some(Ok(v)) = s.get(i + 1..i + 3).map(|h| u8::from_str_radix(h, 16)) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_external(target: &str) -> bool {
    if target.starts_with("//") {
        return true;
    }
    match target.find(':') {
        Some(c) => {
            let scheme = &target[..c];
            !scheme.is_empty()
                && !target[..c].contains('/')
                && scheme
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "+-.".contains(ch))
        }
        None => false,
    }
}

/// Lexically normalised `base/rel` (no symlink resolution); `None` if it climbs above `root`.
fn join_inside(root: &Path, base: &Path, rel: &str) -> Option<PathBuf> {
    let start = if rel.starts_with('/') {
        PathBuf::new()
    } else {
        base.to_path_buf()
    };
    let mut parts: Vec<String> = start
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    for seg in rel.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s.to_string()),
        }
    }
    let mut p = root.to_path_buf();
    for s in parts {
        p.push(s);
    }
    Some(p)
}

/// Broken links in the markdown file `file` (repo-relative) whose text is `text`. `read` gives
/// the text of another markdown file (for its anchors), `exists` says whether a path exists.
fn broken_links(
    root: &Path,
    file: &Path,
    text: &str,
    exists: &dyn Fn(&Path) -> bool,
    read: &dyn Fn(&Path) -> Option<String>,
) -> Vec<String> {
    let dir = file.parent().unwrap_or(Path::new(""));
    let own = anchors(text);
    let mut bad = Vec::new();
    for (n, line) in prose_lines(text) {
        for target in link_targets(line) {
            if target.is_empty() || is_external(&target) {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target.as_str(), None),
            };
            let path = percent_decode(path.split('?').next().unwrap_or(""));
            let where_ = format!("{}:{n}: `{target}`", file.display());
            if path.is_empty() {
                if let Some(a) = anchor {
                    if !own.contains(&percent_decode(a).to_lowercase()) {
                        bad.push(format!("{where_}: no heading `#{a}` in this file"));
                    }
                }
                continue;
            }
            let Some(abs) = join_inside(root, dir, &path) else {
                bad.push(format!("{where_}: climbs out of the repository"));
                continue;
            };
            if !exists(&abs) {
                bad.push(format!("{where_}: {} does not exist", abs.display()));
                continue;
            }
            if let (Some(a), true) = (anchor, path.ends_with(".md")) {
                let found = read(&abs).map(|t| anchors(&t)).unwrap_or_default();
                if !found.contains(&percent_decode(a).to_lowercase()) {
                    bad.push(format!("{where_}: no heading `#{a}` in {path}"));
                }
            }
        }
    }
    bad
}

#[test]
fn every_relative_link_in_the_docs_resolves() {
    let root = repo();
    let files = tracked_markdown();
    let mut bad = Vec::new();
    let mut checked = 0usize;
    for f in &files {
        let text = std::fs::read_to_string(root.join(f)).expect("markdown readable");
        checked += prose_lines(&text)
            .iter()
            .map(|(_, l)| link_targets(l).len())
            .sum::<usize>();
        bad.extend(broken_links(&root, f, &text, &|p| p.exists(), &|p| {
            std::fs::read_to_string(p).ok()
        }));
    }
    assert!(
        checked > 0,
        "no links found in {files:?}: is the scanner broken?"
    );
    assert!(bad.is_empty(), "broken links:\n{}", bad.join("\n"));
}

#[test]
fn readme_is_a_front_page() {
    let text = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    let n = text.lines().count();
    assert!(
        n <= README_MAX_LINES,
        "README.md has {n} lines; keep it at most {README_MAX_LINES} (reference material goes to docs/)"
    );
}

/// The checker itself: it finds what it must find, and only that.
#[test]
fn the_link_checker_catches_broken_links_and_anchors() {
    let root = PathBuf::from("/repo");
    let files: BTreeMap<PathBuf, &str> = [
        ("/repo/docs/a.md", "# Title\n\n## The `x-lf-md5` rule (legacy)\n\n## Dup\n\n## Dup\n\n<a id=\"custom\"></a>\n"),
        ("/repo/src/lib.rs", ""),
        ("/repo/deploy/istio", ""),
    ]
    .into_iter()
    .map(|(p, t)| (PathBuf::from(p), t))
    .collect();
    let exists = |p: &Path| files.contains_key(p);
    let read = |p: &Path| files.get(p).map(|t| t.to_string());
    let check = |text: &str| broken_links(&root, Path::new("docs/b.md"), text, &exists, &read);

    let good = "[a](a.md) [t](a.md#the-x-lf-md5-rule-legacy) [d](a.md#dup-1) [c](a.md#custom)\n\
                [src](../src/lib.rs) ![img](../deploy/istio) [ext](https://example.com/x) \
                [mail](mailto:a@b) [self](#here) [<a>](<a.md>)\n\n## Here\n\n\
                `[in code](nowhere.md)`\n\n```\n[in a fence](nowhere.md)\n```\n\n\
                [ref]: a.md#title\n";
    assert_eq!(check(good), Vec::<String>::new());

    for broken in [
        "[x](nowhere.md)",
        "[x](a.md#no-such-heading)",
        "[x](a.md#dup-2)",
        "[x](#missing)",
        "[x](../../outside.md)",
        "[x](../src/nope.rs)",
        "[x]: gone.md",
        "text ![i](img.png) text",
    ] {
        assert_eq!(check(broken).len(), 1, "not caught: {broken}");
    }
}

#[test]
fn slugs_follow_github() {
    assert_eq!(slug("Quickstart"), "quickstart");
    assert_eq!(
        slug("Shadow mode and the rollout runbook"),
        "shadow-mode-and-the-rollout-runbook"
    );
    assert_eq!(
        slug("Canonicalisation rules (legacy `x-lf-md5`)"),
        "canonicalisation-rules-legacy-x-lf-md5"
    );
    assert_eq!(
        slug("1. Delivering the filter by ECDS"),
        "1-delivering-the-filter-by-ecds"
    );
    assert_eq!(
        slug("Why was my notification rejected?"),
        "why-was-my-notification-rejected"
    );
    assert_eq!(slug("check-config"), "check-config");
    assert_eq!(slug("See [docs](docs/x.md) now"), "see-docs-now");
    assert_eq!(slug("LfWebhookVmDown"), "lfwebhookvmdown");
}
