//! The one error type of the HTTP layer and its RFC 9457 `application/problem+json` rendering.
//!
//! When to use what: handlers return `Result<_, ApiError>`. Build an [`ApiError`] from a
//! [`ProblemType`] (the stable `type`, `title` and default status) plus what varies per call
//! (`detail`, field errors, upstream code and RequestId, `Retry-After`). Failures of the upstream
//! call go through [`ApiError::from_call`], the single place Tencent's outcomes become statuses.
//! Internal causes are logged where they happen, never put in a response.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

use crate::domain::FieldError;
use crate::tencent::{CallError, ErrorClass};

pub const CONTENT_TYPE: &str = "application/problem+json";

macro_rules! problem_types {
    ($($variant:ident => $slug:literal, $status:literal, $title:literal, $meaning:literal, $todo:literal;)*) => {
        /// Every kind of problem the gateway answers. The `type` URI, `title` and default status
        /// of each never change: callers may match on them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ProblemType { $($variant,)* }

        impl ProblemType {
            pub const ALL: &'static [ProblemType] = &[$(Self::$variant,)*];

            /// The last segment of the `type` URI, e.g. `quota-exceeded`.
            pub fn slug(self) -> &'static str { match self { $(Self::$variant => $slug,)* } }
            pub fn title(self) -> &'static str { match self { $(Self::$variant => $title,)* } }
            pub fn status(self) -> StatusCode {
                match self { $(Self::$variant => StatusCode::from_u16($status).expect("valid status"),)* }
            }
            /// What the problem means, for its page.
            pub fn meaning(self) -> &'static str { match self { $(Self::$variant => $meaning,)* } }
            /// What a caller should do about it, for its page.
            pub fn what_to_do(self) -> &'static str { match self { $(Self::$variant => $todo,)* } }
        }
    };
}

