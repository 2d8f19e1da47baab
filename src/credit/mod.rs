//! Credit allocations, applied exactly once: the one place that decides what an allocation's
//! idempotency record says, when it is sent, and how a lost answer is settled.
//!
//! # States of a keyed allocation
//!
//! ```text
//!                 begin (create-if-absent)
//!   new ───────────────────────────────▶ sent (in_flight) ──answer: applied──────▶ applied (completed, replayed)
//!                                          │      └──answer: refused for good────▶ refused (completed, replayed)
//!                                          │      └──never executed (quota, 429,
//!                                          │         connection refused)──────────▶ new again (record removed)
//!                                          └──answer lost (timeout after sending,
//!                                             5xx, InternalError, replica died)──▶ unknown
//!   unknown ──history shows its marker with its amount─────────────────────────▶ applied (completed)
//!   unknown ──history read in full after credit.settle_ms, marker absent───────▶ not-applied (retryable)
//!   unknown ──history not readable / not yet conclusive────────────────────────▶ unknown (502 credit-outcome-unknown, Retry-After)
//!   not-applied ──next request with the key (compare-and-set)──────────────────▶ sent
//! ```
//!
//! # Why it holds
//! - One key, one sender: `sent` is created only if no record exists and every later change is
//!   a compare-and-set, in memory and in Redis alike ([`crate::idempotency::Keys`]).
//! - A record money depends on is never evicted before its TTL (a full store refuses new keys
//!   with 503 and sends nothing), and `unknown` never becomes `new` without proof: only a complete
//!   read of the history made at least `credit.settle_ms` after the last send turns it into
//!   `not-applied` ([`history`]).
//! - Only this gateway can write a marker, and a match needs the marker as the remark's last
//!   word *and* the amount ([`marker`]); a copied marker is an alarm, never "applied".
//! - Callers are namespaced by credential kind, so two callers never share a key.
//!
//! The background resolver settles `unknown` records nobody retries; with Redis one replica at a
//! time does so (a lease, `PREFIX credit-resolver`).

mod allocation;
pub mod history;
pub mod marker;
mod send;
mod settle;

use std::sync::Arc;
use std::time::Duration;

use redis::Script;
use secrecy::{ExposeSecret, SecretString};

use crate::clock::SharedClock;
use crate::idempotency::{self, Keys};
use crate::metrics::Metrics;
use crate::problem::ApiError;
use crate::redis_link::RedisLink;
use crate::store::{KeyState, Store, StoredResponse};
use crate::tencent::TencentClient;
use history::HistorySearch;
use marker::MarkerKey;

pub use allocation::{Allocation, CreditRequest, CreditResponse, tencent_remark};
pub use send::unknown_advice;

/// The route's name in idempotency scopes and metrics.
pub const ROUTE: &str = "credit";
/// How long to wait before looking again after the history could not be read.
const RETRY_LOOKUP: Duration = Duration::from_secs(5);
/// How long to wait while another replica reads the same customer's history.
const RETRY_BUSY: Duration = Duration::from_secs(1);

/// What the allocator needs from the settings.
#[derive(Debug, Clone)]
pub struct CreditConfig {
    pub settle_ms: u64,
    pub resolve_interval_ms: u64,
    pub history_margin_ms: u64,
    /// Tag the Tencent remark with ` [by CALLER]` (`auth.remark_caller`).
    pub remark_caller: bool,
    /// `credit.marker_secret`, when set.
    pub marker_secret: Option<SecretString>,
    /// Longest one history page read may take (`upstream.timeout_ms`).
    pub history_timeout: Duration,
    /// `credit.history_max_pages`.
    pub history_max_pages: u32,
}

/// What settling an `unknown` record found.
#[derive(Debug)]
pub enum Settled {
    /// Applied: the answer to replay (already stored).
    Applied(StoredResponse),
    /// Not settled yet: look again after this long.
    Pending(Duration),
    /// Not applied: the record is now this `Retryable` one.
    NotApplied(KeyState),
}

/// What credit reaches beyond itself: Tencent, Redis (with the Redis store), metrics and the
/// clock; shared by the allocator and its history search.
#[derive(Debug, Clone)]
pub struct Services {
    pub tencent: Arc<TencentClient>,
    pub redis: Option<Arc<RedisLink>>,
    pub metrics: Arc<Metrics>,
    pub clock: SharedClock,
}

/// Allocates credit and settles allocations of unknown outcome. Holds only what that takes.
#[derive(Debug)]
pub struct Allocator {
    services: Services,
    keys: Arc<Keys>,
    store: Store,
    config: CreditConfig,
    history: HistorySearch,
    marker_key: tokio::sync::OnceCell<MarkerKey>,
}

/// KEYS[1] secret. ARGV: a new random secret. Returns the fleet's secret, creating it if absent.
const FLEET_SECRET: &str = r#"
local current = redis.call('GET', KEYS[1])
if current then return current end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
"#;

impl Allocator {
    pub fn new(services: Services, store: Store, keys: Arc<Keys>, config: CreditConfig) -> Self {
        let history = HistorySearch::new(
            services.clone(),
            config.history_timeout,
            config.history_max_pages,
        );
        Self {
            services,
            keys,
            store,
            config,
            history,
            marker_key: tokio::sync::OnceCell::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.services.clock.now_unix_ms()
    }

    /// The marker secret: configured, else the fleet's one in Redis (created once, read on
    /// every keyed allocation, so a Redis that restarted and made a new one is followed at
    /// once by every replica), else this process's own.
    async fn marker_key(&self) -> Result<MarkerKey, ApiError> {
        let Some(link) = self
            .services
            .redis
            .as_ref()
            .filter(|_| self.config.marker_secret.is_none())
        else {
            return Ok(self
                .marker_key
                .get_or_init(|| async {
                    match &self.config.marker_secret {
                        Some(secret) => MarkerKey::new(secret.expose_secret().as_bytes()),
                        None => MarkerKey::random(),
                    }
                })
                .await
                .clone());
        };
        let key = link.key("credit-marker-secret");
        let candidate = hex::encode(rand::random::<[u8; 32]>());
        let secret: String = link
            .run("marker_secret", |mut conn| async move {
                Script::new(FLEET_SECRET)
                    .key(&key)
                    .arg(&candidate)
                    .invoke_async(&mut conn)
                    .await
            })
            .await
            .map_err(|e| idempotency::store_problem(e.into()))?;
        Ok(MarkerKey::new(secret.as_bytes()))
    }
}
