//! The lookups: `GET /customers/{uin}` → `DescribeCustomerInfo` (batched, 20 UINs a call) and
//! `GET /invitations/{token}` → `QueryInvitationInfo` (batched, 100 tokens a call), both cached
//! for `reads.cache_ms` with `Age`, `ETag` and `If-None-Match`.

use axum::extract::{Path, State};
use axum::response::Response;
use http::HeaderMap;
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::{Authorized, ReadsCustomers};
use super::reads::{cached, not_listed};
use crate::context::Subject;
use crate::domain::{ClientUin, FieldError};
use crate::openapi::ForwardingProblems;
use crate::problem::{ApiError, Problem, ProblemType};
use crate::state::AppState;
use crate::tencent::actions::{Action, DescribeCustomerInfo, QueryInvitationInfo};

/// Text Tencent left empty (or null) is left out.
fn given(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"uin": "800000232018", "name": "Customer 00", "email": "customer00@example.com", "phone": null, "remark": null, "boundAt": "2026-01-01 08:00:00", "accountStatus": "0", "authStatus": "3", "authType": "0", "uinRegisteredAt": "2025-12-31 09:00:00", "cidRegisteredAt": null, "authPassedAt": "2026-01-02 10:00:00", "hasExpense": "0", "requestId": "6a2b0a39-29c6-4a3b-8b0e-4a86b7d8f1f0"}))]
pub struct CustomerProfileResponse {
    /// The customer's UIN, as a string.
    pub uin: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// Tencent's `Mark`: the partner's remark on the customer.
    pub remark: Option<String>,
    /// When the customer was bound to the partner (`BindTime`).
    pub bound_at: Option<String>,
    /// `0` normal, `1` forcibly mandatory, `2` mandatory arrears, as Tencent writes it.
    pub account_status: Option<String>,
    /// `-1` files not uploaded, `0` not submitted, `1` under review, `2` review error,
    /// `3` approved, as Tencent writes it.
    pub auth_status: Option<String>,
    /// The identity verification type, as Tencent writes it.
    pub auth_type: Option<String>,
    pub uin_registered_at: Option<String>,
    pub cid_registered_at: Option<String>,
    pub auth_passed_at: Option<String>,
    /// Whether the customer has spent anything, as Tencent writes it.
    pub has_expense: Option<String>,
    /// Tencent's `RequestId` of the (possibly shared) call that read it.
    pub request_id: String,
}

/// A customer's profile: name, contact, binding and verification status.
///
/// Concurrent reads of many customers share `DescribeCustomerInfo` calls (up to 20 UINs each),
/// and answers are reused for `reads.cache_ms`. Send `If-None-Match` with the `ETag` to get 304
/// when nothing changed.
#[utoipa::path(
    get,
    path = "/customers/{uin}",
    tag = "customers",
    security(("bearer" = ["customers:read"])),
    params(
        ("uin" = String, Path, description = "The customer's account id: decimal digits, no leading zeros, 1 to 18446744073709551615", example = "800000232018", pattern = "^[1-9][0-9]{0,19}$"),
        ("If-None-Match" = Option<String>, Header, description = "The `ETag` of an answer you hold: 304 when it is still current"),
    ),
    responses(
        (status = 200, description = "The customer's profile", body = CustomerProfileResponse,
            headers(("ETag" = String), ("Age" = String, description = "seconds since Tencent answered"))),
        (status = 304, description = "Unchanged since the answer whose `ETag` was sent",
            headers(("ETag" = String), ("Age" = String, description = "seconds since Tencent answered"))),
        (status = 403, description = "`insufficient-scope`: the caller lacks `customers:read`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not-found`: Tencent does not list this UIN among the partner's customers", body = Problem, content_type = "application/problem+json"),
        ForwardingProblems,
    )
)]
#[tracing::instrument(name = "customer_profile", skip_all)]
pub async fn customer_profile(
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
        let fetched = app.reads.customer_profile(uin).await?;
        let Some(p) = &fetched.value else {
            return Err(not_listed());
        };
        let body = CustomerProfileResponse {
            uin: uin.to_string(),
            name: given(&p.name),
            email: given(&p.email),
            phone: given(&p.phone),
            remark: given(&p.mark),
            bound_at: given(&p.bind_time),
            account_status: given(&p.account_status),
            auth_status: given(&p.auth_status),
            auth_type: given(&p.auth_type),
            uin_registered_at: given(&p.uin_register_time),
            cid_registered_at: given(&p.cid_register_time),
            auth_passed_at: given(&p.auth_pass_time),
            has_expense: given(&p.has_expense),
            request_id: fetched.request_id.clone(),
        };
        let mut values = serde_json::to_value(&body).expect("serializes");
        values["requestId"] = serde_json::Value::Null;
        Ok(cached(
            &body,
            &values.to_string(),
            (DescribeCustomerInfo::NAME, &fetched),
            &headers,
        ))
    }
    .await;
    super::answered(result, subject)
}

