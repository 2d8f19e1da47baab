//! The `[store]` section: where shared state lives, and how its URL is kept out of logs.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::durations;

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

pub(super) fn redacted<S: serde::Serializer>(
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

durations!(StoreSettings {
    heartbeat: heartbeat_ms in ms,
    partition_lease: partition_lease_ms in ms,
    redis_timeout: redis_timeout_ms in ms,
    redis_probe: redis_probe_ms in ms,
});
