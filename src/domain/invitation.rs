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

/// An absolute `http`/`https` link to material for a sub-agent, at most 2048 characters as sent
/// (normalised and percent-encoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaterialUrl(String);

const MAX_URL: usize = 2048;

impl MaterialUrl {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.chars().count() > MAX_URL {
            return Err("must be at most 2048 characters");
        }
        let url = url::Url::parse(raw).map_err(|_| "must be an absolute URL")?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err("must be an http or https URL with a host");
        }
        // Percent-encoding can make the URL sent longer than the one received.
        let normalised = url.to_string();
        if normalised.len() > MAX_URL {
            return Err("must be at most 2048 characters once percent-encoded");
        }
        Ok(Self(normalised))
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

    /// Found by `fuzz/run.sh` (domain target): 1,000 characters that percent-encode to 3,000.
    /// The limit applies to the URL as it is sent.
    #[test]
    fn fuzz_regression_percent_encoding_cannot_pass_the_limit() {
        let raw = format!("http://e.com/{}", "ǳ".repeat(1000));
        assert!(raw.chars().count() <= 2048);
        assert_eq!(
            MaterialUrl::parse(&raw),
            Err("must be at most 2048 characters once percent-encoded")
        );
        let fits = format!("http://e.com/{}", "ǳ".repeat(300));
        assert!(MaterialUrl::parse(&fits).unwrap().as_str().len() <= 2048);
    }
}