problem_types! {
    MalformedRequest => "malformed-request", 400, "Malformed request",
        "The body is not valid JSON, or a required header is missing or malformed.",
        "Send a JSON object matching the route's schema (see /docs).";
    UnsupportedMediaType => "unsupported-media-type", 415, "Unsupported media type",
        "The request body was not sent as application/json.",
        "Send the body with Content-Type: application/json.";
    PayloadTooLarge => "payload-too-large", 413, "Payload too large",
        "The request body is larger than the gateway accepts (server.max_body_bytes).",
        "Send a smaller body; these routes need only a few hundred bytes.";
    ValidationFailed => "validation-failed", 422, "Validation failed",
        "One or more fields are invalid. Nothing was sent to Tencent Cloud.",
        "Fix the fields listed in `errors` and send the request again.";
    NotFound => "not-found", 404, "Not found",
        "No route matches this path.",
        "Check the path against the API document at /openapi.json.";
    MethodNotAllowed => "method-not-allowed", 405, "Method not allowed",
        "The route exists but does not accept this HTTP method.",
        "Use the method listed for the route in /openapi.json.";
    Unauthenticated => "unauthenticated", 401, "Authentication required",
        "The request carries no credential the gateway accepts: no Authorization header, not `Bearer <credential>`, an unknown API key, or a token that is expired, from another issuer or audience, or signed by an untrusted key.",
        "Send `Authorization: Bearer <API key or token>` with a valid credential; the WWW-Authenticate header says what was wrong.";
    InsufficientScope => "insufficient-scope", 403, "Insufficient scope",
        "The caller is authenticated but lacks the scope this route needs (invitations:send or credit:allocate).",
        "Ask the gateway's operators for a credential with that scope.";
    CallerRateLimited => "caller-rate-limited", 429, "Caller rate limit",
        "This caller sent more requests than its own per-caller rate allows (auth.caller_requests_per_minute), which keeps one caller from taking the whole Tencent quota from the others. Nothing was sent to Tencent Cloud.",
        "Retry after the number of seconds in the Retry-After header, and spread your requests.";
    IdempotencyKeyRequired => "idempotency-key-required", 400, "Idempotency-Key required",
        "This route needs an Idempotency-Key header (1 to 255 visible ASCII characters), or the one sent is malformed. The key names one intended operation, so a retry after a lost answer cannot apply it twice.",
        "Generate a unique key (a UUID) per intended allocation, send it, and send the same key again on every retry of that allocation.";
    IdempotencyKeyInUse => "idempotency-key-in-use", 409, "Idempotency-Key in use",
        "A request with this Idempotency-Key is still being processed.",
        "Retry with the same key after a moment; you will get the first request's answer.";
    IdempotencyKeyReused => "idempotency-key-reused", 422, "Idempotency-Key reused",
        "This Idempotency-Key was already used for a different request (another customer, amount or remark).",
        "Use a new key for a new intent; reuse a key only to retry exactly the same request.";
    StoreUnavailable => "store-unavailable", 503, "Idempotency store unavailable",
        "The gateway cannot record the idempotency key right now, and never allocates credit without that record. Nothing was sent to Tencent Cloud.",
        "Retry after the number of seconds in the Retry-After header.";
    QuotaExceeded => "quota-exceeded", 429, "Quota exceeded",
        "Tencent Cloud admits only a fixed number of calls per second for this action, shared by every caller of this gateway. The next free slot is further away than the gateway lets a call wait. Nothing was sent to Tencent Cloud.",
        "Retry after the number of seconds in the Retry-After header.";
    UpstreamRateLimited => "upstream-rate-limited", 429, "Upstream rate limit",
        "Tencent Cloud refused the call with RequestLimitExceeded even after the gateway retried; another client may be using the same partner account. The call was not executed.",
        "Retry after the number of seconds in the Retry-After header.";
    MailCooldown => "invitation-cooldown", 429, "Invitation cooldown",
        "An invitation was sent to this address less than 180 seconds ago; Tencent Cloud allows one per address every 180 seconds. No mail was sent.",
        "Retry after the number of seconds in the Retry-After header.";
    UpstreamUnavailable => "upstream-unavailable", 503, "Tencent Cloud is busy",
        "Tencent Cloud answered that the service is busy or unavailable. The call was not executed.",
        "Retry after the number of seconds in the Retry-After header.";
    UpstreamRejectedInput => "upstream-rejected-input", 422, "Rejected by Tencent Cloud",
        "Tencent Cloud rejected a parameter; its message is in `detail` and its code in `upstreamCode`.",
        "Correct the input as the message says. If the input looks right, report it with the upstreamRequestId.";
    InsufficientCredit => "insufficient-credit", 422, "Insufficient partner credit",
        "The partner account does not have enough allocable credit for this allocation. Nothing was allocated.",
        "Allocate a smaller amount, or raise the partner account's credit with Tencent Cloud first.";
    EmailAlreadyRegistered => "email-already-registered", 409, "E-mail already registered",
        "This address already belongs to a Tencent Cloud account, so it cannot be invited.",
        "Ask the customer for their account id and manage them through it instead.";
    CustomerNotAuthorized => "customer-not-authorized", 403, "Not your customer",
        "Tencent Cloud says the partner account may not act on this customer (for example UnauthorizedOperation.UinNoAuth).",
        "Check the customer UIN; only customers bound to this partner account can be managed.";
    UpstreamAuthFailed => "upstream-auth-failed", 502, "Gateway credentials rejected",
        "Tencent Cloud rejected the gateway's own API credentials (AuthFailure). The call was not executed. Operators are alerted through /readyz.",
        "Nothing to change on your side; retry later. Operators: check TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY.";
    UpstreamError => "upstream-error", 502, "Upstream error",
        "Tencent Cloud answered with an error the gateway cannot map, a non-200 status, or an answer it could not read.",
        "Retry later; if it persists, report it with the requestId and upstreamRequestId.";
    UpstreamTimeout => "upstream-timeout", 504, "Upstream timeout",
        "Tencent Cloud did not answer in time.",
        "Retry later. For invitations a retry may send a second mail.";
    CreditOutcomeUnknown => "credit-outcome-unknown", 502, "Credit outcome unknown",
        "The allocation may or may not have been applied: the request may have reached Tencent Cloud, but no definite answer came back. The gateway never retries it blindly.",
        "Retry with the same Idempotency-Key until you get a definite answer: the gateway looks the allocation up in Tencent's history and answers with its result, or sends it again once it is known not to have been applied. Never retry with a new key.";
    RequestTimeout => "request-timeout", 504, "Request timeout",
        "The gateway could not finish the request within its deadline (server.request_timeout_ms), for example because the request body arrived too slowly.",
        "Retry; send the body promptly.";
    Internal => "internal", 500, "Internal error",
        "The gateway failed unexpectedly. The failure is logged with the request id.",
        "Retry; if it persists, report the requestId.";
}

impl ProblemType {
    /// The stable relative URI callers match on, e.g. `/problems/quota-exceeded`.
    pub fn uri(self) -> String {
        format!("/problems/{}", self.slug())
    }

