//! `POST /customers/{uin}/credit` → `AllocateCustomerCredit`.
//!
//! Credit moves money: an allocation whose answer is lost is reported as
//! `credit-outcome-unknown` and never retried blindly.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::extract::JsonBody;
use axum::response::{IntoResponse, Response};
use http::HeaderMap;

use super::claim::{self, Claim};
use crate::audit::{self, CreditRecord, Outcome};
use crate::auth::{AllocatesCredit, Authorized, Caller};
use crate::domain::REMARK_MAX_CHARS;
use crate::domain::{ClientUin, CreditAmount, FieldError, Remark};
use crate::idempotency::{self, IdempotencyKey};
use crate::openapi::ForwardingProblems;
use crate::problem::{ApiError, Problem, ProblemType};
use crate::reconcile::{self, Settled};
use crate::store::{PendingCredit, Record};
use crate::tencent::CallContext;
use crate::tencent::actions::AllocateCustomerCredit;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(allocate_credit))
}

/// A change to a customer's credit.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(example = json!({"amount": 100.5, "remark": "Q3 top-up"}))]
pub struct CreditRequest {
    /// The increment: non-zero, at most 2 decimal places, |amount| ≤ `credit.max_amount`.
    /// Negative takes credit back (available credit never goes below 0).
    #[schema(value_type = f64, example = 100.5)]
    pub amount: Box<RawValue>,
    /// Stored with the allocation in Tencent's history; at most 256 characters, no control characters.
    #[serde(default)]
    #[schema(max_length = 256, example = "Q3 top-up")]
    pub remark: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"uin": "800000232018", "amount": 100.5, "totalCredit": 1100.5, "remainingCredit": 600.5, "requestId": "6a2b0a39-29c6-4a3b-8b0e-4a86b7d8f1f0"}))]
pub struct CreditResponse {
    /// The customer's account id, as a string so JavaScript keeps every digit.
    #[schema(example = "800000232018")]
    pub uin: String,
    /// The increment applied.
    #[schema(example = 100.5)]
    pub amount: f64,
    /// The customer's total credit after the allocation.
    pub total_credit: f64,
    /// The customer's available credit after the allocation.
    pub remaining_credit: f64,
    /// Tencent's `RequestId`.
    pub request_id: String,
}

/// The allocation, parsed: only valid allocations exist past this point.
#[derive(Debug)]
pub struct Allocation {
    uin: ClientUin,
    amount: CreditAmount,
    remark: Option<Remark>,
}

impl Allocation {
    /// The path's `uin` and the body, checked together so every invalid field is reported.
    pub fn parse(uin: &str, req: &CreditRequest, max_cents: i64) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let uin = ClientUin::parse(uin).map_err(|m| errors.push(FieldError::new("uin", m)));
        let amount = CreditAmount::parse_json(req.amount.get(), max_cents)
            .map_err(|e| errors.push(FieldError::new("amount", e.to_string())));
        let remark = match req.remark.as_deref() {
            None | Some("") => Ok(None),
            Some(raw) => Remark::parse(raw)
                .map(Some)
                .map_err(|m| errors.push(FieldError::new("remark", m))),
        };
        match (uin, amount, remark) {
            (Ok(uin), Ok(amount), Ok(remark)) => Ok(Self {
                uin,
                amount,
                remark,
            }),
            _ => Err(errors),
        }
    }
}

