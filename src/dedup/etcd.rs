//! Fleet-wide de-duplication store on etcd v3, the pure part (docs/fleet.md).
//!
//! The filter reaches etcd through an Envoy cluster that lists the members, with proxy-wasm
//! HTTP calls to etcd's JSON gateway. This module builds the request bodies, reads the answers
//! and holds the lease-bucket and retry decisions; the glue only sends what it is given and
//! feeds the answer back. No proxy-wasm here: everything is tested natively.
//!
//! - Key: `<prefix><hex of the de-dup Identity>` (40 hex digits). Value: the record's expiry in
//!   epoch milliseconds, as decimal ASCII. Neither holds a secret, a signature or a body.
//! - Expiry: one etcd lease per time bucket of `bucket_ms` (per window length and Envoy), not one
//!   per request. A delivery recorded at `t` gets the lease of bucket `floor(t / bucket_ms)`,
//!   granted with TTL `window + bucket` at or after the bucket's start, so the key lives at least
//!   `window` and at most `window + bucket`. Lookups compare the stored expiry, so a key that
//!   outlives its window by up to one bucket is not a duplicate any more.
//! - Lookup: `/v3/kv/range` (linearizable) before forwarding a verified delivery. Record:
//!   `/v3/kv/txn`, put-with-lease if the key's create revision is 0 (insert-if-absent), after the
//!   backend answered 2xx. A failed compare answers with no `succeeded` field: already recorded.

use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::Deserialize;

use super::Identity;
use crate::config::ConfigError;

/// Default key prefix (the `v2` is the Identity version of [`Identity::new`]).
pub const DEFAULT_PREFIX: &str = "lf-webhook-guard/dedup/v2/";
/// Default per-call timeout (ms): an etcd round trip on a LAN is about a millisecond.
pub const DEFAULT_TIMEOUT_MS: u64 = 250;
/// Bounds of `timeout_ms`.
pub const MIN_TIMEOUT_MS: u64 = 10;
pub const MAX_TIMEOUT_MS: u64 = 5000;
/// Default lease bucket: a tenth of the window, between 1 s and 60 s.
pub const MAX_BUCKET_SECONDS: u64 = 3600;
/// etcd's JSON gateway paths.
pub const RANGE_PATH: &str = "/v3/kv/range";
pub const TXN_PATH: &str = "/v3/kv/txn";
pub const GRANT_PATH: &str = "/v3/lease/grant";
/// Longest accepted `prefix`.
const MAX_PREFIX_LEN: usize = 128;
/// gRPC status code etcd answers for `requested lease not found`.
const GRPC_NOT_FOUND: i64 = 5;

/// What to do when the store cannot answer a lookup in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// De-duplication is best effort: the delivery is forwarded to the backend.
    Forward,
    /// Answer 503 (the provider retries later); nothing reaches the backend.
    Reject,
}

impl OnError {
    pub fn name(self) -> &'static str {
        match self {
            OnError::Forward => "forward",
            OnError::Reject => "reject",
        }
    }
}

/// `dedup.store` as written in the plugin configuration (the config schema embeds it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    etcd: RawEtcd,
}

/// `dedup.store.etcd`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEtcd {
    /// Envoy cluster listing the etcd members (its name in the Envoy configuration).
    cluster: String,
    /// `on_error`: required, the operator chooses the failure policy.
    on_error: OnError,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    prefix: Option<String>,
    /// `:authority` of the calls (default: the cluster name).
    #[serde(default)]
    authority: Option<String>,
    #[serde(default)]
    lease_bucket_seconds: Option<u64>,
}

/// The compiled store settings of one `dedup` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdStore {
    pub cluster: String,
    pub authority: String,
    pub prefix: String,
    pub timeout_ms: u64,
    pub on_error: OnError,
    /// Length of a lease bucket (ms, a whole number of seconds).
    pub bucket_ms: u64,
    /// TTL of each bucket's lease (s): `ceil((window + bucket) / 1 s)`.
    pub lease_ttl_s: u64,
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~:|/@[]".contains(&b))
}

/// Compile `raw` (the value of `<field>`, e.g. `dedup.store`) for a de-dup window of
/// `window_ms`. Errors name the offending field, e.g. `dedup.store.etcd.timeout_ms`.
pub fn compile(
    raw: &serde_json::Value,
    field: &str,
    window_ms: u64,
) -> Result<EtcdStore, ConfigError> {
    let parsed: RawStore = serde_path_to_error::deserialize(raw).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            field.to_string()
        } else {
            format!("{field}.{path}")
        };
        ConfigError::new(at, e.inner().to_string())
    })?;
    compile_raw(parsed, field, window_ms)
}

/// Compile an already deserialized `dedup.store` (at `field`) for a window of `window_ms`.
pub fn compile_raw(
    parsed: RawStore,
    field: &str,
    window_ms: u64,
) -> Result<EtcdStore, ConfigError> {
    let etcd = parsed.etcd;
    let f = |name: &str| format!("{field}.etcd.{name}");
    if !is_token(&etcd.cluster) {
        return Err(ConfigError::new(
            f("cluster"),
            "must be the name of an Envoy cluster (letters, digits, `-._~:|/@[]`)",
        ));
    }
    let authority = etcd.authority.unwrap_or_else(|| etcd.cluster.clone());
    if !is_token(&authority) {
        return Err(ConfigError::new(
            f("authority"),
            "must be a host name (letters, digits, `-._~:|/@[]`)",
        ));
    }
    let timeout_ms = etcd.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    if !(MIN_TIMEOUT_MS..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
        return Err(ConfigError::new(
            f("timeout_ms"),
            format!("must be between {MIN_TIMEOUT_MS} and {MAX_TIMEOUT_MS}"),
        ));
    }
    let prefix = etcd.prefix.unwrap_or_else(|| DEFAULT_PREFIX.to_string());
    if prefix.is_empty()
        || prefix.len() > MAX_PREFIX_LEN
        || !prefix.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ConfigError::new(
            f("prefix"),
            format!("must be 1 to {MAX_PREFIX_LEN} printable ASCII characters, no spaces"),
        ));
    }
    let bucket_s = match etcd.lease_bucket_seconds {
        None => (window_ms / 10_000).clamp(1, 60),
        Some(n) if (1..=MAX_BUCKET_SECONDS).contains(&n) => n,
        Some(_) => {
            return Err(ConfigError::new(
                f("lease_bucket_seconds"),
                format!("must be between 1 and {MAX_BUCKET_SECONDS}"),
            ))
        }
    };
    let bucket_ms = bucket_s * 1000;
    Ok(EtcdStore {
        cluster: etcd.cluster,
        authority,
        prefix,
        timeout_ms,
        on_error: etcd.on_error,
        bucket_ms,
        lease_ttl_s: window_ms.saturating_add(bucket_ms).div_ceil(1000),
    })
}

