//! The sources that issue temporary credentials over HTTP: the CVM instance's metadata service
//! and, for TKE workload identity, STS `AssumeRoleWithWebIdentity`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use secrecy::SecretString;
use serde::Deserialize;

use super::{Issued, Source};
use crate::clock::{Clock, SystemClock};
use crate::config::Credentials;
use crate::env;

const ROLE_PATH: &str = "/latest/meta-data/cam/security-credentials/";
/// The metadata service is on the instance's own network: it answers at once or not at all.
const METADATA_TIMEOUT: Duration = Duration::from_secs(2);
/// STS is on the internet, like the partner API.
const STS_TIMEOUT: Duration = Duration::from_secs(10);
/// What STS is asked for: the SDKs' default (the most is 43200).
const STS_DURATION_S: u64 = 7200;
const STS_VERSION: &str = "2018-08-13";
const STS_ACTION: &str = "AssumeRoleWithWebIdentity";
/// Longest web-identity token file read (a JWT is a few kilobytes).
pub const MAX_FILE_BYTES: u64 = 64 * 1024;

/// The metadata service's client: never through a proxy (the service is link-local), one for
/// the process so each refresh does not build a connection pool.
fn metadata_client() -> Result<&'static reqwest::Client, String> {
    static CLIENT: OnceLock<Option<reqwest::Client>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .timeout(METADATA_TIMEOUT)
                .no_proxy()
                .build()
                .ok()
        })
        .as_ref()
        .ok_or_else(|| "cannot build an HTTP client for the metadata service".to_owned())
}

/// STS's client: the process's proxy settings apply, as for the partner API.
fn sts_client() -> Result<&'static reqwest::Client, String> {
    static CLIENT: OnceLock<Option<reqwest::Client>> = OnceLock::new();
    CLIENT
        .get_or_init(|| reqwest::Client::builder().timeout(STS_TIMEOUT).build().ok())
        .as_ref()
        .ok_or_else(|| "cannot build an HTTP client for STS".to_owned())
}

/// An answer's text, at most [`MAX_FILE_BYTES`]: a misbehaving service cannot make the gateway
/// hold an answer of any size.
async fn capped_text(mut response: reqwest::Response) -> Result<String, String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("the answer broke off: {e}"))?
    {
        if (bytes.len() + chunk.len()) as u64 > MAX_FILE_BYTES {
            return Err(format!("the answer is larger than {MAX_FILE_BYTES} bytes"));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|_| "the answer is not UTF-8 text".to_owned())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RoleCredentials {
    tmp_secret_id: String,
    tmp_secret_key: String,
    token: String,
    expired_time: i64,
    #[serde(default)]
    code: Option<String>,
}

/// The CVM role's temporary credentials: the role's name, then its credentials.
pub async fn from_cvm(endpoint: &str) -> Result<Issued, String> {
    let client = metadata_client()?;
    let base = endpoint.trim_end_matches('/');
    let get = |url: String| async move {
        let response = client
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("the metadata service at {base} did not answer: {e}"))?;
        if !response.status().is_success() {
            return Err(format!(
                "the metadata service answered HTTP {} for {url}",
                response.status()
            ));
        }
        capped_text(response).await
    };
    let roles = get(format!("{base}{ROLE_PATH}")).await?;
    let role = roles
        .lines()
        .map(str::trim)
        .find(|r| !r.is_empty())
        .ok_or("the instance has no CAM role")?
        .to_owned();
    if !role
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@' | b'+' | b'='))
    {
        return Err("the metadata service named a role that is not a role name".into());
    }
    let body = get(format!("{base}{ROLE_PATH}{role}")).await?;
    // serde's message may quote the body, which holds secrets: a fixed text instead.
    let issued: RoleCredentials = serde_json::from_str(&body).map_err(|_| {
        "the role's credentials are not what the metadata service gives \
         (TmpSecretId, TmpSecretKey, Token, ExpiredTime)"
            .to_owned()
    })?;
    if issued.code.as_deref().is_some_and(|c| c != "Success") {
        return Err(format!(
            "the metadata service refused the role's credentials: {}",
            shortened(&issued.code.unwrap_or_default())
        ));
    }
    Ok(Issued {
        credentials: Credentials {
            secret_id: issued.tmp_secret_id,
            secret_key: SecretString::from(issued.tmp_secret_key),
            token: Some(SecretString::from(issued.token)),
        },
        expires: Some(issued.expired_time),
        source: Source::CvmRole,
    })
}

