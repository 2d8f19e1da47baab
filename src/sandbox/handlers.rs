//! The simulator's HTTP handlers: verify like Tencent, then count, fault, execute and answer.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};

use super::faults::{Fault, FaultKind};
use super::state::{Refusal, SandboxState, SeenRequest};
use super::verify::{header, verify};

pub(super) fn envelope(mut fields: Map<String, Value>, request_id: &str) -> Response {
    fields.insert("RequestId".into(), Value::String(request_id.to_owned()));
    Json(json!({ "Response": fields })).into_response()
}

pub(super) fn error_answer(code: &str, message: &str, request_id: &str) -> Response {
    let mut fields = Map::new();
    fields.insert("Error".into(), json!({ "Code": code, "Message": message }));
    envelope(fields, request_id)
}

/// `POST /`: the API.
pub async fn api(
    State(state): State<Arc<SandboxState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let action = header(&headers, "x-tc-action")
        .unwrap_or_default()
        .to_owned();
    let owned = |name| header(&headers, name).map(str::to_owned);
    state.record_received(SeenRequest {
        action: action.clone(),
        trace_id: owned("x-tc-traceid"),
        request_client: owned("x-tc-requestclient"),
        language: owned("x-tc-language"),
        region: owned("x-tc-region"),
        version: owned("x-tc-version"),
    });
    if !state.config.latency.is_zero() {
        tokio::time::sleep(state.config.latency).await;
    }
    if action == super::sts::ACTION {
        return super::sts::answer(&state, &headers, &body, &request_id);
    }
    let operator = match verify(&state, &headers, &body, &action) {
        Ok(id) => id,
        Err((code, message)) => return error_answer(code, &message, &request_id),
    };
    state.record_key(&operator);
    if !state.admit(&action) {
        return error_answer(
            "RequestLimitExceeded",
            "Your requests exceed the frequency limit of this action.",
            &request_id,
        );
    }
    let fault = state.take_fault(&action);
    match &fault {
        Some(FaultKind::Error { code, message }) => {
            return error_answer(code, message, &request_id);
        }
        Some(FaultKind::Status { status }) => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY);
            return (
                status,
                Html(format!(
                    "<html><body><h1>{status}</h1>injected</body></html>"
                )),
            )
                .into_response();
        }
        Some(FaultKind::Delay { ms }) => tokio::time::sleep(Duration::from_millis(*ms)).await,
        Some(FaultKind::HangBeforeExecute { ms }) => {
            tokio::time::sleep(Duration::from_millis(*ms)).await;
            return error_answer("InternalError", "injected hang; not executed", &request_id);
        }
        _ => {}
    }
    let answer = match execute(&state, &action, &body, &operator) {
        Ok(fields) => {
            state.record_executed(&action);
            envelope(fields, &request_id)
        }
        Err((code, message)) => return error_answer(code, &message, &request_id),
    };
    match fault {
        Some(FaultKind::HangAfterExecute { ms }) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            answer
        }
        Some(FaultKind::Unparsable) => (StatusCode::OK, "<html>not json</html>").into_response(),
        Some(FaultKind::TruncateAfterExecute) => truncated(answer).await,
        Some(FaultKind::StatusAfterExecute { status }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            (
                status,
                Html(format!(
                    "<html><body><h1>{status}</h1>injected after execution</body></html>"
                )),
            )
                .into_response()
        }
        _ => answer,
    }
}

/// Sends the first half of `answer` and then breaks the connection.
async fn truncated(answer: Response) -> Response {
    let (parts, body) = answer.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let half = bytes.slice(..bytes.len() / 2);
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        vec![Ok(half), Err(std::io::Error::other("injected truncation"))];
    let mut response =
        Response::from_parts(parts, Body::from_stream(futures_util::stream::iter(chunks)));
    response.headers_mut().remove(http::header::CONTENT_LENGTH);
    response
}

/// Request parameters, checked the way Tencent checks them.
struct Params(Map<String, Value>);

impl Params {
    fn parse(body: &[u8], allowed: &[&str]) -> Result<Self, Refusal> {
        let value: Value = serde_json::from_slice(body).map_err(|_| {
            (
                "InvalidParameter",
                "The request body is not valid JSON.".to_owned(),
            )
        })?;
        let Value::Object(map) = value else {
            return Err((
                "InvalidParameter",
                "The request body must be a JSON object.".into(),
            ));
        };
        if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err((
                "UnknownParameter",
                format!("The parameter `{unknown}` is not recognized."),
            ));
        }
        Ok(Self(map))
    }

    fn present(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    fn required(&self, name: &str) -> Result<&Value, Refusal> {
        self.present(name).ok_or((
            "MissingParameter",
            format!("The parameter `{name}` is missing."),
        ))
    }

    fn wrong_type(name: &str, expected: &str) -> Refusal {
        (
            "InvalidParameter",
            format!("The parameter `{name}` must be {expected}."),
        )
    }

    fn string(&self, name: &str, required: bool) -> Result<Option<&str>, Refusal> {
        let value = if required {
            Some(self.required(name)?)
        } else {
            self.present(name)
        };
        value
            .map(|v| v.as_str().ok_or_else(|| Self::wrong_type(name, "a string")))
            .transpose()
    }

    fn uint(&self, name: &str, required: bool) -> Result<Option<u64>, Refusal> {
        let value = if required {
            Some(self.required(name)?)
        } else {
            self.present(name)
        };
        value
            .map(|v| {
                v.as_u64()
                    .ok_or_else(|| Self::wrong_type(name, "an unsigned integer"))
            })
            .transpose()
    }
}