/// The fleet stores of `config` whose Envoy cluster is not among `clusters` (the cluster names
/// an Envoy configuration defines): one error per `dedup` block, naming its `cluster` field
/// (`dedup.store.etcd.cluster`, or `routes[i].dedup.store.etcd.cluster` for a route's own).
pub fn undefined_clusters(config: &crate::config::Config, clusters: &[String]) -> Vec<ConfigError> {
    let mut out: Vec<ConfigError> = Vec::new();
    for (i, route) in config.routes.iter().enumerate() {
        let Some(dedup) = &route.dedup else { continue };
        let Some(store) = &dedup.store else { continue };
        if clusters.contains(&store.cluster) {
            continue;
        }
        let field = if dedup.table == "global" {
            "dedup.store.etcd.cluster".to_string()
        } else {
            format!("routes[{i}].dedup.store.etcd.cluster")
        };
        if out.iter().all(|e| e.field != field) {
            out.push(ConfigError::new(
                field,
                format!(
                    "Envoy cluster `{}` is not defined in this configuration: the filter's calls \
                     to the de-duplication store would fail (on_error applies to every delivery)",
                    store.cluster
                ),
            ));
        }
    }
    out
}

// ------------------------------------------------------------------------------------------
// Keys, values, request bodies
// ------------------------------------------------------------------------------------------

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The etcd key of a delivery: `<prefix><40 hex digits of the Identity>`.
pub fn key(prefix: &str, identity: &Identity) -> String {
    format!("{prefix}{}", hex(&identity.0))
}

/// One call to the JSON gateway: POST `path` with a JSON `body`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub path: &'static str,
    pub body: String,
}

impl EtcdStore {
    /// The request headers of a call (the glue adds nothing).
    pub fn headers<'a>(&'a self, call: &'a Call) -> [(&'a str, &'a str); 4] {
        [
            (":method", "POST"),
            (":path", call.path),
            (":authority", self.authority.as_str()),
            ("content-type", "application/json"),
        ]
    }

    /// Look a delivery up (linearizable read: a partitioned member cannot answer from stale
    /// data; with no quorum the call times out and `on_error` applies).
    pub fn range(&self, identity: &Identity) -> Call {
        Call {
            path: RANGE_PATH,
            body: format!(
                "{{\"key\":\"{}\"}}",
                B64.encode(key(&self.prefix, identity))
            ),
        }
    }

    /// Grant the lease of a bucket.
    pub fn grant(&self) -> Call {
        Call {
            path: GRANT_PATH,
            body: format!("{{\"TTL\":\"{}\"}}", self.lease_ttl_s),
        }
    }

    /// Record a delivery if it is not recorded yet: put `expires_ms` under the lease, if the
    /// key's create revision is 0 (absent).
    pub fn insert(&self, identity: &Identity, expires_ms: u64, lease: i64) -> Call {
        let k = B64.encode(key(&self.prefix, identity));
        let v = B64.encode(expires_ms.to_string());
        Call {
            path: TXN_PATH,
            body: format!(
                "{{\"compare\":[{{\"target\":\"CREATE\",\"result\":\"EQUAL\",\"key\":\"{k}\",\
                 \"createRevision\":\"0\"}}],\"success\":[{{\"requestPut\":{{\"key\":\"{k}\",\
                 \"value\":\"{v}\",\"lease\":\"{lease}\"}}}}]}}"
            ),
        }
    }
}

// ------------------------------------------------------------------------------------------
// Answers
// ------------------------------------------------------------------------------------------

/// Why a call gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// No answer within `timeout_ms` (e.g. no quorum: two of three members down).
    Timeout,
    /// Envoy could not reach a member (no healthy host, connection refused or reset).
    Unreachable,
    /// The cached lease is gone (expired, or the cluster lost its data): grant a new one.
    LeaseNotFound,
    /// etcd answered an error (HTTP status, gRPC code).
    Etcd { status: u32, code: Option<i64> },
    /// An answer that is not what etcd sends (e.g. the cluster points at something else).
    Malformed(&'static str),
}

impl StoreError {
    /// Counted as a timeout (`dedup_store_timeouts`) rather than an error.
    pub fn is_timeout(&self) -> bool {
        matches!(self, StoreError::Timeout)
    }

    /// Worth one more attempt (another member may answer): only failures that came back fast.
    fn retryable(&self) -> bool {
        matches!(self, StoreError::Unreachable)
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Timeout => f.write_str("timeout"),
            StoreError::Unreachable => f.write_str("unreachable"),
            StoreError::LeaseNotFound => f.write_str("lease_not_found"),
            StoreError::Etcd {
                status,
                code: Some(code),
            } => write!(f, "etcd_error status={status} code={code}"),
            StoreError::Etcd { status, code: None } => write!(f, "etcd_error status={status}"),
            StoreError::Malformed(what) => write!(f, "malformed_answer ({what})"),
        }
    }
}

/// A call's outcome as the host reports it: the `:status` (None when Envoy gave no response at
/// all), the body, how long the call took and the timeout it was sent with.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    pub status: Option<u32>,
    pub body: &'a [u8],
    pub elapsed_ms: u64,
    pub timeout_ms: u64,
}

#[derive(Deserialize)]
struct Header {
    revision: Option<String>,
}

#[derive(Deserialize)]
struct Kv {
    key: Option<String>,
    value: Option<String>,
}

#[derive(Deserialize)]
struct RangeResponse {
    header: Option<Header>,
    #[serde(default)]
    kvs: Vec<Kv>,
}

#[derive(Deserialize)]
struct TxnResponse {
    header: Option<Header>,
    /// Omitted when false (protobuf JSON leaves default values out).
    #[serde(default)]
    succeeded: bool,
}

#[derive(Deserialize)]
struct GrantResponse {
    header: Option<Header>,
    #[serde(rename = "ID")]
    id: Option<String>,
    #[serde(rename = "TTL")]
    ttl: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    code: Option<i64>,
    #[serde(default)]
    message: String,
}

