//! What an invitation may carry besides the address: the role and, for sub-agents, a material link.

use serde::Deserialize;

/// Who the invited customer becomes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize, utoipa::ToSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum InvitationRole {
    /// A customer of the partner (Tencent's default).
    #[default]
    Client,
    /// A second-level reseller.
    SubAgent,
}

impl InvitationRole {
    /// Tencent's `InvitationRole` value.
    pub fn upstream(self) -> &'static str {
        match self {
            Self::Client => "Client",
            Self::SubAgent => "SubAgent",
        }
    }
}

/// An absolute `http`/`https` link to material for a sub-agent, at most 2048 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaterialUrl(String);

impl MaterialUrl {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.len() > 2048 {
            return Err("must be at most 2048 characters");
        }
        let url = url::Url::parse(raw).map_err(|_| "must be an absolute URL")?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err("must be an http or https URL with a host");
        }
        Ok(Self(url.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn material_urls() {
        assert!(MaterialUrl::parse("https://example.com/kit.pdf").is_ok());
        for bad in [
            "",
            "example.com",
            "ftp://example.com/x",
            "javascript:alert(1)",
            "https://",
        ] {
            assert!(MaterialUrl::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(MaterialUrl::parse(&format!("https://e.com/{}", "a".repeat(2048))).is_err());
    }
}
