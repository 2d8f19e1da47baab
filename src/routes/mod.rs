//! One module per resource; each exposes its routes, and [`router`] merges them.

pub mod credit;
pub mod extract;
pub mod health;
pub mod invitations;
pub mod problems;

use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;

use crate::config::Settings;
use crate::health::Health;
use crate::tencent::TencentClient;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub tencent: Arc<TencentClient>,
    pub health: Arc<Health>,
    pub settings: Arc<Settings>,
    /// `credit.max_amount` in cents, computed once.
    pub max_amount_cents: i64,
}

impl AppState {
    /// The deadline of a call that starts now.
    pub fn deadline(&self) -> tokio::time::Instant {
        tokio::time::Instant::now() + crate::config::ms(self.settings.server.request_timeout_ms)
    }
}

/// All documented routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(invitations::router())
        .merge(credit::router())
        .merge(health::router())
        .merge(problems::router())
}
