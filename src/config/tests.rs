use super::*;
use crate::route::Posture;

fn env(name: &str) -> Option<String> {
    match name {
        "LF_SECRET" => Some("s3cr3t=value&x".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

fn parse(json: &str) -> Result<Config, ConfigError> {
    Config::from_json(json.as_bytes(), env)
}

const MINIMAL: &str = r#"{"keys":[{"id":"k1","secret":"abc"}],"routes":[{"path_prefix":"/lf/"}]}"#;

#[test]
fn minimal_config_gets_defaults() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
    assert_eq!(c.routes[0].methods, vec!["POST"]);
    assert_eq!(c.routes[0].allow, "POST");
    assert_eq!(c.routes[0].name, "route0");
    assert_eq!(c.routes[0].scheme, RouteScheme::Md5);
    assert_eq!(c.routes[0].keys, vec![0]);
    assert!(!c.routes[0].allow_unsigned);
    assert_eq!(c.routes[0].partner_field, "partner_code");
    assert!(!c.routes[0].partner_bound);
    assert_eq!(c.routes[0].freshness, None);
    assert_eq!(c.md5, Md5Options::default());
    assert_eq!(c.md5.empty_values, EmptyValues::Keep);
    assert_eq!(c.md5.nested_values, NestedValues::Reject);
}

#[test]
fn full_config() {
    let c = parse(
        r#"{"keys":[{"id":"a","secret_env":"LF_SECRET"},{"id":"b","secret":"x"}],
            "routes":[{"name":"sms","path_exact":"/sms","methods":["POST","PUT"],"scheme":"md5"}],
            "max_body_bytes":1024,"md5":{"empty_values":"skip","nested_values":"raw"}}"#,
    )
    .unwrap();
    assert_eq!(c.keys[0].secret.expose(), b"s3cr3t=value&x");
    assert_eq!(c.routes[0].allow, "POST, PUT");
    assert_eq!(c.max_body_bytes, 1024);
    assert_eq!(c.md5.empty_values, EmptyValues::Skip);
    assert_eq!(c.md5.nested_values, NestedValues::Raw);
}

/// Every config error names its field.
#[test]
fn errors_name_the_field() {
    let cases: &[(&str, &str)] = &[
        ("not json", ""),
        (r#"{"routes":[]}"#, "keys"),
        (
            r#"{"keys":[{"id":"k","secret":"s"}],"posture":"route_list","routes":[]}"#,
            "routes",
        ),
        (
            r#"{"keys":[{"id":"k","secret":"s"}],"posture":"open"}"#,
            "posture",
        ),
        (
            r#"{"keys":[{"id":"k","secret":"s"}],"posture":"route_list","routes":[{"path_prefix":"/a"}],"default_route":{}}"#,
            "default_route",
        ),
        (
            r#"{"keys":[{"id":"k","secret":"s"}],"default_route":{"scheme":"x"}}"#,
            "default_route.scheme",
        ),
        (
            r#"{"keys":[{"id":"k","secret":"s"}],"default_route":{"path_prefix":"/"}}"#,
            "default_route.path_prefix",
        ),
        (
            r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a","name":"default"}]}"#,
            "routes[0].name",
        ),
        (
            r#"{"keys":[{"id":"k","secret":"s"}],"exempt":[{"path_exact":"/a","path_prefix":"/b"}]}"#,
            "exempt[0]",
        ),
        (
            r#"{"keys":[{"id":"k","secret":"s"}],"exempt":[{"path_prefix":"/a;b/"}]}"#,
            "exempt[0].path_prefix",
        ),
        (
            r#"{"keys":[{"id":"k","secret":"s"}],"exempt":[{"path_exact":"a"}]}"#,
            "exempt[0].path_exact",
        ),
        (
            r#"{"keys":[{"id":"k","secret":"s"}],"exempt":[{"path_exact":"/a","methods":["GET"]}]}"#,
            "exempt[0].methods",
        ),
        (
            r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a","allowed_queries":[""]}]}"#,
            "routes[0].allowed_queries[0]",
        ),
        (
            r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a","allowed_queries":["?a=1"]}]}"#,
            "routes[0].allowed_queries[0]",
        ),
        (
            r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a","case_sensitive":"yes"}]}"#,
            "routes[0].case_sensitive",
        ),
        (
            r#"{"keys":[{"id":"k","secret":"s"}],"md5":{"value_types":"numbers"}}"#,
            "md5.value_types",
        ),
        (
            r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a"}],"extra":1}"#,
            "extra",
        ),
        (
            r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a","pathprefix":"/b"}]}"#,
            "routes[0].pathprefix",
        ),
        (
            r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a","path_exact":"/b"}]}"#,
            "routes[0]",
        ),
        (
            r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"name":"r"}]}"#,
            "routes[0]",
        ),
        (
            r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"a"}]}"#,
            "routes[0].path_prefix",
        ),
        (
            r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_exact":"/a?b"}]}"#,
            "routes[0].path_exact",
        ),
        (
            r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a","methods":[]}]}"#,
            "routes[0].methods",
        ),
        (
            r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a","methods":["post"]}]}"#,
            "routes[0].methods[0]",
        ),
        (
            r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a","methods":[1]}]}"#,
            "routes[0].methods[0]",
        ),
        (
            r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a","scheme":"sha"}]}"#,
            "routes[0].scheme",
        ),
        (
            r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a","name":"bad name"}]}"#,
            "routes[0].name",
        ),
        (
            r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a","name":"x"},{"path_prefix":"/b","name":"x"}]}"#,
            "routes[1].name",
        ),
        (r#"{"routes":[{"path_prefix":"/a"}]}"#, "keys"),
        (
            r#"{"keys":[{"id":"","secret":"s"}],"routes":[{"path_prefix":"/a"}]}"#,
            "keys[0].id",
        ),
        (
            r#"{"keys":[{"id":"k","secret":"s"},{"id":"k","secret":"t"}],"routes":[{"path_prefix":"/a"}]}"#,
            "keys[1].id",
        ),
        (
            r#"{"keys":[{"id":"k"}],"routes":[{"path_prefix":"/a"}]}"#,
            "keys[0]",
        ),
        (
            r#"{"keys":[{"id":"k","secret":"s","secret_env":"LF_SECRET"}],"routes":[{"path_prefix":"/a"}]}"#,
            "keys[0]",
        ),
        (
            r#"{"keys":[{"id":"k","secret":""}],"routes":[{"path_prefix":"/a"}]}"#,
            "keys[0].secret",
        ),
        (
            r#"{"keys":[{"id":"k","secret_env":"NOPE"}],"routes":[{"path_prefix":"/a"}]}"#,
            "keys[0].secret_env",
        ),
        (
            r#"{"keys":[{"id":"k","secret_env":"EMPTY"}],"routes":[{"path_prefix":"/a"}]}"#,
            "keys[0].secret_env",
        ),
        (
            r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a"}],"max_body_bytes":0}"#,
            "max_body_bytes",
        ),
        (
            r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a"}],"max_body_bytes":-1}"#,
            "max_body_bytes",
        ),
        (
            r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a"}],"max_body_bytes":99999999999}"#,
            "max_body_bytes",
        ),
        (
            r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a"}],"md5":{"empty_values":"drop"}}"#,
            "md5.empty_values",
        ),
        (
            r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a"}],"md5":{"nested_values":"json"}}"#,
            "md5.nested_values",
        ),
    ];
    for (json, field) in cases {
        let err = parse(json).expect_err(json);
        assert_eq!(&err.field, field, "{json}: {err}");
        assert!(
            err.to_string().starts_with("invalid configuration"),
            "{err}"
        );
    }
}