/// Status and shape checks shared by every call; the 200 body on success.
fn ok_body<'a>(answer: &Answer<'a>) -> Result<&'a [u8], StoreError> {
    let timed_out = answer.elapsed_ms >= answer.timeout_ms.saturating_mul(9) / 10;
    match answer.status {
        Some(200) => Ok(answer.body),
        // Envoy's own 504 (the call's timeout), or no response at all after the full timeout.
        Some(504) if timed_out || answer.body.starts_with(b"upstream request timeout") => {
            Err(StoreError::Timeout)
        }
        None if timed_out => Err(StoreError::Timeout),
        // No response, or Envoy's 503 (no healthy upstream, connect failure, reset).
        None | Some(503) if !answer.body.starts_with(b"{") => Err(StoreError::Unreachable),
        Some(status) => {
            let err: Option<ErrorResponse> = serde_json::from_slice(answer.body).ok();
            let code = err.as_ref().and_then(|e| e.code);
            let lease_gone = code == Some(GRPC_NOT_FOUND)
                && err
                    .as_ref()
                    .is_some_and(|e| e.message.contains("lease not found"));
            if lease_gone {
                Err(StoreError::LeaseNotFound)
            } else {
                Err(StoreError::Etcd { status, code })
            }
        }
        None => Err(StoreError::Unreachable),
    }
}

fn has_header(h: &Option<Header>) -> bool {
    h.as_ref().is_some_and(|h| h.revision.is_some())
}

/// What a lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Not recorded (or recorded longer ago than the window): forward.
    Absent,
    /// Recorded and still within its window until `expires_ms`: a duplicate.
    Recorded { expires_ms: u64 },
}

/// Read a `/v3/kv/range` answer for `identity` at `now_ms`.
pub fn parse_range(
    store: &EtcdStore,
    identity: &Identity,
    answer: &Answer<'_>,
    now_ms: u64,
) -> Result<Lookup, StoreError> {
    let body = ok_body(answer)?;
    let resp: RangeResponse =
        serde_json::from_slice(body).map_err(|_| StoreError::Malformed("range: not JSON"))?;
    // An empty range answers only the header: without it this is not etcd.
    if !has_header(&resp.header) {
        return Err(StoreError::Malformed("range: no header"));
    }
    let want = key(&store.prefix, identity);
    let found = resp.kvs.iter().find(|kv| {
        kv.key
            .as_deref()
            .and_then(|k| B64.decode(k).ok())
            .is_some_and(|k| k == want.as_bytes())
    });
    let Some(kv) = found else {
        return Ok(Lookup::Absent);
    };
    let expires_ms = kv
        .value
        .as_deref()
        .and_then(|v| B64.decode(v).ok())
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or(StoreError::Malformed("range: value is not an expiry"))?;
    Ok(if now_ms < expires_ms {
        Lookup::Recorded { expires_ms }
    } else {
        Lookup::Absent
    })
}

/// What a record (insert-if-absent) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    Created,
    /// The compare failed: another copy (or replica) recorded it first.
    AlreadyRecorded,
}

/// Read a `/v3/kv/txn` answer.
pub fn parse_txn(answer: &Answer<'_>) -> Result<Inserted, StoreError> {
    let body = ok_body(answer)?;
    let resp: TxnResponse =
        serde_json::from_slice(body).map_err(|_| StoreError::Malformed("txn: not JSON"))?;
    if !has_header(&resp.header) {
        return Err(StoreError::Malformed("txn: no header"));
    }
    Ok(if resp.succeeded {
        Inserted::Created
    } else {
        Inserted::AlreadyRecorded
    })
}

/// Read a `/v3/lease/grant` answer: the lease id.
pub fn parse_grant(answer: &Answer<'_>) -> Result<i64, StoreError> {
    let body = ok_body(answer)?;
    let resp: GrantResponse =
        serde_json::from_slice(body).map_err(|_| StoreError::Malformed("grant: not JSON"))?;
    if !has_header(&resp.header) || resp.error.as_deref().is_some_and(|e| !e.is_empty()) {
        return Err(StoreError::Malformed("grant: no header or an error"));
    }
    let ttl_ok = resp
        .ttl
        .as_deref()
        .and_then(|t| t.parse::<i64>().ok())
        .is_some_and(|t| t > 0);
    match resp.id.as_deref().and_then(|id| id.parse::<i64>().ok()) {
        Some(id) if id != 0 && ttl_ok => Ok(id),
        _ => Err(StoreError::Malformed("grant: no lease id")),
    }
}

// ------------------------------------------------------------------------------------------
// Lease buckets and retries
// ------------------------------------------------------------------------------------------

/// The bucket a record made at `now_ms` belongs to.
pub fn bucket_of(now_ms: u64, bucket_ms: u64) -> u64 {
    now_ms / bucket_ms.max(1)
}

/// Size of an encoded [`LeaseSlot`].
pub const LEASE_SLOT_LEN: usize = 16;

/// The lease of one bucket, cached in proxy-wasm shared data (one slot per store and lease TTL,
/// shared by the workers of one Envoy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseSlot {
    pub bucket: u64,
    pub lease: i64,
}

impl LeaseSlot {
    pub fn encode(&self) -> [u8; LEASE_SLOT_LEN] {
        let mut out = [0u8; LEASE_SLOT_LEN];
        for (dst, src) in out.iter_mut().zip(
            self.bucket
                .to_be_bytes()
                .iter()
                .chain(self.lease.to_be_bytes().iter()),
        ) {
            *dst = *src;
        }
        out
    }

    pub fn decode(raw: &[u8]) -> Option<LeaseSlot> {
        if raw.len() != LEASE_SLOT_LEN {
            return None;
        }
        let mut bucket = [0u8; 8];
        bucket.copy_from_slice(raw.get(..8)?);
        let mut lease = [0u8; 8];
        lease.copy_from_slice(raw.get(8..)?);
        Some(LeaseSlot {
            bucket: u64::from_be_bytes(bucket),
            lease: i64::from_be_bytes(lease),
        })
    }
}

impl EtcdStore {
    /// The shared-data key of this store's lease cache.
    pub fn lease_shared_key(&self) -> String {
        format!(
            "{}.fleet.lease.{}.{}.{}",
            crate::metrics::METRIC_PREFIX,
            self.cluster,
            self.prefix,
            self.lease_ttl_s
        )
    }

    /// The cached lease if it belongs to the bucket of `now_ms` (a lease of an older bucket
    /// would expire too early for a record made now).
    pub fn cached_lease(&self, cached: Option<&[u8]>, now_ms: u64) -> Option<i64> {
        cached
            .and_then(LeaseSlot::decode)
            .filter(|s| s.bucket == bucket_of(now_ms, self.bucket_ms) && s.lease != 0)
            .map(|s| s.lease)
    }

