use super::*;
use crate::tencent::actions::CreditAllocated;
use crate::tencent::error::UpstreamError;

#[test]
fn parses_success_and_error_envelopes() {
    let (data, id): (CreditAllocated, _) = parse_answer(
        br#"{"Response":{"TotalCredit":10.5,"RemainingCredit":3,"RequestId":"r-1","NewField":1}}"#,
    )
    .unwrap();
    assert_eq!(
        (data.total_credit, data.remaining_credit, id.as_str()),
        (10.5, 3.0, "r-1")
    );

    let err = parse_answer::<CreditAllocated>(
        br#"{"Response":{"Error":{"Code":"FailedOperation.BalanceInsufficient","Message":"no"},"RequestId":"r-2"}}"#,
    )
    .unwrap_err();
    match err {
        CallError::Upstream(e) => {
            assert_eq!(e.code, "FailedOperation.BalanceInsufficient");
            assert_eq!(e.request_id.as_deref(), Some("r-2"));
        }
        other => panic!("{other:?}"),
    }
}

/// Found by `fuzz/run.sh` (upstream_answer target): an unknown field holding a number no f64
/// can hold. The parser skips unknown fields without converting them, so the answer stands;
/// an out-of-range number in a field it reads is unparsable.
#[test]
fn fuzz_regression_out_of_range_numbers() {
    let (data, id): (CreditAllocated, _) = parse_answer(
        br#"{"Response":{"TotalCredit":0.5,"RemainingCredit":0.2,"Other":0.11E2229295,"RequestId":"r"}}"#,
    )
    .unwrap();
    assert_eq!((data.total_credit, id.as_str()), (0.5, "r"));
    let err = parse_answer::<CreditAllocated>(
        br#"{"Response":{"TotalCredit":1E2229295,"RemainingCredit":0.2,"RequestId":"r"}}"#,
    )
    .unwrap_err();
    assert!(matches!(err, CallError::Unparsable { .. }), "{err:?}");
}

#[test]
fn malformed_answers_are_unparsable() {
    for body in [
        &b""[..],
        b"<html>oops</html>",
        b"{}",
        b"{\"Response\": 5}",
        b"{\"Response\":{\"TotalCredit\":1}}",
        b"{\"Response\":{\"TotalCredit\":\"x\",\"RemainingCredit\":1,\"RequestId\":\"r\"}}",
        b"{\"Response\":{\"Error\":{\"Message\":\"no code\"},\"RequestId\":\"r\"}}",
        b"{\"Response\":{\"TotalCredit\":1,\"RemainingCredit\":1,\"RequestId\":\"r\"}",
    ] {
        let err = parse_answer::<CreditAllocated>(body).unwrap_err();
        assert!(
            matches!(err, CallError::Unparsable { .. }),
            "{:?}: {err:?}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(err.effect(), crate::tencent::Effect::Unknown);
    }
}

#[test]
fn only_safe_failures_are_retried() {
    let upstream = |code: &str| {
        CallError::Upstream(UpstreamError {
            code: code.into(),
            message: String::new(),
            request_id: None,
        })
    };
    assert!(upstream("RequestLimitExceeded").is_retryable());
    assert!(
        CallError::Transport {
            sent: false,
            detail: String::new()
        }
        .is_retryable()
    );
    assert!(CallError::Timeout { sent: false }.is_retryable());
    for not in [
        upstream("InternalError"),
        upstream("OperationDenied.ServiceBusy"),
        CallError::Timeout { sent: true },
        CallError::Transport {
            sent: true,
            detail: String::new(),
        },
        CallError::Status { status: 502 },
        CallError::Unparsable {
            detail: String::new(),
        },
    ] {
        assert!(!not.is_retryable(), "{not:?}");
    }
    assert_eq!(
        upstream("InternalError").effect(),
        crate::tencent::Effect::Unknown
    );
    assert_eq!(
        upstream("FailedOperation.BalanceInsufficient").effect(),
        crate::tencent::Effect::Refused
    );
}

/// The route that stops waiting and the attempt about to leave race through one gate: whichever
/// comes first decides, and the other sees it (a closed gate never lets an attempt out; an
/// attempt that left makes the route say "unknown", never "not sent").
#[test]
fn departures_decide_between_sent_and_never_sent() {
    let closed_first = Departures::default();
    assert!(closed_first.close(), "nothing had left");
    assert!(!closed_first.depart(), "no attempt leaves a closed gate");
    assert!(closed_first.close());

    let sent_first = Departures::default();
    assert!(sent_first.depart());
    assert!(
        sent_first.depart(),
        "a retry of a call that left may leave too"
    );
    assert!(
        !sent_first.close(),
        "an attempt left: the outcome is not 'never sent'"
    );

    // A clone is the same gate (the route keeps one while the task holds the context).
    let gate = Departures::default();
    let route = gate.clone();
    assert!(gate.depart());
    assert!(!route.close());
}