/// TKE workload identity: what the pod's environment says, read once; the token file is read
/// again on every exchange, since the kubelet rotates it.
#[derive(Debug, Clone)]
pub struct Oidc {
    pub region: String,
    pub provider_id: String,
    pub token_file: PathBuf,
    pub role_arn: String,
    pub sts_endpoint: String,
}

impl Oidc {
    /// The `TKE_*` variables; the error names each one missing.
    pub fn from_env(
        lookup: &(dyn Fn(&str) -> Option<String> + Sync),
        sts_endpoint: &str,
    ) -> Result<Self, String> {
        let get = |name| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let names = [
            env::TKE_REGION,
            env::TKE_PROVIDER_ID,
            env::TKE_WEB_IDENTITY_TOKEN_FILE,
            env::TKE_ROLE_ARN,
        ];
        match names.map(get) {
            [
                Some(region),
                Some(provider_id),
                Some(token_file),
                Some(role_arn),
            ] => Ok(Self {
                region,
                provider_id,
                token_file: PathBuf::from(token_file),
                role_arn,
                sts_endpoint: sts_endpoint.to_owned(),
            }),
            values => {
                let missing: Vec<&str> = names
                    .iter()
                    .zip(values)
                    .filter_map(|(name, value)| value.is_none().then_some(*name))
                    .collect();
                Err(format!("{} not set", missing.join(", ")))
            }
        }
    }

    /// Exchanges the pod's current web-identity token for temporary credentials.
    pub async fn fetch(&self) -> Result<Issued, String> {
        let token = super::sources::read_small(&self.token_file)
            .await
            .map_err(|e| format!("{}: {e}", env::TKE_WEB_IDENTITY_TOKEN_FILE))?;
        let token = token.trim();
        check_token(token, &self.token_file, SystemClock.now_unix_secs())?;
        let client = sts_client()?;
        let body = serde_json::json!({
            "ProviderId": self.provider_id,
            "WebIdentityToken": token,
            "RoleArn": self.role_arn,
            "RoleSessionName": format!("partner-gateway-{}", SystemClock.now_unix_secs()),
            "DurationSeconds": STS_DURATION_S,
        });
        // AssumeRoleWithWebIdentity is not signed: the token is the proof.
        let response = client
            .post(&self.sts_endpoint)
            .header("content-type", "application/json")
            .header("x-tc-action", STS_ACTION)
            .header("x-tc-version", STS_VERSION)
            .header("x-tc-region", &self.region)
            .header("x-tc-timestamp", SystemClock.now_unix_secs().to_string())
            .header("authorization", "SKIP")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| format!("STS at {} did not answer: {e}", self.sts_endpoint))?;
        let status = response.status();
        let text = capped_text(response)
            .await
            .map_err(|e| format!("STS at {}: {e}", self.sts_endpoint))?;
        sts_answer(&text).map_err(|why| match why {
            StsFailure::Refused(code, message) => {
                // Never repeat the token, should STS quote it back.
                let message = message.replace(token, "[the token]");
                format!("STS refused the web-identity token: {code}: {message}")
            }
            StsFailure::Unreadable => {
                format!("STS answered HTTP {status} with something that is not its answer")
            }
        })
    }
}

/// A web-identity token STS would refuse, refused here with a clearer reason: not a JWT, or
/// expired (the kubelet stopped rotating it). Only the claims' `exp` is read; STS checks the rest.
fn check_token(token: &str, file: &Path, now: i64) -> Result<(), String> {
    let not_jwt = || {
        format!(
            "{} ({}) does not hold a JWT",
            env::TKE_WEB_IDENTITY_TOKEN_FILE,
            file.display()
        )
    };
    let mut parts = token.split('.');
    let (Some(_), Some(claims), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(not_jwt());
    };
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims.trim_end_matches('='))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .ok_or_else(not_jwt)?;
    if let Some(exp) = claims.get("exp").and_then(serde_json::Value::as_i64)
        && exp <= now
    {
        return Err(format!(
            "the web-identity token in {} expired {} s ago (the kubelet rotates a projected \
             service-account token: is the volume mounted, and the pod's token still rotating?)",
            file.display(),
            now.saturating_sub(exp)
        ));
    }
    Ok(())
}