    /// The cache entry for a lease granted for a record at `now_ms`.
    pub fn lease_slot(&self, lease: i64, now_ms: u64) -> LeaseSlot {
        LeaseSlot {
            bucket: bucket_of(now_ms, self.bucket_ms),
            lease,
        }
    }

    /// Whether a failed call should be sent once more: a fast failure (a dead member that the
    /// health check has not marked yet), on the first attempt, with at least half the timeout
    /// left for the second one. Returns the timeout of the second attempt.
    pub fn retry(&self, err: &StoreError, attempt: u32, spent_ms: u64) -> Option<u64> {
        let left = self.timeout_ms.saturating_sub(spent_ms);
        (err.retryable() && attempt == 0 && left >= self.timeout_ms / 2).then_some(left)
    }
}

// ------------------------------------------------------------------------------------------
// Per-request call sequences (sans-IO): the glue sends each `Send`, feeds the answer back
// ------------------------------------------------------------------------------------------

/// What the glue does next for a store operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Io<T> {
    /// Dispatch this call to the store's cluster with this timeout (ms), then feed the answer
    /// to `on_answer` (`elapsed_ms` measured from the dispatch).
    Send { call: Call, timeout_ms: u64 },
    /// Finished.
    Done(T),
}

/// How a lookup ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupEnd {
    /// Recorded within its window: answer the duplicate locally.
    Duplicate { expires_ms: u64 },
    /// Not recorded: forward.
    Forward,
    /// The store failed; `on_error` decides (`Forward`: forward anyway; `Reject`: 503).
    Failed { error: StoreError, policy: OnError },
}

/// A lookup before forwarding a verified delivery: one range call, retried once on a fast
/// connection failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreLookup {
    identity: Identity,
    attempt: u32,
    /// Time spent in earlier attempts (ms).
    spent_ms: u64,
}

/// A record after a 2xx answer: grant the bucket's lease unless cached, then insert-if-absent;
/// a lease that etcd no longer knows is granted anew once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreRecord {
    identity: Identity,
    expires_ms: u64,
    now_ms: u64,
    stage: RecordStage,
    attempt: u32,
    spent_ms: u64,
    regranted: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecordStage {
    Granting,
    Inserting { lease: i64 },
}

/// How a record ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordEnd {
    /// Inserted, or already there (another copy or replica recorded it first).
    Recorded(Inserted),
    /// Not recorded: a later copy is forwarded again (the response is not changed).
    Failed(StoreError),
}

/// What the glue does after a record's answer: maybe cache a new lease, then `io`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordStep {
    /// A newly granted lease to cache (shared data, [`EtcdStore::lease_shared_key`]).
    pub cache_lease: Option<LeaseSlot>,
    pub io: Io<RecordEnd>,
}

impl EtcdStore {
    /// Start a lookup of `identity`.
    pub fn lookup(&self, identity: Identity) -> (StoreLookup, Io<LookupEnd>) {
        let io = Io::Send {
            call: self.range(&identity),
            timeout_ms: self.timeout_ms,
        };
        (
            StoreLookup {
                identity,
                attempt: 0,
                spent_ms: 0,
            },
            io,
        )
    }

    /// Start recording `identity` (answered 2xx at `now_ms`, a de-dup window of `window_ms`),
    /// with the lease cache's content (`cached`).
    pub fn record(
        &self,
        identity: Identity,
        now_ms: u64,
        window_ms: u64,
        cached: Option<&[u8]>,
    ) -> (StoreRecord, Io<RecordEnd>) {
        let expires_ms = now_ms.saturating_add(window_ms);
        let (stage, call) = match self.cached_lease(cached, now_ms) {
            Some(lease) => (
                RecordStage::Inserting { lease },
                self.insert(&identity, expires_ms, lease),
            ),
            None => (RecordStage::Granting, self.grant()),
        };
        (
            StoreRecord {
                identity,
                expires_ms,
                now_ms,
                stage,
                attempt: 0,
                spent_ms: 0,
                regranted: false,
            },
            Io::Send {
                call,
                timeout_ms: self.timeout_ms,
            },
        )
    }
}

impl StoreLookup {
    /// Feed a range answer (`now_ms`: the time it arrived).
    pub fn on_answer(
        &mut self,
        store: &EtcdStore,
        answer: &Answer<'_>,
        now_ms: u64,
    ) -> Io<LookupEnd> {
        match parse_range(store, &self.identity, answer, now_ms) {
            Ok(Lookup::Recorded { expires_ms }) => Io::Done(LookupEnd::Duplicate { expires_ms }),
            Ok(Lookup::Absent) => Io::Done(LookupEnd::Forward),
            Err(error) => {
                self.spent_ms = self.spent_ms.saturating_add(answer.elapsed_ms);
                match store.retry(&error, self.attempt, self.spent_ms) {
                    Some(timeout_ms) => {
                        self.attempt += 1;
                        Io::Send {
                            call: store.range(&self.identity),
                            timeout_ms,
                        }
                    }
                    None => Io::Done(LookupEnd::Failed {
                        error,
                        policy: store.on_error,
                    }),
                }
            }
        }
    }
}

impl StoreRecord {
    /// The delivery being recorded.
    pub fn identity(&self) -> Identity {
        self.identity
    }

    /// Feed the answer of the last `Send`.
    pub fn on_answer(&mut self, store: &EtcdStore, answer: &Answer<'_>) -> RecordStep {
        let parsed = match self.stage {
            RecordStage::Granting => parse_grant(answer).map(Ok),
            RecordStage::Inserting { .. } => parse_txn(answer).map(Err),
        };
        match parsed {
            Ok(Ok(lease)) => {
                self.stage = RecordStage::Inserting { lease };
                RecordStep {
                    cache_lease: Some(store.lease_slot(lease, self.now_ms)),
                    io: self.send(store, store.insert(&self.identity, self.expires_ms, lease)),
                }
            }
            Ok(Err(inserted)) => RecordStep {
                cache_lease: None,
                io: Io::Done(RecordEnd::Recorded(inserted)),
            },
            Err(StoreError::LeaseNotFound) if !self.regranted => {
                // The cached lease is gone (revoked, or the cluster lost its data): grant anew.
                self.regranted = true;
                self.stage = RecordStage::Granting;
                RecordStep {
                    cache_lease: None,
                    io: self.send(store, store.grant()),
                }
            }
            Err(error) => {
                self.spent_ms = self.spent_ms.saturating_add(answer.elapsed_ms);
                let io = match store.retry(&error, self.attempt, self.spent_ms) {
                    Some(timeout_ms) => {
                        self.attempt += 1;
                        let call = match self.stage {
                            RecordStage::Granting => store.grant(),
                            RecordStage::Inserting { lease } => {
                                store.insert(&self.identity, self.expires_ms, lease)
                            }
                        };
                        Io::Send { call, timeout_ms }
                    }
                    None => Io::Done(RecordEnd::Failed(error)),
                };
                RecordStep {
                    cache_lease: None,
                    io,
                }
            }
        }
    }

