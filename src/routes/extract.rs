//! The routes' extractors: [`Authorized`], the authenticated caller holding the route's scope,
//! and [`JsonBody`], where every way a body can be wrong becomes a problem naming the field.
//!
//! Not JSON media type → 415; over `server.max_body_bytes` → 413; not JSON → 400; JSON of the
//! wrong shape (unknown or duplicate field, wrong type, missing field) → 422 with the field's path.

use std::marker::PhantomData;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use http::header::CONTENT_TYPE;
use http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use crate::auth::{Caller, Scope, insufficient_scope};
use crate::domain::FieldError;
use crate::problem::{ApiError, ProblemType};
use crate::state::AppState;
use axum::response::IntoResponse;
use tracing::Instrument;

/// Which scope a route needs, as a type so the extractor can carry it.
pub trait RequiredScope {
    const SCOPE: Scope;
}

/// Marker: the route needs `invitations:send`.
pub struct SendsInvitations;
impl RequiredScope for SendsInvitations {
    const SCOPE: Scope = Scope::SendInvitations;
}

/// Marker: the route needs `credit:allocate`.
pub struct AllocatesCredit;
impl RequiredScope for AllocatesCredit {
    const SCOPE: Scope = Scope::AllocateCredit;
}

/// Marker: the route needs `customers:read`.
pub struct ReadsCustomers;
impl RequiredScope for ReadsCustomers {
    const SCOPE: Scope = Scope::ReadCustomers;
}

/// An authenticated caller holding the scope `S`. As the first extractor of a handler it runs
/// before the body is read, so nobody unauthenticated learns anything from validation.
pub struct Authorized<S>(pub Caller, pub PhantomData<S>);

impl<S: RequiredScope + Send + Sync> FromRequestParts<AppState> for Authorized<S> {
    type Rejection = axum::response::Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // A span for traces (at `debug`: the request's log line names the caller already).
        let span = tracing::debug_span!(
            target: "partner_gateway::spans",
            "authenticate",
            caller = tracing::field::Empty,
            outcome = tracing::field::Empty
        );
        let authorized = authorize::<S>(parts, state).instrument(span.clone()).await;
        span.record(
            "outcome",
            match &authorized {
                Ok(_) => "ok",
                Err(_) => "refused",
            },
        );
        authorized.map(|caller| Self(caller, PhantomData))
    }
}

async fn authorize<S: RequiredScope>(
    parts: &Parts,
    state: &AppState,
) -> Result<Caller, axum::response::Response> {
    let caller = state
        .auth
        .authenticate(parts.headers.get(http::header::AUTHORIZATION))
        .await
        .map_err(|e| ApiError::from(e).into_response())?;
    tracing::Span::current().record("caller", caller.id.as_str());
    // Every answer from here on names the caller in the request's log line.
    if let Some(ctx) = crate::context::current() {
        ctx.set_caller(&caller.id);
    }
    let refused = |problem: ApiError| problem.into_response();
    if !caller.may(S::SCOPE) {
        return Err(refused(insufficient_scope(S::SCOPE)));
    }
    if let Err(wait) = state.auth.check_rate(&caller) {
        return Err(refused(
            ApiError::new(
                ProblemType::CallerRateLimited,
                format!("the caller `{}` is over its own request rate", caller.name),
            )
            .retry_after(wait.as_secs_f64().ceil() as u64),
        ));
    }
    Ok(caller)
}

/// A request body parsed as `T`, or the problem that says why it could not be.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        if !content_type.is_some_and(is_json) {
            return Err(ApiError::new(
                ProblemType::UnsupportedMediaType,
                "send the body as application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    ProblemType::PayloadTooLarge,
                    "the body is larger than the gateway accepts",
                )
            } else {
                ApiError::new(ProblemType::MalformedRequest, "the body could not be read")
            }
        })?;
        parse(&bytes).map(JsonBody)
    }
}

