//! STS `AssumeRoleWithWebIdentity` (service `sts`, version 2018-08-13), as TKE workload identity
//! uses it: an unsigned call (`Authorization: SKIP`) whose proof is a web-identity token (a JWT)
//! from the identity provider's issuer; the answer is temporary credentials the API accepts with
//! their token until they expire.
//!
//! The simulator knows one identity provider ([`PROVIDER_ID`], issuer `SandboxConfig::oidc_issuer`)
//! and one role ([`ROLE_ARN`]). It checks the token's issuer and expiry, not its signature: a
//! real provider's keys are not here.

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::Response;
use base64::Engine;
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};

use super::handlers::{envelope, error_answer};
use super::state::{Refusal, SandboxState};
use super::verify::header;

pub const ACTION: &str = "AssumeRoleWithWebIdentity";
pub const VERSION: &str = "2018-08-13";
/// The identity provider registered in the simulated CAM.
pub const PROVIDER_ID: &str = "partner-gateway-tke";
/// The role a web identity may assume.
pub const ROLE_ARN: &str = "qcs::cam::uin/100000000001:roleName/partner-gateway-role";
/// The issuer a token must come from, unless the configuration names another.
pub const DEFAULT_ISSUER: &str = "https://oidc.sandbox.invalid";
/// STS's longest session.
const MAX_DURATION_S: u64 = 43_200;

/// Answers one `AssumeRoleWithWebIdentity` call.
pub fn answer(
    state: &SandboxState,
    headers: &HeaderMap,
    body: &Bytes,
    request_id: &str,
) -> Response {
    if let Some(super::FaultKind::Error { code, message }) = state.take_fault(ACTION) {
        return error_answer(&code, &message, request_id);
    }
    match assume(state, headers, body) {
        Ok(fields) => envelope(fields, request_id),
        Err((code, message)) => error_answer(code, &message, request_id),
    }
}

fn param_error(message: impl Into<String>) -> Refusal {
    ("InvalidParameter.ParamError", message.into())
}

fn token_error(message: &str) -> Refusal {
    ("InvalidParameter.WebIdentityTokenError", message.to_owned())
}

fn assume(
    state: &SandboxState,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Map<String, Value>, Refusal> {
    if header(headers, "x-tc-version") != Some(VERSION) {
        return Err(param_error(format!("{ACTION} is in version {VERSION}")));
    }
    if header(headers, "x-tc-region").is_none_or(str::is_empty) {
        return Err((
            "MissingParameter",
            "The request is missing a required parameter `Region`.".into(),
        ));
    }
    let params: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|_| param_error("the request body is not a JSON object"))?;
    let text = |name: &str| -> Result<&str, Refusal> {
        match params.get(name) {
            Some(Value::String(v)) if !v.is_empty() => Ok(v),
            None => Err((
                "MissingParameter",
                format!("The request is missing a required parameter `{name}`."),
            )),
            Some(_) => Err(param_error(format!("{name} must be a non-empty string"))),
        }
    };
    let provider = text("ProviderId")?;
    let token = text("WebIdentityToken")?;
    let role_arn = text("RoleArn")?;
    text("RoleSessionName")?;
    let duration = match params.get("DurationSeconds") {
        None => 7200,
        Some(v) => v
            .as_u64()
            .filter(|d| (1..=MAX_DURATION_S).contains(d))
            .ok_or_else(|| param_error(format!("DurationSeconds must be 1 to {MAX_DURATION_S}")))?,
    };
    if provider != PROVIDER_ID {
        return Err(param_error("no identity provider of this name"));
    }
    let claims = token
        .split('.')
        .nth(1)
        .and_then(|c| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(c)
                .ok()
        })
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .filter(|_| token.split('.').count() == 3)
        .ok_or_else(|| token_error("The web identity token is not a JWT."))?;
    if claims["iss"].as_str() != Some(state.config.oidc_issuer.as_str()) {
        return Err(token_error(
            "The web identity token was not issued by the identity provider's issuer.",
        ));
    }
    let now = state.config.clock.now_unix_secs();
    match claims["exp"].as_i64() {
        Some(exp) if exp > now => {}
        Some(_) => return Err(token_error("The web identity token has expired.")),
        None => return Err(token_error("The web identity token has no expiry.")),
    }
    // The whole ARN: the role of another account is not this partner's role.
    if role_arn != ROLE_ARN {
        return Err((
            "ResourceNotFound.RoleNotExist",
            "The role does not exist.".into(),
        ));
    }
    let ttl = std::time::Duration::from_secs(duration).min(state.config.temporary_ttl);
    let issued = state.issue_temporary(ttl);
    let key = &issued.key;
    let mut fields = Map::new();
    fields.insert(
        "Credentials".into(),
        json!({
            "Token": key.token.as_ref().map(|t| t.expose_secret().to_owned()),
            "TmpSecretId": key.secret_id,
            "TmpSecretKey": key.secret_key.expose_secret(),
        }),
    );
    fields.insert("ExpiredTime".into(), issued.expires_unix.into());
    fields.insert(
        "Expiration".into(),
        super::state::timestamp_iso(issued.expires_unix).into(),
    );
    Ok(fields)
}
