//! One module per resource, holding its handlers; [`router`] lists them all.

pub mod credit;
pub mod customers;
pub mod extract;
pub mod invitations;
pub mod lookups;
pub mod probes;
pub mod problem_pages;
pub mod reads;
pub mod scrape;

use axum::response::{IntoResponse, Response};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::context::Subject;
use crate::problem::ApiError;
use crate::state::AppState;

/// A handler's answer, carrying who and what the request was about for its log line.
pub fn answered(result: Result<Response, ApiError>, subject: Subject) -> Response {
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    response.extensions_mut().insert(subject);
    response
}

/// All documented routes, each a handler of its resource's module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(invitations::create_invitation))
        .routes(routes!(credit::allocate_credit))
        .routes(routes!(reads::customer_credit))
        .routes(routes!(reads::partner_credit))
        .routes(routes!(reads::credit_allocations))
        .routes(routes!(customers::list_customers))
        .routes(routes!(lookups::customer_profile))
        .routes(routes!(lookups::invitation))
        .routes(routes!(probes::livez))
        .routes(routes!(probes::readyz))
        .routes(routes!(scrape::metrics))
        .routes(routes!(problem_pages::problem_page))
}
