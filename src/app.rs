//! The application: router, middleware stack and shared state; serving with graceful shutdown.
//!
//! [`build`] wires settings and credentials into an [`App`]; [`App::run_until_stopped`] serves an
//! already bound listener until a shutdown signal, so tests bind `127.0.0.1:0` and drive the real
//! server. [`crate::middleware::stack`] is the one place every layer is applied, in order.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use utoipa_swagger_ui::SwaggerUi;

use crate::clock::SharedClock;
use crate::config::{Credentials, Settings, StoreBackend};
use crate::metrics::Metrics;
use crate::problem::{ApiError, ProblemType};
use crate::quota::guard::GuardBounds;
use crate::quota::{FleetConfig, QuotaConfig, Quotas};
use crate::readiness::ReadinessChecks;
use crate::redis_link::RedisLink;
use crate::routes;
use crate::state::{AppState, Gateway};
use crate::store::{MemoryStore, RedisStore, Store};
use crate::tencent::TencentClient;
use crate::tencent::actions::{
    Action, AllocateCustomerCredit, CreateAndSendClientInvitationMail, DescribeCustomerInfo,
    QueryCreditAllocationHistory, QueryCreditByUinList, QueryCustomersCredit, QueryInvitationInfo,
    QueryPartnerCredit,
};

/// The OpenAPI document, generated from the routes themselves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, api) = routes::router().split_for_parts();
    crate::openapi::document(api)
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
    /// Where the credentials came from, to be read again while serving.
    refresh: Option<(
        crate::credentials::Origin,
        crate::credentials::refresh::Lookup,
    )>,
}

/// Wires everything together. Fails only if the HTTP client cannot be built (TLS roots) or the
/// Redis URL cannot be used; Redis itself is reached in the background.
pub fn build(
    settings: Settings,
    credentials: &Credentials,
    clock: SharedClock,
) -> anyhow::Result<App> {
    build_with(
        settings,
        crate::credentials::CredentialCell::fixed(credentials.clone()),
        clock,
    )
}

/// [`build`] with credentials that may change while it runs (see [`crate::credentials`]).
pub fn build_with(
    settings: Settings,
    credentials: Arc<crate::credentials::CredentialCell>,
    clock: SharedClock,
) -> anyhow::Result<App> {
    let quota_config = QuotaConfig {
        guard: GuardBounds {
            min_us: settings.quotas.guard_min_ms * 1000,
            max_us: settings.quotas.guard_max_ms * 1000,
            slack_us: settings.quotas.departure_slack_ms * 1000,
        },
        max_wait: settings.quotas.max_wait(),
        probe: settings.quotas.probe_interval(),
    };
    let limits = [
        (
            CreateAndSendClientInvitationMail::NAME,
            settings.quotas.invitations_per_second,
        ),
        (
            AllocateCustomerCredit::NAME,
            settings.quotas.credit_per_second,
        ),
        (QueryPartnerCredit::NAME, settings.quotas.queries_per_second),
        (
            QueryCreditByUinList::NAME,
            settings.quotas.queries_per_second,
        ),
        (
            QueryCustomersCredit::NAME,
            settings.quotas.queries_per_second,
        ),
        (
            QueryCreditAllocationHistory::NAME,
            settings.quotas.queries_per_second,
        ),
        (
            DescribeCustomerInfo::NAME,
            settings.quotas.lookups_per_second,
        ),
        (
            QueryInvitationInfo::NAME,
            settings.quotas.lookups_per_second,
        ),
    ];
    let readiness = Arc::new(ReadinessChecks::default());
    readiness.expect_actions(limits.len());
    let metrics = Arc::new(Metrics::new());
    let memory = Arc::new(MemoryStore::new(
        clock.clone(),
        settings.idempotency.max_entries,
    ));
    let (quotas, store, redis) = match settings.store.backend {
        StoreBackend::Memory => {
            metrics.store_up(true);
            let quotas = Quotas::local(&limits, quota_config, metrics.clone());
            (quotas, Store::Memory(memory), None)
        }
        StoreBackend::Redis => {
            let link = RedisLink::new(&settings.store, readiness.clone(), metrics.clone())?;
            let quotas = Quotas::shared(
                &limits,
                quota_config,
                link.clone(),
                FleetConfig {
                    heartbeat: settings.store.heartbeat(),
                    lease: settings.store.partition_lease(),
                    expected_replicas: settings.store.expected_replicas,
                    redis_timeout: settings.store.redis_timeout(),
                },
                metrics.clone(),
            );
            let store = Store::Redis(Arc::new(RedisStore::new(
                link.clone(),
                clock.clone(),
                memory,
            )));
            (quotas, store, Some(link))
        }
    };
    let quotas = Arc::new(quotas);
    let tencent = Arc::new(TencentClient::new(
        &settings,
        credentials,
        clock.clone(),
        quotas,
        readiness.clone(),
        metrics.clone(),
    )?);
    let auth = Arc::new(crate::auth::Authenticator::from_settings(&settings.auth)?);
    let keys = Arc::new(crate::idempotency::Keys::new(
        clock.clone(),
        metrics.clone(),
        settings.idempotency.ttl(),
        settings.server.request_timeout_ms,
    ));
    let credit = Arc::new(crate::credit::Allocator::new(
        crate::credit::Services {
            tencent: tencent.clone(),
            redis: redis.clone(),
            metrics: metrics.clone(),
            clock: clock.clone(),
        },
        store.clone(),
        keys.clone(),
        crate::credit::CreditConfig {
            settle_ms: settings.credit.settle_ms,
            resolve_interval_ms: settings.credit.resolve_interval_ms,
            history_margin_ms: settings.credit.history_margin_ms,
            remark_caller: settings.auth.remark_caller,
            marker_secret: settings.credit.marker_secret.clone(),
            // A page may wait its whole quota budget for a slot, then take one attempt's time:
            // with the deadline at the attempt's time alone, reads crowding the quota would
            // leave no slot near enough, and nothing would settle.
            history_timeout: settings.quotas.max_wait() + settings.upstream.timeout(),
            history_max_pages: settings.credit.history_max_pages,
        },
    ));
    let reads = Arc::new(crate::reads::Reads::new(
        tencent.clone(),
        &settings.reads,
        settings.server.request_timeout(),
        redis.clone(),
    ));
    if let Some((records, capacity)) = store.fill() {
        metrics.store_fill(records, capacity);
    }
    let state = AppState::new(Gateway {
        tencent,
        auth,
        keys,
        credit,
        reads,
        store,
        redis,
        clock,
        readiness,
        metrics,
        max_amount_cents: settings.max_amount_cents()?,
        settings: Arc::new(settings),
    });
    let (api_router, api) = routes::router().split_for_parts();
    let router = api_router
        .with_state(state.clone())
        .merge(SwaggerUi::new("/docs").url("/openapi.json", crate::openapi::document(api)))
        .fallback(|| async { ApiError::new(ProblemType::NotFound, "no route matches this path") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                ProblemType::MethodNotAllowed,
                "this route does not accept this method",
            )
        });
    let router = crate::middleware::stack(router, &state);
    Ok(App {
        state,
        router,
        refresh: None,
    })
}

