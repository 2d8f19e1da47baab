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
use crate::audit::{self, CreditRecord, Outcome};
use crate::auth::{AllocatesCredit, Authorized, Caller};
use crate::domain::{ClientUin, CreditAmount, FieldError, Remark};
use crate::openapi::ForwardingProblems;
use crate::problem::{ApiError, Problem, ProblemType};
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
struct Allocation {
    uin: ClientUin,
    amount: CreditAmount,
    remark: Option<Remark>,
}

impl Allocation {
    fn parse(uin: &str, req: &CreditRequest, max_cents: i64) -> Result<Self, Vec<FieldError>> {
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
#[utoipa::path(
    post,
    path = "/customers/{uin}/credit",
    tag = "customers",
    security(("bearer" = ["credit:allocate"])),
    params(("uin" = String, Path, description = "The customer's account id: decimal digits, no leading zeros, 1 to 18446744073709551615", example = "800000232018", pattern = "^[1-9][0-9]{0,19}$")),
    request_body = CreditRequest,
    responses(
        (status = 200, description = "The allocation was applied", body = CreditResponse),
        (status = 403, description = "`insufficient-scope`: the caller lacks `credit:allocate`. `customer-not-authorized`: the customer is not bound to this partner", body = Problem, content_type = "application/problem+json"),
        ForwardingProblems,
    )
)]
#[tracing::instrument(name = "allocate_credit", skip_all)]
pub async fn allocate_credit(
    Authorized(caller, _): Authorized<AllocatesCredit>,
    State(app): State<AppState>,
    Path(uin): Path<String>,
    JsonBody(req): JsonBody<CreditRequest>,
) -> Result<Json<CreditResponse>, ApiError> {
    let allocation =
        Allocation::parse(&uin, &req, app.max_amount_cents).map_err(ApiError::validation)?;
    crate::context::record(|r| r.subject = Some(format!("uin {}", allocation.uin)));
    tracing::info!(uin = %allocation.uin, amount = %allocation.amount, "allocating credit");
    let ctx = CallContext {
        request_id: crate::context::request_id().unwrap_or_default(),
        deadline: app.deadline(),
    };
    let remark = tencent_remark(
        allocation.remark.as_ref(),
        &caller,
        app.settings.auth.remark_caller,
    );
    let action = AllocateCustomerCredit {
        client_uin: allocation.uin.get(),
        added_credit: allocation.amount.as_f64(),
        remark: remark.clone(),
    };
    let started = tokio::time::Instant::now();
    let result = app
        .tencent
        .call(&action, &ctx)
        .await
        .map_err(|e| ApiError::from_call(e, true));
    let upstream = crate::context::current()
        .map(|c| c.upstream())
        .unwrap_or_default();
    let outcome = match &result {
        Ok(_) => Outcome::Applied,
        Err(e) if e.kind == ProblemType::CreditOutcomeUnknown => Outcome::Unknown,
        Err(_) => Outcome::Rejected,
    };
    audit::credit_allocation(&CreditRecord {
        caller: &caller.name,
        uin: allocation.uin.get(),
        amount: &allocation.amount.to_string(),
        remark: remark.as_deref().unwrap_or(""),
        request_id: &ctx.request_id,
        idempotency_key: None,
        outcome,
        tencent_code: upstream.code.as_deref().unwrap_or(""),
        tencent_request_id: upstream.tencent_request_id.as_deref().unwrap_or(""),
        latency: started.elapsed(),
    });
    if outcome == Outcome::Unknown {
        tracing::error!(uin = %allocation.uin, amount = %allocation.amount, "credit allocation outcome unknown: check the customer's allocation history before retrying");
    }
    let answer = result?;
    Ok(Json(CreditResponse {
        uin: allocation.uin.to_string(),
        amount: allocation.amount.as_f64(),
        total_credit: answer.data.total_credit,
        remaining_credit: answer.data.remaining_credit,
        request_id: answer.request_id,
    }))
}

/// The `Remark` sent to Tencent: the caller's remark, with ` [by CALLER]` appended when
/// `auth.remark_caller` is on, cut so the whole stays within Tencent's 256 characters.
fn tencent_remark(remark: Option<&Remark>, caller: &Caller, tag_caller: bool) -> Option<String> {
    let text = remark.map(Remark::as_str).unwrap_or("");
    if !tag_caller {
        return (!text.is_empty()).then(|| text.to_owned());
    }
    let suffix = format!("[by {}]", caller.name);
    let room = crate::domain::REMARK_MAX_CHARS.saturating_sub(suffix.chars().count() + 1);
    let kept: String = text.chars().take(room).collect();
    Some(if kept.is_empty() {
        suffix
            .chars()
            .take(crate::domain::REMARK_MAX_CHARS)
            .collect()
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
    fn the_caller_tag_fits_within_tencents_limit() {
        let long = Remark::parse(&"r".repeat(256)).unwrap();
        let tagged = tencent_remark(Some(&long), &caller("billing"), true).unwrap();
        assert_eq!(tagged.chars().count(), 256);
        assert!(tagged.ends_with(" [by billing]"));
        assert_eq!(
            tencent_remark(None, &caller("svc"), true).unwrap(),
            "[by svc]"
        );
        assert_eq!(
            tencent_remark(Some(&Remark::parse("Q3").unwrap()), &caller("svc"), false).unwrap(),
            "Q3"
        );
        assert_eq!(tencent_remark(None, &caller("svc"), false), None);
    }
}
