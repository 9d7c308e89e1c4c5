//! The shape of `src/`: no function longer than [`MAX_FN_LINES`] lines (from its `fn` line to its
//! closing brace) and no `#[path]` module. A simple scanner: comments, string and character
//! literals are blanked, then braces are counted.
//!
//! Test code is not measured: `#[cfg(test)] mod x { .. }` blocks and the files of
//! `#[cfg(test)] mod x;` declarations (table-driven tests are long by nature).
//!
//! [`KNOWN`] lists offenders that other work in progress removes; the coordinator empties it as
//! that work lands. An entry that no longer offends fails the test too, so the list only shrinks.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fs;
use std::path::{Path, PathBuf};

const MAX_FN_LINES: usize = 80;

/// Temporary allowlist: (file under `src/`, function name, or `#[path` for a `#[path]` module).
const KNOWN: &[(&str, &str)] = &[];

/// One function too long, or a `#[path]` attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Finding {
    file: String,
    name: String,
    lines: usize,
}

#[test]
fn no_long_functions_and_no_path_modules() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut findings = Vec::new();
    for file in rust_files(&root) {
        let rel = file
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if test_only_files(&root).contains(&file) {
            continue;
        }
        let text = fs::read_to_string(&file).unwrap();
        findings.extend(scan(&rel, &text));
    }
    let known = |f: &Finding| {
        KNOWN
            .iter()
            .any(|(file, name)| *file == f.file && *name == f.name)
    };
    let new: Vec<_> = findings.iter().filter(|f| !known(f)).collect();
    let stale: Vec<_> = KNOWN
        .iter()
        .filter(|(file, name)| !findings.iter().any(|f| f.file == *file && f.name == *name))
        .collect();
    assert!(
        new.is_empty(),
        "functions over {MAX_FN_LINES} lines or #[path] modules in src/ (split them):\n{}",
        new.iter()
            .map(|f| format!("  src/{}: {} ({} lines)", f.file, f.name, f.lines))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        stale.is_empty(),
        "no longer offending, remove from KNOWN: {stale:?}"
    );
}

/// The scanner itself: it must see through literals and comments, and find what it claims to.
#[test]
fn scanner_counts_braces_outside_literals() {
    let long_body = "    let x = 1;\n".repeat(MAX_FN_LINES);
    let text = format!(
        "fn short() {{ let s = \"}}}}\"; let c = '}}'; let r = r#\"{{\"#; }}\n\
         // fn commented() {{\n\
         /* fn block() {{ */\n\
         fn long<'a>(x: &'a str) -> &'a str {{\n{long_body}    x\n}}\n\
         trait T {{ fn declared(&self); }}\n\
         #[cfg(test)]\nmod tests {{\n    fn long_test() {{\n{long_body}    }}\n}}\n\
         #[path = \"x.rs\"]\nmod x;\n"
    );
    let found = scan("t.rs", &text);
    let names: Vec<_> = found.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["long", "#[path"], "{found:?}");
    assert_eq!(found[0].lines, MAX_FN_LINES + 3);
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Files declared as `#[cfg(test)] mod name;` (`name.rs` or `name/mod.rs` beside the parent).
fn test_only_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for file in rust_files(root) {
        let clean = blank_literals(&fs::read_to_string(&file).unwrap());
        let dir = match file.file_name().and_then(|n| n.to_str()) {
            Some("mod.rs" | "lib.rs" | "main.rs") => file.parent().unwrap().to_path_buf(),
            _ => file.with_extension(""),
        };
        let mut rest = clean.as_str();
        while let Some(i) = rest.find("#[cfg(test)]") {
            rest = &rest[i + "#[cfg(test)]".len()..];
            let decl = rest.trim_start();
            if let Some(after) = decl.strip_prefix("mod ") {
                let name: String = after
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if after[name.len()..].trim_start().starts_with(';') {
                    out.push(dir.join(format!("{name}.rs")));
                    out.push(dir.join(&name).join("mod.rs"));
                }
            }
        }
    }
    out
}

/// The functions over the limit and the `#[path` attributes of one file.
fn scan(file: &str, text: &str) -> Vec<Finding> {
    let clean = blank_test_modules(&blank_literals(text));
    let mut out = Vec::new();
    let bytes = clean.as_bytes();
    let line_of = |i: usize| clean[..i].matches('\n').count() + 1;
    let mut i = 0;
    while let Some(off) = clean[i..].find("fn ") {
        let at = i + off;
        i = at + 3;
        let word_start = at == 0 || !is_ident(bytes[at - 1]);
        if !word_start {
            continue;
        }
        let name: String = clean[at + 3..]
            .trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            continue; // `fn(` pointer types
        }
        let Some(open) = clean[at..].find(['{', ';']).map(|o| at + o) else {
            continue;
        };
        if bytes[open] == b';' {
            continue; // a declaration without a body
        }
        let close = matching_brace(bytes, open);
        let lines = line_of(close) - line_of(at) + 1;
        if lines > MAX_FN_LINES {
            out.push(Finding {
                file: file.to_string(),
                name,
                lines,
            });
        }
    }
    for (n, line) in clean.lines().enumerate() {
        if line.trim_start().starts_with("#[path") {
            out.push(Finding {
                file: file.to_string(),
                name: "#[path".to_string(),
                lines: n + 1,
            });
        }
    }
    out
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Index of the `}` closing the `{` at `open` (the end of the text if unbalanced).
fn matching_brace(bytes: &[u8], open: usize) -> usize {
    let mut depth = 0usize;
    for (j, &b) in bytes.iter().enumerate().skip(open) {
        match b {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return j;
                }
            }
            _ => {}
        }
    }
    bytes.len().saturating_sub(1)
}

