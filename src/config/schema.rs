//! The plugin configuration's JSON schema, exactly: serde types, unknown fields rejected in every
//! section. Nothing is validated here beyond JSON types; [`super::compile`] checks values and
//! builds the compiled [`super::Config`].
//!
//! Fields whose value is one of a few names are [`Named`]: the enum when the text names a
//! variant, else the text, which compile reports in our own words with the field path (serde's
//! own message would add a JSON position and differs from the documented one).
//!
//! The `Raw*` type names appear in serde's messages (`expected struct RawConfig`): renaming one
//! changes an error message.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::{ConfigError, RouteScheme};
use crate::body::{EmptyValues, NestedValues, ValueTypes};
use crate::log::LogLevel;
use crate::route::Posture;
use crate::verdict::{Mode, Scheme};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub keys: Vec<RawKey>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    /// `deny` (default) or `route_list`; see [`crate::route`].
    pub posture: Option<Posture>,
    /// Deny posture: the catch-all route's scheme, methods and keys.
    pub default_route: Option<RawDefaultRoute>,
    #[serde(default)]
    pub exempt: Vec<RawExempt>,
    pub max_body_bytes: Option<u64>,
    #[serde(default)]
    pub md5: RawMd5Options,
    /// `enforce` (default) or `shadow`; see [`crate::verdict::Mode`].
    pub mode: Option<Named<Mode>>,
    /// Edge de-duplication for every route (off when absent); see [`crate::dedup::Dedup`].
    pub dedup: Option<RawDedupSetting>,
    /// The filter's log level (`trace` default: Envoy's `wasm` component level decides).
    pub log_level: Option<Named<LogLevel>>,
    pub hold_headers: Option<bool>,
    pub hold_timeout_ms: Option<u64>,
    pub hold_deadline_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    pub id: Option<String>,
    pub id_env: Option<String>,
    pub schemes: Option<Vec<Named<Scheme>>>,
    pub secret: Option<String>,
    pub secret_env: Option<String>,
    pub partners: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: Option<String>,
    pub path_exact: Option<String>,
    pub path_prefix: Option<String>,
    pub methods: Option<Vec<String>>,
    pub scheme: Option<Named<RouteScheme>>,
    pub keys: Option<Vec<String>>,
    #[serde(default)]
    pub allow_unsigned: bool,
    pub partner_field: Option<String>,
    pub freshness: Option<RawFreshness>,
    /// Overrides the top-level `mode`.
    pub mode: Option<Named<Mode>>,
    /// Overrides the top-level `dedup` (an object, or `false` for off).
    pub dedup: Option<RawDedupSetting>,
    #[serde(default)]
    pub case_sensitive: bool,
    /// Exact query strings this route accepts (any other query: 400 `query_not_allowed`).
    #[serde(default)]
    pub allowed_queries: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDefaultRoute {
    pub methods: Option<Vec<String>>,
    pub scheme: Option<Named<RouteScheme>>,
    pub keys: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExempt {
    pub path_exact: Option<String>,
    pub path_prefix: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFreshness {
    pub max_age_seconds: u64,
    pub max_future_skew_seconds: Option<u64>,
    pub body_field: Option<String>,
    pub body_field_utc_offset: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawMd5Options {
    pub empty_values: Option<EmptyValues>,
    pub nested_values: Option<NestedValues>,
    pub value_types: Option<ValueTypes>,
}

/// A `dedup` value: an object, `false` (routes only: turn the inherited setting off), or
/// anything else (reported by compile with the expected shape).
pub enum RawDedupSetting {
    Off,
    On(RawDedup),
    Invalid,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDedup {
    #[serde(default)]
    pub window_seconds: Integer,
    #[serde(default)]
    pub max_entries: Integer,
    /// The fleet-wide store (`{"etcd": {...}}`), see [`crate::dedup::etcd`].
    #[serde(default)]
    pub store: Option<crate::dedup::etcd::RawStore>,
}

/// A bounded integer setting as given: absent, a non-negative integer, or any other JSON value
/// (compile reports the bounds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Integer {
    #[default]
    Missing,
    Given(u64),
    Invalid,
}

/// A value that names one of a few choices (see the module docs).
pub enum Named<T> {
    Known(T),
    Unknown(String),
}

/// An enum given by name in the configuration.
pub trait Choice: Sized {
    fn from_name(name: &str) -> Option<Self>;
    /// The error message for a name that is none of the choices.
    fn unknown(name: &str) -> String;
}

impl Choice for Mode {
    fn from_name(name: &str) -> Option<Self> {
        Mode::ALL.into_iter().find(|m| m.name() == name)
    }
    fn unknown(name: &str) -> String {
        format!("unknown mode `{name}` (expected `enforce` or `shadow`)")
    }
}

impl Choice for LogLevel {
    fn from_name(name: &str) -> Option<Self> {
        LogLevel::from_name(name)
    }
    fn unknown(name: &str) -> String {
        format!("unknown level `{name}` (expected trace, debug, info, warn, error or critical)")
    }
}

impl Choice for RouteScheme {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "auto" => Some(RouteScheme::Auto),
            _ => Scheme::from_name(name).map(RouteScheme::from),
        }
    }
    fn unknown(name: &str) -> String {
        format!("unknown scheme `{name}` (expected `md5`, `cube` or `auto`)")
    }
}

/// A key's `schemes` entry.
impl Choice for Scheme {
    fn from_name(name: &str) -> Option<Self> {
        [Scheme::Md5, Scheme::Cube]
            .into_iter()
            .find(|s| s.name() == name)
    }
    fn unknown(name: &str) -> String {
        format!("unknown scheme `{name}` (expected `md5` or `cube`)")
    }
}

impl<T: Choice> Named<T> {
    /// The choice, or the error naming `field`.
    pub fn choice(self, field: &str) -> Result<T, ConfigError> {
        match self {
            Named::Known(t) => Ok(t),
            Named::Unknown(name) => Err(ConfigError::new(field, T::unknown(&name))),
        }
    }
}

impl<'de, T: Choice> Deserialize<'de> for Named<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Ok(match T::from_name(&name) {
            Some(t) => Named::Known(t),
            None => Named::Unknown(name),
        })
    }
}

