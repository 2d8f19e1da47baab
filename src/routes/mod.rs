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

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub tencent: Arc<TencentClient>,
    pub auth: Arc<crate::auth::Authenticator>,
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
    pub settings: Arc<Settings>,
    /// `credit.max_amount` in cents, computed once.
    pub max_amount_cents: i64,
}

impl AppState {
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
