//! The application: router, middleware stack and shared state; serving with graceful shutdown.
//!
//! [`build`] wires settings and credentials into an [`App`]; [`App::run_until_stopped`] serves an
//! already bound listener until a shutdown signal, so tests bind `127.0.0.1:0` and drive the real
//! server.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::clock::SharedClock;
use crate::config::{Credentials, Settings, ms};
use crate::health::Health;
use crate::problem::{ApiError, ProblemMarker, ProblemType};
use crate::quota::Quotas;
use crate::routes::{self, AppState};
use crate::tencent::TencentClient;
use crate::tencent::actions::Action;
use crate::tencent::actions::{
    AllocateCustomerCredit, CreateAndSendClientInvitationMail, QueryPartnerCredit,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "partner-gateway",
        description = "REST gateway to the Tencent Cloud International partner API (intlpartnersmgt 2022-09-28). \
                       Errors are RFC 9457 problem+json; each `type` is a page served under /problems/.",
        license(name = "Apache-2.0")
    ),
    tags(
        (name = "customers", description = "Invite customers and allocate their credit"),
        (name = "health", description = "Liveness and readiness"),
        (name = "problems", description = "Pages explaining each problem type"),
    )
)]
struct ApiDoc;

/// The OpenAPI document, generated from the routes themselves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, api) = routes::router().split_for_parts();
    let mut doc = ApiDoc::openapi();
    doc.merge(api);
    doc
}

/// How the process was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// SIGTERM (an orchestrator): report not-ready for `server.shutdown_delay_ms` first.
    Terminate,
    /// SIGINT (a person at a terminal): stop accepting at once.
    Interrupt,
}

/// A built gateway, ready to serve.
#[derive(Debug)]
pub struct App {
    pub state: AppState,
    router: Router,
}

/// Wires everything together. Fails only if the HTTP client cannot be built (TLS roots).
pub fn build(
    settings: Settings,
    credentials: &Credentials,
    clock: SharedClock,
) -> anyhow::Result<App> {
    let guard = ms(settings.quotas.guard_ms);
    let quotas = Arc::new(Quotas::new(
        &[
            (
                CreateAndSendClientInvitationMail::NAME,
                settings.quotas.invitations_per_second,
            ),
            (
                AllocateCustomerCredit::NAME,
                settings.quotas.credit_per_second,
            ),
            (QueryPartnerCredit::NAME, settings.quotas.queries_per_second),
        ],
        guard,
    ));
    let health = Arc::new(Health::default());
    let tencent = Arc::new(TencentClient::new(
        &settings,
        credentials,
        clock,
        quotas,
        health.clone(),
    )?);
    let state = AppState {
        tencent,
        health,
        max_amount_cents: settings.max_amount_cents()?,
        settings: Arc::new(settings),
    };
    let router = router(state.clone());
    Ok(App { state, router })
}

fn router(state: AppState) -> Router {
    let (api_router, api) = routes::router().split_for_parts();
    let mut doc = ApiDoc::openapi();
    doc.merge(api);
    let max_body = state.settings.server.max_body_bytes;
    api_router
        .with_state(state)
        .merge(SwaggerUi::new("/docs").url("/openapi.json", doc))
        .fallback(|| async { ApiError::new(ProblemType::NotFound, "no route matches this path") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                ProblemType::MethodNotAllowed,
                "this route does not accept this method",
            )
        })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn(access_log))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("a handler panicked");
            ApiError::new(ProblemType::Internal, "the gateway failed unexpectedly").into_response()
        }))
        .layer(middleware::from_fn(crate::request_id::layer))
}

/// One log line per request, inside a span carrying the request id, so every line the request
/// causes (upstream calls included) carries it too.
async fn access_log(request: Request, next: Next) -> Response {
    let started = tokio::time::Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let span = tracing::info_span!(
        "request",
        request_id = %crate::request_id::current().unwrap_or_default(),
        method = %method,
        route = %route,
    );
    let response = next.run(request).instrument(span.clone()).await;
    let problem = response
        .extensions()
        .get::<ProblemMarker>()
        .map(|m| m.0.slug());
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| {
        tracing::info!(
            status,
            latency_ms,
            problem = problem.unwrap_or(""),
            "request served"
        );
    });
    response
}

impl App {
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Serves `listener` until `shutdown` resolves, then drains: readiness turns 503 at once;
    /// after SIGTERM the listener stays open `server.shutdown_delay_ms` so load balancers notice;
    /// in-flight calls then get `server.shutdown_grace_ms` to finish.
    pub async fn run_until_stopped(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = Shutdown> + Send + 'static,
    ) -> std::io::Result<()> {
        let health = self.state.health.clone();
        let settings = self.state.settings.clone();
        let recheck = tokio::spawn(recheck_credentials(self.state.clone()));
        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            let how = shutdown.await;
            health.set_shutting_down();
            tracing::info!(?how, "shutting down: readiness now reports 503");
            if how == Shutdown::Terminate {
                tokio::time::sleep(ms(settings.server.shutdown_delay_ms)).await;
            }
            tracing::info!("no longer accepting connections; draining in-flight requests");
            let _ = stopping_tx.send(());
        };
        let grace = ms(self.state.settings.server.shutdown_grace_ms);
        let serve = axum::serve(listener, self.router).with_graceful_shutdown(signal);
        let deadline = async move {
            if stopping_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let result = tokio::select! {
            result = serve.into_future() => result,
            () = deadline => {
                tracing::warn!(grace_ms = grace.as_millis() as u64, "grace period over; abandoning in-flight requests");
                Ok(())
            }
        };
        recheck.abort();
        result
    }
}

/// While Tencent rejects the credentials, asks again now and then, so readiness recovers by
/// itself once they are fixed (for example after a rotated key propagates).
async fn recheck_credentials(state: AppState) {
    let every = ms(state.settings.upstream.auth_recheck_ms);
    loop {
        tokio::time::sleep(every).await;
        if state.health.upstream_auth_failed() {
            let _ = state
                .tencent
                .probe_credentials(Duration::from_secs(10))
                .await;
        }
    }
}