    /// A follow-up call (a new step of the sequence gets the whole timeout).
    fn send(&mut self, store: &EtcdStore, call: Call) -> Io<RecordEnd> {
        self.attempt = 0;
        self.spent_ms = 0;
        Io::Send {
            call,
            timeout_ms: store.timeout_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::Scheme;
    use serde_json::json;

    fn store() -> EtcdStore {
        compile(
            &json!({"etcd": {"cluster": "etcd", "on_error": "forward"}}),
            "dedup.store",
            60_000,
        )
        .unwrap()
    }

    fn id(n: u8) -> Identity {
        Identity::new("lf", b"POST /lf/x", Scheme::Md5, &[n], b"{}")
    }

    fn ok(body: &str) -> Answer<'_> {
        Answer {
            status: Some(200),
            body: body.as_bytes(),
            elapsed_ms: 1,
            timeout_ms: 250,
        }
    }

    const HDR: &str =
        r#""header":{"cluster_id":"1","member_id":"2","revision":"7","raft_term":"2"}"#;

    /// The golden calls and the answers measured on etcd 3.4 (tests/data/fleet-etcd-calls.json;
    /// tests/e2e/fleet/test_fleet_store.py sends the same calls to a real cluster).
    #[test]
    fn golden_calls_and_measured_answers() {
        let g: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/data/fleet-etcd-calls.json")).unwrap();
        let window = g["window_ms"].as_u64().unwrap();
        let s = compile(&g["store"], "dedup.store", window).unwrap();
        let d = &g["delivery"];
        let scheme = match d["scheme"].as_str().unwrap() {
            "md5" => Scheme::Md5,
            _ => Scheme::Cube,
        };
        let ident = Identity::new(
            d["route"].as_str().unwrap(),
            d["target"].as_str().unwrap().as_bytes(),
            scheme,
            d["signature"].as_str().unwrap().as_bytes(),
            d["body"].as_str().unwrap().as_bytes(),
        );
        assert_eq!(key(&s.prefix, &ident), g["key"].as_str().unwrap());
        let expires = g["insert_expires_ms"].as_u64().unwrap();
        let lease = g["insert_lease"].as_i64().unwrap();
        for (name, call, path) in [
            ("range", s.range(&ident), RANGE_PATH),
            ("grant", s.grant(), GRANT_PATH),
            ("insert", s.insert(&ident, expires, lease), TXN_PATH),
        ] {
            assert_eq!(call.path, path);
            let built: serde_json::Value = serde_json::from_str(&call.body).unwrap();
            assert_eq!(built, g["calls"][name], "{name}");
        }
        let answer = |name: &str| -> (u32, String) {
            let a = &g["answers"][name];
            (
                u32::try_from(a["status"].as_u64().unwrap()).unwrap(),
                a["body"].to_string(),
            )
        };
        let parse = |name: &str, f: &dyn Fn(&Answer<'_>) -> String| {
            let (status, body) = answer(name);
            f(&Answer {
                status: Some(status),
                body: body.as_bytes(),
                elapsed_ms: 1,
                timeout_ms: 250,
            })
        };
        let range = |a: &Answer<'_>| format!("{:?}", parse_range(&s, &ident, a, expires - 1));
        assert_eq!(parse("range_absent", &range), "Ok(Absent)");
        assert_eq!(
            parse("range_found", &range),
            format!("Ok(Recorded {{ expires_ms: {expires} }})")
        );
        let txn = |a: &Answer<'_>| format!("{:?}", parse_txn(a));
        assert_eq!(parse("txn_created", &txn), "Ok(Created)");
        assert_eq!(parse("txn_exists", &txn), "Ok(AlreadyRecorded)");
        assert_eq!(parse("lease_not_found", &txn), "Err(LeaseNotFound)");
        let grant = |a: &Answer<'_>| format!("{:?}", parse_grant(a));
        let id = g["answers"]["grant"]["body"]["ID"].as_str().unwrap();
        assert_eq!(parse("grant", &grant), format!("Ok({id})"));
    }

    #[test]
    fn undefined_clusters_name_the_field() {
        let config = crate::config::Config::from_json(
            br#"{"keys":[{"id":"k","secret":"s"}],
                 "dedup":{"window_seconds":60,"store":{"etcd":{"cluster":"etcd","on_error":"forward"}}},
                 "routes":[{"name":"a","path_prefix":"/a/"},
                           {"name":"b","path_prefix":"/b/","dedup":{"window_seconds":5,
                             "store":{"etcd":{"cluster":"other","on_error":"reject"}}}},
                           {"name":"c","path_prefix":"/c/","dedup":false}]}"#,
            |_| None,
        )
        .unwrap();
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let fields = |clusters: &[&str]| {
            undefined_clusters(&config, &names(clusters))
                .into_iter()
                .map(|e| e.field)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            fields(&["backend"]),
            [
                "dedup.store.etcd.cluster",
                "routes[1].dedup.store.etcd.cluster"
            ]
        );
        assert_eq!(fields(&["etcd"]), ["routes[1].dedup.store.etcd.cluster"]);
        assert!(fields(&["etcd", "other"]).is_empty());
        let err = &undefined_clusters(&config, &names(&[]))[0];
        assert!(err.message.contains("`etcd`"), "{}", err.message);
    }

