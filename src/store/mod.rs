//! Shared state that must outlive a request: idempotency records and invitation cooldowns.
//!
//! The operations are the ones Redis does atomically: create-if-absent with a TTL,
//! compare-and-set, remove-if-unchanged. [`Store`] is an enum of the two backends (no boxed
//! futures). Times are Unix milliseconds on the injected clock (replicas' clocks must agree to
//! within seconds, as NTP keeps them).

pub mod memory;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use memory::{MemoryStore, StoreFaults};
pub use redis::RedisStore;

/// A response kept for replay: status, the headers that matter, and the exact body bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What the gateway knows of an allocation whose outcome is unknown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCredit {
    /// The marker carried in the Tencent Remark, searched for in the allocation history.
    pub marker: String,
    pub uin: u64,
    pub amount_cents: i64,
    /// When the last attempt was sent.
    pub sent_ms: u64,
    pub caller: String,
    pub request_id: String,
}

/// The state of one idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum KeyState {
    /// A request with this key is being processed.
    InFlight {
        fingerprint: String,
        started_ms: u64,
        /// Unique per claim, so a claimant can tell its own record from another's (a create
        /// whose answer was lost is checked, not assumed).
        #[serde(default)]
        claim: String,
    },
    /// Finished: the answer to replay.
    Completed {
        fingerprint: String,
        response: StoredResponse,
    },
    /// An allocation that may or may not have been applied.
    Unknown {
        fingerprint: String,
        pending: PendingCredit,
    },
    /// Known not to have been applied: the next request with this key sends it again.
    Retryable { fingerprint: String },
}

impl KeyState {
    pub fn fingerprint(&self) -> &str {
        match self {
            Self::InFlight { fingerprint, .. }
            | Self::Completed { fingerprint, .. }
            | Self::Unknown { fingerprint, .. }
            | Self::Retryable { fingerprint } => fingerprint,
        }
    }
}

/// Whether a full memory store may drop a completed record before its TTL to make room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Money depends on it (credit): kept until its TTL; a full store refuses new keys instead.
    Keep,
    /// Only a replay depends on it (invitations, where the cooldowns still stop a second mail
    /// within 180 s): the oldest completed ones make room when the store is full.
    Evictable,
}

/// Why a store operation could not be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("the idempotency store is full")]
    Full,
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
}

impl From<crate::redis_link::LinkError> for StoreError {
    fn from(error: crate::redis_link::LinkError) -> Self {
        Self::Unavailable(error.0)
    }
}

/// A key to create unless it exists: its first state, how long it lives, and whether the memory
/// store may evict it to make room.
#[derive(Debug)]
pub struct NewKey<'a> {
    pub key: &'a str,
    pub state: KeyState,
    pub ttl: Duration,
    pub retention: Retention,
}

/// A key's state replaced by `new` (for another `ttl`), if it still holds `expected`.
#[derive(Debug)]
pub struct Swap<'a> {
    pub key: &'a str,
    pub expected: &'a KeyState,
    pub new: KeyState,
    pub ttl: Duration,
}

/// The store backends.
#[derive(Debug, Clone)]
pub enum Store {
    Memory(Arc<MemoryStore>),
    Redis(Arc<RedisStore>),
}

impl Store {
    /// The backend's name, for spans.
    fn backend(&self) -> &'static str {
        match self {
            Self::Memory(_) => "memory",
            Self::Redis(_) => "redis",
        }
    }

    /// The store for work that may go on without the shared store (invitations): Redis while it
    /// answers, this replica's memory otherwise. Credit never uses it.
    pub fn lenient(&self) -> Store {
        match self {
            Self::Redis(r) if !r.link().is_up() => Self::Memory(r.fallback.clone()),
            other => other.clone(),
        }
    }

    /// Creates the key unless it exists; returns the existing state if it does.
    #[tracing::instrument(name = "store", level = "debug", target = "partner_gateway::spans", skip_all, fields(operation = "create", backend = self.backend()))]
    pub async fn create(&self, new: NewKey<'_>) -> Result<Result<(), KeyState>, StoreError> {
        match self {
            Self::Memory(m) => m.create(new),
            Self::Redis(r) => r.create(new).await,
        }
    }

    /// Replaces the key's state if it still equals `swap.expected`; true if it did.
    #[tracing::instrument(name = "store", level = "debug", target = "partner_gateway::spans", skip_all, fields(operation = "replace", backend = self.backend()))]
    pub async fn replace(&self, swap: Swap<'_>) -> Result<bool, StoreError> {
        match self {
            Self::Memory(m) => m.replace(swap),
            Self::Redis(r) => r.replace(swap).await,
        }
    }

    /// Removes the record of `key` if it still equals `expected`.
    #[tracing::instrument(name = "store", level = "debug", target = "partner_gateway::spans", skip_all, fields(operation = "remove", backend = self.backend()))]
    pub async fn remove(&self, key: &str, expected: &KeyState) -> Result<bool, StoreError> {
        match self {
            Self::Memory(m) => m.remove(key, expected),
            Self::Redis(r) => r.remove(key, expected).await,
        }
    }

    #[tracing::instrument(name = "store", level = "debug", target = "partner_gateway::spans", skip_all, fields(operation = "get", backend = self.backend()))]
    pub async fn get(&self, key: &str) -> Result<Option<KeyState>, StoreError> {
        match self {
            Self::Memory(m) => m.get(key),
            Self::Redis(r) => r.get(key).await,
        }
    }

    /// Every record whose allocation outcome is unknown, for the background resolver.
    // No span: the resolver lists every few seconds, and an idle pass is no trace.
    pub async fn unknown(&self) -> Result<Vec<(String, KeyState)>, StoreError> {
        match self {
            Self::Memory(m) => Ok(m.unknown()),
            Self::Redis(r) => r.unknown().await,
        }
    }

    /// Forgets expired entries held in this process (the memory store, or Redis's local
    /// fallback); Redis expires its own keys.
    pub fn prune_local(&self) {
        match self {
            Self::Memory(m) => m.prune(),
            Self::Redis(r) => r.fallback.prune(),
        }
    }

    /// (live records, capacity) of the memory store; `None` for Redis, which bounds itself
    /// (`maxmemory` with the `noeviction` policy: see the README).
    pub fn fill(&self) -> Option<(usize, usize)> {
        match self {
            Self::Memory(m) => Some(m.fill()),
            Self::Redis(_) => None,
        }
    }

    /// When the cooldown of `key` ends (Unix ms), if it is running. Never fails: without Redis,
    /// this replica's own cooldowns answer.
    #[tracing::instrument(name = "store", level = "debug", target = "partner_gateway::spans", skip_all, fields(operation = "cooldown_get", backend = self.backend()))]
    pub async fn cooldown_until(&self, key: &str) -> Option<u64> {
        match self {
            Self::Memory(m) => m.cooldown_until(key),
            Self::Redis(r) => r.cooldown_until(key).await,
        }
    }

    /// Starts (or extends) the cooldown of `key` until `until_ms`; locally if Redis is away.
    #[tracing::instrument(name = "store", level = "debug", target = "partner_gateway::spans", skip_all, fields(operation = "cooldown_set", backend = self.backend()))]
    pub async fn start_cooldown(&self, key: &str, until_ms: u64) {
        match self {
            Self::Memory(m) => m.start_cooldown(key, until_ms),
            Self::Redis(r) => r.start_cooldown(key, until_ms).await,
        }
    }
}
