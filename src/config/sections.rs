//! The server, upstream, quota, credit, idempotency, invitation, log and sandbox sections.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::durations;
use super::store::redacted;

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
    /// Quota for the read-only credit queries (history, balances, the customer list).
    pub queries_per_second: u32,
    /// Quota for the lookups `DescribeCustomerInfo` and `QueryInvitationInfo` (20/s each).
    pub lookups_per_second: u32,
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
            lookups_per_second: 20,
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
pub struct ReadSettings {
    /// How long a read answer is reused; 0 turns the cache off. An allocation through the
    /// gateway makes what it changes stale at once, fleet-wide with Redis.
    pub cache_ms: u64,
    /// Most keys one batched read carries (1 to 100; 1 turns batching off), capped by each
    /// action's own limit: 50 UINs for `QueryCreditByUinList`, 20 for `DescribeCustomerInfo`,
    /// 100 tokens for `QueryInvitationInfo`.
    pub batch_size: usize,
}

impl Default for ReadSettings {
    fn default() -> Self {
        Self {
            cache_ms: 1000,
            batch_size: 100,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `json` (one object per line), `pretty`, or `auto`: `pretty` in sandbox mode (people read
    /// it), `json` otherwise.
    pub format: LogFormat,
    /// Default filter when `RUST_LOG` is not set.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Auto,
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
    Auto,
}

impl LogSettings {
    /// The format to write: `auto` is `pretty` in sandbox mode, `json` otherwise.
    pub fn format_for(&self, sandbox: bool) -> LogFormat {
        match self.format {
            LogFormat::Auto if sandbox => LogFormat::Pretty,
            LogFormat::Auto => LogFormat::Json,
            chosen => chosen,
        }
    }
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

durations!(ServerSettings {
    request_timeout: request_timeout_ms in ms,
    shutdown_delay: shutdown_delay_ms in ms,
    shutdown_grace: shutdown_grace_ms in ms,
    header_timeout: header_timeout_ms in ms,
    idle_timeout: idle_timeout_ms in ms,
    write_timeout: write_timeout_ms in ms,
});

durations!(UpstreamSettings {
    timeout: timeout_ms in ms,
    connect_timeout: connect_timeout_ms in ms,
    retry_backoff: retry_backoff_ms in ms,
    auth_recheck: auth_recheck_ms in ms,
    pool_idle_timeout: pool_idle_timeout_ms in ms,
});

durations!(QuotaSettings {
    max_wait: max_wait_ms in ms,
    probe_interval: probe_interval_ms in ms,
});

durations!(IdempotencySettings { ttl: ttl_s in s });

durations!(InvitationSettings { cooldown: cooldown_s in s });

durations!(SandboxSettings { latency: latency_ms in ms });

durations!(ReadSettings { cache: cache_ms in ms });
