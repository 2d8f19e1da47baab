//! Claiming an idempotency key before the upstream call, and settling it afterwards.
//!
//! A key's record goes `InFlight` (claimed here, before Tencent is called) → `Completed` (an
//! answer to replay), `Unknown` (credit only: may or may not have been applied) or nothing
//! (definitely not executed: the caller may simply retry). `Retryable` records (known not
//! applied) are claimed again like new ones.

use axum::response::Response;

use super::AppState;
use crate::idempotency;
use crate::problem::{ApiError, ProblemType};
use crate::store::{Record, Store, StoreError};

/// What the key's record says to do.
pub enum Claim {
    /// The key is ours; this is the `InFlight` record to settle.
    Fresh(Record),
    /// Answered before: replay this.
    Replay(Response),
    /// An allocation whose outcome is unknown; the caller must settle it first.
    Unknown(Record),
    /// An `InFlight` record older than any request can live: its replica died mid-request.
    Abandoned { record: Record, started_ms: u64 },
}

/// How long after its start an `InFlight` record is presumed abandoned: the request's deadline,
/// the outer timeout's grace, and a margin for clock differences between replicas.
pub fn abandoned_after(app: &AppState) -> u64 {
    app.settings.server.request_timeout_ms + ABANDON_MARGIN_MS
}

const ABANDON_MARGIN_MS: u64 = 5_000;

pub fn store_problem(error: StoreError) -> ApiError {
    tracing::error!(%error, "idempotency store failed");
    ApiError::new(
        ProblemType::StoreUnavailable,
        "the idempotency store is unavailable; nothing was sent",
    )
    .retry_after(1)
}

pub fn in_use(route: &'static str, app: &AppState) -> ApiError {
    app.metrics.idempotency(route, "in_flight");
    ApiError::new(
        ProblemType::IdempotencyKeyInUse,
        "a request with this Idempotency-Key is still being processed",
    )
    .retry_after(1)
}

/// Claims `scoped` for a request with fingerprint `fingerprint`.
pub async fn claim(
    app: &AppState,
    store: &Store,
    route: &'static str,
    scoped: &str,
    fingerprint: &str,
) -> Result<Claim, ApiError> {
    let in_flight = Record::InFlight {
        fingerprint: fingerprint.to_owned(),
        started_ms: app.now_ms(),
    };
    let existing = match store
        .create(scoped, in_flight.clone(), app.idempotency_ttl())
        .await
        .map_err(store_problem)?
    {
        Ok(()) => {
            app.metrics.idempotency(route, "new");
            return Ok(Claim::Fresh(in_flight));
        }
        Err(existing) => existing,
    };
    if existing.fingerprint() != fingerprint {
        app.metrics.idempotency(route, "mismatch");
        return Err(ApiError::new(
            ProblemType::IdempotencyKeyReused,
            "this Idempotency-Key was used for a different request; use a new key for a new intent",
        ));
    }
    match existing {
        Record::InFlight { started_ms, .. } if app.now_ms() > started_ms + abandoned_after(app) => {
            app.metrics.idempotency(route, "abandoned");
            tracing::warn!("taking over an idempotency key whose request never finished");
            Ok(Claim::Abandoned {
                record: existing,
                started_ms,
            })
        }
        Record::InFlight { .. } => Err(in_use(route, app)),
        Record::Completed { response, .. } => {
            app.metrics.idempotency(route, "replayed");
            Ok(Claim::Replay(idempotency::replay(&response)))
        }
        Record::Unknown { .. } => Ok(Claim::Unknown(existing)),
        Record::Retryable { .. } => take(app, store, route, scoped, &existing)
            .await
            .map(Claim::Fresh),
    }
}

/// Turns `existing` (known not to have been applied) into our `InFlight` record, if nobody
/// else did first.
pub async fn take(
    app: &AppState,
    store: &Store,
    route: &'static str,
    scoped: &str,
    existing: &Record,
) -> Result<Record, ApiError> {
    let in_flight = Record::InFlight {
        fingerprint: existing.fingerprint().to_owned(),
        started_ms: app.now_ms(),
    };
    if store
        .replace(scoped, existing, in_flight.clone(), app.idempotency_ttl())
        .await
        .map_err(store_problem)?
    {
        app.metrics.idempotency(route, "resent");
        Ok(in_flight)
    } else {
        Err(in_use(route, app))
    }
}

/// Settles our `InFlight` record: `Some(record)` replaces it, `None` forgets the key.
pub async fn settle(
    app: &AppState,
    store: &Store,
    scoped: &str,
    in_flight: &Record,
    outcome: Option<Record>,
) {
    let result = match outcome {
        Some(record) => {
            store
                .replace(scoped, in_flight, record, app.idempotency_ttl())
                .await
        }
        None => store.remove(scoped, in_flight).await,
    };
    match result {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!("an idempotency record changed under its own request; left as it is")
        }
        Err(error) => {
            tracing::error!(%error, "cannot settle an idempotency record; it stays in flight until it expires")
        }
    }
}