#[test]
fn hold_mode_fields() {
    let c = parse(MINIMAL).unwrap();
    assert!(c.hold_headers);
    assert_eq!(c.hold_timeout_ms, DEFAULT_HOLD_TIMEOUT_MS);
    assert_eq!(c.hold_deadline_ms, DEFAULT_HOLD_DEADLINE_MS);
    let c = parse(
        r#"{"keys":[{"id":"k","secret":"s"}],"routes":[{"path_prefix":"/a"}],
            "hold_headers":false,"hold_timeout_ms":0,"hold_deadline_ms":0}"#,
    )
    .unwrap();
    assert!(!c.hold_headers);
    assert_eq!(c.hold_timeout_ms, 0);
    assert_eq!(c.hold_deadline_ms, 0);
    for (json, field) in [
        (r#""hold_headers":"no""#, "hold_headers"),
        (r#""hold_headers":0"#, "hold_headers"),
        (r#""hold_timeout_ms":600001"#, "hold_timeout_ms"),
        (r#""hold_timeout_ms":-5"#, "hold_timeout_ms"),
        (r#""hold_timeout_ms":1.5"#, "hold_timeout_ms"),
        (r#""hold_deadline_ms":600001"#, "hold_deadline_ms"),
        (r#""hold_deadline_ms":-1"#, "hold_deadline_ms"),
    ] {
        let full = format!(
            r#"{{"keys":[{{"id":"k","secret":"s"}}],"routes":[{{"path_prefix":"/a"}}],{json}}}"#
        );
        let err = parse(&full).expect_err(&full);
        assert_eq!(err.field, field, "{full}: {err}");
    }
}

#[test]
fn schemes_keys_partners_freshness() {
    let c = parse(
        r#"{"keys":[{"id":"md5-old","secret":"a"},{"id":"md5-new","secret":"b","partners":["P1","P2"]},
                    {"id":"cube1","secret_env":"LF_SECRET","partners":["P3"]}],
            "posture":"route_list",
            "routes":[{"name":"legacy","path_prefix":"/lf/","keys":["md5-new","md5-old"]},
                      {"name":"cube","path_prefix":"/cube/","scheme":"cube","keys":["cube1"],
                       "freshness":{"max_age_seconds":600}},
                      {"name":"both","path_prefix":"/x/","scheme":"auto","allow_unsigned":true,
                       "partner_field":"pc","freshness":{"max_age_seconds":60,"max_future_skew_seconds":5,
                       "body_field":"sent","body_field_utc_offset":"+08:00"}}]}"#,
    )
    .unwrap();
    let [legacy, cube, both] = &c.routes[..] else {
        panic!()
    };
    assert_eq!(legacy.keys, vec![1, 0]);
    assert!(legacy.partner_bound);
    assert_eq!(cube.scheme, RouteScheme::Cube);
    let f = cube.freshness.as_ref().unwrap();
    assert_eq!(
        (
            f.max_age_ms,
            f.max_future_skew_ms,
            f.body_field.as_str(),
            f.body_field_utc_offset_minutes
        ),
        (600_000, 300_000, "received_at", 0)
    );
    assert_eq!(both.scheme, RouteScheme::Auto);
    assert!(both.allow_unsigned);
    assert_eq!(both.keys, vec![0, 1, 2]);
    assert_eq!(both.partner_field, "pc");
    let f = both.freshness.as_ref().unwrap();
    assert_eq!(
        (
            f.max_future_skew_ms,
            f.body_field.as_str(),
            f.body_field_utc_offset_minutes
        ),
        (5_000, "sent", 480)
    );
    assert!(c.keys[1].allows_partner(Some("P2")));
    assert!(!c.keys[1].allows_partner(Some("P3")));
    assert!(!c.keys[1].allows_partner(None));
    assert!(c.keys[0].allows_partner(None));
}

#[test]
fn key_ids_from_env_and_scheme_restrictions() {
    let c = parse(
        r#"{"keys":[{"id":"demo","secret":"a","schemes":["md5"]},
                    {"id_env":"CUBE_ID","secret_env":"LF_SECRET","schemes":["cube"]}],
            "routes":[{"path_prefix":"/lf/"},{"path_prefix":"/cube/","scheme":"cube"},
                      {"path_prefix":"/x/","scheme":"auto"}]}"#,
    );
    // CUBE_ID is not in this test's environment.
    assert_eq!(c.unwrap_err().field, "keys[1].id_env");
    let env2 = |n: &str| match n {
        "CUBE_ID" => Some("Ou8a5lyzPjN86ikmLeFC".to_string()),
        other => env(other),
    };
    let c = Config::from_json(
        br#"{"keys":[{"id":"demo","secret":"a","schemes":["md5"]},
                    {"id_env":"CUBE_ID","secret_env":"LF_SECRET","schemes":["cube"]}],
            "routes":[{"path_prefix":"/lf/"},{"path_prefix":"/cube/","scheme":"cube"},
                      {"path_prefix":"/x/","scheme":"auto"}]}"#,
        env2,
    )
    .unwrap();
    assert_eq!(c.keys[1].id, "Ou8a5lyzPjN86ikmLeFC");
    assert!(c.keys[0].md5 && !c.keys[0].cube && !c.keys[1].md5 && c.keys[1].cube);
    assert_eq!(
        (c.routes[2].md5_keys.clone(), c.routes[2].cube_keys.clone()),
        (vec![0], vec![1])
    );
}

