//! Sending an allocation: with an Idempotency-Key (begin, replay, settle or send and record) or
//! without; each attempt audited.

use std::time::Duration;

use axum::Json;
use axum::response::{IntoResponse, Response};

use crate::audit::{self, AllocationAudit, Outcome};
use crate::auth::Caller;
use crate::idempotency::{self, Begin, IdempotencyKey};
use crate::problem::{ApiError, ProblemType};
use crate::store::{KeyState, PendingCredit, Retention};
use crate::tencent::actions::{Action, AllocateCustomerCredit};
use crate::tencent::{CallContext, CallError, Effect};

use super::{Allocation, Allocator, CreditResponse, ROUTE, Settled, tencent_remark};

impl Allocator {
    /// Allocates, with or without an idempotency key.
    pub async fn allocate(
        &self,
        caller: &Caller,
        allocation: &Allocation,
        key: Option<&IdempotencyKey>,
        ctx: &CallContext,
    ) -> Result<Response, ApiError> {
        match key {
            None => Ok(self.attempt(caller, allocation, None, ctx).await.0),
            Some(key) => self.keyed(caller, allocation, key, ctx).await,
        }
    }

    /// A keyed allocation: begin the key, replay or settle what it holds, or send and record.
    async fn keyed(
        &self,
        caller: &Caller,
        allocation: &Allocation,
        key: &IdempotencyKey,
        ctx: &CallContext,
    ) -> Result<Response, ApiError> {
        let scoped = key.scoped(&caller.id, ROUTE);
        let fingerprint = allocation.fingerprint();
        let marker = self.marker_key().await?.marker(
            &scoped,
            allocation.uin.get(),
            allocation.amount.cents(),
        );
        let pending = |sent_ms: u64, request_id: &str| PendingCredit {
            marker: marker.clone(),
            uin: allocation.uin.get(),
            amount_cents: allocation.amount.cents(),
            sent_ms,
            caller: caller.id.clone(),
            request_id: request_id.to_owned(),
        };
        let unknown = match self
            .keys
            .begin(&self.store, ROUTE, &scoped, &fingerprint, Retention::Keep)
            .await?
        {
            Begin::Send(in_flight) => Ok(in_flight),
            Begin::Replay(stored) => return Ok(idempotency::replay(&stored)),
            Begin::Settle(record) => Err(record),
            Begin::Abandoned { record, started_ms } => {
                // Its replica died while the allocation may have been on the wire: from now on
                // it is an allocation of unknown outcome, sent at the latest when that request's
                // deadline passed, and settled through the history like any other.
                let sent_ms = started_ms + self.keys.abandoned_after_ms();
                let unknown = KeyState::Unknown {
                    fingerprint: fingerprint.clone(),
                    pending: pending(sent_ms, ""),
                };
                let adopted = self
                    .keys
                    .replace(&self.store, &scoped, &record, unknown.clone())
                    .await
                    .map_err(idempotency::store_problem)?;
                if !adopted {
                    return Err(self.keys.in_use(ROUTE));
                }
                Err(unknown)
            }
        };
        let in_flight = match unknown {
            Ok(in_flight) => in_flight,
            Err(record) => match self.settle(&scoped, record).await {
                Settled::Applied(stored) => {
                    self.services.metrics.idempotency(ROUTE, "replayed");
                    return Ok(idempotency::replay(&stored));
                }
                Settled::Pending(wait) => return Err(outcome_unknown(key, wait)),
                Settled::NotApplied(retryable) => {
                    self.keys
                        .take(&self.store, ROUTE, &scoped, &retryable)
                        .await?
                }
            },
        };
        let (response, effect) = self
            .attempt(caller, allocation, Some((key, &marker)), ctx)
            .await;
        let (stored, response) = idempotency::capture(response).await;
        let record = match effect {
            // Applied, or refused for good by Tencent: stored for replay.
            None | Some(Effect::Refused) => Some(KeyState::Completed {
                fingerprint,
                response: stored,
            }),
            // Known not to have executed: the key is forgotten, so a retry simply tries again.
            Some(Effect::NotExecuted) => None,
            Some(Effect::Unknown) => Some(KeyState::Unknown {
                fingerprint,
                pending: pending(self.now_ms(), &ctx.request_id),
            }),
        };
        self.keys
            .finish(&self.store, &scoped, &in_flight, record)
            .await;
        Ok(response)
    }

