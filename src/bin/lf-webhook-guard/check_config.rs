//! `check-config`: validate a plugin configuration, or every lf_webhook_guard filter of an Envoy
//! configuration (plugin JSON via the core's `Config::from_json`, plus the Envoy settings the
//! filter depends on).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use lf_webhook_guard::Config;
use serde_json::{json, Value};

use crate::input::{read_input, CliError};

const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
const BUFFER_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer";
const STRING_VALUE_TYPE: &str = "type.googleapis.com/google.protobuf.StringValue";
const WASM_FILE: &str = "lf_webhook_guard.wasm";

#[derive(Args, Debug)]
pub struct CheckConfigArgs {
    /// A plugin configuration (JSON), or an Envoy configuration (YAML or JSON with
    /// `static_resources`); `-` reads standard input.
    file: PathBuf,
    /// Do not resolve `secret_env`/`id_env` from this process's environment (CI without secrets).
    #[arg(long)]
    no_env: bool,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

fn join(prefix: &str, field: &str) -> String {
    match (prefix.is_empty(), field.is_empty()) {
        (true, _) => field.to_string(),
        (_, true) => prefix.to_string(),
        _ => format!("{prefix} -> {field}"),
    }
}

/// Where a variable comes from for the Wasm VM: Envoy `key_values` (given inline), the host's
/// environment (`host_env_keys`), or (for a bare plugin JSON) the process environment.
struct EnvSource {
    no_env: bool,
    /// Envoy only: (host_env_keys, key_values).
    envoy: Option<(Vec<String>, BTreeMap<String, String>)>,
    missing: RefCell<Vec<String>>,
    counter: std::cell::Cell<u32>,
}

impl EnvSource {
    fn lookup(&self, var: &str) -> Option<String> {
        self.counter.set(self.counter.get().wrapping_add(1));
        let n = self.counter.get();
        let placeholder = || Some(format!("check-config-placeholder-{n}"));
        if let Some((_, key_values)) = &self.envoy {
            if let Some(v) = key_values.get(var) {
                return if v.is_empty() {
                    self.missing.borrow_mut().push(var.to_string());
                    placeholder()
                } else {
                    Some(v.clone())
                };
            }
        }
        if self.no_env {
            return placeholder();
        }
        match std::env::var(var) {
            Ok(v) if !v.is_empty() => Some(v),
            _ => {
                self.missing.borrow_mut().push(var.to_string());
                placeholder()
            }
        }
    }
}

/// The fields of `keys[]` that name environment variables: (field path, variable).
fn env_fields(plugin: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(keys) = plugin.get("keys").and_then(Value::as_array) {
        for (i, k) in keys.iter().enumerate() {
            for field in ["secret_env", "id_env"] {
                if let Some(var) = k.get(field).and_then(Value::as_str) {
                    out.push((format!("keys[{i}].{field}"), var.to_string()));
                }
            }
        }
    }
    out
}

/// Check one plugin configuration; returns its `hold_headers` (default true).
fn check_plugin(text: &[u8], prefix: &str, env: &EnvSource, problems: &mut Vec<Problem>) -> bool {
    check_plugin_in(text, prefix, env, None, problems)
}

/// `check_plugin` inside an Envoy configuration that defines `clusters` (its static clusters;
/// None when unknown): the fleet de-dup store must name one of them.
fn check_plugin_in(
    text: &[u8],
    prefix: &str,
    env: &EnvSource,
    clusters: Option<&[String]>,
    problems: &mut Vec<Problem>,
) -> bool {
    let mut add = |field: &str, message: String| {
        problems.push(Problem {
            path: join(prefix, field),
            message,
        })
    };
    let raw: Option<Value> = serde_json::from_slice(text).ok();
    match Config::from_json(text, |var| env.lookup(var)) {
        Err(e) => add(&e.field, e.message.clone()),
        Ok(config) => {
            let undefined = clusters.map_or_else(Vec::new, |c| {
                lf_webhook_guard::dedup::etcd::undefined_clusters(&config, c)
            });
            for e in undefined {
                add(&e.field, e.message);
            }
        }
    }
    let Some(raw) = raw else { return true };
    let missing = env.missing.borrow().clone();
    for (field, var) in env_fields(&raw) {
        // A value that does not look like a variable name may be a pasted secret: never shown.
        let shown = lf_webhook_guard::config::printable_var(&var)
            .map_or_else(|| "(name not shown)".to_string(), |v| format!("`{v}`"));
        if missing.contains(&var) {
            add(
                &field,
                format!("environment variable {shown} is not set or empty"),
            );
        }
        if let Some((host_keys, key_values)) = &env.envoy {
            if !host_keys.contains(&var) && !key_values.contains_key(&var) {
                add(
                    &field,
                    format!("{shown} is not in vm_config.environment_variables (host_env_keys or key_values): the Wasm VM cannot read it"),
                );
            }
        }
    }
    raw.get("hold_headers")
        .and_then(Value::as_bool)
        .unwrap_or(true)
}

fn walk<'v>(v: &'v Value, path: String, out: &mut Vec<(String, &'v Vec<Value>)>) {
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if k == "http_filters" {
                    if let Value::Array(list) = child {
                        out.push((p.clone(), list));
                    }
                }
                walk(child, p, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                walk(child, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn is_filter(f: &Value, name: &str, type_url: &str) -> bool {
    f.get("name").and_then(Value::as_str) == Some(name)
        || f.pointer("/typed_config/@type").and_then(Value::as_str) == Some(type_url)
}

/// The names of the static clusters of an Envoy configuration; None when it also takes clusters
/// from CDS (a cluster missing here may come from there).
fn static_clusters(doc: &Value) -> Option<Vec<String>> {
    if doc.pointer("/dynamic_resources/cds_config").is_some() {
        return None;
    }
    let clusters = doc
        .pointer("/static_resources/clusters")
        .and_then(Value::as_array);
    Some(
        clusters
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("name").and_then(Value::as_str).map(String::from))
            .collect(),
    )
}

fn check_envoy(doc: &Value, no_env: bool, problems: &mut Vec<Problem>) -> usize {
    let clusters = static_clusters(doc);
    let mut chains = Vec::new();
    walk(doc, String::new(), &mut chains);
    let mut found = 0;
    for (chain_path, filters) in chains {
        for (j, f) in filters.iter().enumerate() {
            if !is_filter(f, "envoy.filters.http.wasm", WASM_TYPE) {
                continue;
            }
            let code = f.pointer("/typed_config/config/vm_config/code");
            let file = code
                .and_then(|c| {
                    c.pointer("/local/filename")
                        .or_else(|| c.pointer("/remote/http_uri/uri"))
                })
                .and_then(Value::as_str);
            if !file.is_some_and(|p| p.ends_with(WASM_FILE)) {
                continue;
            }
            found += 1;
            let buffer_after = filters
                .iter()
                .skip(j + 1)
                .any(|x| is_filter(x, "envoy.filters.http.buffer", BUFFER_TYPE));
            let at = format!("{chain_path}[{j}]");
            check_wasm_filter(f, &at, buffer_after, no_env, clusters.as_deref(), problems);
        }
    }
    check_route_exemptions(doc, String::new(), problems);
    if found == 0 {
        problems.push(Problem {
            path: String::new(),
            message: format!(
                "no envoy.filters.http.wasm filter whose vm code ends with {WASM_FILE}"
            ),
        });
    }
    found
}

/// One lf_webhook_guard Wasm filter at `at`: its plugin JSON (with the VM's environment), the
/// hold / buffer mode pairing and the failure policy.
fn check_wasm_filter(
    f: &Value,
    at: &str,
    buffer_after: bool,
    no_env: bool,
    clusters: Option<&[String]>,
    problems: &mut Vec<Problem>,
) {
    let cfg_path = format!("{at}.typed_config.config");
    let cfg = f.pointer("/typed_config/config").unwrap_or(&Value::Null);
    let plugin_text = plugin_text(cfg, &cfg_path, problems);
    let hold = match plugin_text {
        Some(text) => {
            let env = EnvSource {
                no_env,
                envoy: Some(vm_env(cfg)),
                missing: RefCell::new(Vec::new()),
                counter: std::cell::Cell::new(0),
            };
            check_plugin_in(
                text.as_bytes(),
                &format!("{cfg_path}.configuration.value"),
                &env,
                clusters,
                problems,
            )
        }
        None => true,
    };
    check_modes(cfg, &cfg_path, at, hold, buffer_after, problems);
}

/// The VM's `host_env_keys` and `key_values`.
fn vm_env(cfg: &Value) -> (Vec<String>, BTreeMap<String, String>) {
    let envvars = cfg.pointer("/vm_config/environment_variables");
    let host_keys: Vec<String> = envvars
        .and_then(|e| e.get("host_env_keys"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let key_values: BTreeMap<String, String> = envvars
        .and_then(|e| e.get("key_values"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default();
    (host_keys, key_values)
}

/// The plugin JSON of `configuration` (a StringValue), or the problem why there is none.
fn plugin_text(cfg: &Value, cfg_path: &str, problems: &mut Vec<Problem>) -> Option<String> {
    let mut add = |path: String, message: String| problems.push(Problem { path, message });
    let configuration = cfg.get("configuration");
    match configuration {
        None => {
            add(
                format!("{cfg_path}.configuration"),
                "missing: the filter needs its plugin JSON as a google.protobuf.StringValue".into(),
            );
            None
        }
        Some(c) => {
            if c.get("@type").and_then(Value::as_str) != Some(STRING_VALUE_TYPE) {
                add(
                    format!("{cfg_path}.configuration.@type"),
                    format!("must be {STRING_VALUE_TYPE}"),
                );
            }
            match c.get("value").and_then(Value::as_str) {
                Some(v) => Some(v.to_string()),
                None => {
                    add(
                        format!("{cfg_path}.configuration.value"),
                        "missing or not a string: the plugin JSON".into(),
                    );
                    None
                }
            }
        }
    }
}

/// Hold mode needs `allow_on_headers_stop_iteration`, buffer mode a buffer filter after this
/// one; no failure policy may forward unverified requests.
fn check_modes(
    cfg: &Value,
    cfg_path: &str,
    at: &str,
    hold: bool,
    buffer_after: bool,
    problems: &mut Vec<Problem>,
) {
    let mut add = |path: String, message: String| problems.push(Problem { path, message });
    let allow = cfg
        .get("allow_on_headers_stop_iteration")
        .and_then(Value::as_bool)
        == Some(true);
    if hold && !allow {
        add(
            format!("{cfg_path}.allow_on_headers_stop_iteration"),
            format!(
                "must be true: the filter holds the headers until the body is verified (hold_headers defaults to true) and without this flag Envoy never delivers the body, so requests hang (Envoy >= 1.35){}",
                if buffer_after { "; the buffer filter after it does not help in hold mode: set \"hold_headers\": false to use it" } else { "; or set \"hold_headers\": false and put envoy.filters.http.buffer after this filter" }
            ),
        );
    }
    if !hold && !buffer_after {
        add(
            at.to_string(),
            "\"hold_headers\": false but no envoy.filters.http.buffer filter follows this filter: a forged request's headers would reach the backend before the body is checked".into(),
        );
    }
    if cfg.get("fail_open").and_then(Value::as_bool) == Some(true) {
        add(
            format!("{cfg_path}.fail_open"),
            "true forwards requests unverified when the Wasm VM fails: set it to false".into(),
        );
    }
    if cfg.get("failure_policy").and_then(Value::as_str) == Some("FAIL_OPEN") {
        add(
            format!("{cfg_path}.failure_policy"),
            "FAIL_OPEN forwards requests unverified when the Wasm VM fails: use FAIL_CLOSED (or FAIL_RELOAD)"
                .into(),
        );
    }
}

/// Envoy routes that disable a filter per route (`typed_per_filter_config: {..: {disabled:
/// true}}`) are safe only with an exact `path` match: a prefix or regex route is reached by
/// aliases that the backend resolves (`/app2/..;/linksfield/sms` under `/app2/`: Envoy keeps
/// `..;`, Tomcat resolves it). Also the connection managers whose underscore headers reach such
/// routes (`x_lf_verified` reads as `x-lf-verified` to CGI-style servers).
fn check_route_exemptions(v: &Value, path: String, problems: &mut Vec<Problem>) {
    match v {
        Value::Object(m) => {
            let disables = m
                .get("typed_per_filter_config")
                .and_then(Value::as_object)
                .is_some_and(|f| {
                    f.values()
                        .any(|c| c.get("disabled").and_then(Value::as_bool) == Some(true))
                });
            if disables {
                let exact = v.pointer("/match/path").is_some();
                if !exact {
                    problems.push(Problem {
                        path: format!("{path}.match"),
                        message: "disables a filter for a prefix or regex match: aliases of protected paths reach it (`/app2/..;/linksfield/sms` under `/app2/`); use an exact `path` match, or the plugin's `exempt` list".into(),
                    });
                }
            }
            let underscores = v
                .pointer("/common_http_protocol_options/headers_with_underscores_action")
                .and_then(Value::as_str);
            let is_hcm = m
                .get("@type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with("http_connection_manager.v3.HttpConnectionManager"));
            if is_hcm && !matches!(underscores, Some("DROP_HEADER" | "REJECT_REQUEST")) {
                problems.push(Problem {
                    path: format!("{path}.common_http_protocol_options.headers_with_underscores_action"),
                    message: "should be DROP_HEADER (or REJECT_REQUEST): with the default ALLOW a client's `x_lf_verified` reaches routes the filter does not run on, and CGI-style servers read it as x-lf-verified".into(),
                });
            }
            for (k, x) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                check_route_exemptions(x, p, problems);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                check_route_exemptions(x, format!("{path}[{i}]"), problems);
            }
        }
        _ => {}
    }
}

pub fn run(args: CheckConfigArgs) -> Result<u8, CliError> {
    let bytes = read_input(&args.file)?;
    let name = args.file.display().to_string();
    let ext = args.file.extension().and_then(|e| e.to_str()).unwrap_or("");
    let as_json: Option<Value> = serde_json::from_slice(&bytes).ok();
    let envoy_doc: Option<Value> = match &as_json {
        Some(v) if v.get("static_resources").is_some() || v.get("http_filters").is_some() => {
            Some(v.clone())
        }
        Some(_) => None,
        None if ext == "json" => None,
        None => Some(serde_norway::from_slice::<Value>(&bytes).map_err(|e| {
            CliError::new(format!("{name}: neither JSON nor YAML: {e}"))
                .hint("give a plugin configuration (JSON) or an Envoy configuration (YAML)")
        })?),
    };
    let mut problems = Vec::new();
    let (kind, filters) = match &envoy_doc {
        Some(doc) => ("envoy", check_envoy(doc, args.no_env, &mut problems)),
        None => {
            let env = EnvSource {
                no_env: args.no_env,
                envoy: None,
                missing: RefCell::new(Vec::new()),
                counter: std::cell::Cell::new(0),
            };
            check_plugin(&bytes, "", &env, &mut problems);
            ("plugin", 1)
        }
    };
    let code = u8::from(!problems.is_empty());
    if args.json {
        let list: Vec<Value> = problems
            .iter()
            .map(|p| json!({"path": p.path, "message": p.message}))
            .collect();
        println!(
            "{}",
            json!({"ok": problems.is_empty(), "kind": kind, "filters": filters, "problems": list})
        );
        return Ok(code);
    }
    for p in &problems {
        if p.path.is_empty() {
            println!("problem: {}", p.message);
        } else {
            println!("problem: {}: {}", p.path, p.message);
        }
    }
    if problems.is_empty() {
        match kind {
            "envoy" => println!("ok: {name}: {filters} lf_webhook_guard filter(s) checked"),
            _ => println!("ok: {name}: valid plugin configuration"),
        }
    } else {
        println!("{name}: {} problem(s)", problems.len());
        eprintln!("hint: the plugin JSON is checked up to its first structural error; fix it and run again");
    }
    Ok(code)
}
