//! `GET /livez` and `GET /readyz`.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use crate::readiness::Readiness;
use crate::state::AppState;

/// The process is alive (it answers HTTP).
#[utoipa::path(get, path = "/livez", tag = "operations", responses((status = 200, description = "Alive")))]
pub async fn livez() -> Response {
    Json(serde_json::json!({"status": "alive"})).into_response()
}

/// Whether the gateway should receive traffic, with each check's state.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready: shutting down, credentials missing, or rejected by Tencent", body = Readiness),
    )
)]
pub async fn readyz(State(app): State<AppState>) -> Response {
    let mut readiness = app.readiness.readiness();
    // Expired credentials fail readiness even if the refresher never said so (it is the one that
    // reports why; this holds should it be stuck or gone).
    let current = app.tencent.credentials().current();
    let now = app.clock.now_unix_secs();
    if let Some(expires) = current.expires.filter(|&expires| expires <= now) {
        readiness.fail_unless_failing(
            "credentials",
            format!(
                "the {} credentials expired {} s ago and have not been renewed",
                current.source.label(),
                now.saturating_sub(expires)
            ),
        );
    }
    if let Some(note) = app.auth.jwks_note() {
        readiness.degraded.insert("jwks", note);
    }
    let status = if readiness.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness)).into_response()
}
