//! The credit reads: `GET /customers/{uin}/credit` → `QueryCreditByUinList` (batched),
//! `GET /partner/credit` → `QueryPartnerCredit` and `GET /customers/{uin}/credit/allocations` →
//! `QueryCreditAllocationHistory` (coalesced), all cached for `reads.cache_ms` with `Age`, `ETag`
//! and `If-None-Match`. The merging is [`crate::reads`]'s business.

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::{Authorized, Paging, ReadsCustomers};
use crate::context::{Subject, UpstreamCall};
use crate::domain::{ClientUin, FieldError};
use crate::openapi::ForwardingProblems;
use crate::problem::{ApiError, Problem, ProblemType};
use crate::reads::{Fetched, etag};
use crate::state::AppState;
use crate::tencent::actions::{
    Action, QueryCreditAllocationHistory, QueryCreditByUinList, QueryPartnerCredit,
};

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"uin": "800000232018", "totalCredit": 100.5, "remainingCredit": 80.25, "requestId": "6a2b0a39-29c6-4a3b-8b0e-4a86b7d8f1f0"}))]
pub struct CustomerCreditResponse {
    /// The customer's UIN, as a string.
    pub uin: String,
    pub total_credit: f64,
    pub remaining_credit: f64,
    /// Tencent's `RequestId` of the (possibly shared) call that read it.
    pub request_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"allocatedCredit": 2500.0, "totalCredit": 1000000.0, "remainingCredit": 997500.0, "customerTotalCredit": 2500.0, "customerRemainingCredit": 2100.0, "requestId": "6a2b0a39-29c6-4a3b-8b0e-4a86b7d8f1f0"}))]
pub struct PartnerCreditResponse {
    /// Credit the partner has allocated to customers.
    pub allocated_credit: f64,
    /// The partner's total credit.
    pub total_credit: f64,
    /// What the partner can still allocate.
    pub remaining_credit: f64,
    /// The customers' total credit, when Tencent reports it.
    pub customer_total_credit: Option<f64>,
    /// What remains of the customers' credit, when Tencent reports it.
    pub customer_remaining_credit: Option<f64>,
    /// Tencent's `RequestId` of the (possibly shared) call that read it.
    pub request_id: String,
}

/// A cacheable answer: `ETag` (of `values`) and `Age`, or 304 when the caller has it already.
/// `If-None-Match` compares weakly (RFC 9110 13.1.2): `W/` is ignored on both sides. The access
/// log names the upstream call the answer came from (`action`, its `RequestId`).
pub(super) fn cached<T: Serialize, F>(
    body: &T,
    values: &str,
    from: (&'static str, &Fetched<F>),
    headers: &HeaderMap,
) -> Response {
    let (action, fetched) = from;
    let age_secs = fetched.age_secs();
    let bytes = serde_json::to_vec(body).expect("answers serialize");
    let tag = etag(values);
    let opaque = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let unchanged = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || opaque(t) == opaque(&tag));
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, HeaderValue::from_str(&tag).expect("hex"));
    headers.insert(header::AGE, HeaderValue::from(age_secs));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    response.extensions_mut().insert(UpstreamCall {
        action,
        tencent_request_id: Some(fetched.request_id.clone()),
        ..UpstreamCall::default()
    });
    response
}

/// 404 for a UIN Tencent does not list.
pub(super) fn not_listed() -> ApiError {
    ApiError::new(
        ProblemType::NotFound,
        "Tencent does not list this UIN among the partner's customers",
    )
}