    #[test]
    fn compile_defaults_and_bounds() {
        let s = store();
        assert_eq!(s.cluster, "etcd");
        assert_eq!(s.authority, "etcd");
        assert_eq!(s.prefix, DEFAULT_PREFIX);
        assert_eq!(s.timeout_ms, DEFAULT_TIMEOUT_MS);
        assert_eq!(s.on_error, OnError::Forward);
        // window 60 s: bucket 6 s, lease 66 s
        assert_eq!(s.bucket_ms, 6000);
        assert_eq!(s.lease_ttl_s, 66);
        let full = compile(
            &json!({"etcd": {"cluster": "outbound|2379||etcd.fleet.svc.cluster.local",
                "on_error": "reject", "timeout_ms": 100, "prefix": "p/", "authority": "etcd.x",
                "lease_bucket_seconds": 5}}),
            "dedup.store",
            2500,
        )
        .unwrap();
        assert_eq!(full.on_error, OnError::Reject);
        assert_eq!(full.authority, "etcd.x");
        assert_eq!(full.prefix, "p/");
        assert_eq!((full.bucket_ms, full.lease_ttl_s), (5000, 8)); // ceil(7.5)
                                                                   // short window: bucket 1 s
        let short = compile(
            &json!({"etcd": {"cluster": "c", "on_error": "forward"}}),
            "f",
            3000,
        )
        .unwrap();
        assert_eq!((short.bucket_ms, short.lease_ttl_s), (1000, 4));
        // long window: bucket capped at 60 s
        let long = compile(
            &json!({"etcd": {"cluster": "c", "on_error": "forward"}}),
            "f",
            86_400_000,
        )
        .unwrap();
        assert_eq!(long.bucket_ms, 60_000);
    }

    #[test]
    fn compile_errors_name_the_field() {
        let cases = [
            (json!({}), "dedup.store"),
            (json!({"redis": {}}), "dedup.store.redis"),
            (json!({"etcd": {"on_error": "forward"}}), "dedup.store.etcd"),
            (json!({"etcd": {"cluster": "c"}}), "dedup.store.etcd"),
            (
                json!({"etcd": {"cluster": "c", "on_error": "drop"}}),
                "dedup.store.etcd.on_error",
            ),
            (
                json!({"etcd": {"cluster": "c", "on_error": "forward", "tiemout_ms": 5}}),
                "dedup.store.etcd.tiemout_ms",
            ),
            (
                json!({"etcd": {"cluster": "", "on_error": "forward"}}),
                "dedup.store.etcd.cluster",
            ),
            (
                json!({"etcd": {"cluster": "a b", "on_error": "forward"}}),
                "dedup.store.etcd.cluster",
            ),
            (
                json!({"etcd": {"cluster": "c", "on_error": "forward", "timeout_ms": 5}}),
                "dedup.store.etcd.timeout_ms",
            ),
            (
                json!({"etcd": {"cluster": "c", "on_error": "forward", "timeout_ms": 9000}}),
                "dedup.store.etcd.timeout_ms",
            ),
            (
                json!({"etcd": {"cluster": "c", "on_error": "forward", "timeout_ms": "1"}}),
                "dedup.store.etcd.timeout_ms",
            ),
            (
                json!({"etcd": {"cluster": "c", "on_error": "forward", "prefix": ""}}),
                "dedup.store.etcd.prefix",
            ),
            (
                json!({"etcd": {"cluster": "c", "on_error": "forward", "prefix": "a b/"}}),
                "dedup.store.etcd.prefix",
            ),
            (
                json!({"etcd": {"cluster": "c", "on_error": "forward", "authority": "a\nb"}}),
                "dedup.store.etcd.authority",
            ),
            (
                json!({"etcd": {"cluster": "c", "on_error": "forward",
                    "lease_bucket_seconds": 0}}),
                "dedup.store.etcd.lease_bucket_seconds",
            ),
        ];
        for (raw, field) in cases {
            let err = compile(&raw, "dedup.store", 60_000).unwrap_err();
            assert_eq!(err.field, field, "{raw}: {err:?}");
            assert!(!err.message.is_empty());
        }
    }

    #[test]
    fn keys_hold_no_secret_and_requests_are_base64() {
        let s = store();
        let sig = b"YjExZmMwNTdiZGVmNGMzZjUzYTVhMjExZWExODI4ODY=";
        let body = br#"{"text_message":"hello"}"#;
        let ident = Identity::new("lf", b"POST /lf/x", Scheme::Md5, sig, body);
        let k = key(&s.prefix, &ident);
        assert_eq!(k.len(), DEFAULT_PREFIX.len() + 40);
        assert!(k.starts_with(DEFAULT_PREFIX));
        assert!(k[DEFAULT_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit()));
        for call in [s.range(&ident), s.insert(&ident, 123, 7)] {
            let text = call.body.as_str();
            assert!(
                !text.contains("hello") && !text.contains("YjExZm"),
                "{text}"
            );
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            let wire_key = if call.path == RANGE_PATH {
                v["key"].as_str().unwrap().to_string()
            } else {
                v["success"][0]["requestPut"]["key"]
                    .as_str()
                    .unwrap()
                    .to_string()
            };
            assert_eq!(B64.decode(wire_key).unwrap(), k.as_bytes());
        }
        let txn: serde_json::Value =
            serde_json::from_str(&s.insert(&ident, 1_700_000_000_000, -42).body).unwrap();
        assert_eq!(txn["compare"][0]["target"], "CREATE");
        assert_eq!(txn["compare"][0]["createRevision"], "0");
        assert_eq!(txn["success"][0]["requestPut"]["lease"], "-42");
        let value = txn["success"][0]["requestPut"]["value"].as_str().unwrap();
        assert_eq!(B64.decode(value).unwrap(), b"1700000000000");
        let grant: serde_json::Value = serde_json::from_str(&s.grant().body).unwrap();
        assert_eq!(grant["TTL"], "66");
        let call = s.range(&ident);
        let h = s.headers(&call);
        assert_eq!(h[1], (":path", RANGE_PATH));
        assert_eq!(h[2], (":authority", "etcd"));
    }