    /// Sends one allocation to Tencent, audits it, and answers.
    async fn attempt(
        &self,
        caller: &Caller,
        allocation: &Allocation,
        keyed: Option<(&IdempotencyKey, &str)>,
        ctx: &CallContext,
    ) -> (Response, Option<Effect>) {
        tracing::info!(uin = %allocation.uin, amount = %allocation.amount, "allocating credit");
        let remark = tencent_remark(
            allocation.remark.as_ref(),
            caller,
            self.config.remark_caller,
            keyed.map(|(_, marker)| marker),
        );
        let action = AllocateCustomerCredit {
            client_uin: allocation.uin.get(),
            added_credit: allocation.amount.as_f64(),
            remark: remark.clone(),
        };
        let started = tokio::time::Instant::now();
        let result = self.services.tencent.call(&action, ctx).await;
        // The call's effect: `None` when it succeeded.
        let effect = result.as_ref().err().map(CallError::effect);
        let summary = crate::tencent::summary(AllocateCustomerCredit::NAME, &result);
        let outcome = match effect {
            None => Outcome::Applied,
            Some(Effect::Unknown) => Outcome::Unknown,
            Some(Effect::NotExecuted | Effect::Refused) => Outcome::Rejected,
        };
        let (code, tencent_request_id) = match &result {
            Ok(answer) => ("", answer.request_id.as_str()),
            Err(CallError::Upstream(e)) => {
                (e.code.as_str(), e.request_id.as_deref().unwrap_or_default())
            }
            Err(_) => ("", ""),
        };
        audit::credit_allocation(&AllocationAudit {
            caller: &caller.id,
            caller_kind: caller.method,
            uin: allocation.uin.get(),
            amount: &allocation.amount.to_string(),
            remark: remark.as_deref().unwrap_or(""),
            request_id: &ctx.request_id,
            idempotency_key: keyed.map(|(k, _)| k.as_str()),
            outcome,
            tencent_code: code,
            tencent_request_id,
            latency: started.elapsed(),
        });
        let mut response = match result {
            Ok(answer) => Json(CreditResponse {
                uin: allocation.uin.to_string(),
                amount: allocation.amount.as_f64(),
                total_credit: Some(answer.data.total_credit),
                remaining_credit: Some(answer.data.remaining_credit),
                request_id: answer.request_id,
            })
            .into_response(),
            Err(error) => {
                let mut problem = ApiError::from_credit_call(error);
                if outcome == Outcome::Unknown {
                    tracing::error!(uin = %allocation.uin, amount = %allocation.amount, "credit allocation outcome unknown");
                    problem.detail = format!(
                        "{}. {}",
                        problem.detail,
                        unknown_advice(keyed.map(|(key, _)| key))
                    );
                }
                problem.into_response()
            }
        };
        response.extensions_mut().insert(summary);
        (response, effect)
    }
}

/// The `credit-outcome-unknown` answer to a retry that came before the allocation could be
/// settled.
fn outcome_unknown(key: &IdempotencyKey, wait: Duration) -> ApiError {
    ApiError::new(
        ProblemType::CreditOutcomeUnknown,
        format!(
            "the allocation with Idempotency-Key `{}` is not settled yet; retry with the same key",
            key.as_str()
        ),
    )
    .retry_after(wait.as_secs_f64().ceil() as u64)
}

/// What a caller whose allocation's outcome is unknown should do: retry with its key, or, with
/// none, look at the history before allocating again (a blind retry could apply it twice).
pub fn unknown_advice(key: Option<&IdempotencyKey>) -> String {
    match key {
        Some(key) => format!(
            "Retry with the same Idempotency-Key `{}`: the gateway settles it through Tencent's allocation history and never applies it twice",
            key.as_str()
        ),
        None => "Check the customer's allocation history before allocating again".to_owned(),
    }
}