#[derive(Debug, PartialEq)]
enum StsFailure {
    Refused(String, String),
    Unreadable,
}

/// Reads STS's answer; never panics on a missing field (tencentcloud-sdk-go once did, PR #253).
fn sts_answer(text: &str) -> Result<Issued, StsFailure> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Envelope {
        response: Answer,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Answer {
        error: Option<Refusal>,
        credentials: Option<Temporary>,
        expired_time: Option<i64>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Refusal {
        code: String,
        message: String,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Temporary {
        tmp_secret_id: String,
        tmp_secret_key: String,
        token: String,
    }
    let envelope: Envelope = serde_json::from_str(text).map_err(|_| StsFailure::Unreadable)?;
    match envelope.response {
        Answer {
            error: Some(refusal),
            ..
        } => Err(StsFailure::Refused(
            shortened(&refusal.code),
            shortened(&refusal.message),
        )),
        Answer {
            credentials: Some(issued),
            expired_time: Some(expires),
            ..
        } => Ok(Issued {
            credentials: Credentials {
                secret_id: issued.tmp_secret_id,
                secret_key: SecretString::from(issued.tmp_secret_key),
                token: Some(SecretString::from(issued.token)),
            },
            expires: Some(expires),
            source: Source::TkeOidc,
        }),
        _ => Err(StsFailure::Unreadable),
    }
}

/// At most 200 characters of a remote party's text, for an error message.
fn shortened(text: &str) -> String {
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: serde_json::Value) -> String {
        let part = |v: &serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        format!(
            "{}.{}.c2ln",
            part(&serde_json::json!({"alg": "RS256"})),
            part(&claims)
        )
    }

    #[test]
    fn an_expired_or_malformed_web_identity_token_is_a_clear_error() {
        let file = Path::new("/var/run/secrets/tke/token");
        assert!(check_token(&jwt(serde_json::json!({"exp": 2000})), file, 1000).is_ok());
        let expired = check_token(&jwt(serde_json::json!({"exp": 1000})), file, 1300).unwrap_err();
        assert!(expired.contains("expired 300 s ago"), "{expired}");
        // Any `exp` a file can hold: an error or not, never an overflow.
        for exp in [i64::MIN, i64::MIN + 1, -1, 0] {
            let claims = serde_json::json!({ "exp": exp });
            assert!(check_token(&jwt(claims), file, i64::MAX).is_err());
        }
        for junk in ["", "not-a-jwt", "a.b", "a.!!!.c", "a.b.c.d"] {
            let error = check_token(junk, file, 0).unwrap_err();
            assert!(error.contains("does not hold a JWT"), "{junk}: {error}");
        }
    }

    #[test]
    fn any_sts_answer_is_credentials_or_an_error_never_a_panic() {
        let ok = r#"{"Response":{"Credentials":{"Token":"t","TmpSecretId":"AKIDtmp","TmpSecretKey":"k"},"ExpiredTime":1700000000,"Expiration":"2023-11-14T22:13:20Z","RequestId":"r"}}"#;
        let issued = sts_answer(ok).unwrap();
        assert_eq!(issued.expires, Some(1_700_000_000));
        assert_eq!(issued.source, Source::TkeOidc);
        let refused = r#"{"Response":{"Error":{"Code":"InvalidParameter.WebIdentityTokenError","Message":"token expired"},"RequestId":"r"}}"#;
        assert_eq!(
            sts_answer(refused).unwrap_err(),
            StsFailure::Refused(
                "InvalidParameter.WebIdentityTokenError".into(),
                "token expired".into()
            )
        );
        for broken in [
            "",
            "null",
            "{}",
            r#"{"Response":{}}"#,
            r#"{"Response":{"Credentials":null,"ExpiredTime":1}}"#,
            r#"{"Response":{"Credentials":{"Token":"t"},"ExpiredTime":1}}"#,
            r#"{"Response":{"Credentials":{"Token":"t","TmpSecretId":"a","TmpSecretKey":"k"}}}"#,
        ] {
            assert_eq!(
                sts_answer(broken).unwrap_err(),
                StsFailure::Unreadable,
                "{broken}"
            );
        }
    }
}