#[test]
fn mode_dedup_and_log_level_inherit_and_override() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.routes[0].mode, Mode::Enforce);
    assert_eq!(c.routes[0].dedup, None);
    assert_eq!(c.log_level, None);
    let c = parse(
        r#"{"keys":[{"id":"k1","secret":"abc"}],"mode":"shadow","log_level":"warn",
            "dedup":{"window_seconds":60,"max_entries":16},
            "routes":[{"name":"a","path_prefix":"/a/"},
                      {"name":"b","path_prefix":"/b/","mode":"enforce","dedup":false},
                      {"name":"c","path_prefix":"/c/","dedup":{"window_seconds":2}}]}"#,
    )
    .unwrap();
    assert_eq!(c.log_level, Some(LogLevel::Warn));
    assert_eq!(c.routes[0].mode, Mode::Shadow);
    assert_eq!(c.routes[1].mode, Mode::Enforce);
    assert_eq!(c.routes[2].mode, Mode::Shadow);
    let a = c.routes[0].dedup.as_ref().unwrap();
    assert_eq!(
        (a.window_ms, a.max_entries, a.table.as_str()),
        (60_000, 16, "global")
    );
    assert_eq!(c.routes[1].dedup, None);
    let r = c.routes[2].dedup.as_ref().unwrap();
    assert_eq!(
        (r.window_ms, r.max_entries, r.table.as_str()),
        (2000, 10_000, "route.c")
    );
    for (json, field) in [
        (r#""mode":"audit","#, "mode"),
        (r#""log_level":"loud","#, "log_level"),
        (r#""dedup":false,"#, "dedup"),
        (r#""dedup":{"window_seconds":0},"#, "dedup.window_seconds"),
    ] {
        let text = format!(
            r#"{{"keys":[{{"id":"k1","secret":"abc"}}],{json}"routes":[{{"path_prefix":"/a/"}}]}}"#
        );
        assert_eq!(parse(&text).unwrap_err().field, field, "{json}");
    }
    let err = parse(
        r#"{"keys":[{"id":"k1","secret":"abc"}],"routes":[{"path_prefix":"/a/","mode":"x"}]}"#,
    )
    .unwrap_err();
    assert_eq!(err.field, "routes[0].mode");
    let err = parse(
        r#"{"keys":[{"id":"k1","secret":"abc"}],"routes":[{"path_prefix":"/a/","dedup":{"max_entries":5}}]}"#,
    )
    .unwrap_err();
    assert_eq!(err.field, "routes[0].dedup.window_seconds");
}

#[test]
fn secret_values_never_reach_an_error() {
    for (json, field) in [
        (
            r#"{"keys":[{"id":"k","secret":918273645}]}"#,
            "keys[0].secret",
        ),
        (
            r#"{"keys":[{"id":"k","secret":["918273645"]}]}"#,
            "keys[0].secret",
        ),
        (
            r#"{"keys":[{"id":"k","secret_env":918273645}]}"#,
            "keys[0].secret_env",
        ),
        (
            r#"{"keys":[{"id":"k","secret_env":"918273645xGl64jNW=n"}]}"#,
            "keys[0].secret_env",
        ),
        (
            r#"{"keys":[{"id":"k","secret_env":"lowercase918273645"}]}"#,
            "keys[0].secret_env",
        ),
        (
            r#"{"keys":[{"id_env":"918273645 x","secret":"s"}]}"#,
            "keys[0].id_env",
        ),
    ] {
        let err = parse(json).unwrap_err();
        assert_eq!(err.field, field, "{json}");
        assert!(!err.to_string().contains("918273645"), "{err}");
    }
    let err = parse(r#"{"keys":[{"id":"k","secret_env":"LF_NOT_SET_1"}]}"#).unwrap_err();
    assert!(
        err.to_string().contains("`LF_NOT_SET_1` is not set"),
        "{err}"
    );
}

#[test]
fn deny_posture_catch_all() {
    let c = parse(r#"{"keys":[{"id":"k","secret":"s","schemes":["md5"]}]}"#).unwrap();
    assert_eq!(c.posture, Posture::Deny);
    let d = c.routes.last().unwrap();
    assert_eq!(
        (d.name.as_str(), d.scheme, d.allow.as_str()),
        ("default", RouteScheme::Md5, "POST")
    );
    let c = parse(
        r#"{"keys":[{"id":"a","secret":"s","schemes":["md5"]},{"id":"b","secret":"t","schemes":["cube"]}],
            "default_route":{"methods":["POST","PUT"]}}"#,
    )
    .unwrap();
    let d = c.routes.last().unwrap();
    assert_eq!(
        (d.scheme, d.allow.as_str()),
        (RouteScheme::Auto, "POST, PUT")
    );
    let c = parse(
        r#"{"keys":[{"id":"a","secret":"s","schemes":["md5"]},{"id":"b","secret":"t","schemes":["cube"]}],
            "default_route":{"keys":["b"]}}"#,
    )
    .unwrap();
    assert_eq!(c.routes.last().unwrap().scheme, RouteScheme::Cube);
    let c = parse(MINIMAL_ROUTES).unwrap();
    assert_eq!((c.posture, c.routes.len()), (Posture::RouteList, 1));
}

const MINIMAL_ROUTES: &str = r#"{"keys":[{"id":"k1","secret":"abc"}],"posture":"route_list","routes":[{"path_prefix":"/lf/"}]}"#;

#[test]
fn errors_name_the_variable_not_the_value() {
    let err = parse(r#"{"keys":[{"id":"k","secret_env":"NOPE"}],"routes":[{"path_prefix":"/a"}]}"#)
        .unwrap_err();
    assert!(err.to_string().contains("`NOPE` is not set"), "{err}");
}

#[test]
fn secrets_are_redacted_in_debug() {
    let c = Config::from_json(
        br#"{"keys":[{"id":"k1","secret":"topsecret-inline"},{"id":"k2","secret_env":"LF_SECRET"}],
             "routes":[{"path_prefix":"/a"}]}"#,
        env,
    )
    .unwrap();
    let dbg = format!("{c:?} {:#?}", c);
    assert!(!dbg.contains("topsecret-inline"), "{dbg}");
    assert!(!dbg.contains("s3cr3t"), "{dbg}");
    assert!(dbg.contains("redacted"));
    assert!(dbg.contains("k1"));
}

/// The `dedup` section: bounds, defaults, `false` only on routes, unknown fields.
#[test]
fn dedup_bounds() {
    let with = |dedup: &str| {
        parse(&format!(
            r#"{{"keys":[{{"id":"k","secret":"s"}}],"dedup":{dedup},"routes":[{{"path_prefix":"/a"}}]}}"#
        ))
    };
    let c = with(r#"{"window_seconds": 2}"#).unwrap();
    let d = c.routes[0].dedup.as_ref().unwrap();
    assert_eq!(
        (d.window_ms, u64::from(d.max_entries), d.table.as_str()),
        (2000, crate::dedup::DEFAULT_DEDUP_ENTRIES, "global")
    );
    let c = with(r#"{"window_seconds": 3600, "max_entries": 16}"#).unwrap();
    assert_eq!(c.routes[0].dedup.as_ref().unwrap().max_entries, 16);
    for (bad, field, message) in [
        ("false", "dedup", "must be an object"),
        ("true", "dedup", "must be an object"),
        ("[1]", "dedup", "must be an object"),
        ("{}", "dedup.window_seconds", "is required"),
        (
            r#"{"window_seconds": 0}"#,
            "dedup.window_seconds",
            "between 1 and 604800",
        ),
        (
            r#"{"window_seconds": 604801}"#,
            "dedup.window_seconds",
            "between 1 and",
        ),
        (
            r#"{"window_seconds": 1.5}"#,
            "dedup.window_seconds",
            "must be an integer",
        ),
        (
            r#"{"window_seconds": "60"}"#,
            "dedup.window_seconds",
            "must be an integer",
        ),
        (
            r#"{"window_seconds": null}"#,
            "dedup.window_seconds",
            "must be an integer",
        ),
        (
            r#"{"window_seconds": {"a": 1}}"#,
            "dedup.window_seconds",
            "must be an integer",
        ),
        (
            r#"{"window_seconds": 60, "max_entries": 0}"#,
            "dedup.max_entries",
            "between 1 and 1000000",
        ),
        (
            r#"{"window_seconds": 60, "max_entries": 1000001}"#,
            "dedup.max_entries",
            "between",
        ),
        (
            r#"{"window_seconds": 60, "max_entries": -1}"#,
            "dedup.max_entries",
            "must be an integer",
        ),
        (
            r#"{"window_seconds": 60, "slots": 5}"#,
            "dedup.slots",
            "unknown field `slots`",
        ),
    ] {
        let err = with(bad).unwrap_err();
        assert_eq!(err.field, field, "{bad}: {err}");
        assert!(err.message.contains(message), "{bad}: {err}");
        assert!(
            !err.message.contains("line 1") || field == "dedup.slots",
            "{err}"
        );
    }
    let err = parse(
        r#"{"keys":[{"id":"k","secret":"s"}],"dedup":{"window_seconds":60},
            "routes":[{"path_prefix":"/a","dedup":true}]}"#,
    )
    .unwrap_err();
    assert_eq!(err.field, "routes[0].dedup");
    assert!(err.message.ends_with("or false"), "{err}");
}

/// Names given as text: our own message, no JSON position, the field named.
#[test]
fn unknown_names_are_reported_in_our_words() {
    for (json, message) in [
        (r#""mode":"audit","#, "mode: unknown mode `audit` (expected `enforce` or `shadow`)"),
        (
            r#""log_level":"loud","#,
            "log_level: unknown level `loud` (expected trace, debug, info, warn, error or critical)",
        ),
    ] {
        let text = format!(
            r#"{{"keys":[{{"id":"k1","secret":"abc"}}],{json}"routes":[{{"path_prefix":"/a/"}}]}}"#
        );
        assert_eq!(
            parse(&text).unwrap_err().to_string(),
            format!("invalid configuration: {message}")
        );
    }
    let err = parse(r#"{"keys":[{"id":"k","secret":"s","schemes":["sha"]}]}"#).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid configuration: keys[0].schemes[0]: unknown scheme `sha` (expected `md5` or `cube`)"
    );
    let err = parse(r#"{"keys":[{"id":"k","secret":"s"}],"default_route":{"scheme":"MD5"}}"#)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid configuration: default_route.scheme: unknown scheme `MD5` (expected `md5`, `cube` or `auto`)"
    );
    let c = parse(r#"{"keys":[{"id":"k","secret":"s"}],"log_level":"warning"}"#).unwrap();
    assert_eq!(c.log_level, Some(LogLevel::Warn));
}
