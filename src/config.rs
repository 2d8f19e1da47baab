//! Typed settings: built-in defaults, then TOML files, then `GATEWAY__SECTION__KEY` variables.
//!
//! Every key has a default here and a commented entry in `config/default.toml`; unknown keys are
//! rejected so a typo cannot silently fall back to a default. [`Settings::validate`] names the
//! offending key in its message. Credentials are not settings: they come from the variables in
//! [`crate::env`] only, and live in [`Credentials`] as `SecretString`s.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::domain::CreditAmount;
use crate::env;

/// The file read when no `--config` is given (relative to the working directory; optional).
pub const DEFAULT_FILE: &str = "config/default.toml";

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub upstream: UpstreamSettings,
    pub quotas: QuotaSettings,
    pub credit: CreditSettings,
    pub idempotency: IdempotencySettings,
    pub invitations: InvitationSettings,
    pub log: LogSettings,
    pub sandbox: SandboxSettings,
    pub auth: AuthSettings,
    pub store: StoreSettings,
}

/// Where shared state lives: in this process, or in Redis shared by every replica.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    /// `memory` (one replica) or `redis` (any number of replicas sharing quota, idempotency
    /// records and cooldowns).
    pub backend: StoreBackend,
    /// `redis://[user:password@]host:port[/db]` or `rediss://…` for TLS. When unset, `REDIS_URL`.
    #[serde(serialize_with = "redacted_url")]
    pub redis_url: Option<SecretString>,
    /// Prepended to every Redis key, so several gateways (or partner accounts) can share one Redis.
    pub key_prefix: String,
    /// `store.redis_url` names a Redis Cluster (one or more comma-separated seed nodes).
    pub redis_cluster: bool,
    /// Optional floor on how many replicas the quota is shared among (room kept for replicas
    /// about to start). The fleet's size is otherwise learned from heartbeats; 0 means none.
    pub expected_replicas: u32,
    /// How often each replica announces itself in Redis; three missed heartbeats and the fleet
    /// keeps this replica's share of the quota aside for it.
    pub heartbeat_ms: u64,
    /// How long a replica cut off from Redis may forward on its share after its last heartbeat;
    /// after that it refuses quota-bound calls with 503 until Redis is back.
    pub partition_lease_ms: u64,
    /// Longest one Redis command may take before Redis counts as unreachable.
    pub redis_timeout_ms: u64,
    /// How often Redis is pinged, to notice it going away and coming back.
    pub redis_probe_ms: u64,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            backend: StoreBackend::Memory,
            redis_url: None,
            key_prefix: "pgw:".into(),
            redis_cluster: false,
            expected_replicas: 0,
            heartbeat_ms: 1_000,
            partition_lease_ms: 30_000,
            redis_timeout_ms: 250,
            redis_probe_ms: 1_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    Memory,
    Redis,
}

impl StoreSettings {
    /// The Redis URL with any password replaced, for logs and `check-config`.
    pub fn redis_url_redacted(&self) -> Option<String> {
        self.redis_url.as_ref().map(|u| {
            u.expose_secret()
                .split(',')
                .map(|one| redact_url(one.trim()))
                .collect::<Vec<_>>()
                .join(",")
        })
    }
}

/// `scheme://user:***@host…`: the password never leaves the process.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("***"));
            }
            url.to_string()
        }
        Err(_) => "(not a URL)".into(),
    }
}

fn redacted<S: serde::Serializer>(
    secret: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => serializer.serialize_some("[REDACTED]"),
        None => serializer.serialize_none(),
    }
}

fn redacted_url<S: serde::Serializer>(
    url: &Option<SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match url {
        Some(u) => serializer.serialize_some(&redact_url(u.expose_secret())),
        None => serializer.serialize_none(),
    }
}