/// Parses a body; pure, so tests and fuzzers can call it directly.
///
/// Three passes, so each failure is classified by its cause, not by what serde met first: the
/// syntax of the whole body (400), then its being an object (serde would also fill a struct from
/// a JSON array), then the typed shape (422).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(|e| {
        ApiError::new(
            ProblemType::MalformedRequest,
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::validation(vec![FieldError::new(
            "body",
            "must be a JSON object",
        )]));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            Category::Data => ApiError::validation(vec![data_error(&path, &inner)]),
            // Unreachable after the syntax pass, but classified rather than assumed.
            Category::Syntax | Category::Eof | Category::Io => ApiError::new(
                ProblemType::MalformedRequest,
                format!("the body is not valid JSON: {inner}"),
            ),
        }
    })
}

/// Names the field of a shape error: serde reports unknown and missing fields in its message.
fn data_error(path: &str, error: &serde_json::Error) -> FieldError {
    let message = error.to_string();
    let quoted = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned)
    };
    // For unknown and duplicate fields the path already ends in the field; for missing ones it
    // is the parent object.
    let join = |field: String| match path {
        "." | "" => field,
        p if p == field || p.ends_with(&format!(".{field}")) => p.to_owned(),
        parent => format!("{parent}.{field}"),
    };
    if let Some(field) = quoted("unknown field `") {
        return FieldError::new(join(field), "is not a known field");
    }
    if let Some(field) = quoted("missing field `") {
        return FieldError::new(join(field), "is required");
    }
    if let Some(field) = quoted("duplicate field `") {
        return FieldError::new(join(field), "appears more than once");
    }
    let field = if path == "." {
        "body".to_owned()
    } else {
        path.to_owned()
    };
    // serde's message ends with " at line L column C"; the position adds nothing for a caller.
    let reason = message
        .split(" at line ")
        .next()
        .unwrap_or(&message)
        .to_owned();
    FieldError::new(field, reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Body {
        amount: f64,
        remark: Option<String>,
    }

    fn fields(body: &str) -> Vec<FieldError> {
        parse::<Body>(body.as_bytes()).unwrap_err().errors
    }

    #[test]
    fn shape_errors_name_the_field() {
        assert_eq!(fields(r#"{"amout": 1}"#)[0].field, "amout");
        assert_eq!(
            fields(r#"{"remark": "x"}"#),
            vec![FieldError::new("amount", "is required")]
        );
        assert_eq!(fields(r#"{"amount": 1, "amount": 2}"#)[0].field, "amount");
        let wrong = fields(r#"{"amount": "1"}"#);
        assert_eq!(wrong[0].field, "amount");
        assert!(wrong[0].message.starts_with("invalid type"), "{wrong:?}");
        assert_eq!(fields("[1]")[0].field, "body");
        assert_eq!(
            fields(r#"[1.5, "remark"]"#)[0].field,
            "body",
            "serde fills structs from arrays"
        );
        assert_eq!(fields(r#" "text" "#)[0].field, "body");
    }

    #[test]
    fn syntax_errors_are_malformed() {
        for body in [
            "",
            "{",
            "not json",
            r#"{"amount": 1} trailing"#,
            "\u{feff}{}",
            r#"{"amout": 1"#,
        ] {
            let err = parse::<Body>(body.as_bytes()).unwrap_err();
            assert_eq!(err.kind, ProblemType::MalformedRequest, "{body:?}");
        }
    }

    #[test]
    fn json_media_types() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
    }
}

/// The paging parameters of the list routes: `page` (from 1, at most 1000) and `pageSize` (1 to
/// 100, default 20), written in decimal without leading zeros.
#[derive(Debug, Clone, Copy)]
pub struct Paging {
    pub page: u64,
    pub size: u64,
}

impl Default for Paging {
    fn default() -> Self {
        Self { page: 1, size: 20 }
    }
}

impl Paging {
    /// Takes one query parameter: `None` when `name` is not a paging parameter, otherwise
    /// whether its value was good (the error names the field).
    pub fn take(&mut self, name: &str, value: &str) -> Option<Result<(), FieldError>> {
        let (slot, max) = match name {
            "page" => (&mut self.page, 1000),
            "pageSize" => (&mut self.size, 100),
            _ => return None,
        };
        Some(match value.parse::<u64>() {
            Ok(n) if (1..=max).contains(&n) && !value.starts_with('0') => {
                *slot = n;
                Ok(())
            }
            _ => Err(FieldError::new(
                name.to_owned(),
                format!("must be a whole number from 1 to {max}"),
            )),
        })
    }
}