fn execute(
    state: &SandboxState,
    action: &str,
    body: &[u8],
    operator: &str,
) -> Result<Map<String, Value>, Refusal> {
    let mut out = Map::new();
    match action {
        "CreateAndSendClientInvitationMail" => {
            let p = Params::parse(body, &["Email", "InvitationRole", "MaterialUrl"])?;
            let email = p.string("Email", true)?.unwrap_or_default();
            let plausible = email.split('@').count() == 2
                && email
                    .rsplit_once('@')
                    .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'))
                && !email.chars().any(char::is_whitespace);
            if !plausible {
                return Err((
                    "InvalidParameter.MailFormatIncorrect",
                    "The mailbox format is incorrect.".into(),
                ));
            }
            let role = p.string("InvitationRole", false)?.unwrap_or("Client");
            if !matches!(role, "Client" | "SubAgent") {
                return Err((
                    "InvalidParameterValue",
                    "InvitationRole must be Client or SubAgent.".into(),
                ));
            }
            if p.string("MaterialUrl", false)?.is_some() && role != "SubAgent" {
                return Err((
                    "InvalidParameterValue",
                    "MaterialUrl applies to SubAgent invitations only.".into(),
                ));
            }
            out.insert("InvitationLink".into(), state.invite(email)?.into());
        }
        "AllocateCustomerCredit" => {
            let p = Params::parse(body, &["ClientUin", "AddedCredit", "Remark"])?;
            let uin = p.uint("ClientUin", true)?.unwrap_or_default();
            let amount = p
                .required("AddedCredit")?
                .as_f64()
                .ok_or_else(|| Params::wrong_type("AddedCredit", "a number"))?;
            let cents = (amount * 100.0).round();
            if amount == 0.0
                || !amount.is_finite()
                || amount.abs() > 1e9
                || (amount * 100.0 - cents).abs() > 1e-6
            {
                return Err((
                    "InvalidParameterValue.CreditAmountOutOfRange",
                    "The credit amount is out of range.".into(),
                ));
            }
            let remark = p.string("Remark", false)?.unwrap_or_default();
            let (total, remaining) = state.allocate(operator, uin, cents as i64, remark)?;
            out.insert("TotalCredit".into(), total.into());
            out.insert("RemainingCredit".into(), remaining.into());
        }
        "QueryCreditAllocationHistory" => {
            let p = Params::parse(body, &["ClientUin", "Page", "PageSize"])?;
            let uin = p.uint("ClientUin", true)?.unwrap_or_default();
            let page = p.uint("Page", false)?.unwrap_or(1).max(1) as usize;
            let size = p.uint("PageSize", false)?.unwrap_or(20).clamp(1, 1000) as usize;
            let (total, history) = state.history(uin, page, size)?;
            out.insert("Total".into(), total.into());
            out.insert(
                "History".into(),
                serde_json::to_value(history).unwrap_or_default(),
            );
        }
        "QueryCreditByUinList" => {
            let p = Params::parse(body, &["UinList"])?;
            let list = p
                .required("UinList")?
                .as_array()
                .filter(|l| (1..=50).contains(&l.len()))
                .ok_or_else(|| Params::wrong_type("UinList", "a list of 1 to 50 UINs"))?;
            let uins: Vec<u64> = list.iter().filter_map(Value::as_u64).collect();
            out.insert(
                "Data".into(),
                serde_json::to_value(state.credits(&uins)).unwrap_or_default(),
            );
        }
        "QueryCustomersCredit" => {
            let p = Params::parse(body, &["FilterType", "Filter", "Page", "PageSize", "Order"])?;
            let filter_type = p.string("FilterType", false)?;
            let filter = p.string("Filter", false)?;
            if filter_type.is_some_and(|t| !["ClientUin", "Name", "Remark", "Email"].contains(&t)) {
                return Err((
                    "InvalidParameterValue",
                    "FilterType must be ClientUin, Name, Remark or Email.".into(),
                ));
            }
            let order = p.string("Order", false)?.unwrap_or("desc");
            if !matches!(order, "asc" | "desc") {
                return Err(("InvalidParameterValue", "Order must be asc or desc.".into()));
            }
            let page = p.uint("Page", false)?.unwrap_or(1).max(1) as usize;
            let size = p.uint("PageSize", false)?.unwrap_or(10).clamp(1, 100) as usize;
            let (total, rows) =
                state.customers_page(filter_type.zip(filter), order == "asc", page, size);
            out.insert("Total".into(), total.into());
            out.insert(
                "Data".into(),
                serde_json::to_value(rows).unwrap_or_default(),
            );
        }
        "DescribeCustomerInfo" => {
            let p = Params::parse(body, &["CustomerUin"])?;
            let list = p
                .required("CustomerUin")?
                .as_array()
                .filter(|l| (1..=20).contains(&l.len()) && l.iter().all(Value::is_u64))
                .ok_or_else(|| Params::wrong_type("CustomerUin", "a list of 1 to 20 UINs"))?;
            let uins: Vec<u64> = list.iter().filter_map(Value::as_u64).collect();
            out.insert(
                "Data".into(),
                serde_json::to_value(state.profiles(&uins)).unwrap_or_default(),
            );
        }
        "QueryInvitationInfo" => {
            let p = Params::parse(body, &["InvitationToken"])?;
            let list = p
                .required("InvitationToken")?
                .as_array()
                .filter(|l| (1..=100).contains(&l.len()) && l.iter().all(Value::is_string))
                .ok_or_else(|| {
                    Params::wrong_type("InvitationToken", "a list of 1 to 100 tokens")
                })?;
            let tokens: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
            out.insert(
                "InvitationInfo".into(),
                serde_json::to_value(state.invitations(&tokens)).unwrap_or_default(),
            );
        }
        "QueryPartnerCredit" => {
            Params::parse(body, &[])?;
            let ((allocated, total, remaining), (customers_total, customers_remaining)) =
                state.partner_credit();
            out.insert("AllocatedCredit".into(), allocated.into());
            out.insert("TotalCredit".into(), total.into());
            out.insert("RemainingCredit".into(), remaining.into());
            out.insert("CustomerTotalCredit".into(), customers_total.into());
            out.insert("CustomerRemainingCredit".into(), customers_remaining.into());
        }
        _ => unreachable!("verify() admits known actions only"),
    }
    Ok(out)
}

