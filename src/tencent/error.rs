//! What Tencent's error codes mean to the gateway, and why a call failed. Codes are matched,
//! messages never are (Tencent rewords them).
//!
//! A failed call is a [`CallError`]; its [`Effect`] (not executed, maybe executed, refused) is
//! the one classification the rest of the gateway uses. The HTTP status each becomes is decided
//! in one place: [`crate::problem::ApiError::from_call`].

use std::time::Duration;

use crate::quota::QuotaExceeded;

/// What a failed call did to Tencent's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Known not to have executed (refused before sending, never sent, or refused by Tencent as
    /// "not now": rate limit, busy, credentials, mail cooldown): it may simply be made again
    /// later, and leaves no idempotency record behind.
    NotExecuted,
    /// It may have reached Tencent and run: for credit, the outcome is unknown.
    Unknown,
    /// Tencent answered a definite refusal: nothing ran, and trying again changes nothing.
    Refused,
}

/// Why a call did not succeed. `sent` says whether the request may have reached Tencent.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The gateway's limiter refused the call; nothing was sent.
    #[error("quota exceeded for {action}")]
    QuotaExceeded {
        action: &'static str,
        exceeded: QuotaExceeded,
    },
    /// Tencent answered with an error code.
    #[error("Tencent answered {}: {}", .0.code, .0.message)]
    Upstream(UpstreamError),
    /// No complete answer before the timeout.
    #[error("no answer from Tencent in time")]
    Timeout { sent: bool },
    /// The connection failed.
    #[error("transport failure: {detail}")]
    Transport { sent: bool, detail: String },
    /// A status other than 200 (a proxy or outage page); Tencent's own errors come with 200.
    #[error("Tencent answered HTTP {status}")]
    Status { status: u16 },
    /// A 200 answer that is not a valid envelope.
    #[error("unparsable answer: {detail}")]
    Unparsable { detail: String },
    /// The deadline passed before the call could be sent.
    #[error("deadline passed before the call could be sent")]
    DeadlineExceeded,
    /// Redis is unreachable and this replica holds no share of the quota it may use; nothing
    /// was sent.
    #[error("no quota available for {action} while the shared store is unreachable")]
    QuotaUnavailable {
        action: &'static str,
        retry_after: Duration,
    },
}

impl CallError {
    /// Worth sending again at once (within the deadline): a rate-limit refusal, or a request that
    /// never left.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Upstream(e) => e.class().is_retryable(),
            Self::Transport { sent, .. } | Self::Timeout { sent } => !sent,
            _ => false,
        }
    }

    /// What the failed call did to Tencent's state: the one classification credit, invitations,
    /// the audit and the problem mapping all go by.
    pub fn effect(&self) -> Effect {
        match self {
            Self::QuotaExceeded { .. } | Self::DeadlineExceeded | Self::QuotaUnavailable { .. } => {
                Effect::NotExecuted
            }
            Self::Transport { sent, .. } | Self::Timeout { sent } => {
                if *sent {
                    Effect::Unknown
                } else {
                    Effect::NotExecuted
                }
            }
            Self::Upstream(e) => match e.class() {
                ErrorClass::RateLimited
                | ErrorClass::Busy
                | ErrorClass::AuthFailure
                | ErrorClass::MailCooldown => Effect::NotExecuted,
                ErrorClass::Internal => Effect::Unknown,
                _ => Effect::Refused,
            },
            Self::Status { .. } | Self::Unparsable { .. } => Effect::Unknown,
        }
    }

    /// The `outcome` label of an attempt that was sent.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Upstream(_) => "error",
            Self::Timeout { .. } => "timeout",
            Self::Transport { .. } => "transport",
            Self::Status { .. } => "http_status",
            Self::Unparsable { .. } => "unparsable",
            Self::QuotaExceeded { .. } => "quota_exceeded",
            Self::DeadlineExceeded => "deadline",
            Self::QuotaUnavailable { .. } => "quota_unavailable",
        }
    }

    /// [`CallError::label`] from a closed set, for metrics: undocumented codes are `other`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Upstream(e) => super::error::code_label(&e.code),
            other => other.outcome(),
        }
    }

    /// A short label for logs: Tencent's code, or the kind of failure.
    pub fn label(&self) -> &str {
        match self {
            Self::Upstream(e) => &e.code,
            other => other.outcome(),
        }
    }
}