/// Allocate credit to a customer (or take it back with a negative amount).
///
/// Send an `Idempotency-Key` (required by default): retries with the same key never allocate
/// twice. A `credit-outcome-unknown` answer means: retry with the same key until you get a
/// definite answer.
#[utoipa::path(
    post,
    path = "/customers/{uin}/credit",
    tag = "customers",
    security(("bearer" = ["credit:allocate"])),
    params(
        ("uin" = String, Path, description = "The customer's account id: decimal digits, no leading zeros, 1 to 18446744073709551615", example = "800000232018", pattern = "^[1-9][0-9]{0,19}$"),
        ("Idempotency-Key" = String, Header, description = "One unique key (e.g. a UUID) per intended allocation, sent again on every retry of it. 1 to 255 visible ASCII characters. Required unless credit.require_idempotency_key = false.", min_length = 1, max_length = 255, pattern = "^[!-~]{1,255}$"),
    ),
    request_body = CreditRequest,
    responses(
        (status = 200, description = "The allocation was applied (`Idempotent-Replayed: true` when this is the stored answer of an earlier request with the same key)", body = CreditResponse,
            headers(("Idempotent-Replayed" = String, description = "`true` on a replayed answer"))),
        (status = 403, description = "`insufficient-scope`: the caller lacks `credit:allocate`. `customer-not-authorized`: the customer is not bound to this partner", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`idempotency-key-in-use`: a request with this key is still being processed", body = Problem, content_type = "application/problem+json"),
        ForwardingProblems,
    )
)]
#[tracing::instrument(name = "allocate_credit", skip_all)]
pub async fn allocate_credit(
    Authorized(caller, _): Authorized<AllocatesCredit>,
    State(app): State<AppState>,
    Path(uin): Path<String>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<CreditRequest>,
) -> Result<Response, ApiError> {
    let key = IdempotencyKey::from_headers(&headers, app.settings.credit.require_idempotency_key)?;
    let allocation =
        Allocation::parse(&uin, &req, app.max_amount_cents).map_err(ApiError::validation)?;
    crate::context::record(|r| r.subject = Some(format!("uin {}", allocation.uin)));
    // Once the key is claimed the work must finish and settle its record even if the client
    // hangs up, so it runs as its own task.
    crate::context::run_to_completion(async move {
        match key {
            None => Ok(attempt(&app, &caller, &allocation, None).await.0),
            Some(key) => keyed(app, caller, allocation, key).await,
        }
    })
    .await
    .map_err(|_| ApiError::new(ProblemType::Internal, "the allocation task failed"))?
}

/// A keyed allocation: claim the key, replay or settle what it holds, or send and record.
async fn keyed(
    app: AppState,
    caller: Caller,
    allocation: Allocation,
    key: IdempotencyKey,
) -> Result<Response, ApiError> {
    let scoped = key.scoped(&caller.name, ROUTE);
    let fingerprint = idempotency::fingerprint(&[
        ROUTE,
        &allocation.uin.to_string(),
        &allocation.amount.cents().to_string(),
        allocation.remark.as_ref().map(Remark::as_str).unwrap_or(""),
    ]);
    let marker = idempotency::marker(&scoped);
    let unknown = match claim::claim(&app, &app.store, ROUTE, &scoped, &fingerprint).await? {
        Claim::Fresh(record) => Ok(record),
        Claim::Replay(response) => return Ok(response),
        Claim::Unknown(record) => Err(record),
        Claim::Abandoned { record, started_ms } => {
            // Its replica died while the allocation may have been on the wire: from now on it is
            // an allocation of unknown outcome, sent at the latest when that request's deadline
            // passed, and settled through the history like any other.
            let unknown = Record::Unknown {
                fingerprint: fingerprint.clone(),
                pending: PendingCredit {
                    marker: marker.clone(),
                    uin: allocation.uin.get(),
                    amount_cents: allocation.amount.cents(),
                    sent_ms: started_ms + app.settings.server.request_timeout_ms,
                    caller: caller.name.clone(),
                    request_id: String::new(),
                },
            };
            let adopted = app
                .store
                .replace(&scoped, &record, unknown.clone(), app.idempotency_ttl())
                .await
                .map_err(claim::store_problem)?;
            if !adopted {
                return Err(claim::in_use(ROUTE, &app));
            }
            Err(unknown)
        }
    };
    let in_flight = match unknown {
        Ok(in_flight) => in_flight,
        Err(record) => match reconcile::settle(&app, &scoped, record).await {
            Settled::Applied(stored) => {
                app.metrics.idempotency(ROUTE, "replayed");
                return Ok(idempotency::replay(&stored));
            }
            Settled::Pending(wait) => return Err(outcome_unknown(&key, wait)),
            Settled::NotApplied(retryable) => {
                claim::take(&app, &app.store, ROUTE, &scoped, &retryable).await?
            }
        },
    };
    let (response, disposition) = attempt(
        &app,
        &caller,
        &allocation,
        Some(Keyed {
            key: &key,
            marker: &marker,
        }),
    )
    .await;
    let (stored, response) = idempotency::capture(response).await;
    let record = match disposition {
        Disposition::Definite => Some(Record::Completed {
            fingerprint,
            response: stored,
        }),
        Disposition::NotExecuted => None,
        Disposition::Unknown => Some(Record::Unknown {
            fingerprint,
            pending: PendingCredit {
                marker,
                uin: allocation.uin.get(),
                amount_cents: allocation.amount.cents(),
                sent_ms: app.now_ms(),
                caller: caller.name.clone(),
                request_id: crate::context::request_id().unwrap_or_default(),
            },
        }),
    };
    claim::settle(&app, &app.store, &scoped, &in_flight, record).await;
    Ok(response)
}