    pub fn from_slug(slug: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|p| p.slug() == slug)
    }
}

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

    fn with_upstream(mut self, code: &str, request_id: Option<String>) -> Self {
        self.upstream = Some(Box::new(UpstreamRef {
            code: code.to_owned(),
            request_id,
        }));
        self
    }

    /// Maps a failed credit allocation to the problem the caller gets: like
    /// [`ApiError::from_call`], except that anything that may have executed
    /// ([`crate::tencent::Effect::Unknown`]) is `credit-outcome-unknown`, never resent blindly.
    pub fn from_credit_call(error: CallError) -> Self {
        use ProblemType as P;
        if error.effect() == crate::tencent::Effect::Unknown {
            let timed_out = matches!(error, CallError::Timeout { .. });
            let mut problem = Self::new(
                P::CreditOutcomeUnknown,
                format!(
                    "{}; the allocation may or may not have been applied",
                    public_detail(&error)
                ),
            )
            .with_status(if timed_out {
                StatusCode::GATEWAY_TIMEOUT
            } else {
                StatusCode::BAD_GATEWAY
            });
            if let CallError::Upstream(e) = &error {
                problem = problem.with_upstream(&e.code, e.request_id.clone());
            }
            return problem;
        }
        Self::from_call(error)
    }

    /// Where a Tencent error code (or another failure of an upstream call) becomes an HTTP
    /// status: the one mapping from a failed call to the problem the caller gets.
    pub fn from_call(error: CallError) -> Self {
        use ProblemType as P;
        match error {
            CallError::QuotaExceeded { action, exceeded } => {
                let secs = exceeded.retry_after_secs();
                let mut problem = Self::new(
                    P::QuotaExceeded,
                    format!(
                        "{action} is limited to {} calls per second for the whole gateway fleet; the next free slot is beyond the wait budget",
                        exceeded.limit
                    ),
                )
                .retry_after(secs);
                problem.rate_limit = Some(Box::new(RateLimitInfo {
                    policy: action,
                    quota: exceeded.limit,
                    remaining: 0,
                    reset_secs: secs,
                }));
                problem
            }
            CallError::Upstream(e) => {
                let request_id = e.request_id.clone();
                let problem = match e.class() {
                    ErrorClass::RateLimited => {
                        Self::new(P::UpstreamRateLimited, e.message).retry_after(1)
                    }
                    ErrorClass::MailCooldown => {
                        Self::new(P::MailCooldown, e.message).retry_after(180)
                    }
                    ErrorClass::Busy => Self::new(P::UpstreamUnavailable, e.message).retry_after(5),
                    ErrorClass::InvalidInput => Self::new(P::UpstreamRejectedInput, e.message),
                    ErrorClass::BalanceInsufficient => Self::new(P::InsufficientCredit, e.message),
                    ErrorClass::MailRegistered => Self::new(P::EmailAlreadyRegistered, e.message),
                    ErrorClass::Unauthorized => Self::new(P::CustomerNotAuthorized, e.message),
                    ErrorClass::AuthFailure => Self::new(
                        P::UpstreamAuthFailed,
                        "Tencent Cloud rejected the gateway's credentials",
                    ),
                    ErrorClass::Internal | ErrorClass::Other => Self::new(
                        P::UpstreamError,
                        format!("Tencent Cloud answered {}: {}", e.code, e.message),
                    ),
                };
                problem.with_upstream(&e.code, request_id)
            }
            CallError::QuotaUnavailable { retry_after, .. } => {
                Self::new(P::StoreUnavailable, public_detail(&error))
                    .retry_after(retry_after.as_secs().max(1))
            }
            CallError::Timeout { .. } | CallError::DeadlineExceeded => {
                Self::new(P::UpstreamTimeout, public_detail(&error))
            }
            CallError::Transport { .. }
            | CallError::Status { .. }
            | CallError::Unparsable { .. } => Self::new(P::UpstreamError, public_detail(&error)),
        }
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

/// What a caller may learn of a failed call: the kind of failure, never hosts, addresses or
/// library messages (those are in the log line of the request).
fn public_detail(error: &CallError) -> String {
    match error {
        CallError::Timeout { .. } => "Tencent Cloud did not answer in time".into(),
        CallError::DeadlineExceeded => {
            "the request deadline passed before Tencent Cloud could be called".into()
        }
        CallError::Transport { sent: false, .. } => {
            "the connection to Tencent Cloud could not be established".into()
        }
        CallError::Transport { sent: true, .. } => {
            "the connection to Tencent Cloud broke before a complete answer".into()
        }
        CallError::Status { status } => format!("Tencent Cloud answered HTTP {status}"),
        CallError::Unparsable { .. } => "Tencent Cloud's answer could not be read".into(),
        CallError::Upstream(e) => format!("Tencent Cloud answered {}: {}", e.code, e.message),
        CallError::QuotaExceeded { .. } => "quota exceeded".into(),
        CallError::QuotaUnavailable { action, .. } => format!(
            "the shared store is unreachable and this replica holds no share of the {action} quota it may use on its own; retry, another replica may answer"
        ),
    }
}

/// Marks a response as a problem of a kind, for the request log line.
#[derive(Debug, Clone, Copy)]
pub struct ProblemMarker(pub ProblemType);

#[cfg(test)]
mod tests;