/// A customer's credit.
///
/// Concurrent reads of many customers share `QueryCreditByUinList` calls (up to 50 UINs each),
/// and answers are reused for `reads.cache_ms`; an allocation through the gateway is visible at
/// once. Send `If-None-Match` with the `ETag` to get 304 when nothing changed.
#[utoipa::path(
    get,
    path = "/customers/{uin}/credit",
    tag = "customers",
    security(("bearer" = ["customers:read"])),
    params(
        ("uin" = String, Path, description = "The customer's account id: decimal digits, no leading zeros, 1 to 18446744073709551615", example = "800000232018", pattern = "^[1-9][0-9]{0,19}$"),
        ("If-None-Match" = Option<String>, Header, description = "The `ETag` of an answer you hold: 304 when it is still current"),
    ),
    responses(
        (status = 200, description = "The customer's credit", body = CustomerCreditResponse,
            headers(("ETag" = String), ("Age" = String, description = "seconds since Tencent answered"))),
        (status = 304, description = "Unchanged since the answer whose `ETag` was sent",
            headers(("ETag" = String), ("Age" = String, description = "seconds since Tencent answered"))),
        (status = 403, description = "`insufficient-scope`: the caller lacks `customers:read`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not-found`: Tencent does not list this UIN among the partner's customers", body = Problem, content_type = "application/problem+json"),
        ForwardingProblems,
    )
)]
#[tracing::instrument(name = "customer_credit", skip_all)]
pub async fn customer_credit(
    _reader: Authorized<ReadsCustomers>,
    State(app): State<AppState>,
    Path(uin): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut subject = Subject::default();
    let result = async {
        let uin = ClientUin::parse(&uin)
            .map_err(|m| ApiError::validation(vec![FieldError::new("uin", m)]))?
            .get();
        subject.about = Some(format!("uin {uin}"));
        let fetched = app.reads.customer_credit(uin).await?;
        let Some(value) = fetched.value else {
            return Err(not_listed());
        };
        let body = CustomerCreditResponse {
            uin: uin.to_string(),
            total_credit: value.total_credit,
            remaining_credit: value.remaining_credit,
            request_id: fetched.request_id.clone(),
        };
        let values = format!(
            "{},{},{}",
            body.uin, body.total_credit, body.remaining_credit
        );
        Ok(cached(
            &body,
            &values,
            (QueryCreditByUinList::NAME, &fetched),
            &headers,
        ))
    }
    .await;
    super::answered(result, subject)
}

/// The partner's credit: what it has, has allocated, and can still allocate.
///
/// Concurrent reads share one `QueryPartnerCredit` call, and answers are reused for
/// `reads.cache_ms`; an allocation through the gateway is visible at once.
#[utoipa::path(
    get,
    path = "/partner/credit",
    tag = "partner",
    security(("bearer" = ["customers:read"])),
    params(
        ("If-None-Match" = Option<String>, Header, description = "The `ETag` of an answer you hold: 304 when it is still current"),
    ),
    responses(
        (status = 200, description = "The partner's credit", body = PartnerCreditResponse,
            headers(("ETag" = String), ("Age" = String, description = "seconds since Tencent answered"))),
        (status = 304, description = "Unchanged since the answer whose `ETag` was sent",
            headers(("ETag" = String), ("Age" = String, description = "seconds since Tencent answered"))),
        (status = 403, description = "`insufficient-scope`: the caller lacks `customers:read`", body = Problem, content_type = "application/problem+json"),
        ForwardingProblems,
    )
)]
#[tracing::instrument(name = "partner_credit", skip_all)]
pub async fn partner_credit(
    _reader: Authorized<ReadsCustomers>,
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let fetched = app.reads.partner_credit().await?;
        let value = &fetched.value;
        let body = PartnerCreditResponse {
            allocated_credit: value.allocated_credit,
            total_credit: value.total_credit,
            remaining_credit: value.remaining_credit,
            customer_total_credit: value.customer_total_credit,
            customer_remaining_credit: value.customer_remaining_credit,
            request_id: fetched.request_id.clone(),
        };
        let values = format!(
            "{},{},{},{:?},{:?}",
            body.allocated_credit,
            body.total_credit,
            body.remaining_credit,
            body.customer_total_credit,
            body.customer_remaining_credit
        );
        Ok(cached(
            &body,
            &values,
            (QueryPartnerCredit::NAME, &fetched),
            &headers,
        ))
    }
    .await;
    super::answered(result, Subject::default())
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllocationsResponse {
    pub uin: String,
    /// How many allocations Tencent lists for the customer in all.
    pub total: u64,
    pub page: u64,
    pub page_size: u64,
    pub allocations: Vec<AllocationEntry>,
    /// Tencent's `RequestId`.
    pub request_id: String,
}

/// One allocation, as Tencent's history lists it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"allocatedAt": "2026-12-06 03:10:00", "operator": "100000000001", "amount": 100.5, "totalCredit": 100.5, "remainingCredit": 100.5, "remark": "Q3 top-up", "viaGateway": true}))]
pub struct AllocationEntry {
    /// `YYYY-MM-DD HH:MM:SS`, as Tencent writes it.
    pub allocated_at: String,
    pub operator: String,
    /// This allocation's amount (negative: taken back).
    pub amount: Option<f64>,
    /// The customer's total credit after it.
    pub total_credit: Option<f64>,
    /// The customer's available credit after it.
    pub remaining_credit: Option<f64>,
    /// The remark, without the gateway's marker.
    pub remark: String,
    /// Whether the gateway made it (its remark carried the gateway's marker).
    pub via_gateway: bool,
}