/// `POST /_sandbox/invitations/{token}/accept`: a customer uses the invitation link; answers
/// the new customer's UIN, or 404.
pub async fn accept_invitation(
    State(state): State<Arc<SandboxState>>,
    Path(token): Path<String>,
) -> Response {
    match state.accept_invitation(&token) {
        Some(uin) => Json(serde_json::json!({ "clientUin": uin })).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "no unused invitation with this token",
        )
            .into_response(),
    }
}

/// `GET /latest/meta-data/cam/security-credentials/`: the instance's role.
pub async fn metadata_roles() -> Response {
    super::state::ROLE.into_response()
}

/// `GET /latest/meta-data/cam/security-credentials/{role}`: new temporary credentials.
pub async fn metadata_role_credentials(
    State(state): State<Arc<SandboxState>>,
    Path(role): Path<String>,
) -> Response {
    if role != super::state::ROLE {
        return (StatusCode::NOT_FOUND, "no such role").into_response();
    }
    let Some(issued) = state.issue_role_credentials() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "metadata service down").into_response();
    };
    let key = &issued.key;
    Json(json!({
        "TmpSecretId": key.secret_id,
        "TmpSecretKey": key.secret_key.expose_secret(),
        "Token": key.token.as_ref().map(|t| t.expose_secret().to_owned()),
        "ExpiredTime": issued.expires_unix,
        "Expiration": super::state::timestamp_iso(issued.expires_unix),
        "Code": "Success",
    }))
    .into_response()
}

/// `POST /_sandbox/metadata` `{"up": bool}`: the metadata service answers, or fails with 503.
pub async fn set_metadata(
    State(state): State<Arc<SandboxState>>,
    Json(body): Json<Value>,
) -> Response {
    match body.get("up").and_then(Value::as_bool) {
        Some(up) => {
            state.set_metadata_up(up);
            StatusCode::NO_CONTENT.into_response()
        }
        None => (StatusCode::BAD_REQUEST, "expected {\"up\": true|false}").into_response(),
    }
}

/// `GET /_sandbox/stats`.
pub async fn stats(State(state): State<Arc<SandboxState>>) -> Response {
    Json(state.stats()).into_response()
}

/// `GET /_sandbox/ledger`.
pub async fn ledger(State(state): State<Arc<SandboxState>>) -> Response {
    Json(state.ledger()).into_response()
}

/// `POST /_sandbox/faults`: one fault object or a list of them.
pub async fn add_faults(State(state): State<Arc<SandboxState>>, body: Bytes) -> Response {
    let is_list = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let parsed = if is_list {
        serde_json::from_slice::<Vec<Fault>>(&body)
    } else {
        serde_json::from_slice::<Fault>(&body).map(|f| vec![f])
    };
    match parsed {
        Ok(faults) => faults.into_iter().for_each(|f| state.add_fault(f)),
        Err(e) => return (StatusCode::BAD_REQUEST, format!("not a fault: {e}\n")).into_response(),
    }
    StatusCode::NO_CONTENT.into_response()
}

/// `DELETE /_sandbox/faults`.
pub async fn clear_faults(State(state): State<Arc<SandboxState>>) -> Response {
    state.clear_faults();
    StatusCode::NO_CONTENT.into_response()
}
