//! The request id: the caller's `X-Request-Id` when it is sane, otherwise a new UUID v7.
//!
//! It is returned on every response, logged, sent upstream as `X-TC-TraceId`, and written into
//! every problem body. The middleware scopes it in a task-local so code deep in a handler (and the
//! problem renderer) can read it without threading it through every signature.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderValue;

pub const HEADER: &str = "x-request-id";

tokio::task_local! {
    static CURRENT: String;
}

/// 1 to 128 characters of `[A-Za-z0-9._:-]`: safe to log and to forward as a trace id.
pub fn is_sane(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// The id of the request being served, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok()
}

/// Middleware: picks the id, makes it current for the handler, and echoes it on the response.
pub async fn layer(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_sane(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let value = HeaderValue::from_str(&id).expect("sane ids are valid header values");
    request.headers_mut().insert(HEADER, value.clone());
    let mut response = CURRENT.scope(id, next.run(request)).await;
    response.headers_mut().insert(HEADER, value);
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