/// `#[cfg(test)] mod name { .. }` blocks replaced by blank lines.
fn blank_test_modules(clean: &str) -> String {
    let mut out = clean.to_string();
    let mut from = 0;
    while let Some(off) = out[from..].find("#[cfg(test)]") {
        let at = from + off;
        from = at + 1;
        let after = out[at + "#[cfg(test)]".len()..].trim_start();
        if !after.starts_with("mod ") {
            continue;
        }
        let start = out.len() - after.len();
        let Some(open) = out[start..].find(['{', ';']).map(|o| start + o) else {
            continue;
        };
        if out.as_bytes()[open] == b';' {
            continue;
        }
        let close = matching_brace(out.as_bytes(), open);
        let blanked: String = out[at..=close]
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect();
        out.replace_range(at..=close, &blanked);
    }
    out
}

/// The source with comments, strings and character literals replaced by spaces (newlines kept,
/// so that line numbers stay).
fn blank_literals(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |out: &mut String, s: &[char]| {
        out.extend(s.iter().map(|&ch| if ch == '\n' { '\n' } else { ' ' }));
    };
    while i < c.len() {
        let prev_ident = i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_');
        let end = match c[i] {
            '/' if c.get(i + 1) == Some(&'/') => {
                (i..c.len()).find(|&j| c[j] == '\n').unwrap_or(c.len())
            }
            '/' if c.get(i + 1) == Some(&'*') => block_comment_end(&c, i),
            'r' | 'b' if !prev_ident && raw_string_hashes(&c, i).is_some() => {
                let (start, hashes) = raw_string_hashes(&c, i).unwrap();
                raw_string_end(&c, start, hashes)
            }
            'b' if !prev_ident && c.get(i + 1) == Some(&'"') => quoted_end(&c, i + 1, '"'),
            'b' if !prev_ident && c.get(i + 1) == Some(&'\'') => quoted_end(&c, i + 1, '\''),
            '"' => quoted_end(&c, i, '"'),
            '\'' if c.get(i + 1) == Some(&'\\') || c.get(i + 2) == Some(&'\'') => {
                quoted_end(&c, i, '\'')
            }
            _ => {
                out.push(c[i]);
                i += 1;
                continue;
            }
        };
        blank(&mut out, &c[i..end]);
        i = end;
    }
    out
}

/// For `r"`, `r#"`, `br##"` at `i`: the index of the opening quote and the number of `#`.
fn raw_string_hashes(c: &[char], i: usize) -> Option<(usize, usize)> {
    let mut j = i;
    if c.get(j) == Some(&'b') {
        j += 1;
    }
    if c.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let hashes = c[j..].iter().take_while(|&&ch| ch == '#').count();
    (c.get(j + hashes) == Some(&'"')).then_some((j + hashes, hashes))
}

fn raw_string_end(c: &[char], quote: usize, hashes: usize) -> usize {
    let mut j = quote + 1;
    while j < c.len() {
        if c[j] == '"'
            && c[j + 1..]
                .iter()
                .take(hashes)
                .filter(|&&h| h == '#')
                .count()
                == hashes
        {
            return j + 1 + hashes;
        }
        j += 1;
    }
    c.len()
}

/// End (exclusive) of a `"..."` or `'.'` literal opening at `i`, escapes honoured.
fn quoted_end(c: &[char], i: usize, quote: char) -> usize {
    let mut j = i + 1;
    while j < c.len() {
        match c[j] {
            '\\' => j += 2,
            ch if ch == quote => return j + 1,
            _ => j += 1,
        }
    }
    c.len()
}

fn block_comment_end(c: &[char], i: usize) -> usize {
    let mut depth = 0;
    let mut j = i;
    while j + 1 < c.len() {
        if c[j] == '/' && c[j + 1] == '*' {
            depth += 1;
            j += 2;
        } else if c[j] == '*' && c[j + 1] == '/' {
            depth -= 1;
            j += 2;
            if depth == 0 {
                return j;
            }
        } else {
            j += 1;
        }
    }
    c.len()
}
