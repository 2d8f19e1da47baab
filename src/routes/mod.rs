//! One module per resource; each exposes its routes, and [`router`] merges them.

pub mod credit;
pub mod extract;
pub mod health;
pub mod invitations;
pub mod metrics;
pub mod problems;

use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;

use crate::config::Settings;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::tencent::TencentClient;

/// What every handler can reach: one `Arc`, so the per-request clones axum makes (extractors,
/// middleware) are one reference count, not one per field.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The state behind [`AppState`].
#[derive(Debug)]
pub struct Shared {
    pub tencent: Arc<TencentClient>,
    pub auth: Arc<crate::auth::Authenticator>,
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
    pub store: crate::store::Store,
    /// Idempotency keys: beginning and finishing their work in the store.
    pub keys: Arc<crate::idempotency::Keys>,
    /// Credit allocations and their settlement.
    pub credit: Arc<crate::credit::Allocator>,
    /// The link to Redis, with `store.backend = "redis"`.
    pub redis: Option<Arc<crate::redis_link::RedisLink>>,
    /// The wall clock of cooldowns and reconciliation (injected in tests).
    pub clock: crate::clock::SharedClock,
    pub settings: Arc<Settings>,
    /// `credit.max_amount` in cents, computed once.
    pub max_amount_cents: i64,
}

impl AppState {
    pub fn now_ms(&self) -> u64 {
        self.clock.now_unix_ms()
    }

    /// The current request's deadline, set when it arrived (or from now, outside a request).
    pub fn deadline(&self) -> tokio::time::Instant {
        crate::context::current()
            .map(|c| c.deadline)
            .unwrap_or_else(|| {
                tokio::time::Instant::now()
                    + crate::config::ms(self.settings.server.request_timeout_ms)
            })
    }
}

/// All documented routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(invitations::router())
        .merge(credit::router())
        .merge(health::router())
        .merge(metrics::router())
        .merge(problems::router())
}