/// `page` and `pageSize` ([`Paging`]), each named when wrong, and nothing else.
fn paging(query: Option<&str>) -> Result<(u64, u64), ApiError> {
    let mut paging = Paging::default();
    let mut errors = Vec::new();
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match paging.take(&name, &value) {
            Some(Ok(())) => {}
            Some(Err(error)) => errors.push(error),
            None => errors.push(FieldError::new(
                name.into_owned(),
                "is not a parameter of this route",
            )),
        }
    }
    if errors.is_empty() {
        Ok((paging.page, paging.size))
    } else {
        Err(ApiError::validation(errors))
    }
}

/// A customer's credit allocations, newest first as Tencent lists them.
///
/// These reads share `QueryCreditAllocationHistory`'s quota (5/s) with the gateway's own
/// settling of allocations whose outcome is unknown, which always goes first: a read takes a
/// slot only within half of `quotas.max_wait_ms` and gets 429 beyond it. Identical concurrent
/// reads share one call, and answers are reused for `reads.cache_ms`; an allocation through the
/// gateway is visible at once.
#[utoipa::path(
    get,
    path = "/customers/{uin}/credit/allocations",
    tag = "customers",
    security(("bearer" = ["customers:read"])),
    params(
        ("uin" = String, Path, description = "The customer's account id: decimal digits, no leading zeros, 1 to 18446744073709551615", example = "800000232018", pattern = "^[1-9][0-9]{0,19}$"),
        ("page" = Option<u64>, Query, description = "Page, from 1 (at most 1000)", minimum = 1, maximum = 1000),
        ("pageSize" = Option<u64>, Query, description = "Allocations per page, 1 to 100 (default 20)", minimum = 1, maximum = 100),
        ("If-None-Match" = Option<String>, Header, description = "The `ETag` of an answer you hold: 304 when it is still current"),
    ),
    responses(
        (status = 200, description = "One page of the customer's allocations", body = AllocationsResponse,
            headers(("ETag" = String), ("Age" = String, description = "seconds since Tencent answered"))),
        (status = 304, description = "Unchanged since the answer whose `ETag` was sent",
            headers(("ETag" = String), ("Age" = String, description = "seconds since Tencent answered"))),
        (status = 403, description = "`insufficient-scope`: the caller lacks `customers:read`. `customer-not-authorized`: the customer is not bound to this partner", body = Problem, content_type = "application/problem+json"),
        ForwardingProblems,
    )
)]
#[tracing::instrument(name = "credit_allocations", skip_all)]
pub async fn credit_allocations(
    _reader: Authorized<ReadsCustomers>,
    State(app): State<AppState>,
    Path(uin): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut subject = Subject::default();
    let result = async {
        let uin = ClientUin::parse(&uin)
            .map_err(|m| ApiError::validation(vec![FieldError::new("uin", m)]));
        let paging = paging(query.as_deref());
        let (uin, (page, page_size)) = match (uin, paging) {
            (Ok(uin), Ok(paging)) => (uin.get(), paging),
            (Err(mut a), Err(b)) => {
                a.errors.extend(b.errors);
                return Err(a);
            }
            (Err(e), _) | (_, Err(e)) => return Err(e),
        };
        subject.about = Some(format!("uin {uin}"));
        let fetched = app.reads.history(uin, page, page_size).await?;
        let allocations = fetched
            .value
            .history
            .iter()
            .map(|h| {
                let remark = crate::credit::marker::strip(&h.remark).to_owned();
                AllocationEntry {
                    via_gateway: remark.len() != h.remark.len(),
                    remark,
                    allocated_at: h.allocated_time.clone(),
                    operator: h.operator.clone(),
                    amount: h.credit,
                    total_credit: h.allocated_credit,
                    remaining_credit: h.client_credit_after,
                }
            })
            .collect();
        let body = AllocationsResponse {
            uin: uin.to_string(),
            total: fetched.value.total,
            page,
            page_size,
            allocations,
            request_id: fetched.request_id.clone(),
        };
        let values = serde_json::to_string(&(&body.total, &body.allocations)).expect("serializes");
        Ok(cached(
            &body,
            &values,
            (QueryCreditAllocationHistory::NAME, &fetched),
            &headers,
        ))
    }
    .await;
    super::answered(result, subject)
}
