//! One module per resource; each exposes its routes, and [`router`] merges them.

pub mod credit;
pub mod extract;
pub mod invitations;
pub mod probes;
pub mod problem_pages;
pub mod scrape;

use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;

use crate::context::Subject;
use crate::problem::ApiError;
use crate::state::AppState;

/// A handler's answer, carrying who and what the request was about for its log line.
pub fn answered(result: Result<Response, ApiError>, subject: Subject) -> Response {
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    response.extensions_mut().insert(subject);
    response
}

/// All documented routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(invitations::router())
        .merge(credit::router())
        .merge(probes::router())
        .merge(scrape::router())
        .merge(problem_pages::router())
}
