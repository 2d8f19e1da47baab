use super::*;
use crate::tencent::CallError;

#[test]
fn slugs_are_unique_and_round_trip() {
    let mut seen = std::collections::HashSet::new();
    for p in ProblemType::ALL {
        assert!(seen.insert(p.slug()), "duplicate slug {}", p.slug());
        assert_eq!(ProblemType::from_slug(p.slug()), Some(*p));
        assert!(p.uri().starts_with("/problems/"));
    }
}

#[test]
fn credit_failures_that_may_have_executed_are_outcome_unknown() {
    let timeout = ApiError::from_credit_call(CallError::Timeout { sent: true });
    assert_eq!(
        (timeout.kind, timeout.status),
        (
            ProblemType::CreditOutcomeUnknown,
            StatusCode::GATEWAY_TIMEOUT
        )
    );
    let status = ApiError::from_credit_call(CallError::Status { status: 500 });
    assert_eq!(
        (status.kind, status.status),
        (ProblemType::CreditOutcomeUnknown, StatusCode::BAD_GATEWAY)
    );
    // The same failure of an invitation is a plain upstream problem.
    assert_eq!(
        ApiError::from_call(CallError::Timeout { sent: true }).kind,
        ProblemType::UpstreamTimeout
    );
    // A connect failure never reached Tencent: not unknown even for credit.
    let refused = ApiError::from_credit_call(CallError::Transport {
        sent: false,
        detail: "refused".into(),
    });
    assert_eq!(refused.kind, ProblemType::UpstreamError);
}