/// An error answer from Tencent: `{"Response": {"Error": {"Code", "Message"}, "RequestId"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamError {
    pub code: String,
    pub message: String,
    pub request_id: Option<String>,
}

impl UpstreamError {
    pub fn class(&self) -> ErrorClass {
        ErrorClass::of(&self.code)
    }
}

/// The gateway-relevant meaning of an error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// `RequestLimitExceeded*`: not executed; retry after a backoff.
    RateLimited,
    /// `FailedOperation.SendMailLimit180`: this address got a link less than 180 s ago.
    MailCooldown,
    /// `OperationDenied.ServiceBusy`, `ServiceUnavailable*`: try again later.
    Busy,
    /// `InvalidParameter*`, `InvalidParameterValue*`, `MissingParameter`, `UnknownParameter`.
    InvalidInput,
    /// `FailedOperation.BalanceInsufficient`: the partner lacks allocable credit.
    BalanceInsufficient,
    /// `FailedOperation.MailIsRegistered`: the address already has an account.
    MailRegistered,
    /// `UnauthorizedOperation*`: the partner may not act on this customer.
    Unauthorized,
    /// Any other `FailedOperation*`: Tencent refused the operation in the account's current
    /// state (e.g. an allocation that would take a customer's credit below 0).
    FailedOperation,
    /// `AuthFailure*`: the gateway's own credentials are wrong or expired.
    AuthFailure,
    /// `InternalError*`: Tencent failed; whether the action ran is unknown.
    Internal,
    /// Anything else: a definite refusal the gateway has no specific mapping for.
    Other,
}

impl ErrorClass {
    pub fn of(code: &str) -> Self {
        let family = code.split('.').next().unwrap_or(code);
        match (family, code) {
            ("RequestLimitExceeded", _) => Self::RateLimited,
            (_, "FailedOperation.SendMailLimit180") => Self::MailCooldown,
            (_, "FailedOperation.BalanceInsufficient") => Self::BalanceInsufficient,
            (_, "FailedOperation.MailIsRegistered") => Self::MailRegistered,
            (_, "OperationDenied.ServiceBusy") | ("ServiceUnavailable", _) => Self::Busy,
            (
                "InvalidParameter"
                | "InvalidParameterValue"
                | "MissingParameter"
                | "UnknownParameter",
                _,
            ) => Self::InvalidInput,
            ("AuthFailure", _) => Self::AuthFailure,
            ("UnauthorizedOperation", _) => Self::Unauthorized,
            ("InternalError", _) => Self::Internal,
            ("FailedOperation", _) => Self::FailedOperation,
            _ => Self::Other,
        }
    }

    /// Only a rate-limit refusal is known not to have executed and worth retrying.
    pub fn is_retryable(self) -> bool {
        self == Self::RateLimited
    }
}