/// What became of an invitation link.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum InvitationStatus {
    /// Not used yet (Tencent's 1).
    Unused,
    /// Used: a customer registered with it (Tencent's 2).
    Used,
    /// A status Tencent did not document.
    Unknown,
}

/// Who accepted an invitation.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum InvitedClientType {
    /// A second-level reseller (Tencent's 1).
    Reseller,
    /// A sub-customer (Tencent's 2).
    Customer,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"token": "8f14e45fceea167a5a36dedd4bea2543", "createdAt": "2026-12-01 10:00:00", "status": "used", "usedAt": "2026-12-02 11:30:00", "uin": "800000232018", "email": "new.customer@example.com", "clientType": "customer", "boundAt": "2026-12-02 11:30:00", "requestId": "6a2b0a39-29c6-4a3b-8b0e-4a86b7d8f1f0"}))]
pub struct InvitationInfoResponse {
    pub token: String,
    pub created_at: Option<String>,
    pub status: InvitationStatus,
    pub used_at: Option<String>,
    /// The UIN of the account that used it, as a string.
    pub uin: Option<String>,
    /// The e-mail address of the account that used it (or that it was sent to).
    pub email: Option<String>,
    pub client_type: Option<InvitedClientType>,
    pub bound_at: Option<String>,
    /// Tencent's `RequestId` of the (possibly shared) call that read it.
    pub request_id: String,
}

/// Longest token accepted: above any Tencent issues (a hex digest), far below what could hurt.
const MAX_TOKEN: usize = 64;

/// A token as it appears in an `invitationLink`: letters, digits, `-` and `_` (a token that
/// could not be Tencent's is refused here, so it never joins, or fails, another reader's batch).
fn token(raw: &str) -> Result<String, ApiError> {
    let ok = !raw.is_empty()
        && raw.len() <= MAX_TOKEN
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(ApiError::validation(vec![FieldError::new(
            "token",
            format!("must be 1 to {MAX_TOKEN} of A-Z, a-z, 0-9, '-' and '_'"),
        )]))
    }
}

/// What became of an invitation link: unused, or used by whom and when.
///
/// `token` is the token of an `invitationLink` that `POST /invitations` returned. Tencent keeps
/// an invitation for 60 days; after that, and for a token it never issued, this is 404.
/// Concurrent reads share `QueryInvitationInfo` calls (up to 100 tokens each), and answers are
/// reused for `reads.cache_ms`.
#[utoipa::path(
    get,
    path = "/invitations/{token}",
    tag = "invitations",
    security(("bearer" = ["customers:read"])),
    params(
        ("token" = String, Path, description = "The invitation link's token", example = "8f14e45fceea167a5a36dedd4bea2543", max_length = 64, pattern = "^[A-Za-z0-9_-]{1,64}$"),
        ("If-None-Match" = Option<String>, Header, description = "The `ETag` of an answer you hold: 304 when it is still current"),
    ),
    responses(
        (status = 200, description = "The invitation", body = InvitationInfoResponse,
            headers(("ETag" = String), ("Age" = String, description = "seconds since Tencent answered"))),
        (status = 304, description = "Unchanged since the answer whose `ETag` was sent",
            headers(("ETag" = String), ("Age" = String, description = "seconds since Tencent answered"))),
        (status = 403, description = "`insufficient-scope`: the caller lacks `customers:read`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not-found`: Tencent keeps no invitation with this token (never issued, or older than 60 days)", body = Problem, content_type = "application/problem+json"),
        ForwardingProblems,
    )
)]
#[tracing::instrument(name = "invitation", skip_all)]
pub async fn invitation(
    _reader: Authorized<ReadsCustomers>,
    State(app): State<AppState>,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result = async {
        let token = token(&raw)?;
        let fetched = app.reads.invitation(token.clone()).await?;
        let Some(i) = &fetched.value else {
            return Err(ApiError::new(
                ProblemType::NotFound,
                "Tencent keeps no invitation with this token (never issued, or older than 60 days)",
            ));
        };
        let body = InvitationInfoResponse {
            token,
            created_at: given(&i.create_time),
            status: match i.status {
                Some(1) => InvitationStatus::Unused,
                Some(2) => InvitationStatus::Used,
                _ => InvitationStatus::Unknown,
            },
            used_at: given(&i.use_time),
            uin: i.client_uin.filter(|u| *u != 0).map(|u| u.to_string()),
            email: given(&i.client_mail),
            client_type: match i.client_type {
                Some(1) => Some(InvitedClientType::Reseller),
                Some(2) => Some(InvitedClientType::Customer),
                _ => None,
            },
            bound_at: given(&i.bind_time),
            request_id: fetched.request_id.clone(),
        };
        let mut values = serde_json::to_value(&body).expect("serializes");
        values["requestId"] = serde_json::Value::Null;
        Ok(cached(
            &body,
            &values.to_string(),
            (QueryInvitationInfo::NAME, &fetched),
            &headers,
        ))
    }
    .await;
    // The token is not logged: it is what the invitation link grants.
    super::answered(result, Subject::default())
}
