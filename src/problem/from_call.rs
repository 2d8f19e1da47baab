//! Where a failed upstream call becomes the problem the caller gets: a Tencent error code's class
//! decides the status, a call that may have executed is `credit-outcome-unknown` for credit, and
//! the detail never carries hosts, addresses or library messages.

use http::StatusCode;

use super::{ApiError, ProblemType, RateLimitInfo, UpstreamRef};
use crate::tencent::{CallError, ErrorClass};

impl ApiError {
    fn with_upstream(mut self, code: &str, request_id: Option<String>) -> Self {
        self.upstream = Some(Box::new(UpstreamRef {
            code: code.to_owned(),
            request_id,
        }));
        self
    }

    /// Maps a failed credit allocation to the problem the caller gets: like
    /// [`ApiError::from_call`], except that anything that may have executed
    /// ([`crate::tencent::Effect::Unknown`]) is `credit-outcome-unknown`, never resent blindly.
    pub fn from_credit_call(error: CallError) -> Self {
        use ProblemType as P;
        if error.effect() == crate::tencent::Effect::Unknown {
            let timed_out = matches!(error, CallError::Timeout { .. });
            let mut problem = Self::new(
                P::CreditOutcomeUnknown,
                format!(
                    "{}; the allocation may or may not have been applied",
                    public_detail(&error)
                ),
            )
            .with_status(if timed_out {
                StatusCode::GATEWAY_TIMEOUT
            } else {
                StatusCode::BAD_GATEWAY
            });
            if let CallError::Upstream(e) = &error {
                problem = problem.with_upstream(&e.code, e.request_id.clone());
            }
            return problem;
        }
        Self::from_call(error)
    }

    /// Where a Tencent error code (or another failure of an upstream call) becomes an HTTP
    /// status: the one mapping from a failed call to the problem the caller gets.
    pub fn from_call(error: CallError) -> Self {
        use ProblemType as P;
        match error {
            CallError::QuotaExceeded { action, exceeded } => {
                let secs = exceeded.retry_after_secs();
                let mut problem = Self::new(
                    P::QuotaExceeded,
                    format!(
                        "{action} is limited to {} calls per second for the whole gateway fleet; the next free slot is beyond the wait budget",
                        exceeded.limit
                    ),
                )
                .retry_after(secs);
                problem.rate_limit = Some(Box::new(RateLimitInfo {
                    policy: action,
                    quota: exceeded.limit,
                    remaining: 0,
                    reset_secs: secs,
                }));
                problem
            }
            CallError::Upstream(e) => {
                let request_id = e.request_id.clone();
                let problem = match e.class() {
                    ErrorClass::RateLimited => {
                        Self::new(P::UpstreamRateLimited, e.message).retry_after(1)
                    }
                    ErrorClass::MailCooldown => {
                        Self::new(P::MailCooldown, e.message).retry_after(180)
                    }
                    ErrorClass::Busy => Self::new(P::UpstreamUnavailable, e.message).retry_after(5),
                    ErrorClass::InvalidInput => Self::new(P::UpstreamRejectedInput, e.message),
                    ErrorClass::BalanceInsufficient => Self::new(P::InsufficientCredit, e.message),
                    ErrorClass::MailRegistered => Self::new(P::EmailAlreadyRegistered, e.message),
                    ErrorClass::Unauthorized => Self::new(P::CustomerNotAuthorized, e.message),
                    ErrorClass::FailedOperation => Self::new(P::OperationRefused, e.message),
                    ErrorClass::AuthFailure => Self::new(
                        P::UpstreamAuthFailed,
                        "Tencent Cloud rejected the gateway's credentials",
                    ),
                    ErrorClass::Internal | ErrorClass::Other => Self::new(
                        P::UpstreamError,
                        format!("Tencent Cloud answered {}: {}", e.code, e.message),
                    ),
                };
                problem.with_upstream(&e.code, request_id)
            }
            CallError::QuotaUnavailable { retry_after, .. } => {
                Self::new(P::StoreUnavailable, public_detail(&error))
                    .retry_after(retry_after.as_secs().max(1))
            }
            CallError::Timeout { .. } | CallError::DeadlineExceeded => {
                Self::new(P::UpstreamTimeout, public_detail(&error))
            }
            CallError::Transport { .. }
            | CallError::Status { .. }
            | CallError::Unparsable { .. } => Self::new(P::UpstreamError, public_detail(&error)),
        }
    }
}

/// What a caller may learn of a failed call: the kind of failure, never hosts, addresses or
/// library messages (those are in the log line of the request).
fn public_detail(error: &CallError) -> String {
    match error {
        CallError::Timeout { .. } => "Tencent Cloud did not answer in time".into(),
        CallError::DeadlineExceeded => {
            "the request deadline passed before Tencent Cloud could be called".into()
        }
        CallError::Transport { sent: false, .. } => {
            "the connection to Tencent Cloud could not be established".into()
        }
        CallError::Transport { sent: true, .. } => {
            "the connection to Tencent Cloud broke before a complete answer".into()
        }
        CallError::Status { status } => format!("Tencent Cloud answered HTTP {status}"),
        CallError::Unparsable { .. } => "Tencent Cloud's answer could not be read".into(),
        CallError::Upstream(e) => format!("Tencent Cloud answered {}: {}", e.code, e.message),
        CallError::QuotaExceeded { .. } => "quota exceeded".into(),
        CallError::QuotaUnavailable { action, .. } => format!(
            "the shared store is unreachable and this replica holds no share of the {action} quota it may use on its own; retry, another replica may answer"
        ),
    }
}
