//! `GET /problems/{type}`: the short page each problem `type` URI resolves to.

use axum::extract::Path;
use axum::response::{Html, IntoResponse, Response};

use crate::problem::{ApiError, ProblemType};

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The page explaining one problem type: what it means and what to do.
#[utoipa::path(
    get,
    path = "/problems/{type}",
    tag = "problems",
    params(("type" = String, Path, description = "The last segment of a problem's `type`", example = "quota-exceeded")),
    responses(
        (status = 200, description = "The page", content_type = "text/html"),
        (status = 404, description = "No such problem type", body = crate::problem::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn problem_page(Path(slug): Path<String>) -> Response {
    let Some(kind) = ProblemType::from_slug(&slug) else {
        return ApiError::new(ProblemType::NotFound, "no such problem type").into_response();
    };
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body><h1>{title}</h1>\n<p><code>type: {uri}</code> &middot; HTTP {status}</p>\n\
         <h2>What it means</h2><p>{meaning}</p>\n<h2>What to do</h2><p>{todo}</p>\n</body></html>\n",
        title = escape(kind.title()),
        uri = kind.uri(),
        status = kind.status().as_u16(),
        meaning = escape(kind.meaning()),
        todo = escape(kind.what_to_do()),
    ))
    .into_response()
}
