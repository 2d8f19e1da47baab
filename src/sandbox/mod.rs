//! The upstream simulator: a local stand-in for `intlpartnersmgt` that behaves as Tencent's docs
//! say, so the gateway (and the official SDKs) can be exercised with no Tencent account.
//!
//! It verifies TC3 signatures and the 5-minute timestamp window, counts each action's quota per
//! wall-clock second (answering `RequestLimitExceeded` beyond it), enforces the 180 s per-address
//! invitation cooldown, keeps a credit ledger with allocation history, and injects faults on
//! demand. It depends on the gateway only for [`crate::tencent::sign`] (to verify) and the clock;
//! [`embedded`], which starts it beside the gateway in sandbox mode, also reads the settings.
//!
//! Admin routes (no signature, loopback use only): `GET /_sandbox/stats`, `GET /_sandbox/ledger`,
//! `POST /_sandbox/faults` (one fault or a list), `DELETE /_sandbox/faults`,
//! `POST /_sandbox/invitations/{token}/accept` (a customer uses an invitation link),
//! `POST /_sandbox/metadata` (`{"up": false}`: the metadata service fails).
//!
//! It also plays a CVM instance's metadata service: `GET /latest/meta-data/cam/security-credentials/`
//! names the role, `…/{role}` issues temporary credentials (`TmpSecretId`, `TmpSecretKey`,
//! `Token`, `ExpiredTime`) that the API accepts with their token until they expire; and STS's
//! `AssumeRoleWithWebIdentity` for TKE workload identity ([`sts`]), issuing the same kind.

pub mod embedded;
pub mod faults;
mod handlers;
mod state;
pub mod sts;
mod verify;
pub mod wire;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};

use crate::clock::SharedClock;
pub use faults::{Fault, FaultKind};
pub use state::{ActionStats, CustomerCredit, HistoryEntry, Ledger, SeenRequest, Stats};

/// The API version the simulator answers.
pub const VERSION: &str = "2022-09-28";
/// Service name expected in the credential scope.
pub const SERVICE: &str = "intlpartnersmgt";

/// Customers bound to the simulated partner; any other UIN answers `UnauthorizedOperation.UinNoAuth`.
pub const SEEDED_CUSTOMERS: [u64; 50] = seeded_customers();

/// 800000232018 (the README's), then 800000000001 to 800000000049.
const fn seeded_customers() -> [u64; 50] {
    let mut uins = [800_000_232_018; 50];
    let mut i = 1;
    while i < uins.len() {
        uins[i] = 800_000_000_000 + i as u64;
        i += 1;
    }
    uins
}
/// An address that already has an account: invitations answer `FailedOperation.MailIsRegistered`.
pub const REGISTERED_EMAIL: &str = "registered@example.com";

/// One accepted API key: the same triple the gateway signs with.
pub use crate::config::Credentials as SandboxKey;

/// How the simulator behaves.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub keys: Vec<SandboxKey>,
    /// Calls per wall-clock second, per action.
    pub quotas: HashMap<String, u32>,
    pub clock: SharedClock,
    pub invitation_cooldown: Duration,
    /// Added before every answer.
    pub latency: Duration,
    pub partner_credit_cents: i64,
    /// Seed of the generator behind fault probabilities, for reproducible chaos.
    pub seed: u64,
    /// The order `QueryCreditAllocationHistory` lists allocations in. Tencent documents none.
    pub history_order: HistoryOrder,
    /// The most entries one history page holds, whatever `PageSize` asked for. Tencent documents
    /// no limit; 100 by default.
    pub history_page_cap: usize,
    /// How long the metadata service's temporary credentials last (Tencent: hours); STS's
    /// last as long as asked, up to this.
    pub temporary_ttl: Duration,
    /// The issuer STS accepts web-identity tokens from (`iss`).
    pub oidc_issuer: String,
}

/// The order of the allocation history's pages: Tencent's docs promise neither, so the gateway
/// must be right under both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HistoryOrder {
    #[default]
    NewestFirst,
    OldestFirst,
}

impl SandboxConfig {
    /// Tencent's documented quotas, one key, the system clock.
    pub fn new(key: SandboxKey, clock: SharedClock) -> Self {
        let quotas = [
            ("CreateAndSendClientInvitationMail", 20),
            ("DescribeCustomerInfo", 20),
            ("QueryInvitationInfo", 20),
            ("AllocateCustomerCredit", 5),
            ("QueryCreditAllocationHistory", 5),
            ("QueryCreditByUinList", 5),
            ("QueryCustomersCredit", 5),
            ("QueryPartnerCredit", 5),
        ]
        .into_iter()
        .map(|(a, n)| (a.to_owned(), n))
        .collect();
        Self {
            keys: vec![key],
            quotas,
            clock,
            invitation_cooldown: Duration::from_secs(180),
            latency: Duration::ZERO,
            partner_credit_cents: 100_000_000,
            seed: 0x5eed,
            history_order: HistoryOrder::NewestFirst,
            history_page_cap: 100,
            temporary_ttl: Duration::from_secs(7200),
            oidc_issuer: sts::DEFAULT_ISSUER.to_owned(),
        }
    }
}

/// A running simulator's shared handle: cheap to clone, inspectable by tests.
#[derive(Debug, Clone)]
pub struct Sandbox {
    inner: Arc<state::SandboxState>,
}

impl Sandbox {
    pub fn new(config: SandboxConfig) -> Self {
        Self {
            inner: Arc::new(state::SandboxState::new(config)),
        }
    }

    /// The simulator's routes: the API at `POST /` and the admin routes under `/_sandbox`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", post(handlers::api))
            .route("/_sandbox/stats", get(handlers::stats))
            .route("/_sandbox/ledger", get(handlers::ledger))
            .route(
                "/_sandbox/invitations/{token}/accept",
                post(handlers::accept_invitation),
            )
            .route("/_sandbox/metadata", post(handlers::set_metadata))
            .route(
                "/latest/meta-data/cam/security-credentials/",
                get(handlers::metadata_roles),
            )
            .route(
                "/latest/meta-data/cam/security-credentials/{role}",
                get(handlers::metadata_role_credentials),
            )
            .route(
                "/_sandbox/faults",
                post(handlers::add_faults).delete(handlers::clear_faults),
            )
            .layer(axum::extract::DefaultBodyLimit::max(1024 * 1024))
            .with_state(self.inner.clone())
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await
    }

    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }

    pub fn ledger(&self) -> Ledger {
        self.inner.ledger()
    }

    /// The `X-TC-*` headers of the most recent requests, oldest first.
    pub fn recent_requests(&self) -> Vec<SeenRequest> {
        self.inner.recent_requests()
    }

    /// The temporary keys its metadata service and STS issued (and still remember).
    pub fn temporary_keys(&self) -> Vec<SandboxKey> {
        self.inner.temporary_keys()
    }

    pub fn add_fault(&self, fault: Fault) {
        self.inner.add_fault(fault);
    }

    pub fn clear_faults(&self) {
        self.inner.clear_faults();
    }

    /// An allocation made outside the gateway (the partner's console, another tool), straight
    /// into the ledger and its history. Returns the customer's (total, remaining) after it.
    pub fn allocate_directly(
        &self,
        operator: &str,
        uin: u64,
        cents: i64,
        remark: &str,
    ) -> Result<(f64, f64), String> {
        self.inner
            .allocate(operator, uin, cents, remark)
            .map_err(|(code, message)| format!("{code}: {message}"))
    }
}
