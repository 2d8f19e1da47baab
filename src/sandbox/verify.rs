//! Checking a request as Tencent does: the headers, the timestamp window, the credential scope and
//! the TC3-HMAC-SHA256 signature.

use axum::http::HeaderMap;
use secrecy::ExposeSecret;

use super::state::{Refusal, SandboxState};
use super::{SERVICE, VERSION};
use crate::tencent::sign;

/// Most a timestamp may differ from the simulator's clock, as Tencent allows.
const MAX_SKEW_SECS: i64 = 300;

const ACTIONS: [&str; 8] = [
    "CreateAndSendClientInvitationMail",
    "DescribeCustomerInfo",
    "QueryInvitationInfo",
    "AllocateCustomerCredit",
    "QueryCreditAllocationHistory",
    "QueryCreditByUinList",
    "QueryCustomersCredit",
    "QueryPartnerCredit",
];

pub(super) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Checks headers, timestamp and signature; returns the caller's key id.
pub(super) fn verify(
    state: &SandboxState,
    headers: &HeaderMap,
    body: &[u8],
    action: &str,
) -> Result<String, Refusal> {
    match header(headers, "x-tc-version") {
        None => {
            return Err((
                "MissingParameter",
                "The request is missing X-TC-Version.".into(),
            ));
        }
        Some(v) if v != VERSION => {
            return Err((
                "NoSuchVersion",
                format!("The API version `{v}` does not exist."),
            ));
        }
        _ => {}
    }
    if action.is_empty() {
        return Err((
            "MissingParameter",
            "The request is missing X-TC-Action.".into(),
        ));
    }
    if !ACTIONS.contains(&action) {
        return Err((
            "InvalidAction",
            format!("The action `{action}` does not exist."),
        ));
    }
    let content_type = header(headers, "content-type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !matches!(
        content_type.as_str(),
        "application/json" | "application/json; charset=utf-8"
    ) {
        return Err((
            "InvalidParameter",
            "Content-Type must be application/json.".into(),
        ));
    }
    let timestamp: i64 = header(headers, "x-tc-timestamp")
        .ok_or((
            "MissingParameter",
            "The request is missing X-TC-Timestamp.".to_owned(),
        ))?
        .parse()
        .map_err(|_| {
            (
                "InvalidParameter",
                "X-TC-Timestamp must be Unix seconds.".to_owned(),
            )
        })?;
    let now = state.config.clock.now_unix_secs();
    if now.abs_diff(timestamp) > MAX_SKEW_SECS.unsigned_abs() {
        return Err((
            "AuthFailure.SignatureExpire",
            "The signature has expired: the timestamp differs from server time by more than 5 minutes.".into(),
        ));
    }
    let signature_failure = |why: &str| {
        (
            "AuthFailure.SignatureFailure",
            format!("The signature is invalid: {why}."),
        )
    };
    let authorization = header(headers, "authorization")
        .ok_or_else(|| signature_failure("no Authorization header"))?;
    let parsed = sign::parse_authorization(authorization)
        .ok_or_else(|| signature_failure("malformed Authorization"))?;
    if parsed.service != SERVICE {
        return Err(signature_failure("wrong service in the credential scope"));
    }
    let key = match state
        .config
        .keys
        .iter()
        .find(|k| k.secret_id == parsed.secret_id)
    {
        Some(key) => key.clone(),
        None => state.temporary_key(&parsed.secret_id)?,
    };
    if sign::utc_date(timestamp).as_deref() != Some(parsed.date.as_str()) {
        return Err(signature_failure(
            "the credential date is not the timestamp's UTC date",
        ));
    }
    let names = &parsed.signed_headers;
    if !names.iter().any(|n| n == "content-type") || !names.iter().any(|n| n == "host") {
        return Err(signature_failure("content-type and host must be signed"));
    }
    let mut signed = Vec::with_capacity(names.len());
    for name in names {
        let value =
            header(headers, name).ok_or_else(|| signature_failure("a signed header is missing"))?;
        signed.push((name.as_str(), value));
    }
    let payload_hash = sign::sha256_hex(body);
    let derived = sign::derive_key(key.secret_key.expose_secret(), &parsed.date, SERVICE);
    let matches = |signed: &[(&str, &str)]| {
        let (canonical, _) = sign::canonical_request(signed, &payload_hash);
        let to_sign = sign::string_to_sign(timestamp, &parsed.date, SERVICE, &canonical);
        sign::signature(&derived, &to_sign) == parsed.signature
    };
    // Tencent's endpoints use the default port, so its SDKs sign the host as configured: some
    // with the port a test endpoint has (Python), some without it (Node.js). Both are accepted.
    if !matches(&signed) && !host_without_port(&signed).is_some_and(|other| matches(&other)) {
        return Err(signature_failure("the signature does not match"));
    }
    match (&key.token, header(headers, "x-tc-token")) {
        (Some(expected), Some(got)) if expected.expose_secret() == got => {}
        (None, None) => {}
        _ => return Err(("AuthFailure.TokenFailure", "The token is invalid.".into())),
    }
    Ok(key.secret_id.clone())
}

/// The signed headers with the port taken off `host`, if it has one.
fn host_without_port<'a>(signed: &[(&'a str, &'a str)]) -> Option<Vec<(&'a str, &'a str)>> {
    let i = signed.iter().position(|(name, _)| *name == "host")?;
    let (bare, port) = signed[i].1.rsplit_once(':')?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut other = signed.to_vec();
    other[i].1 = bare;
    Some(other)
}