impl App {
    /// Keeps the credentials current while serving: `origin` is read again in the background
    /// (see [`crate::credentials::refresh`]).
    pub fn refreshing(
        mut self,
        origin: crate::credentials::Origin,
        lookup: crate::credentials::refresh::Lookup,
    ) -> Self {
        self.refresh = Some((origin, lookup));
        self
    }

    /// The router with every layer, for driving the gateway in-process (the HTTP-surface fuzz
    /// target); serving goes through [`App::run_until_stopped`].
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
        let readiness = self.state.readiness.clone();
        let settings = self.state.settings.clone();
        let mut background = vec![
            tokio::spawn(recheck_credentials(self.state.clone())),
            tokio::spawn(upkeep(self.state.clone())),
            tokio::spawn(self.state.credit.clone().run_resolver()),
        ];
        if let Some((origin, lookup)) = self.refresh.clone() {
            let credentials = &self.state.settings.credentials;
            let refresher = crate::credentials::refresh::Refresher {
                origin,
                cell: self.state.tencent.credentials().clone(),
                lookup,
                watch: credentials.watch(),
                refresh_before: credentials.refresh_before(),
                clock: self.state.clock.clone(),
                readiness: self.state.readiness.clone(),
                metrics: self.state.metrics.clone(),
                failures: Default::default(),
            };
            background.push(tokio::spawn(refresher.run()));
        }
        if let Some(link) = &self.state.redis {
            background.push(tokio::spawn(link.clone().run_prober()));
            background.push(tokio::spawn(
                self.state.tencent.quotas().clone().run_heartbeat(),
            ));
        }
        let quotas = self.state.tencent.quotas().clone();
        let stop = async move {
            let how = shutdown.await;
            readiness.set_shutting_down();
            tracing::info!(?how, "shutting down: readiness now reports 503");
            if how == Shutdown::Terminate {
                tokio::time::sleep(settings.server.shutdown_delay()).await;
            }
            tracing::info!("no longer accepting connections; draining in-flight requests");
        };
        let server = &self.state.settings.server;
        let limits = crate::serve::Limits {
            header: server.header_timeout(),
            idle: server.idle_timeout(),
            write: server.write_timeout(),
            max_connections: server.max_connections,
        };
        let grace = server.shutdown_grace();
        self.state.auth.warm_up().await;
        // After the first load, so its schedule starts from it (and from its max-age).
        background.push(tokio::spawn(self.state.auth.clone().run_jwks_refresher()));
        self.state.readiness.set_started();
        crate::serve::serve(
            listener,
            self.router,
            limits,
            self.state.metrics.clone(),
            stop,
            grace,
        )
        .await;
        for task in background {
            task.abort();
        }
        quotas.leave().await;
        Ok(())
    }
}

/// While Tencent rejects the credentials (or refuses every action), asks again now and then
/// with the harmless `QueryPartnerCredit`, so readiness recovers by itself once they are fixed
/// (a rotated key propagates, a CAM policy is attached).
async fn recheck_credentials(state: AppState) {
    let every = state.settings.upstream.auth_recheck();
    loop {
        tokio::time::sleep(every).await;
        if state.readiness.upstream_auth_failed() || state.readiness.all_denied() {
            let _ = state
                .tencent
                .probe_credentials(Duration::from_secs(10))
                .await;
        }
    }
}

/// Keeps memory flat: folds histogram samples into buckets between scrapes, forgets
/// per-caller rate state that is back to full, and expired records and cooldowns.
async fn upkeep(state: AppState) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        state.metrics.run_upkeep();
        state.auth.prune();
        state.store.prune_local();
        state.keys.prune();
        if let Some((records, capacity)) = state.store.fill() {
            state.metrics.store_fill(records, capacity);
        }
        if let crate::store::Store::Memory(m) = &state.store {
            state.metrics.store_evictions(m.take_evictions());
        }
    }
}
