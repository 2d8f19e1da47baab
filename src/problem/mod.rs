//! The one error type of the HTTP layer and its RFC 9457 `application/problem+json` rendering.
//!
//! When to use what: handlers return `Result<_, ApiError>`. Build an [`ApiError`] from a
//! [`ProblemType`] (the stable `type`, `title` and default status) plus what varies per call
//! (`detail`, field errors, upstream code and RequestId, `Retry-After`). Failures of the upstream
//! call go through [`ApiError::from_call`] (in `from_call.rs`), the single place Tencent's outcomes
//! become statuses. The table of problem types is in `types.rs`.
//! Internal causes are logged where they happen, never put in a response.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

use crate::domain::FieldError;

mod from_call;
mod types;

pub use types::ProblemType;

pub const CONTENT_TYPE: &str = "application/problem+json";

/// The JSON body of a problem (RFC 9457).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "type": "/problems/validation-failed", "title": "Validation failed", "status": 422,
    "detail": "`amount` must have at most 2 decimal places", "requestId": "0193a0b1-5f8e-7c1d-9a2b-3c4d5e6f7a8b",
    "errors": [{"field": "amount", "message": "must have at most 2 decimal places"}]
}))]
pub struct Problem {
    /// Stable relative URI naming the kind of problem; it serves a page explaining it.
    #[schema(example = "/problems/validation-failed")]
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Never varies for a given `type`.
    #[schema(example = "Validation failed")]
    pub title: String,
    #[schema(example = 422)]
    pub status: u16,
    /// What happened in this occurrence.
    #[schema(example = "1 field is invalid")]
    pub detail: String,
    /// The request id, also in the `X-Request-Id` header.
    pub request_id: Option<String>,
    /// Tencent's error code, when Tencent answered one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_code: Option<String>,
    /// Tencent's `RequestId`, for support cases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_request_id: Option<String>,
    /// The rejected fields, for validation problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

/// A failed request, ready to be rendered as problem+json.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub kind: ProblemType,
    pub status: StatusCode,
    pub detail: String,
    pub errors: Vec<FieldError>,
    /// Tencent's code and `RequestId`, when Tencent answered.
    pub upstream: Option<Box<UpstreamRef>>,
    pub retry_after_secs: Option<u64>,
    /// What the `RateLimit*` headers say, for quota refusals.
    pub rate_limit: Option<Box<RateLimitInfo>>,
    /// The `WWW-Authenticate` challenge of 401 and 403 answers.
    pub www_authenticate: Option<Box<str>>,
}

/// Which Tencent answer a problem comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamRef {
    pub code: String,
    pub request_id: Option<String>,
}

/// What the IETF `RateLimit-Policy` and `RateLimit` headers say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitInfo {
    pub policy: &'static str,
    pub quota: u32,
    pub remaining: u32,
    pub reset_secs: u64,
}

impl RateLimitInfo {
    /// Writes `RateLimit-Policy: "name";q=N;w=1` and `RateLimit: "name";r=R;t=T`.
    pub fn write(&self, headers: &mut http::HeaderMap) {
        let policy = format!("\"{}\";q={};w=1", self.policy, self.quota);
        let state = format!(
            "\"{}\";r={};t={}",
            self.policy, self.remaining, self.reset_secs
        );
        headers.insert(
            "ratelimit-policy",
            HeaderValue::from_str(&policy).expect("ascii"),
        );
        headers.insert("ratelimit", HeaderValue::from_str(&state).expect("ascii"));
    }
}

impl ApiError {
    pub fn new(kind: ProblemType, detail: impl Into<String>) -> Self {
        Self {
            kind,
            status: kind.status(),
            detail: detail.into(),
            errors: Vec::new(),
            upstream: None,
            retry_after_secs: None,
            rate_limit: None,
            www_authenticate: None,
        }
    }

    pub fn www_authenticate(mut self, challenge: String) -> Self {
        self.www_authenticate = Some(challenge.into_boxed_str());
        self
    }

    /// 422 listing every rejected field.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.len() {
            1 => format!("`{}` {}", errors[0].field, errors[0].message),
            n => format!("{n} fields are invalid"),
        };
        Self {
            errors,
            ..Self::new(ProblemType::ValidationFailed, detail)
        }
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs.max(1));
        self
    }

    pub fn body(&self) -> Problem {
        Problem {
            type_uri: self.kind.uri(),
            title: self.kind.title().to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            request_id: crate::context::request_id(),
            upstream_code: self.upstream.as_ref().map(|u| u.code.clone()),
            upstream_request_id: self.upstream.as_ref().and_then(|u| u.request_id.clone()),
            errors: (!self.errors.is_empty()).then(|| self.errors.clone()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(rate_limit) = &self.rate_limit {
            rate_limit.write(headers);
        }
        if let Some(challenge) = self.www_authenticate.as_deref()
            && let Ok(value) = HeaderValue::from_str(challenge)
        {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        response.extensions_mut().insert(ProblemMarker(self.kind));
        response
    }
}

/// Marks a response as a problem of a kind, for the request log line.
#[derive(Debug, Clone, Copy)]
pub struct ProblemMarker(pub ProblemType);

#[cfg(test)]
mod tests;