/// The route's name in idempotency scopes and metrics.
const ROUTE: &str = "credit";

/// The idempotency key of a keyed attempt and the marker it carries to Tencent.
struct Keyed<'a> {
    key: &'a IdempotencyKey,
    marker: &'a str,
}

/// What an attempt's answer means for its idempotency record.
enum Disposition {
    /// Applied, or refused for good by Tencent: store the answer for replay.
    Definite,
    /// Known not to have executed: forget the key, so a retry simply tries again.
    NotExecuted,
    /// May or may not have been applied.
    Unknown,
}

/// The `credit-outcome-unknown` answer to a retry that came before the allocation could be
/// settled.
fn outcome_unknown(key: &IdempotencyKey, wait: std::time::Duration) -> ApiError {
    ApiError::new(
        ProblemType::CreditOutcomeUnknown,
        format!(
            "the allocation with Idempotency-Key `{}` is not settled yet; retry with the same key",
            key.as_str()
        ),
    )
    .retry_after(wait.as_secs_f64().ceil() as u64)
}

/// Sends one allocation to Tencent, audits it, and answers.
async fn attempt(
    app: &AppState,
    caller: &Caller,
    allocation: &Allocation,
    keyed: Option<Keyed<'_>>,
) -> (Response, Disposition) {
    tracing::info!(uin = %allocation.uin, amount = %allocation.amount, "allocating credit");
    let ctx = CallContext {
        request_id: crate::context::request_id().unwrap_or_default(),
        deadline: app.deadline(),
    };
    let remark = tencent_remark(
        allocation.remark.as_ref(),
        caller,
        app.settings.auth.remark_caller,
        keyed.as_ref().map(|k| k.marker),
    );
    let action = AllocateCustomerCredit {
        client_uin: allocation.uin.get(),
        added_credit: allocation.amount.as_f64(),
        remark: remark.clone(),
    };
    let started = tokio::time::Instant::now();
    let result = app.tencent.call(&action, &ctx).await;
    let upstream = crate::context::current()
        .map(|c| c.upstream())
        .unwrap_or_default();
    let (outcome, disposition) = match &result {
        Ok(_) => (Outcome::Applied, Disposition::Definite),
        Err(e) if e.outcome_unknown() => (Outcome::Unknown, Disposition::Unknown),
        Err(e) if e.not_executed() => (Outcome::Rejected, Disposition::NotExecuted),
        Err(_) => (Outcome::Rejected, Disposition::Definite),
    };
    audit::credit_allocation(&CreditRecord {
        caller: &caller.name,
        uin: allocation.uin.get(),
        amount: &allocation.amount.to_string(),
        remark: remark.as_deref().unwrap_or(""),
        request_id: &ctx.request_id,
        idempotency_key: keyed.as_ref().map(|k| k.key.as_str()),
        outcome,
        tencent_code: upstream.code.as_deref().unwrap_or(""),
        tencent_request_id: upstream.tencent_request_id.as_deref().unwrap_or(""),
        latency: started.elapsed(),
    });
    let response = match result {
        Ok(answer) => Json(CreditResponse {
            uin: allocation.uin.to_string(),
            amount: allocation.amount.as_f64(),
            total_credit: answer.data.total_credit,
            remaining_credit: answer.data.remaining_credit,
            request_id: answer.request_id,
        })
        .into_response(),
        Err(error) => {
            let mut problem = ApiError::from_call(error, true);
            if outcome == Outcome::Unknown {
                tracing::error!(uin = %allocation.uin, amount = %allocation.amount, "credit allocation outcome unknown");
                problem.detail = match &keyed {
                    Some(k) => format!(
                        "{}. Retry with the same Idempotency-Key `{}`: the gateway settles it through Tencent's allocation history and never applies it twice",
                        problem.detail,
                        k.key.as_str()
                    ),
                    None => format!(
                        "{}. Check the customer's allocation history before allocating again",
                        problem.detail
                    ),
                };
            }
            problem.into_response()
        }
    };
    (response, disposition)
}

