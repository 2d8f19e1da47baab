//! Settling allocations whose outcome is unknown.
//!
//! Every keyed allocation carries a marker in its Tencent Remark. When its answer is lost, the
//! gateway looks for the marker in the customer's `QueryCreditAllocationHistory` (through the
//! limiter): found → applied, and the record completes with the result rebuilt from the history
//! entry; not found once `credit.settle_ms` has passed since the last send → not applied, and the
//! next request with the key sends it again. This runs when the caller retries with the key, and
//! in the background for records left unknown.

use std::time::Duration;

use axum::Json;
use axum::response::IntoResponse;
use tokio::time::Instant;

use crate::audit::Outcome;
use crate::config::ms;
use crate::idempotency;
use crate::routes::AppState;
use crate::routes::credit::CreditResponse;
use crate::store::{PendingCredit, Record, StoredResponse};
use crate::tencent::actions::{AllocationRecord, QueryCreditAllocationHistory};
use crate::tencent::{CallContext, CallError};

/// History pages searched for a marker, newest first (100 allocations each).
const MAX_PAGES: u64 = 10;
const PAGE_SIZE: u64 = 100;
/// How long to wait before looking again after the history could not be read.
const RETRY_LOOKUP: Duration = Duration::from_secs(5);

/// What a look into the history settled.
#[derive(Debug)]
pub enum Settled {
    /// Applied: the answer to replay (already stored).
    Applied(StoredResponse),
    /// Not settled yet: look again after this long.
    Pending(Duration),
    /// Not applied: the record is now this `Retryable` one.
    NotApplied(Record),
}

/// Looks for `marker` in the customer's history.
async fn find(
    app: &AppState,
    pending: &PendingCredit,
) -> Result<Option<(AllocationRecord, String)>, CallError> {
    for page in 1..=MAX_PAGES {
        let ctx = CallContext {
            request_id: format!("reconcile-{}", uuid::Uuid::now_v7()),
            deadline: Instant::now() + ms(app.settings.upstream.timeout_ms),
        };
        let query = QueryCreditAllocationHistory {
            client_uin: pending.uin,
            page,
            page_size: PAGE_SIZE,
        };
        let answer = app.tencent.call(&query, &ctx).await?;
        let count = answer.data.history.len() as u64;
        if let Some(entry) = answer
            .data
            .history
            .into_iter()
            .find(|h| h.remark.contains(&pending.marker))
        {
            return Ok(Some((entry, answer.request_id)));
        }
        if count < PAGE_SIZE {
            break;
        }
    }
    Ok(None)
}

fn audit(pending: &PendingCredit, key: &str, outcome: &str, tencent_request_id: &str) {
    tracing::info!(
        target: "audit",
        event = "credit_reconciliation",
        caller = pending.caller.as_str(),
        uin = pending.uin,
        amount = crate::domain::CreditAmount::from_cents(pending.amount_cents).map(|a| a.to_string()).unwrap_or_default(),
        request_id = pending.request_id.as_str(),
        idempotency_record = key,
        marker = pending.marker.as_str(),
        outcome,
        tencent_request_id,
        "credit allocation settled"
    );
}

/// Settles the `Unknown` record of `key`.
pub async fn settle(app: &AppState, key: &str, record: Record) -> Settled {
    let Record::Unknown {
        fingerprint,
        pending,
    } = &record
    else {
        return Settled::Pending(Duration::ZERO);
    };
    match find(app, pending).await {
        Ok(Some((entry, request_id))) => {
            let body = CreditResponse {
                uin: pending.uin.to_string(),
                amount: pending.amount_cents as f64 / 100.0,
                total_credit: entry.credit,
                remaining_credit: entry.client_credit_after,
                request_id: request_id.clone(),
            };
            let (stored, _) = idempotency::capture(Json(body).into_response()).await;
            let completed = Record::Completed {
                fingerprint: fingerprint.clone(),
                response: stored.clone(),
            };
            match app
                .store
                .replace(key, &record, completed, app.idempotency_ttl())
                .await
            {
                Ok(true) => {
                    app.metrics.reconciliation(Outcome::Applied.as_str());
                    audit(pending, key, "applied", &request_id);
                    Settled::Applied(stored)
                }
                // Settled meanwhile by someone else: go by what is there now.
                _ => current(app, key).await,
            }
        }
        Ok(None) => {
            let since_sent = Duration::from_millis(app.now_ms().saturating_sub(pending.sent_ms));
            let settle = ms(app.settings.credit.settle_ms);
            if since_sent < settle {
                app.metrics.reconciliation("pending");
                return Settled::Pending(settle - since_sent);
            }
            let retryable = Record::Retryable {
                fingerprint: fingerprint.clone(),
            };
            match app
                .store
                .replace(key, &record, retryable.clone(), app.idempotency_ttl())
                .await
            {
                Ok(true) => {
                    app.metrics.reconciliation("not_applied");
                    audit(pending, key, "not_applied", "");
                    Settled::NotApplied(retryable)
                }
                _ => current(app, key).await,
            }
        }
        Err(error) => {
            app.metrics.reconciliation("failed");
            tracing::warn!(%error, uin = pending.uin, "cannot read the allocation history; the outcome stays unknown");
            Settled::Pending(RETRY_LOOKUP)
        }
    }
}

/// What the record of `key` says now, after a lost race.
async fn current(app: &AppState, key: &str) -> Settled {
    match app.store.get(key).await {
        Ok(Some(Record::Completed { response, .. })) => Settled::Applied(response),
        Ok(Some(retryable @ Record::Retryable { .. })) => Settled::NotApplied(retryable),
        _ => Settled::Pending(Duration::from_secs(1)),
    }
}

/// Settles records left unknown, every `credit.resolve_interval_ms`.
pub async fn run_resolver(app: AppState) {
    let every = ms(app.settings.credit.resolve_interval_ms);
    loop {
        tokio::time::sleep(every).await;
        let unknown = match app.store.unknown().await {
            Ok(records) => records,
            Err(error) => {
                tracing::warn!(%error, "cannot list unsettled allocations");
                continue;
            }
        };
        for (key, record) in unknown {
            settle(&app, &key, record).await;
        }
    }
}