/// Who may call the gateway. Authentication is on unless `disabled = true` is set explicitly.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Turns authentication off (every caller is `anonymous` with every scope). Never implied:
    /// it must be set, and a warning is logged at every start.
    pub disabled: bool,
    /// API keys of services, stored as SHA-256 hashes (`partner-gateway hash-key` makes one).
    pub api_keys: Vec<ApiKeySettings>,
    /// JWT bearer tokens of signed-in users (OIDC).
    pub jwt: Option<JwtSettings>,
    /// Requests per minute one caller may make; 0 turns the per-caller limit off.
    pub caller_requests_per_minute: u32,
    /// Requests a caller may make at once on top of that rate.
    pub caller_burst: u32,
    /// Append ` [by CALLER]` to the Remark Tencent stores with each allocation.
    pub remark_caller: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySettings {
    /// The caller's name, as logged and audited.
    pub name: String,
    /// Lowercase hex SHA-256 of the key.
    pub sha256: String,
    /// `invitations:send`, `credit:allocate`.
    pub scopes: Vec<crate::domain::Scope>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtSettings {
    /// A JWKS document on disk.
    pub jwks_file: Option<PathBuf>,
    /// A JWKS URL: https, or http on a loopback address.
    pub jwks_url: Option<String>,
    /// Required `iss`.
    pub issuer: String,
    /// Required in `aud`.
    pub audience: String,
    /// Claim holding the scopes: a space-separated string or a list.
    pub scopes_claim: String,
    /// Claim naming the caller.
    pub caller_claim: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_s: u64,
    /// Least time between two JWKS refreshes caused by unknown `kid`s.
    pub min_refresh_ms: u64,
    /// How often the JWKS is fetched again (sooner when its answer's `max-age` says so).
    pub refresh_interval_s: u64,
    /// How long the last good JWKS is trusted while refreshes fail; then tokens get 401.
    pub max_stale_s: u64,
}

impl Default for JwtSettings {
    fn default() -> Self {
        Self {
            jwks_file: None,
            jwks_url: None,
            issuer: String::new(),
            audience: String::new(),
            scopes_claim: "scope".into(),
            caller_claim: "sub".into(),
            leeway_s: 30,
            min_refresh_ms: 10_000,
            refresh_interval_s: 300,
            max_stale_s: 3_600,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Address the REST API listens on.
    pub listen: String,
    /// Largest request body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// Deadline of one gateway call, quota wait and upstream retries included.
    pub request_timeout_ms: u64,
    /// After SIGTERM: how long `/readyz` reports 503 while still serving, so load balancers stop
    /// sending new calls before the listener closes. SIGINT skips it.
    pub shutdown_delay_ms: u64,
    /// After the listener closes: how long in-flight calls may take to finish.
    pub shutdown_grace_ms: u64,
    /// Origins (`scheme://host[:port]`) web frontends may call from; none by default.
    pub cors_allowed_origins: Vec<String>,
    /// How long a client may take to send a request's head (request line and headers), from
    /// the connection's opening or the first byte of its next request.
    pub header_timeout_ms: u64,
    /// How long a kept-alive connection may stay without a request; above a load balancer's own
    /// idle timeout (commonly 60 s).
    pub idle_timeout_ms: u64,
    /// How long writing an answer may make no progress (the client does not read) before the
    /// connection is closed.
    pub write_timeout_ms: u64,
    /// Most connections open at once; one more is closed at once.
    pub max_connections: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8080".into(),
            max_body_bytes: 16 * 1024,
            request_timeout_ms: 30_000,
            shutdown_delay_ms: 5_000,
            shutdown_grace_ms: 20_000,
            cors_allowed_origins: Vec::new(),
            header_timeout_ms: 10_000,
            idle_timeout_ms: 75_000,
            write_timeout_ms: 30_000,
            max_connections: 10_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamSettings {
    /// Base URL of the partner API.
    pub endpoint: String,
    /// Sent as `X-TC-Region` when set.
    pub region: Option<String>,
    /// Total time one upstream attempt may take, from connect to the last byte of the answer.
    pub timeout_ms: u64,
    /// Time to establish a connection (TCP and TLS).
    pub connect_timeout_ms: u64,
    /// Retries after `RequestLimitExceeded` or a failure to connect (never after a request may
    /// have been received).
    pub max_retries: u32,
    /// First retry backoff; doubles each retry, with jitter.
    pub retry_backoff_ms: u64,
    /// While Tencent rejects the credentials (`AuthFailure*`), how often to re-check them.
    pub auth_recheck_ms: u64,
    /// How long an idle connection to Tencent is kept for reuse. Keep it below the server's own
    /// idle timeout (Tencent's: about 50 s), so the pool never hands out a connection the server
    /// is closing.
    pub pool_idle_timeout_ms: u64,
    /// A PEM file of extra certificate authorities to trust for the endpoint, beside the
    /// system's (a private CA in front of Tencent, or a test endpoint).
    pub ca_file: Option<PathBuf>,
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        Self {
            endpoint: "https://intlpartnersmgt.intl.tencentcloudapi.com".into(),
            region: None,
            timeout_ms: 10_000,
            connect_timeout_ms: 3_000,
            max_retries: 3,
            retry_backoff_ms: 100,
            auth_recheck_ms: 30_000,
            pool_idle_timeout_ms: 45_000,
            ca_file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaSettings {
    /// Tencent's quota for `CreateAndSendClientInvitationMail`.
    pub invitations_per_second: u32,
    /// Tencent's quota for `AllocateCustomerCredit`.
    pub credit_per_second: u32,
    /// Quota for the read-only credit queries (history, balances).
    pub queries_per_second: u32,
    /// Longest a call waits for a quota slot before it is refused with 429.
    pub max_wait_ms: u64,
    /// Floor of the guard: the window is one second plus a guard learned from the path.
    pub guard_min_ms: u64,
    /// Ceiling of the guard (also the guard until the path has been measured).
    pub guard_max_ms: u64,
    /// The least departure slack: how late after its slot a call may still leave (a later one
    /// reserves again); learned from the host above it, up to half of `guard_max_ms`.
    pub departure_slack_ms: u64,
    /// After a refusal showed a lower quota: one more call per second after this long without
    /// another refusal, back toward the configured quota.
    pub probe_interval_ms: u64,
}

impl Default for QuotaSettings {
    fn default() -> Self {
        Self {
            invitations_per_second: 20,
            credit_per_second: 5,
            queries_per_second: 5,
            max_wait_ms: 2_000,
            guard_min_ms: 10,
            guard_max_ms: 250,
            departure_slack_ms: 20,
            probe_interval_ms: 30_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CreditSettings {
    /// Largest |amount| one allocation may move.
    pub max_amount: f64,
    /// Whether `POST /customers/{uin}/credit` requires an `Idempotency-Key` (400 without one).
    pub require_idempotency_key: bool,
    /// How long after sending an allocation whose outcome is unknown the gateway waits for it to
    /// appear in Tencent's history before concluding it was not applied.
    pub settle_ms: u64,
    /// How often the background resolver looks at allocations whose outcome is unknown.
    pub resolve_interval_ms: u64,
    /// How far before an allocation's send time its history entry may be stamped (clock skew
    /// between the gateway and Tencent); the history is read back to this point.
    pub history_margin_ms: u64,
    /// The most history pages one search reads; a longer history leaves the outcome unknown
    /// rather than concluding "not applied".
    pub history_max_pages: u32,
    /// The key of the markers allocations carry (HMAC). Unset: with Redis, one random secret
    /// created in Redis for the whole fleet; with the memory store, one per process.
    #[serde(serialize_with = "redacted")]
    pub marker_secret: Option<SecretString>,
}

impl Default for CreditSettings {
    fn default() -> Self {
        Self {
            max_amount: 100_000.0,
            require_idempotency_key: true,
            settle_ms: 60_000,
            resolve_interval_ms: 5_000,
            history_margin_ms: 900_000,
            history_max_pages: 50,
            marker_secret: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdempotencySettings {
    /// How long an idempotency record is kept, in seconds.
    pub ttl_s: u64,
    /// Most records the in-memory store holds. When full, the oldest completed invitation
    /// records make room; credit records never do: new keys then get 503.
    pub max_entries: usize,
}

impl Default for IdempotencySettings {
    fn default() -> Self {
        Self {
            ttl_s: 86_400,
            max_entries: 500_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct InvitationSettings {
    /// After an invitation to an address, how long further ones are refused at the gateway.
    pub cooldown_s: u64,
}

impl Default for InvitationSettings {
    fn default() -> Self {
        Self { cooldown_s: 180 }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `json` (one object per line) or `pretty`.
    pub format: LogFormat,
    /// Default filter when `RUST_LOG` is not set.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Json,
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxSettings {
    /// Address `partner-gateway sandbox` listens on (`serve --sandbox` picks a free loopback port).
    pub listen: String,
    /// Latency added to every simulated answer.
    pub latency_ms: u64,
    /// Credit the simulated partner may allocate.
    pub partner_credit: f64,
    /// Stop counting per-second quotas (for benchmarks that measure the gateway, not the quota).
    pub lift_quotas: bool,
}

impl Default for SandboxSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9100".into(),
            latency_ms: 0,
            partner_credit: 1_000_000.0,
            lift_quotas: false,
        }
    }
}

/// A setting that cannot be used, named by its key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot load configuration: {0}")]
    Load(String),
    #[error("invalid setting `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// Where settings come from: files in order (or the default file), and environment overrides.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    pub files: Vec<PathBuf>,
    /// `None` reads the process environment; tests pass their own map.
    pub env: Option<HashMap<String, String>>,
}

impl Settings {
    /// Loads and validates.
    pub fn load(sources: &Sources) -> Result<Self, ConfigError> {
        use config::{Config, Environment, File, FileFormat};
        let mut builder = Config::builder();
        if sources.files.is_empty() {
            builder = builder.add_source(File::new(DEFAULT_FILE, FileFormat::Toml).required(false));
        }
        for file in &sources.files {
            builder = builder.add_source(File::from(file.as_path()).format(FileFormat::Toml));
        }
        let env = Environment::with_prefix(env::CONFIG_PREFIX)
            .prefix_separator(env::CONFIG_SEPARATOR)
            .separator(env::CONFIG_SEPARATOR)
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("server.cors_allowed_origins")
            .source(sources.env.clone());
        let settings: Settings = builder
            .add_source(env)
            .build()
            .and_then(Config::try_deserialize)
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        let mut settings = settings;
        if settings.store.redis_url.is_none() {
            let redis_url = match &sources.env {
                Some(map) => map.get(env::REDIS_URL).cloned(),
                None => std::env::var(env::REDIS_URL).ok(),
            };
            settings.store.redis_url = redis_url.filter(|u| !u.is_empty()).map(SecretString::from);
        }
        settings.validate()?;
        Ok(settings)
    }

    /// Checks every value a typed field cannot rule out.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server
            .listen
            .parse::<SocketAddr>()
            .map_err(|_| invalid("server.listen", "must be an address such as 0.0.0.0:8080"))?;
        if !(64..=1024 * 1024).contains(&self.server.max_body_bytes) {
            return Err(invalid(
                "server.max_body_bytes",
                "must be between 64 and 1048576",
            ));
        }
        positive("server.request_timeout_ms", self.server.request_timeout_ms)?;
        positive("server.header_timeout_ms", self.server.header_timeout_ms)?;
        positive("server.idle_timeout_ms", self.server.idle_timeout_ms)?;
        positive("server.write_timeout_ms", self.server.write_timeout_ms)?;
        if self.server.max_connections == 0 {
            return Err(invalid("server.max_connections", "must be at least 1"));
        }
        for origin in &self.server.cors_allowed_origins {
            let parsed = url::Url::parse(origin).ok().filter(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some()
                    && u.origin().ascii_serialization() == *origin
            });
            if parsed.is_none() {
                return Err(invalid(
                    "server.cors_allowed_origins",
                    format!("`{origin}` is not an origin such as https://app.example.com"),
                ));
            }
        }
        let endpoint = url::Url::parse(&self.upstream.endpoint)
            .map_err(|e| invalid("upstream.endpoint", format!("not a URL: {e}")))?;
        if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host_str().is_none() {
            return Err(invalid(
                "upstream.endpoint",
                "must be an http(s) URL with a host",
            ));
        }
        if endpoint.path() != "/" || endpoint.query().is_some() {
            return Err(invalid(
                "upstream.endpoint",
                "must not have a path or query",
            ));
        }
        if let Some(region) = &self.upstream.region
            && !region.is_empty()
            && !region
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(invalid(
                "upstream.region",
                "must be a region id such as ap-singapore",
            ));
        }
        positive("upstream.timeout_ms", self.upstream.timeout_ms)?;
        positive(
            "upstream.connect_timeout_ms",
            self.upstream.connect_timeout_ms,
        )?;
        if self.upstream.max_retries > 10 {
            return Err(invalid("upstream.max_retries", "must be at most 10"));
        }
        positive("upstream.auth_recheck_ms", self.upstream.auth_recheck_ms)?;
        for (key, value) in [
            (
                "quotas.invitations_per_second",
                self.quotas.invitations_per_second,
            ),
            ("quotas.credit_per_second", self.quotas.credit_per_second),
            ("quotas.queries_per_second", self.quotas.queries_per_second),
        ] {
            if !(1..=100_000).contains(&value) {
                return Err(invalid(key, "must be between 1 and 100000"));
            }
        }
        let q = &self.quotas;
        if q.guard_max_ms > 1_000 {
            return Err(invalid("quotas.guard_max_ms", "must be at most 1000"));
        }
        if q.guard_min_ms > q.guard_max_ms {
            return Err(invalid(
                "quotas.guard_min_ms",
                "must be at most quotas.guard_max_ms",
            ));
        }
        if q.departure_slack_ms >= q.guard_max_ms {
            return Err(invalid(
                "quotas.departure_slack_ms",
                "must be below quotas.guard_max_ms: the guard must cover the slack and the path's jitter",
            ));
        }
        positive("quotas.probe_interval_ms", q.probe_interval_ms)?;
        positive(
            "upstream.pool_idle_timeout_ms",
            self.upstream.pool_idle_timeout_ms,
        )?;
        self.max_amount_cents()?;
        if self.credit.settle_ms < self.upstream.timeout_ms {
            return Err(invalid(
                "credit.settle_ms",
                "must be at least upstream.timeout_ms: an allocation may still be in flight until then",
            ));
        }
        positive(
            "credit.resolve_interval_ms",
            self.credit.resolve_interval_ms,
        )?;
        if !(1..=1_000).contains(&self.credit.history_max_pages) {
            return Err(invalid(
                "credit.history_max_pages",
                "must be between 1 and 1000",
            ));
        }
        if let Some(secret) = &self.credit.marker_secret
            && secret.expose_secret().len() < 32
        {
            return Err(invalid(
                "credit.marker_secret",
                "must be at least 32 characters (e.g. `openssl rand -hex 32`)",
            ));
        }
        positive("idempotency.ttl_s", self.idempotency.ttl_s)?;
        if self.idempotency.max_entries == 0 {
            return Err(invalid("idempotency.max_entries", "must be greater than 0"));
        }
        tracing_subscriber::EnvFilter::try_new(&self.log.level)
            .map_err(|e| invalid("log.level", e.to_string()))?;
        self.sandbox.listen.parse::<SocketAddr>().map_err(|_| {
            invalid(
                "sandbox.listen",
                "must be an address such as 127.0.0.1:9100",
            )
        })?;
        cents("sandbox.partner_credit", self.sandbox.partner_credit)?;
        self.validate_store()?;
        self.validate_auth()
    }

    fn validate_store(&self) -> Result<(), ConfigError> {
        let store = &self.store;
        if store.key_prefix.len() > 64
            || store
                .key_prefix
                .chars()
                .any(|c| c.is_whitespace() || c == '{' || c == '}')
        {
            return Err(invalid(
                "store.key_prefix",
                "must be at most 64 characters without spaces or braces (braces are Redis Cluster hash tags)",
            ));
        }
        positive("store.redis_timeout_ms", store.redis_timeout_ms)?;
        positive("store.redis_probe_ms", store.redis_probe_ms)?;
        if store.backend == StoreBackend::Memory {
            return Ok(());
        }
        let Some(url) = &store.redis_url else {
            return Err(invalid(
                "store.redis_url",
                "must be set (or REDIS_URL) when store.backend = \"redis\"",
            ));
        };
        let urls: Vec<&str> = url.expose_secret().split(',').map(str::trim).collect();
        if urls.len() > 1 && !store.redis_cluster {
            return Err(invalid(
                "store.redis_url",
                "holds several URLs: set store.redis_cluster = true for a Redis Cluster",
            ));
        }
        for one in urls {
            match url::Url::parse(one) {
                Ok(u) if matches!(u.scheme(), "redis" | "rediss") && u.host_str().is_some() => {}
                _ => {
                    return Err(invalid(
                        "store.redis_url",
                        "must be a redis:// or rediss:// URL with a host (several, comma-separated, for a cluster)",
                    ));
                }
            }
        }
        if store.expected_replicas > 1000 {
            return Err(invalid("store.expected_replicas", "must be at most 1000"));
        }
        positive("store.heartbeat_ms", store.heartbeat_ms)?;
        if store.partition_lease_ms < store.heartbeat_ms * 10 {
            return Err(invalid(
                "store.partition_lease_ms",
                "must be at least ten heartbeats (store.heartbeat_ms)",
            ));
        }
        Ok(())
    }

    fn validate_auth(&self) -> Result<(), ConfigError> {
        let mut names = std::collections::HashSet::new();
        for key in &self.auth.api_keys {
            if key.name.is_empty()
                || key.name.len() > 64
                || !key
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                return Err(invalid(
                    "auth.api_keys.name",
                    format!(
                        "`{}` must be 1 to 64 characters of A-Z a-z 0-9 . _ -",
                        key.name
                    ),
                ));
            }
            if !names.insert(key.name.as_str()) {
                return Err(invalid(
                    "auth.api_keys.name",
                    format!("`{}` is used twice", key.name),
                ));
            }
            if key.sha256.len() != 64
                || !key
                    .sha256
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(invalid(
                    "auth.api_keys.sha256",
                    format!("the key of `{}` must be 64 lowercase hex digits", key.name),
                ));
            }
        }
        if let Some(jwt) = &self.auth.jwt {
            match (&jwt.jwks_file, &jwt.jwks_url) {
                (Some(_), None) => {}
                (None, Some(url)) => {
                    let parsed = url::Url::parse(url)
                        .map_err(|e| invalid("auth.jwt.jwks_url", e.to_string()))?;
                    let loopback = match parsed.host() {
                        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                        Some(url::Host::Domain(d)) => d == "localhost",
                        None => false,
                    };
                    if !(parsed.scheme() == "https" || (parsed.scheme() == "http" && loopback)) {
                        return Err(invalid(
                            "auth.jwt.jwks_url",
                            "must be https (http only on a loopback address)",
                        ));
                    }
                }
                _ => {
                    return Err(invalid(
                        "auth.jwt",
                        "set exactly one of jwks_file and jwks_url",
                    ));
                }
            }
            if jwt.issuer.is_empty() {
                return Err(invalid("auth.jwt.issuer", "must be set"));
            }
            positive("auth.jwt.refresh_interval_s", jwt.refresh_interval_s)?;
            if jwt.max_stale_s < jwt.refresh_interval_s {
                return Err(invalid(
                    "auth.jwt.max_stale_s",
                    "must be at least auth.jwt.refresh_interval_s",
                ));
            }
            if jwt.audience.is_empty() {
                return Err(invalid("auth.jwt.audience", "must be set"));
            }
        }
        if self.auth.caller_requests_per_minute > 0 && self.auth.caller_burst == 0 {
            return Err(invalid(
                "auth.caller_burst",
                "must be at least 1 when caller_requests_per_minute is set",
            ));
        }
        Ok(())
    }

    /// `credit.max_amount` in cents.
    pub fn max_amount_cents(&self) -> Result<i64, ConfigError> {
        cents("credit.max_amount", self.credit.max_amount)
    }

    pub fn region(&self) -> Option<&str> {
        self.upstream.region.as_deref().filter(|r| !r.is_empty())
    }
}

fn positive(key: &'static str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(invalid(key, "must be greater than 0"));
    }
    Ok(())
}

fn cents(key: &'static str, value: f64) -> Result<i64, ConfigError> {
    let cents = (value * 100.0).round();
    if !value.is_finite() || value <= 0.0 || (value * 100.0 - cents).abs() > 1e-6 {
        return Err(invalid(
            key,
            "must be a positive amount with at most 2 decimal places",
        ));
    }
    CreditAmount::from_cents(cents as i64)
        .map(CreditAmount::cents)
        .ok_or_else(|| invalid(key, "must be at most 10000000000000"))
}

/// Milliseconds from settings as a `Duration`.
pub fn ms(value: u64) -> Duration {
    Duration::from_millis(value)
}

/// The partner's Tencent Cloud API credentials, from the environment only.
#[derive(Clone)]
pub struct Credentials {
    pub secret_id: String,
    pub secret_key: SecretString,
    pub token: Option<SecretString>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("secret_id", &redact_id(&self.secret_id))
            .field("secret_key", &"[REDACTED]")
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

/// Keeps the first four characters of a key id, enough to tell keys apart.
pub fn redact_id(id: &str) -> String {
    let head: String = id.chars().take(4).collect();
    format!("{head}…")
}

impl Credentials {
    /// Reads the credentials; the error lists every missing variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Vec<&'static str>> {
        let get = |name| lookup(name).filter(|v| !v.trim().is_empty());
        let id = get(env::SECRET_ID);
        let key = get(env::SECRET_KEY);
        match (id, key) {
            (Some(secret_id), Some(key)) => Ok(Self {
                secret_id: secret_id.trim().to_owned(),
                secret_key: SecretString::from(key.trim().to_owned()),
                token: get(env::TOKEN).map(|t| SecretString::from(t.trim().to_owned())),
            }),
            (id, key) => Err([
                (env::SECRET_ID, id.is_none()),
                (env::SECRET_KEY, key.is_none()),
            ]
            .into_iter()
            .filter_map(|(name, missing)| missing.then_some(name))
            .collect()),
        }
    }

    pub fn from_env() -> Result<Self, Vec<&'static str>> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Fresh random credentials for the sandbox.
    pub fn generate_sandbox() -> Self {
        use rand::distr::{Alphanumeric, SampleString};
        let mut rng = rand::rng();
        Self {
            secret_id: format!("AKIDsandbox{}", Alphanumeric.sample_string(&mut rng, 24)),
            secret_key: SecretString::from(Alphanumeric.sample_string(&mut rng, 32)),
            token: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_env(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::load(&Sources {
            files: vec![],
            env: Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
        })
    }

    #[test]
    fn the_redis_backend_needs_a_url_but_not_the_replica_count() {
        let err = load_env(&[("GATEWAY__STORE__BACKEND", "redis")]).unwrap_err();
        assert!(err.to_string().contains("store.redis_url"), "{err}");
        load_env(&[
            ("GATEWAY__STORE__BACKEND", "redis"),
            ("REDIS_URL", "redis://127.0.0.1:6379/"),
        ])
        .expect("the fleet's size comes from heartbeats");
        let err = load_env(&[
            ("GATEWAY__STORE__BACKEND", "redis"),
            ("GATEWAY__STORE__REDIS_URL", "http://127.0.0.1:6379/"),
            ("GATEWAY__STORE__EXPECTED_REPLICAS", "3"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("redis://"), "{err}");
        let ok = load_env(&[
            ("GATEWAY__STORE__BACKEND", "redis"),
            ("REDIS_URL", "redis://app:s3cret-pw@redis.internal:6379/2"),
            ("GATEWAY__STORE__EXPECTED_REPLICAS", "3"),
        ])
        .unwrap();
        assert_eq!(ok.store.backend, StoreBackend::Redis);
        // The password never shows: not in Debug, not in check-config's output.
        let shown = toml::to_string(&ok).unwrap();
        assert!(
            shown.contains("redis://app:***@redis.internal:6379/2"),
            "{shown}"
        );
        assert!(!shown.contains("s3cret-pw") && !format!("{ok:?}").contains("s3cret-pw"));
        // A URL in the settings wins over REDIS_URL.
        let file_wins = load_env(&[
            ("GATEWAY__STORE__REDIS_URL", "redis://primary:6379/"),
            ("REDIS_URL", "redis://other:6379/"),
        ])
        .unwrap();
        assert_eq!(
            file_wins.store.redis_url_redacted().as_deref(),
            Some("redis://primary:6379/")
        );
    }

    #[test]
    fn defaults_match_the_design() {
        let s = load_env(&[]).unwrap();
        assert_eq!(s.server.listen, "0.0.0.0:8080");
        assert_eq!(s.server.max_body_bytes, 16 * 1024);
        assert_eq!(
            s.upstream.endpoint,
            "https://intlpartnersmgt.intl.tencentcloudapi.com"
        );
        assert_eq!(s.quotas.invitations_per_second, 20);
        assert_eq!(s.quotas.credit_per_second, 5);
        assert_eq!(s.region(), None);
    }

    #[test]
    fn environment_overrides_with_double_underscores() {
        let s = load_env(&[
            ("GATEWAY__UPSTREAM__ENDPOINT", "http://127.0.0.1:9"),
            ("GATEWAY__QUOTAS__CREDIT_PER_SECOND", "3"),
            ("GATEWAY__UPSTREAM__REGION", "ap-singapore"),
        ])
        .unwrap();
        assert_eq!(s.upstream.endpoint, "http://127.0.0.1:9");
        assert_eq!(s.quotas.credit_per_second, 3);
        assert_eq!(s.region(), Some("ap-singapore"));
    }

    #[test]
    fn cors_origins_come_as_a_comma_separated_variable() {
        let s = load_env(&[(
            "GATEWAY__SERVER__CORS_ALLOWED_ORIGINS",
            "https://a.example.com,http://localhost:3000",
        )])
        .unwrap();
        assert_eq!(
            s.server.cors_allowed_origins,
            ["https://a.example.com", "http://localhost:3000"]
        );
        for bad in [
            "https://a.example.com/",
            "*",
            "a.example.com",
            "https://a.example.com/path",
        ] {
            let err = load_env(&[("GATEWAY__SERVER__CORS_ALLOWED_ORIGINS", bad)]).unwrap_err();
            assert!(
                err.to_string().contains("server.cors_allowed_origins"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn invalid_values_name_their_key() {
        for (var, value, key) in [
            ("GATEWAY__SERVER__LISTEN", "nowhere", "server.listen"),
            (
                "GATEWAY__UPSTREAM__ENDPOINT",
                "ftp://x",
                "upstream.endpoint",
            ),
            (
                "GATEWAY__UPSTREAM__ENDPOINT",
                "https://h/path",
                "upstream.endpoint",
            ),
            (
                "GATEWAY__QUOTAS__CREDIT_PER_SECOND",
                "0",
                "quotas.credit_per_second",
            ),
            ("GATEWAY__CREDIT__MAX_AMOUNT", "0.001", "credit.max_amount"),
            (
                "GATEWAY__SERVER__MAX_BODY_BYTES",
                "1",
                "server.max_body_bytes",
            ),
        ] {
            let err = load_env(&[(var, value)]).unwrap_err().to_string();
            assert!(err.contains(key), "{var}={value}: {err}");
        }
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_rejected() {
        let err = load_env(&[("GATEWAY__QUOTAS__CREDIT_PER_SECCOND", "3")]).unwrap_err();
        assert!(err.to_string().contains("credit_per_seccond"), "{err}");
        let err = load_env(&[("GATEWAY__QUOTAS__CREDIT_PER_SECOND", "many")]).unwrap_err();
        assert!(err.to_string().contains("credit_per_second"), "{err}");
    }

    #[test]
    fn the_shipped_default_file_loads_and_equals_the_built_in_defaults() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_FILE);
        let from_file = Settings::load(&Sources {
            files: vec![path],
            env: Some(HashMap::new()),
        })
        .unwrap();
        let built_in = Settings::default();
        assert_eq!(
            toml::to_string(&from_file).unwrap(),
            toml::to_string(&built_in).unwrap()
        );
    }

    #[test]
    fn missing_credentials_are_named() {
        let missing = Credentials::from_lookup(|_| None).unwrap_err();
        assert_eq!(missing, vec![env::SECRET_ID, env::SECRET_KEY]);
        let missing =
            Credentials::from_lookup(|n| (n == env::SECRET_ID).then(|| "AKID".into())).unwrap_err();
        assert_eq!(missing, vec![env::SECRET_KEY]);
    }

    #[test]
    fn credentials_debug_is_redacted() {
        let c = Credentials::from_lookup(|n| match n {
            "TENCENTCLOUD_SECRET_ID" => Some("AKIDabcdef".into()),
            "TENCENTCLOUD_SECRET_KEY" => Some("super-secret-key".into()),
            "TENCENTCLOUD_TOKEN" => Some("tok-123".into()),
            _ => None,
        })
        .unwrap();
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("super-secret-key")
                && !dbg.contains("tok-123")
                && !dbg.contains("AKIDabcdef"),
            "{dbg}"
        );
    }
}
