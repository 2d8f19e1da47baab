//! The per-request context: the request id, the deadline, and what the upstream call did.
//!
//! The request id is the caller's `X-Request-Id` when it is sane, otherwise a new UUID v7; it is
//! returned on every response, logged, sent upstream as `X-TC-TraceId`, and written into every
//! problem body. The deadline starts when the request arrives, so time spent reading a slow body
//! counts against it. The middleware scopes the context in a task-local, read below it; the only
//! thing written back is the authenticated caller's id, once, so that every answer's log line
//! names it. What a request did travels forward on its response ([`UpstreamCall`],
//! [`Subject`]), where the access log reads it.

use std::sync::{Arc, OnceLock};

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderValue;
use tokio::time::Instant;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// How long past a request's deadline a route may take to give its own answer: an attempt that
/// left just before the deadline is answered, and its idempotency record written (a Redis
/// command may take `store.redis_timeout_ms`, 250 ms by default), or the credit route says the
/// outcome is unknown.
pub const ANSWER_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// How long past the deadline the outer timeout waits before it answers 504 itself: after any
/// route's own answer.
pub const OUTER_GRACE: std::time::Duration = std::time::Duration::from_millis(750);

/// What a request's upstream call did, for its log line: whoever made the call attaches it to
/// the response as an extension, and the access log reads it there (results flow forward).
#[derive(Debug, Clone, Default)]
pub struct UpstreamCall {
    /// The Tencent action called.
    pub action: &'static str,
    /// Tencent's error code, or the kind of failure.
    pub code: Option<String>,
    /// Tencent's `RequestId`.
    pub tencent_request_id: Option<String>,
    /// Time spent waiting for quota, in milliseconds (of a call that succeeded).
    pub quota_wait_ms: u64,
    /// Retries of a call that succeeded.
    pub retries: u32,
}

/// What a request was about, safe to log (a masked e-mail, a UIN): the route attaches it to its
/// response as an extension.
#[derive(Debug, Clone, Default)]
pub struct Subject {
    pub about: Option<String>,
}

/// The request's id and deadline, set by the outermost middleware for everything below it.
#[derive(Debug)]
pub struct RequestContext {
    pub id: String,
    pub deadline: Instant,
    /// The authenticated caller's id, written once by the `Authorized` extractor.
    caller: OnceLock<String>,
}

impl RequestContext {
    pub fn new(id: String, deadline: Instant) -> Arc<Self> {
        Arc::new(Self {
            id,
            deadline,
            caller: OnceLock::new(),
        })
    }

    /// Names the authenticated caller (the first name sticks), so the request's log line carries
    /// it whoever answers: the handler, a refused body, the outer timeout, the panic catcher.
    pub fn set_caller(&self, id: &str) {
        let _ = self.caller.set(id.to_owned());
    }

    pub fn caller(&self) -> Option<&str> {
        self.caller.get().map(String::as_str)
    }
}

tokio::task_local! {
    static CURRENT: Arc<RequestContext>;
}

/// The context of the request being served, if any.
pub fn current() -> Option<Arc<RequestContext>> {
    CURRENT.try_with(Arc::clone).ok()
}

/// The id of the request being served, if any.
pub fn request_id() -> Option<String> {
    current().map(|c| c.id.clone())
}

/// Runs `work` as its own task, with this request's context and tracing span, and waits for it.
///
/// Work that must finish once started (an allocation whose idempotency record has to be
/// settled) runs this way: if the client hangs up, hyper drops the handler, but not the task.
pub async fn run_to_completion<T: Send + 'static>(
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    use tracing::Instrument;
    let span = tracing::Span::current();
    let task = match current() {
        Some(ctx) => tokio::spawn(CURRENT.scope(ctx, work).instrument(span)),
        None => tokio::spawn(work.instrument(span)),
    };
    task.await
}

/// 1 to 128 characters of `[A-Za-z0-9._:-]`: safe to log and to forward as a trace id.
pub fn is_sane(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Picks the request id from the request's header, or makes a new one.
pub fn pick_request_id(request: &Request) -> String {
    request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_sane(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

/// Runs `next` with `ctx` current and echoes its id on the response.
pub async fn scope(ctx: Arc<RequestContext>, mut request: Request, next: Next) -> Response {
    let value = HeaderValue::from_str(&ctx.id).expect("sane ids are valid header values");
    request
        .headers_mut()
        .insert(REQUEST_ID_HEADER, value.clone());
    let mut response = CURRENT.scope(ctx, next.run(request)).await;
    response.headers_mut().insert(REQUEST_ID_HEADER, value);
    response
}

#[cfg(test)]
mod tests {
    use super::is_sane;

    #[test]
    fn sane_ids() {
        assert!(is_sane("0190f0c2-7b3a-7cc1-9f11-2b7c9f7c0d11"));
        assert!(is_sane("trace:abc.def_1"));
        for bad in ["", "has space", "new\nline", "ünï", &"a".repeat(129), "a/b"] {
            assert!(!is_sane(bad), "{bad:?}");
        }
    }
}