/// Every error code Tencent documents for the actions the gateway calls (common codes and the
/// actions' own): the values metric labels may take. Any other code is labelled `other`, so a
/// misbehaving upstream cannot grow `/metrics` without bound; the code itself still goes to the
/// log and to the problem's `upstreamCode`.
pub const DOCUMENTED_CODES: &[&str] = &[
    "AuthFailure",
    "AuthFailure.InvalidSecretId",
    "AuthFailure.MFAFailure",
    "AuthFailure.SecretIdNotFound",
    "AuthFailure.SignatureExpire",
    "AuthFailure.SignatureFailure",
    "AuthFailure.TokenFailure",
    "AuthFailure.UnauthorizedOperation",
    "DryRunOperation",
    "FailedOperation",
    "FailedOperation.BalanceInsufficient",
    "FailedOperation.MailIsRegistered",
    "FailedOperation.SendMailLimit180",
    "InternalError",
    "InvalidAction",
    "InvalidParameter",
    "InvalidParameter.MailFormatIncorrect",
    "InvalidParameterValue",
    "InvalidParameterValue.CreditAmountOutOfRange",
    "InvalidRequest",
    "IpInBlacklist",
    "IpNotInWhitelist",
    "LimitExceeded",
    "MissingParameter",
    "NoSuchProduct",
    "NoSuchVersion",
    "OperationDenied",
    "OperationDenied.ServiceBusy",
    "RequestLimitExceeded",
    "RequestLimitExceeded.GlobalRegionUinLimitExceeded",
    "RequestLimitExceeded.IPLimitExceeded",
    "RequestLimitExceeded.UinLimitExceeded",
    "RequestSizeLimitExceeded",
    "ResourceInUse",
    "ResourceInsufficient",
    "ResourceNotFound",
    "ResourceUnavailable",
    "ServiceUnavailable",
    "UnauthorizedOperation",
    "UnauthorizedOperation.UinNoAuth",
    "UnknownParameter",
    "UnsupportedOperation",
    "UnsupportedProtocol",
    "UnsupportedRegion",
];

/// `code` as a metric label: itself when documented, `other` otherwise.
pub fn code_label(code: &str) -> &'static str {
    DOCUMENTED_CODES
        .iter()
        .find(|known| **known == code)
        .copied()
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::ErrorClass::{self, *};

    #[test]
    fn only_documented_codes_become_labels() {
        assert_eq!(
            super::code_label("RequestLimitExceeded"),
            "RequestLimitExceeded"
        );
        assert_eq!(
            super::code_label("FailedOperation.SendMailLimit180"),
            "FailedOperation.SendMailLimit180"
        );
        assert_eq!(super::code_label("Made.Up.Code"), "other");
        assert_eq!(super::code_label(&"X".repeat(5000)), "other");
        let mut sorted = super::DOCUMENTED_CODES.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(
            sorted.len(),
            super::DOCUMENTED_CODES.len(),
            "listed once each"
        );
    }

    #[test]
    fn codes_map_to_classes() {
        for (code, class) in [
            ("RequestLimitExceeded", RateLimited),
            ("RequestLimitExceeded.UinLimitExceeded", RateLimited),
            (
                "RequestLimitExceeded.GlobalRegionUinLimitExceeded",
                RateLimited,
            ),
            ("FailedOperation.SendMailLimit180", MailCooldown),
            ("OperationDenied.ServiceBusy", Busy),
            ("ServiceUnavailable", Busy),
            ("InvalidParameter", InvalidInput),
            ("InvalidParameter.MailFormatIncorrect", InvalidInput),
            ("InvalidParameterValue.CreditAmountOutOfRange", InvalidInput),
            ("MissingParameter", InvalidInput),
            ("UnknownParameter", InvalidInput),
            ("FailedOperation.BalanceInsufficient", BalanceInsufficient),
            ("FailedOperation.MailIsRegistered", MailRegistered),
            ("UnauthorizedOperation.UinNoAuth", Unauthorized),
            ("UnauthorizedOperation", Unauthorized),
            ("AuthFailure.SignatureFailure", AuthFailure),
            ("AuthFailure.UnauthorizedOperation", AuthFailure),
            ("AuthFailure.SecretIdNotFound", AuthFailure),
            ("InternalError", Internal),
            ("FailedOperation", FailedOperation),
            ("FailedOperation.SomethingUndocumented", FailedOperation),
            ("OperationDenied", Other),
            ("InvalidAction", Other),
            ("InvalidParameterX", Other),
            ("", Other),
        ] {
            assert_eq!(ErrorClass::of(code), class, "{code}");
        }
        assert!(RateLimited.is_retryable());
        assert!(!Internal.is_retryable() && !Busy.is_retryable());
    }
}
