//! The sources of the chain: the environment (and `*_FILE` files), the profile file, the CVM
//! role's metadata service.

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;

use super::{Issued, Source};
use crate::config::{CredentialSettings, CredentialSourceSetting, Credentials};
use crate::env;

/// How a source is asked again.
#[derive(Debug, Clone)]
pub enum Origin {
    /// The environment; its `*_FILE` files are read again each time.
    Env,
    /// A profile file.
    File(PathBuf),
    /// The CVM metadata service at this base URL.
    CvmRole(String),
}

impl Origin {
    pub fn source(&self) -> Source {
        match self {
            Self::Env => Source::Env,
            Self::File(_) => Source::File,
            Self::CvmRole(_) => Source::CvmRole,
        }
    }

    /// The credentials this source gives now.
    pub async fn fetch(
        &self,
        lookup: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<Issued, String> {
        match self {
            Self::Env => from_env(lookup)?.ok_or_else(|| {
                format!(
                    "{} and {} (or their *_FILE variants) are not both set",
                    env::SECRET_ID,
                    env::SECRET_KEY
                )
            }),
            Self::File(path) => from_profile(path),
            Self::CvmRole(endpoint) => from_cvm(endpoint).await,
        }
    }
}

/// A variable's value, or the content of the file its `*_FILE` variant names; blank is unset.
fn value_or_file(
    lookup: &(dyn Fn(&str) -> Option<String> + Sync),
    name: &str,
) -> Result<Option<String>, String> {
    let direct = lookup(name).filter(|v| !v.trim().is_empty());
    if direct.is_some() {
        return Ok(direct.map(|v| v.trim().to_owned()));
    }
    let file_var = format!("{name}_FILE");
    match lookup(&file_var).filter(|v| !v.trim().is_empty()) {
        None => Ok(None),
        Some(path) => {
            let text = std::fs::read_to_string(path.trim())
                .map_err(|e| format!("{file_var}: cannot read {}: {e}", path.trim()))?;
            Ok(Some(text.trim().to_owned()).filter(|t| !t.is_empty()))
        }
    }
}

/// The environment's credentials, if both halves are set.
fn from_env(lookup: &(dyn Fn(&str) -> Option<String> + Sync)) -> Result<Option<Issued>, String> {
    let id = value_or_file(lookup, env::SECRET_ID)?;
    let key = value_or_file(lookup, env::SECRET_KEY)?;
    let token = match value_or_file(lookup, env::TOKEN)? {
        Some(token) => Some(token),
        None => value_or_file(lookup, env::SESSION_TOKEN)?,
    };
    Ok(match (id, key) {
        (Some(secret_id), Some(key)) => Some(Issued {
            credentials: Credentials {
                secret_id,
                secret_key: SecretString::from(key),
                token: token.map(SecretString::from),
            },
            expires: None,
            source: Source::Env,
        }),
        _ => None,
    })
}

/// The profile files the chain looks at, in order: `$TENCENTCLOUD_CREDENTIALS_FILE`, then
/// `~/.tencentcloud/credentials`, then `/etc/tencentcloud/credentials`.
pub fn profile_paths(lookup: &(dyn Fn(&str) -> Option<String> + Sync)) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(path) = lookup(env::CREDENTIALS_FILE).filter(|p| !p.trim().is_empty()) {
        paths.push(PathBuf::from(path.trim()));
    }
    if let Some(home) = lookup("HOME").filter(|h| !h.trim().is_empty()) {
        paths.push(Path::new(home.trim()).join(".tencentcloud/credentials"));
    }
    paths.push(PathBuf::from("/etc/tencentcloud/credentials"));
    paths
}

/// The `[default]` section of a profile file.
fn from_profile(path: &Path) -> Result<Issued, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (mut id, mut key, mut token) = (None, None, None);
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_owned();
            continue;
        }
        if section != "default" {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let value = Some(value.trim().to_owned()).filter(|v| !v.is_empty());
        match name.trim() {
            "secret_id" => id = value,
            "secret_key" => key = value,
            "token" => token = value,
            _ => {}
        }
    }
    match (id, key) {
        (Some(secret_id), Some(key)) => Ok(Issued {
            credentials: Credentials {
                secret_id,
                secret_key: SecretString::from(key),
                token: token.map(SecretString::from),
            },
            expires: None,
            source: Source::File,
        }),
        _ => Err(format!(
            "{}: [default] lacks secret_id or secret_key",
            path.display()
        )),
    }
}

const ROLE_PATH: &str = "/latest/meta-data/cam/security-credentials/";
/// The metadata service is on the instance's own network: it answers at once or not at all.
const METADATA_TIMEOUT: Duration = Duration::from_secs(2);

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
async fn from_cvm(endpoint: &str) -> Result<Issued, String> {
    let client = reqwest::Client::builder()
        .timeout(METADATA_TIMEOUT)
        .build()
        .map_err(|e| e.to_string())?;
    let base = endpoint.trim_end_matches('/');
    let get = |url: String| {
        let client = client.clone();
        async move {
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
            response.text().await.map_err(|e| e.to_string())
        }
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
    let issued: RoleCredentials = serde_json::from_str(&body)
        .map_err(|e| format!("the role's credentials are unreadable: {e}"))?;
    if issued.code.as_deref().is_some_and(|c| c != "Success") {
        return Err(format!(
            "the metadata service refused the role's credentials: {}",
            issued.code.unwrap_or_default()
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

/// The source `credentials.source` names, or the first of the chain that gives credentials;
/// the error says what each source lacked.
pub async fn discover(
    settings: &CredentialSettings,
    lookup: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<(Origin, Issued), String> {
    let profile = || {
        profile_paths(lookup)
            .into_iter()
            .find(|p| p.exists())
            .map(Origin::File)
    };
    let cvm = || Origin::CvmRole(settings.metadata_endpoint.clone());
    match settings.source {
        CredentialSourceSetting::Env => {
            let issued = Origin::Env.fetch(lookup).await?;
            Ok((Origin::Env, issued))
        }
        CredentialSourceSetting::File => {
            let origin = profile().ok_or_else(|| {
                format!(
                    "no profile file: looked at {}",
                    shown(&profile_paths(lookup))
                )
            })?;
            let issued = origin.fetch(lookup).await?;
            Ok((origin, issued))
        }
        CredentialSourceSetting::CvmRole => {
            let origin = cvm();
            let issued = origin.fetch(lookup).await?;
            Ok((origin, issued))
        }
        CredentialSourceSetting::Chain => {
            let mut lacked = Vec::new();
            if let Some(issued) = from_env(lookup)? {
                return Ok((Origin::Env, issued));
            }
            let missing: Vec<&str> = [env::SECRET_ID, env::SECRET_KEY]
                .into_iter()
                .filter(|name| value_or_file(lookup, name).ok().flatten().is_none())
                .collect();
            lacked.push(format!("env: {} not set", missing.join(" and ")));
            match profile() {
                Some(origin) => {
                    // A profile file that exists but is wrong is an error, not a reason to try
                    // the next source: the operator meant it.
                    let issued = origin.fetch(lookup).await?;
                    return Ok((origin, issued));
                }
                None => lacked.push(format!("file: none of {}", shown(&profile_paths(lookup)))),
            }
            match cvm().fetch(lookup).await {
                Ok(issued) => Ok((cvm(), issued)),
                Err(why) => {
                    lacked.push(format!("cvm_role: {why}"));
                    Err(format!("no credentials found ({})", lacked.join("; ")))
                }
            }
        }
    }
}

fn shown(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
