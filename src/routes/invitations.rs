//! `POST /customers/invitations` → `CreateAndSendClientInvitationMail`.

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use axum::response::{IntoResponse, Response};
use http::HeaderMap;

use super::extract::JsonBody;
use super::extract::{Authorized, SendsInvitations};
use crate::auth::Caller;
use crate::context::Subject;
use crate::domain::{Email, FieldError, InvitationRole, MaterialUrl};
use crate::idempotency::{self, Begin, IdempotencyKey};
use crate::openapi::ForwardingProblems;
use crate::problem::ProblemType;
use crate::problem::{ApiError, Problem};
use crate::state::AppState;
use crate::store::{KeyState, Retention, StoredResponse};
use crate::tencent::actions::{Action, CreateAndSendClientInvitationMail};
use crate::tencent::{CallError, Effect, ErrorClass};

/// An invitation to become a customer (or a sub-agent) of the partner.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(example = json!({"email": "new.customer@example.com", "role": "client"}))]
pub struct InvitationRequest {
    /// The address the invitation link is mailed to; at most 254 characters.
    #[schema(
        format = "email",
        max_length = 254,
        example = "new.customer@example.com"
    )]
    pub email: String,
    /// `client` (the default) or `subAgent` for a second-level reseller.
    #[serde(default)]
    pub role: Option<InvitationRole>,
    /// Link to material for a sub-agent; only with `role: subAgent`.
    #[serde(default)]
    #[schema(format = "uri", max_length = 2048)]
    pub material_url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"email": "new.customer@example.com", "invitationLink": "https://intl.cloud.tencent.com/invitation/abc123", "requestId": "6a2b0a39-29c6-4a3b-8b0e-4a86b7d8f1f0"}))]
pub struct InvitationResponse {
    /// The normalised address the mail went to (trimmed, domain lower-cased).
    #[schema(example = "new.customer@example.com")]
    pub email: String,
    /// The link in the mail, which the customer opens to sign up.
    pub invitation_link: String,
    /// Tencent's `RequestId`.
    pub request_id: String,
}

/// The invitation, parsed: only valid invitations exist past this point.
#[derive(Debug)]
pub struct Invitation {
    email: Email,
    role: InvitationRole,
    material_url: Option<MaterialUrl>,
}

impl Invitation {
    pub fn parse(req: InvitationRequest) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let email = Email::parse(&req.email).map_err(|m| errors.push(FieldError::new("email", m)));
        let role = req.role.unwrap_or_default();
        let material_url = match (req.material_url, role) {
            (None, _) => Ok(None),
            (Some(_), InvitationRole::Client) => {
                errors.push(FieldError::new(
                    "materialUrl",
                    "is only allowed with role subAgent",
                ));
                Err(())
            }
            (Some(url), InvitationRole::SubAgent) => MaterialUrl::parse(&url)
                .map(Some)
                .map_err(|m| errors.push(FieldError::new("materialUrl", m))),
        };
        match (email, material_url) {
            (Ok(email), Ok(material_url)) => Ok(Self {
                email,
                role,
                material_url,
            }),
            _ => Err(errors),
        }
    }
}

/// Mail an invitation link to a prospective customer.
///
/// Tencent allows one invitation per address every 180 seconds, and the partner account must be
/// allowlisted for invitations.
#[utoipa::path(
    post,
    path = "/customers/invitations",
    tag = "customers",
    security(("bearer" = ["invitations:send"])),
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "Optional: one unique key per intended invitation, sent again on retries, which then get the first answer instead of a second mail. 1 to 255 visible ASCII characters.", min_length = 1, max_length = 255, pattern = "^[!-~]{1,255}$"),
    ),
    request_body = InvitationRequest,
    responses(
        (status = 201, description = "The invitation mail was sent (`Idempotent-Replayed: true` when this is the stored answer of an earlier request with the same key)", body = InvitationResponse,
            headers(("Idempotent-Replayed" = String, description = "`true` on a replayed answer"))),
        (status = 403, description = "`insufficient-scope`: the caller lacks `invitations:send`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`email-already-registered`: the address already has an account. `idempotency-key-in-use`: a request with this key is still being processed", body = Problem, content_type = "application/problem+json"),
        ForwardingProblems,
    )
)]
#[tracing::instrument(name = "create_invitation", skip_all)]
pub async fn create_invitation(
    Authorized(caller, _): Authorized<SendsInvitations>,
    State(app): State<AppState>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<InvitationRequest>,
) -> Response {
    let mut subject = Subject::default();
    let result = async {
        let key = IdempotencyKey::from_headers(&headers, false)?;
        let invitation = Invitation::parse(req).map_err(ApiError::validation)?;
        subject.about = Some(invitation.email.masked());
        // A claimed key must be settled even if the client hangs up: the work runs as its own
        // task.
        crate::context::run_to_completion(keyed(app, caller, invitation, key))
            .await
            .map_err(|_| ApiError::new(ProblemType::Internal, "the invitation task failed"))?
    }
    .await;
    super::answered(result, subject)
}

