//! `POST /customers/{uin}/credit` → `AllocateCustomerCredit`: the request, its documentation,
//! and the handler. What happens to the money is [`crate::credit`]'s business.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::HeaderMap;

use super::extract::JsonBody;
use super::extract::{AllocatesCredit, Authorized};
use crate::context::{Subject, UpstreamCall};
use crate::credit::Allocation;
pub use crate::credit::{CreditRequest, CreditResponse};
use crate::idempotency::IdempotencyKey;
use crate::openapi::ForwardingProblems;
use crate::problem::{ApiError, Problem, ProblemType};
use crate::state::AppState;
use crate::tencent::actions::{Action, AllocateCustomerCredit};

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
) -> Response {
    let mut subject = Subject::default();
    let result = async {
        let key =
            IdempotencyKey::from_headers(&headers, app.settings.credit.require_idempotency_key)?;
        let allocation =
            Allocation::parse(&uin, &req, app.max_amount_cents).map_err(ApiError::validation)?;
        subject.about = Some(format!("uin {}", allocation.uin));
        let ctx = app.call_context();
        // Past the deadline no attempt leaves; one that left may still be answered, its record
        // settled and the reads it made stale marked so fleet-wide, within the grace.
        let deadline =
            ctx.deadline + crate::context::ANSWER_GRACE + app.reads.allocated_within();
        let departures = ctx.departures.clone();
        let key_shown = key.clone();
        // Once the key is claimed the work must finish and settle its record even if the client
        // hangs up, so it runs as its own task.
        let credit = app.credit.clone();
        let reads = app.reads.clone();
        let work = crate::context::run_to_completion(async move {
            let gate = ctx.departures.clone();
            let answer = credit
                .allocate(&caller, &allocation, key.as_ref(), &ctx)
                .await;
            // An attempt left and Tencent did not refuse it: the credit may have changed, so
            // what was read of it is stale, before the caller hears of it. A replay, a refusal
            // and a request that never left change nothing (nor can they be used to empty the
            // read caches).
            let status = match &answer {
                Ok(response) => response.status(),
                Err(problem) => problem.status,
            };
            let left = !gate.close();
            if left && !status.is_client_error() {
                reads.allocated(allocation.uin.get()).await;
            }
            answer
        });
        match tokio::time::timeout_at(deadline, work).await {
            Ok(done) => done
                .map_err(|_| ApiError::new(ProblemType::Internal, "the allocation task failed"))?,
            // The task goes on and settles its record; this caller is told the truth.
            // Closing the gate decides it: either no attempt ever leaves, or one already left.
            Err(_) if !departures.close() => {
                let mut late = ApiError::new(
                    ProblemType::CreditOutcomeUnknown,
                    format!(
                        "the request deadline passed while the allocation was under way; it may or may not have been applied. {}",
                        crate::credit::unknown_advice(key_shown.as_ref())
                    ),
                )
                .with_status(http::StatusCode::GATEWAY_TIMEOUT)
                .into_response();
                late.extensions_mut().insert(UpstreamCall {
                    action: AllocateCustomerCredit::NAME,
                    code: Some("timeout".into()),
                    ..UpstreamCall::default()
                });
                Ok(late)
            }
            Err(_) => Err(ApiError::new(
                ProblemType::RequestTimeout,
                "the request deadline passed before this request sent the allocation to Tencent, and it never will; retry it (with the same Idempotency-Key, if any: an earlier request with that key may still be settling)",
            )),
        }
    }
    .await;
    super::answered(result, subject)
}
