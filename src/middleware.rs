//! Every layer a request passes, outermost first, applied in one place ([`stack`]): the request
//! context (id, deadline), the access log and metrics, standard methods only, sensitive headers,
//! CORS, compression, the outer timeout, the panic catcher, the body limit.

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, Method, header};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, NotForContentType, Predicate};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::sensitive_headers::{
    SetSensitiveRequestHeadersLayer, SetSensitiveResponseHeadersLayer,
};
use tracing::Instrument;

use crate::context::{self, RequestContext, Subject, UpstreamCall};
use crate::problem::{ApiError, ProblemMarker, ProblemType};
use crate::state::AppState;
use crate::telemetry;

/// Every layer, outermost first: request context (id, deadline) → access log and metrics →
/// standard methods only → sensitive headers → CORS → compression → outer timeout → panic
/// catcher → body limit.
pub fn stack(router: Router, state: &AppState) -> Router {
    let server = &state.settings.server;
    let request_timeout = server.request_timeout();
    let sensitive = [
        header::AUTHORIZATION,
        header::COOKIE,
        header::PROXY_AUTHORIZATION,
    ];
    // Layers run bottom-up: the last one added is the outermost.
    let mut router = router
        .layer(DefaultBodyLimit::max(server.max_body_bytes))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("a handler panicked");
            ApiError::new(ProblemType::Internal, "the gateway failed unexpectedly").into_response()
        }))
        .layer(middleware::from_fn(deadline))
        // Answers and metrics are compressed; the Swagger UI's static files are not: gzipping a
        // 1.4 MB bundle for every anonymous request would be CPU any caller could spend.
        .layer(
            CompressionLayer::new().compress_when(
                DefaultPredicate::new()
                    .and(NotForContentType::const_new("application/javascript"))
                    .and(NotForContentType::const_new("text/javascript"))
                    .and(NotForContentType::const_new("text/css")),
            ),
        );
    if let Some(cors) = cors_layer(&server.cors_allowed_origins) {
        router = router.layer(cors);
    }
    router
        .layer(SetSensitiveResponseHeadersLayer::new([header::SET_COOKIE]))
        .layer(SetSensitiveRequestHeadersLayer::new(sensitive))
        .layer(middleware::from_fn(standard_methods_only))
        .layer(middleware::from_fn_with_state(state.clone(), access_log))
        .layer(middleware::from_fn(move |request: Request, next: Next| {
            let ctx = RequestContext::new(
                context::pick_request_id(&request),
                tokio::time::Instant::now() + request_timeout,
            );
            context::scope(ctx, request, next)
        }))
}

/// A method no route serves and no standard names (`PURGE`, or a kilobyte of letters) gets 405
/// before anything else reads the request; its metrics label is `_OTHER`.
async fn standard_methods_only(request: Request, next: Next) -> Response {
    if crate::metrics::method_label(request.method().as_str()) == "_OTHER" {
        return ApiError::new(
            ProblemType::MethodNotAllowed,
            "this method is not one the gateway serves",
        )
        .into_response();
    }
    next.run(request).await
}

/// CORS for web frontends: only the configured origins; none by default.
fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = origins
        .iter()
        .map(|o| HeaderValue::from_str(o).expect("validated origin"))
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                HeaderName::from_static("x-request-id"),
                HeaderName::from_static("idempotency-key"),
            ])
            .expose_headers([
                HeaderName::from_static("x-request-id"),
                header::RETRY_AFTER,
                HeaderName::from_static("ratelimit"),
                HeaderName::from_static("ratelimit-policy"),
                // What a browser client reads besides the body: a replay, and the read cache.
                HeaderName::from_static("idempotent-replayed"),
                header::ETAG,
                header::AGE,
            ])
            .max_age(Duration::from_secs(600)),
    )
}

/// The outer timeout: a request that outlives its deadline gets a 504 problem. (A credit route
/// answers first, within [`context::ANSWER_GRACE`]: the allocation's outcome is unknown, or it
/// was never sent.)
async fn deadline(request: Request, next: Next) -> Response {
    let Some(ctx) = context::current() else {
        return next.run(request).await;
    };
    match tokio::time::timeout_at(ctx.deadline + context::OUTER_GRACE, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            ProblemType::RequestTimeout,
            "the request did not finish before its deadline",
        )
        .into_response(),
    }
}

/// Routes whose requests are not traced: health probes and the metrics scrape.
const UNTRACED: [&str; 3] = ["/livez", "/readyz", "/metrics"];

/// One log line per request, inside a span carrying the request id so every line the request
/// causes carries it too; and the server-side HTTP metrics.
async fn access_log(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = tokio::time::Instant::now();
    let _active = state.metrics.active_request();
    let method = request.method().clone();
    // The route template, never the raw path: raw paths would explode metric cardinality.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    // The label, not the raw method: a made-up method may be kilobytes long.
    let method_label = crate::metrics::method_label(method.as_str());
    let request_id = context::request_id().unwrap_or_default();
    // Probes and scrapes are logged like any request, but their span's target keeps them out of
    // the traces: a probe every few seconds per replica is no trace anyone follows.
    let traced = !UNTRACED.contains(&route.as_str());
    let span = if !traced {
        tracing::info_span!(target: telemetry::traces::UNTRACED_TARGET, "request", request_id = %request_id, method = method_label, route = %route)
    } else {
        // `trace_id` and the `otel.*` fields are recorded only while traces are exported.
        tracing::info_span!(
            "request",
            request_id = %request_id,
            method = method_label,
            route = %route,
            trace_id = tracing::field::Empty,
            otel.name = tracing::field::Empty,
            otel.kind = tracing::field::Empty,
        )
    };
    if traced && telemetry::traces::active() {
        telemetry::traces::continue_trace(&span, request.headers(), method_label, &route);
    }
    let response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state
        .metrics
        .http_request(&route, method.as_str(), status, elapsed);
    let problem = response
        .extensions()
        .get::<ProblemMarker>()
        .map(|m| m.0.slug())
        .unwrap_or("");
    // What the request did travels on its response: who and what it was about, and what its
    // upstream call did.
    let extensions = response.extensions();
    let subject = extensions.get::<Subject>().cloned().unwrap_or_default();
    let caller = context::current().and_then(|ctx| ctx.caller().map(str::to_owned));
    let upstream = extensions
        .get::<UpstreamCall>()
        .cloned()
        .unwrap_or_default();
    if telemetry::traces::active() {
        telemetry::traces::end_request(&span, status, problem);
    }
    span.in_scope(|| {
        tracing::info!(
            status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            problem,
            caller = caller.as_deref().unwrap_or(""),
            subject = subject.about.as_deref().unwrap_or(""),
            tencent_action = upstream.action,
            tencent_code = upstream.code.as_deref().unwrap_or(""),
            tencent_request_id = upstream.tencent_request_id.as_deref().unwrap_or(""),
            quota_wait_ms = upstream.quota_wait_ms,
            retries = upstream.retries,
            "request served"
        );
    });
    response
}