/// Claims the key (if any), sends the invitation, and records the answer under the key.
async fn keyed(
    app: AppState,
    caller: Caller,
    invitation: Invitation,
    key: Option<IdempotencyKey>,
) -> Result<Response, ApiError> {
    // Invitations go on while Redis is away, with this replica's records and cooldowns.
    let store = app.store.lenient();
    let claimed = match &key {
        None => None,
        Some(key) => {
            let scoped = key.scoped(&caller.id, ROUTE);
            let fingerprint = idempotency::fingerprint(&[
                ROUTE,
                &invitation.email.key(),
                invitation.role.upstream(),
                invitation
                    .material_url
                    .as_ref()
                    .map(MaterialUrl::as_str)
                    .unwrap_or(""),
            ]);
            match app
                .keys
                .begin(&store, ROUTE, &scoped, &fingerprint, Retention::Evictable)
                .await?
            {
                Begin::Send(in_flight) => Some((scoped, fingerprint, in_flight)),
                Begin::Replay(stored) => {
                    return Ok(idempotency::replay(&restore(stored, &invitation.email)));
                }
                // Its request died with its replica; the cooldowns (the gateway's and Tencent's)
                // stop a second mail if the first one went.
                Begin::Abandoned { record, .. } => {
                    let in_flight = app.keys.take(&store, ROUTE, &scoped, &record).await?;
                    Some((scoped, fingerprint, in_flight))
                }
                // Only allocations are ever left unknown.
                Begin::Settle(_) => {
                    return Err(ApiError::new(
                        ProblemType::Internal,
                        "unexpected idempotency record",
                    ));
                }
            }
        }
    };
    let (response, definite) = attempt(&app, &invitation).await;
    match claimed {
        None => Ok(response),
        Some((scoped, fingerprint, in_flight)) => {
            let (stored, response) = idempotency::capture(response).await;
            let record = definite.then(|| KeyState::Completed {
                fingerprint,
                response: strip(stored, &invitation.email),
            });
            app.keys.finish(&store, &scoped, &in_flight, record).await;
            Ok(response)
        }
    }
}

/// The route's name in idempotency scopes and metrics.
const ROUTE: &str = "invitations";

/// What an invitation's record keeps of its answer: only what a replay needs. The address is
/// left out of a 201 body (the replay puts back the request's own, which the fingerprint ties to
/// the first); in any other answer it is masked.
fn strip(mut stored: StoredResponse, email: &Email) -> StoredResponse {
    if stored.status == 201 {
        if let Ok(serde_json::Value::Object(mut body)) =
            serde_json::from_slice::<serde_json::Value>(&stored.body)
        {
            body.remove("email");
            stored.body = serde_json::to_vec(&body).unwrap_or_default();
        }
    } else {
        let text = String::from_utf8_lossy(&stored.body);
        stored.body = text.replace(email.as_str(), &email.masked()).into_bytes();
    }
    stored
}

/// The stored answer with the address put back: byte for byte the first answer.
fn restore(mut stored: StoredResponse, email: &Email) -> StoredResponse {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Kept {
        invitation_link: String,
        request_id: String,
    }
    if stored.status == 201
        && let Ok(kept) = serde_json::from_slice::<Kept>(&stored.body)
    {
        let body = InvitationResponse {
            email: email.as_str().to_owned(),
            invitation_link: kept.invitation_link,
            request_id: kept.request_id,
        };
        stored.body = serde_json::to_vec(&body).unwrap_or_default();
    }
    stored
}

/// Checks the cooldown, sends the invitation, and answers; the flag says whether the answer is
/// definite (worth storing for replay) or "not now" (the caller may retry).
async fn attempt(app: &AppState, invitation: &Invitation) -> (Response, bool) {
    let address = invitation.email.key();
    let now = app.now_ms();
    if let Some(until) = app.store.cooldown_until(&address).await {
        app.metrics.cooldown("gateway");
        let secs = until.saturating_sub(now).div_ceil(1000);
        let problem = ApiError::new(
            ProblemType::MailCooldown,
            format!(
                "an invitation went to this address less than {} s ago",
                app.settings.invitations.cooldown_s
            ),
        )
        .retry_after(secs);
        return (problem.into_response(), false);
    }
    tracing::info!(email = %invitation.email, role = invitation.role.upstream(), "sending invitation");
    let ctx = app.call_context();
    let action = CreateAndSendClientInvitationMail {
        email: invitation.email.as_str().to_owned(),
        invitation_role: Some(invitation.role.upstream()),
        material_url: invitation
            .material_url
            .as_ref()
            .map(|u| u.as_str().to_owned()),
    };
    let cooldown = app.settings.invitations.cooldown();
    let start_cooldown = || async {
        app.store
            .start_cooldown(&address, app.now_ms() + cooldown.as_millis() as u64)
            .await
    };
    let result = app.tencent.call(&action, &ctx).await;
    let summary = crate::tencent::summary(CreateAndSendClientInvitationMail::NAME, &result);
    let (mut response, definite) = match result {
        Ok(answer) => {
            start_cooldown().await;
            let body = InvitationResponse {
                email: invitation.email.as_str().to_owned(),
                invitation_link: answer.data.invitation_link,
                request_id: answer.request_id,
            };
            ((StatusCode::CREATED, Json(body)).into_response(), true)
        }
        Err(error) => {
            if matches!(&error, CallError::Upstream(e) if e.class() == ErrorClass::MailCooldown) {
                // Tencent saw a recent link to this address: cool down here too, so the next
                // attempts stop at the gateway.
                app.metrics.cooldown("upstream");
                start_cooldown().await;
            }
            let definite = error.effect() == Effect::Refused;
            let problem = ApiError::from_call(error);
            let problem = if problem.kind == ProblemType::MailCooldown {
                problem.retry_after(cooldown.as_secs())
            } else {
                problem
            };
            (problem.into_response(), definite)
        }
    };
    response.extensions_mut().insert(summary);
    (response, definite)
}