/// The `Remark` sent to Tencent: the caller's remark, then ` [by CALLER]` when
/// `auth.remark_caller` is on, then the idempotency marker. The marker and the caller tag are kept
/// whole; the caller's remark is cut so the whole fits Tencent's 256 characters.
pub fn tencent_remark(
    remark: Option<&Remark>,
    caller: &Caller,
    tag_caller: bool,
    marker: Option<&str>,
) -> Option<String> {
    let mut suffix: Vec<String> = Vec::new();
    if tag_caller {
        suffix.push(format!("[by {}]", caller.name));
    }
    if let Some(marker) = marker {
        suffix.push(marker.to_owned());
    }
    let suffix = suffix.join(" ");
    let text = remark.map(Remark::as_str).unwrap_or("");
    if suffix.is_empty() {
        return (!text.is_empty()).then(|| text.to_owned());
    }
    let suffix: String = suffix.chars().take(REMARK_MAX_CHARS).collect();
    let room = REMARK_MAX_CHARS.saturating_sub(suffix.chars().count() + 1);
    let kept: String = text.chars().take(room).collect();
    Some(if kept.is_empty() {
        suffix
    } else {
        format!("{kept} {suffix}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(name: &str) -> Caller {
        Caller {
            name: name.into(),
            scopes: vec![],
            method: "api_key",
        }
    }

    #[test]
    fn the_caller_tag_and_marker_fit_within_tencents_limit() {
        let long = Remark::parse(&"é".repeat(256)).unwrap();
        let marker = "[pgw:0123456789abcdef]";
        let tagged = tencent_remark(Some(&long), &caller("billing"), true, Some(marker)).unwrap();
        assert_eq!(tagged.chars().count(), 256);
        assert!(
            tagged.ends_with(" [by billing] [pgw:0123456789abcdef]"),
            "{tagged}"
        );
        assert_eq!(
            tencent_remark(None, &caller("svc"), true, None).unwrap(),
            "[by svc]"
        );
        assert_eq!(
            tencent_remark(None, &caller("svc"), false, Some(marker)).unwrap(),
            marker
        );
        assert_eq!(
            tencent_remark(
                Some(&Remark::parse("Q3").unwrap()),
                &caller("svc"),
                false,
                None
            )
            .unwrap(),
            "Q3"
        );
        assert_eq!(tencent_remark(None, &caller("svc"), false, None), None);
    }
}
