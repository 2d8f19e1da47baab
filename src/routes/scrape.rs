//! `GET /metrics`: Prometheus text exposition.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::header;

use crate::state::AppState;

/// Metrics in the Prometheus text format (request durations, upstream calls, quota waits and
/// rejections, retries, requests in flight, build info).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain; version=0.0.4"))
)]
pub async fn metrics(State(app): State<AppState>) -> Response {
    if let Some((records, capacity)) = app.store.fill() {
        app.metrics.store_fill(records, capacity);
    }
    app.tencent.quotas().export();
    if let Some(jwks) = app.auth.jwks_state() {
        app.metrics.jwks(jwks.age_s, jwks.failures);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(),
    )
        .into_response()
}
