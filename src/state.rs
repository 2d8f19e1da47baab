//! The application state handlers reach through axum's `State`: one [`AppState`] around the
//! [`Gateway`] it shares, built by [`crate::app::build`].

use std::sync::Arc;

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::readiness::ReadinessChecks;
use crate::tencent::TencentClient;

/// What every handler can reach: one `Arc`, so the per-request clones axum makes (extractors,
/// middleware) are one reference count, not one per field.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Gateway>);

impl AppState {
    pub fn new(gateway: Gateway) -> Self {
        Self(Arc::new(gateway))
    }
}

impl std::ops::Deref for AppState {
    type Target = Gateway;

    fn deref(&self) -> &Gateway {
        &self.0
    }
}

/// Everything the gateway's handlers and background tasks share: the state behind
/// [`AppState`].
#[derive(Debug)]
pub struct Gateway {
    pub tencent: Arc<TencentClient>,
    pub auth: Arc<crate::auth::Authenticator>,
    pub readiness: Arc<ReadinessChecks>,
    pub metrics: Arc<Metrics>,
    pub store: crate::store::Store,
    /// Idempotency keys: beginning and finishing their work in the store.
    pub keys: Arc<crate::idempotency::Keys>,
    /// Credit allocations and their settlement.
    pub credit: Arc<crate::credit::Allocator>,
    /// The read side: batched, coalesced and cached credit queries.
    pub reads: Arc<crate::reads::Reads>,
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

    /// The upstream call's context for the current request: its id and its deadline, set when it
    /// arrived (outside a request: no id, and a deadline from now).
    pub fn call_context(&self) -> crate::tencent::CallContext {
        match crate::context::current() {
            Some(request) => crate::tencent::CallContext::new(request.id.clone(), request.deadline),
            None => crate::tencent::CallContext::new(
                String::new(),
                tokio::time::Instant::now() + self.settings.server.request_timeout(),
            ),
        }
    }
}
