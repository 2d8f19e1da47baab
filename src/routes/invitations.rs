//! `POST /customers/invitations` → `CreateAndSendClientInvitationMail`.

use axum::Json;
use axum::extract::State;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::extract::JsonBody;
use crate::auth::{Authorized, SendsInvitations};
use crate::domain::{Email, FieldError, InvitationRole, MaterialUrl};
use crate::openapi::ForwardingProblems;
use crate::problem::{ApiError, Problem};
use crate::tencent::CallContext;
use crate::tencent::actions::CreateAndSendClientInvitationMail;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_invitation))
}

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
struct Invitation {
    email: Email,
    role: InvitationRole,
    material_url: Option<MaterialUrl>,
}

impl Invitation {
    fn parse(req: InvitationRequest) -> Result<Self, Vec<FieldError>> {
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
    request_body = InvitationRequest,
    responses(
        (status = 201, description = "The invitation mail was sent", body = InvitationResponse),
        (status = 403, description = "`insufficient-scope`: the caller lacks `invitations:send`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`email-already-registered`: the address already has an account", body = Problem, content_type = "application/problem+json"),
        ForwardingProblems,
    )
)]
#[tracing::instrument(name = "create_invitation", skip_all)]
pub async fn create_invitation(
    Authorized(_caller, _): Authorized<SendsInvitations>,
    State(app): State<AppState>,
    JsonBody(req): JsonBody<InvitationRequest>,
) -> Result<(StatusCode, Json<InvitationResponse>), ApiError> {
    let invitation = Invitation::parse(req).map_err(ApiError::validation)?;
    crate::context::record(|r| r.subject = Some(invitation.email.masked()));
    tracing::info!(email = %invitation.email, role = invitation.role.upstream(), "sending invitation");
    let ctx = CallContext {
        request_id: crate::context::request_id().unwrap_or_default(),
        deadline: app.deadline(),
    };
    let action = CreateAndSendClientInvitationMail {
        email: invitation.email.as_str().to_owned(),
        invitation_role: Some(invitation.role.upstream()),
        material_url: invitation.material_url.map(|u| u.as_str().to_owned()),
    };
    let answer = app
        .tencent
        .call(&action, &ctx)
        .await
        .map_err(|e| ApiError::from_call(e, false))?;
    Ok((
        StatusCode::CREATED,
        Json(InvitationResponse {
            email: invitation.email.as_str().to_owned(),
            invitation_link: answer.data.invitation_link,
            request_id: answer.request_id,
        }),
    ))
}
