//! What Tencent's error codes mean to the gateway. Codes are matched, messages never are
//! (Tencent rewords them).

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
            ("FailedOperation", Other),
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