    #[test]
    fn range_answers() {
        let s = store();
        let a = id(1);
        let kb = B64.encode(key(&s.prefix, &a));
        let other = B64.encode(key(&s.prefix, &id(2)));
        let val = B64.encode("5000");
        assert_eq!(
            parse_range(&s, &a, &ok(&format!("{{{HDR}}}")), 1000),
            Ok(Lookup::Absent)
        );
        let found = format!(
            r#"{{{HDR},"kvs":[{{"key":"{kb}","create_revision":"2","value":"{val}","lease":"9"}}],"count":"1"}}"#
        );
        assert_eq!(
            parse_range(&s, &a, &ok(&found), 4999),
            Ok(Lookup::Recorded { expires_ms: 5000 })
        );
        // the lease may outlive the window by up to a bucket: the value decides
        assert_eq!(parse_range(&s, &a, &ok(&found), 5000), Ok(Lookup::Absent));
        // another key in the answer is not this delivery
        let wrong = format!(r#"{{{HDR},"kvs":[{{"key":"{other}","value":"{val}"}}]}}"#);
        assert_eq!(parse_range(&s, &a, &ok(&wrong), 1), Ok(Lookup::Absent));
        let junk = format!(
            r#"{{{HDR},"kvs":[{{"key":"{kb}","value":"{}"}}]}}"#,
            B64.encode("x")
        );
        assert!(matches!(
            parse_range(&s, &a, &ok(&junk), 1),
            Err(StoreError::Malformed(_))
        ));
        // a 200 that is not etcd's (no header) is never read as "absent"
        for body in ["{}", "[]", "ok", r#"{"kvs":[]}"#] {
            assert!(
                matches!(
                    parse_range(&s, &a, &ok(body), 1),
                    Err(StoreError::Malformed(_))
                ),
                "{body}"
            );
        }
    }

    #[test]
    fn txn_answers_succeeded_absent_is_false() {
        let created = format!(
            r#"{{{HDR},"succeeded":true,"responses":[{{"response_put":{{"header":{{"revision":"2"}}}}}}]}}"#
        );
        assert_eq!(parse_txn(&ok(&created)), Ok(Inserted::Created));
        // a failed compare: no `succeeded` field at all (measured on etcd 3.4)
        assert_eq!(
            parse_txn(&ok(&format!("{{{HDR}}}"))),
            Ok(Inserted::AlreadyRecorded)
        );
        assert_eq!(
            parse_txn(&ok(&format!("{{{HDR},\"succeeded\":false}}"))),
            Ok(Inserted::AlreadyRecorded)
        );
        assert!(matches!(
            parse_txn(&ok("{}")),
            Err(StoreError::Malformed(_))
        ));
        let lease_gone = Answer {
            status: Some(404),
            body: br#"{"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5}"#,
            elapsed_ms: 2,
            timeout_ms: 250,
        };
        assert_eq!(parse_txn(&lease_gone), Err(StoreError::LeaseNotFound));
    }

    #[test]
    fn grant_answers() {
        let good = format!(r#"{{{HDR},"ID":"7607321065846216710","TTL":"66"}}"#);
        assert_eq!(parse_grant(&ok(&good)), Ok(7_607_321_065_846_216_710));
        for bad in [
            format!(r#"{{{HDR},"TTL":"66"}}"#),
            format!(r#"{{{HDR},"ID":"x","TTL":"66"}}"#),
            format!(r#"{{{HDR},"ID":"5","TTL":"-1"}}"#),
            format!(r#"{{{HDR},"ID":"5","TTL":"66","error":"lease exists"}}"#),
            r#"{"ID":"5","TTL":"66"}"#.to_string(),
        ] {
            assert!(
                matches!(parse_grant(&ok(&bad)), Err(StoreError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn failures_are_classified() {
        let s = store(); // timeout 250 ms
        let ans = |status, body: &'static str, elapsed_ms| Answer {
            status,
            body: body.as_bytes(),
            elapsed_ms,
            timeout_ms: 250,
        };
        let a = id(1);
        let check = |answer: Answer<'_>| parse_range(&s, &a, &answer, 0);
        assert_eq!(
            check(ans(Some(504), "upstream request timeout", 250)),
            Err(StoreError::Timeout)
        );
        assert_eq!(check(ans(None, "", 251)), Err(StoreError::Timeout));
        // a retry sent with the time left (100 ms) that used it all
        let retry = Answer {
            timeout_ms: 100,
            ..ans(None, "", 95)
        };
        assert_eq!(check(retry), Err(StoreError::Timeout));
        assert_eq!(
            check(ans(Some(504), "upstream request timeout", 40)),
            Err(StoreError::Timeout)
        );
        assert_eq!(
            check(ans(Some(503), "no healthy upstream", 1)),
            Err(StoreError::Unreachable)
        );
        assert_eq!(check(ans(None, "", 3)), Err(StoreError::Unreachable));
        assert_eq!(
            check(ans(
                Some(400),
                r#"{"error":"bad","message":"bad","code":3}"#,
                1
            )),
            Err(StoreError::Etcd {
                status: 400,
                code: Some(3)
            })
        );
        assert_eq!(
            check(ans(Some(504), "", 10)),
            Err(StoreError::Etcd {
                status: 504,
                code: None
            })
        );
        assert!(StoreError::Timeout.is_timeout());
        assert!(!StoreError::Unreachable.is_timeout());
        // log text: no body, no key
        assert_eq!(
            StoreError::Etcd {
                status: 400,
                code: Some(3)
            }
            .to_string(),
            "etcd_error status=400 code=3"
        );
    }

    #[test]
    fn retry_only_fast_failures_once() {
        let s = store(); // 250 ms
        assert_eq!(s.retry(&StoreError::Unreachable, 0, 5), Some(245));
        assert_eq!(s.retry(&StoreError::Unreachable, 1, 5), None);
        assert_eq!(s.retry(&StoreError::Unreachable, 0, 200), None);
        assert_eq!(s.retry(&StoreError::Timeout, 0, 5), None);
        assert_eq!(s.retry(&StoreError::LeaseNotFound, 0, 5), None);
        assert_eq!(s.retry(&StoreError::Malformed("x"), 0, 5), None);
    }

    fn answer(status: Option<u32>, body: &str, elapsed_ms: u64) -> Answer<'_> {
        Answer {
            status,
            body: body.as_bytes(),
            elapsed_ms,
            timeout_ms: 250,
        }
    }

    fn sent<T: fmt::Debug>(io: &Io<T>) -> (&'static str, u64) {
        match io {
            Io::Send { call, timeout_ms } => (call.path, *timeout_ms),
            Io::Done(end) => panic!("expected a call, got {end:?}"),
        }
    }

    #[test]
    fn lookup_sequence() {
        let s = store(); // 250 ms, forward
        let a = id(1);
        let kb = B64.encode(key(&s.prefix, &a));
        let found = format!(
            r#"{{{HDR},"kvs":[{{"key":"{kb}","value":"{}"}}]}}"#,
            B64.encode("9000")
        );
        let (mut l, io) = s.lookup(a);
        assert_eq!(sent(&io), (RANGE_PATH, 250));
        assert_eq!(
            l.on_answer(&s, &answer(Some(200), &found, 2), 8000),
            Io::Done(LookupEnd::Duplicate { expires_ms: 9000 })
        );
        let (mut l, _) = s.lookup(a);
        assert_eq!(
            l.on_answer(&s, &answer(Some(200), &format!("{{{HDR}}}"), 2), 8000),
            Io::Done(LookupEnd::Forward)
        );
        // a dead member: retried once with the time left, then the policy
        let (mut l, _) = s.lookup(a);
        let io = l.on_answer(&s, &answer(Some(503), "no healthy upstream", 10), 0);
        assert_eq!(sent(&io), (RANGE_PATH, 240));
        assert_eq!(
            l.on_answer(&s, &answer(Some(503), "no healthy upstream", 10), 0),
            Io::Done(LookupEnd::Failed {
                error: StoreError::Unreachable,
                policy: OnError::Forward
            })
        );
        // a retry that finds the record
        let (mut l, _) = s.lookup(a);
        let _ = l.on_answer(&s, &answer(None, "", 3), 0);
        assert_eq!(
            l.on_answer(&s, &answer(Some(200), &found, 2), 8000),
            Io::Done(LookupEnd::Duplicate { expires_ms: 9000 })
        );
        // no quorum: the timeout, no retry; policy from the configuration
        let reject = EtcdStore {
            on_error: OnError::Reject,
            ..s.clone()
        };
        let (mut l, _) = reject.lookup(a);
        assert_eq!(
            l.on_answer(
                &reject,
                &answer(Some(504), "upstream request timeout", 250),
                0
            ),
            Io::Done(LookupEnd::Failed {
                error: StoreError::Timeout,
                policy: OnError::Reject
            })
        );
    }

    #[test]
    fn record_sequence_grants_once_per_bucket() {
        let s = store(); // bucket 6 s, TTL 66 s
        let a = id(1);
        let grant_ok = format!(r#"{{{HDR},"ID":"77","TTL":"66"}}"#);
        let created = format!(r#"{{{HDR},"succeeded":true}}"#);
        // no cached lease: grant, cache it, insert with it
        let (mut r, io) = s.record(a, 12_500, 60_000, None);
        assert_eq!(sent(&io), (GRANT_PATH, 250));
        let step = r.on_answer(&s, &answer(Some(200), &grant_ok, 3));
        assert_eq!(
            step.cache_lease,
            Some(LeaseSlot {
                bucket: 2,
                lease: 77
            })
        );
        let Io::Send { call, .. } = &step.io else {
            panic!("{step:?}")
        };
        assert_eq!(*call, s.insert(&a, 72_500, 77));
        let step = r.on_answer(&s, &answer(Some(200), &created, 3));
        assert_eq!(step.io, Io::Done(RecordEnd::Recorded(Inserted::Created)));
        // cached lease of this bucket: straight to the insert; already there is fine
        let cached = LeaseSlot {
            bucket: 2,
            lease: 77,
        }
        .encode();
        let (mut r, io) = s.record(a, 17_000, 60_000, Some(&cached));
        assert_eq!(
            io,
            Io::Send {
                call: s.insert(&a, 77_000, 77),
                timeout_ms: 250
            }
        );
        let step = r.on_answer(&s, &answer(Some(200), &format!("{{{HDR}}}"), 3));
        assert_eq!(
            step.io,
            Io::Done(RecordEnd::Recorded(Inserted::AlreadyRecorded))
        );
        // next bucket: the cached lease would expire too early, a new one is granted
        let (_, io) = s.record(a, 18_000, 60_000, Some(&cached));
        assert_eq!(sent(&io).0, GRANT_PATH);
        // the cached lease is gone in etcd: grant anew once, then insert
        let gone = r#"{"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5}"#;
        let (mut r, _) = s.record(a, 17_000, 60_000, Some(&cached));
        let step = r.on_answer(&s, &answer(Some(404), gone, 2));
        assert_eq!(sent(&step.io), (GRANT_PATH, 250));
        let step = r.on_answer(&s, &answer(Some(200), &grant_ok, 3));
        assert!(step.cache_lease.is_some());
        let step = r.on_answer(&s, &answer(Some(404), gone, 2));
        assert_eq!(
            step.io,
            Io::Done(RecordEnd::Failed(StoreError::LeaseNotFound)),
            "only once"
        );
        // failures: one fast retry, then given up (the response is not changed)
        let (mut r, _) = s.record(a, 17_000, 60_000, Some(&cached));
        let step = r.on_answer(&s, &answer(Some(503), "upstream connect error", 5));
        assert_eq!(sent(&step.io), (TXN_PATH, 245));
        let step = r.on_answer(&s, &answer(Some(504), "upstream request timeout", 245));
        assert_eq!(step.io, Io::Done(RecordEnd::Failed(StoreError::Timeout)));
        let (mut r, _) = s.record(a, 17_000, 60_000, None);
        let step = r.on_answer(&s, &answer(None, "", 250));
        assert_eq!(step.io, Io::Done(RecordEnd::Failed(StoreError::Timeout)));
        assert_eq!(step.cache_lease, None);
    }

    #[test]
    fn lease_buckets() {
        let s = store(); // bucket 6 s, TTL 66 s, window 60 s
        assert_eq!(bucket_of(0, 6000), 0);
        assert_eq!(bucket_of(5999, 6000), 0);
        assert_eq!(bucket_of(6000, 6000), 1);
        assert_eq!(bucket_of(7, 0), 7);
        let slot = s.lease_slot(99, 12_500);
        assert_eq!(slot.bucket, 2);
        assert_eq!(LeaseSlot::decode(&slot.encode()), Some(slot));
        assert_eq!(LeaseSlot::decode(&[0; 15]), None);
        let enc = slot.encode();
        assert_eq!(s.cached_lease(Some(&enc), 12_000), Some(99));
        assert_eq!(s.cached_lease(Some(&enc), 17_999), Some(99));
        assert_eq!(s.cached_lease(Some(&enc), 18_000), None, "next bucket");
        assert_eq!(s.cached_lease(Some(&enc), 11_999), None);
        assert_eq!(s.cached_lease(None, 12_000), None);
        assert_eq!(s.cached_lease(Some(b"junk"), 12_000), None);
        assert_eq!(
            s.cached_lease(Some(&s.lease_slot(0, 12_000).encode()), 12_000),
            None
        );
        // every record made in a bucket lives at least the window: the lease was granted at or
        // after the bucket's start, the record before the bucket's end
        for granted in [12_000u64, 14_000, 17_999] {
            for recorded in granted..18_000 {
                if recorded % 500 != 0 {
                    continue;
                }
                let lease_end = granted + s.lease_ttl_s * 1000;
                assert!(lease_end >= recorded + 60_000, "{granted} {recorded}");
                assert!(lease_end <= recorded + 60_000 + s.bucket_ms + 1000);
            }
        }
        assert_eq!(
            s.lease_shared_key(),
            "lf_webhook_guard.fleet.lease.etcd.lf-webhook-guard/dedup/v2/.66"
        );
    }
}