/// Accepts any JSON value; `on` says what a non-negative integer, `false` and an object become
/// (everything else is `fallback`).
struct Lenient<T> {
    fallback: T,
    expecting: &'static str,
    int: fn(u64) -> Option<T>,
    boolean: fn(bool) -> Option<T>,
}

impl<T> Lenient<T> {
    fn or_fallback(self, v: Option<T>) -> T {
        v.unwrap_or(self.fallback)
    }
}

macro_rules! lenient_scalars {
    () => {
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            let int = self.int;
            Ok(self.or_fallback(int(v)))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            let int = self.int;
            Ok(self.or_fallback(u64::try_from(v).ok().and_then(int)))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(self.fallback)
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            let boolean = self.boolean;
            Ok(self.or_fallback(boolean(v)))
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(self.fallback)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(self.fallback)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(self.fallback)
        }
    };
}

impl<'de> Visitor<'de> for Lenient<Integer> {
    type Value = Integer;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }
    lenient_scalars!();
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Integer, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Integer::Invalid)
    }
}

impl<'de> Deserialize<'de> for Integer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Lenient {
            fallback: Integer::Invalid,
            expecting: "an integer",
            int: |n| Some(Integer::Given(n)),
            boolean: |_| None,
        })
    }
}

impl<'de> Visitor<'de> for Lenient<RawDedupSetting> {
    type Value = RawDedupSetting;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }
    lenient_scalars!();
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawDedupSetting, A::Error> {
        RawDedup::deserialize(de::value::MapAccessDeserializer::new(map)).map(RawDedupSetting::On)
    }
}

impl<'de> Deserialize<'de> for RawDedupSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Lenient {
            fallback: RawDedupSetting::Invalid,
            expecting: "a dedup object or false",
            int: |_| None,
            boolean: |b| (!b).then_some(RawDedupSetting::Off),
        })
    }
}

/// Parse the JSON into the schema. Errors name the field path; a value that may be a secret is
/// never quoted.
pub fn parse(json: &[u8]) -> Result<RawConfig, ConfigError> {
    let de = &mut serde_json::Deserializer::from_slice(json);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { String::new() } else { path };
        // serde quotes the offending value ("invalid type: integer `123`"): never for a
        // field that holds a secret or names where one is.
        let secret_field = field.ends_with(".secret") || field.ends_with(".secret_env");
        let message = if secret_field {
            "must be a string (value not shown)".to_string()
        } else {
            e.into_inner().to_string()
        };
        ConfigError::new(field, message)
    })
}
