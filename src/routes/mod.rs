//! One module per resource; each exposes its routes, and [`router`] merges them.

pub mod credit;
pub mod extract;
pub mod health;
pub mod invitations;
pub mod metrics;
pub mod problems;

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// All documented routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(invitations::router())
        .merge(credit::router())
        .merge(health::router())
        .merge(metrics::router())
        .merge(problems::router())
}
