//! Each row of design.md's error table, produced by injecting that upstream answer.

use partner_gateway::clock::Clock;
use partner_gateway::sandbox::{Fault, FaultKind};
use serde_json::json;

use crate::helpers::*;

const INVITE: &str = "CreateAndSendClientInvitationMail";
const CREDIT: &str = "AllocateCustomerCredit";

async fn invite(app: &TestApp) -> Reply {
    app.post_invitation(json!({"email": format!("{}@example.com", uuid::Uuid::new_v4().simple())}))
        .await
}

async fn allocate(app: &TestApp) -> Reply {
    app.post_credit(CUSTOMER, json!({"amount": 10})).await
}

fn assert_problem(reply: &Reply, status: u16, problem: &str, case: &str) {
    assert_eq!(reply.status, status, "{case}: {}", reply.text);
    assert_eq!(reply.problem_type(), problem, "{case}");
}

#[tokio::test]
async fn rate_limited_upstream_is_retried_then_429() {
    let app = spawn_app().await;
    app.fault(Fault::always(
        Some(INVITE),
        FaultKind::Error {
            code: "RequestLimitExceeded.UinLimitExceeded".into(),
            message: "slow down".into(),
        },
    ));
    let reply = invite(&app).await;
    assert_problem(
        &reply,
        429,
        "/problems/upstream-rate-limited",
        "RequestLimitExceeded",
    );
    assert!(reply.header("retry-after").is_some());
    // One call plus upstream.max_retries retries, all refused without executing.
    assert_eq!(app.sandbox.stats().action(INVITE).received, 4);

    // A transient refusal is absorbed by the retry.
    app.sandbox.clear_faults();
    app.fault(Fault::error(Some(CREDIT), "RequestLimitExceeded"));
    let reply = allocate(&app).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let stats = app.sandbox.stats().action(CREDIT);
    assert_eq!((stats.received, stats.executed), (2, 1));
}

#[tokio::test]
async fn business_errors_map_to_their_statuses() {
    let app = spawn_app().await;
    let rows: &[(&str, &str, u16, &str, Option<&str>)] = &[
        (
            INVITE,
            "FailedOperation.SendMailLimit180",
            429,
            "/problems/invitation-cooldown",
            Some("180"),
        ),
        (
            INVITE,
            "OperationDenied.ServiceBusy",
            503,
            "/problems/upstream-unavailable",
            None,
        ),
        (
            CREDIT,
            "ServiceUnavailable",
            503,
            "/problems/upstream-unavailable",
            None,
        ),
        (
            INVITE,
            "InvalidParameter.MailFormatIncorrect",
            422,
            "/problems/upstream-rejected-input",
            None,
        ),
        (
            INVITE,
            "MissingParameter",
            422,
            "/problems/upstream-rejected-input",
            None,
        ),
        (
            INVITE,
            "UnknownParameter",
            422,
            "/problems/upstream-rejected-input",
            None,
        ),
        (
            CREDIT,
            "InvalidParameter",
            422,
            "/problems/upstream-rejected-input",
            None,
        ),
        (
            CREDIT,
            "InvalidParameterValue.CreditAmountOutOfRange",
            422,
            "/problems/upstream-rejected-input",
            None,
        ),
        (
            CREDIT,
            "FailedOperation.BalanceInsufficient",
            422,
            "/problems/insufficient-credit",
            None,
        ),
        (
            INVITE,
            "FailedOperation.MailIsRegistered",
            409,
            "/problems/email-already-registered",
            None,
        ),
        (
            CREDIT,
            "UnauthorizedOperation.UinNoAuth",
            403,
            "/problems/customer-not-authorized",
            None,
        ),
        (
            INVITE,
            "InternalError",
            502,
            "/problems/upstream-error",
            None,
        ),
        (
            INVITE,
            "InternalError.DbError",
            502,
            "/problems/upstream-error",
            None,
        ),
        (
            INVITE,
            "SomeNewCode.NobodyKnows",
            502,
            "/problems/upstream-error",
            None,
        ),
        (
            CREDIT,
            "SomeNewCode.NobodyKnows",
            502,
            "/problems/upstream-error",
            None,
        ),
    ];
    for (action, code, status, problem, retry_after) in rows {
        app.fault(Fault::once(
            Some(action),
            FaultKind::Error {
                code: (*code).into(),
                message: format!("message for {code}"),
            },
        ));
        let reply = if *action == INVITE {
            invite(&app).await
        } else {
            allocate(&app).await
        };
        assert_problem(&reply, *status, problem, code);
        let body = reply.json();
        assert_eq!(body["upstreamCode"], *code);
        assert!(
            body["upstreamRequestId"].is_string(),
            "{code}: Tencent's RequestId is handed back"
        );
        if *status == 422 {
            assert_eq!(
                body["detail"],
                format!("message for {code}"),
                "Tencent's message in detail"
            );
        }
        if *status == 429 || *status == 503 {
            let secs = reply
                .header("retry-after")
                .unwrap_or_else(|| panic!("{code}: Retry-After"));
            if let Some(expected) = retry_after {
                assert_eq!(secs, *expected, "{code}");
            }
        }
    }
    // None of those is retried: one call each.
    assert_eq!(app.upstream_calls(), rows.len() as u64);
}

#[tokio::test]
async fn credit_failures_that_may_have_executed_are_outcome_unknown() {
    let app = spawn_app().await;
    let faults = [
        (
            "InternalError",
            FaultKind::Error {
                code: "InternalError".into(),
                message: "oops".into(),
            },
            502,
        ),
        ("HTTP 500 page", FaultKind::Status { status: 500 }, 502),
        ("HTTP 502 page", FaultKind::Status { status: 502 }, 502),
        ("unparsable 200", FaultKind::Unparsable, 502),
        ("truncated answer", FaultKind::TruncateAfterExecute, 502),
    ];
    for (i, (case, kind, status)) in faults.into_iter().enumerate() {
        app.fault(Fault::once(Some(CREDIT), kind));
        let reply = allocate(&app).await;
        assert_problem(&reply, status, "/problems/credit-outcome-unknown", case);
        assert_eq!(
            app.sandbox.stats().action(CREDIT).received,
            i as u64 + 1,
            "{case} must not be retried"
        );
    }
    // The same failures of an invitation are plain upstream errors.
    for kind in [
        FaultKind::Status { status: 500 },
        FaultKind::Unparsable,
        FaultKind::TruncateAfterExecute,
    ] {
        app.fault(Fault::once(Some(INVITE), kind));
        assert_problem(
            &invite(&app).await,
            502,
            "/problems/upstream-error",
            "invitation",
        );
    }
}

#[tokio::test]
async fn a_timed_out_credit_call_is_outcome_unknown_and_not_retried() {
    let mut options = Options::default();
    options.settings.upstream.timeout_ms = 300;
    let app = spawn_app_with(options).await;
    // The answer is lost after the ledger changed.
    app.fault(Fault::once(
        Some(CREDIT),
        FaultKind::HangAfterExecute { ms: 5_000 },
    ));
    let reply = allocate(&app).await;
    assert_problem(
        &reply,
        504,
        "/problems/credit-outcome-unknown",
        "timeout after execute",
    );
    let stats = app.sandbox.stats().action(CREDIT);
    assert_eq!(
        (stats.received, stats.executed),
        (1, 1),
        "sent once, never retried"
    );
    assert!(
        reply.json()["detail"]
            .as_str()
            .unwrap()
            .contains("may or may not")
    );

    // An invitation that times out is a plain upstream timeout.
    app.fault(Fault::once(
        Some(INVITE),
        FaultKind::HangBeforeExecute { ms: 5_000 },
    ));
    assert_problem(
        &invite(&app).await,
        504,
        "/problems/upstream-timeout",
        "invitation timeout",
    );
}

#[tokio::test]
async fn an_unreachable_upstream_is_retried_then_502_and_never_outcome_unknown() {
    // A port nobody listens on: connecting fails, so nothing was sent and the call is retried.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (client, addr) = spawn_unreachable(port).await;
    let (status, body) = allocate_at(&client, addr).await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body.contains("/problems/upstream-error"),
        "connect failures are definite: {body}"
    );
    assert!(
        !body.contains("127.0.0.1"),
        "no internal address in the answer: {body}"
    );
}

/// A gateway whose upstream endpoint is a closed port (no sandbox at all).
async fn spawn_unreachable(port: u16) -> (reqwest::Client, std::net::SocketAddr) {
    use partner_gateway::config::{Credentials, Settings};
    let mut settings = Settings::default();
    settings.upstream.endpoint = format!("http://127.0.0.1:{port}");
    settings.upstream.retry_backoff_ms = 5;
    settings.auth.disabled = true;
    let credentials = Credentials {
        secret_id: "AKIDx".into(),
        secret_key: "k-unreachable".to_owned().into(),
        token: None,
    };
    let app = partner_gateway::app::build(settings, &credentials, partner_gateway::clock::system())
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(app.run_until_stopped(listener, std::future::pending()));
    (reqwest::Client::new(), addr)
}

async fn allocate_at(client: &reqwest::Client, addr: std::net::SocketAddr) -> (u16, String) {
    let r = client
        .post(format!("http://{addr}/customers/{CUSTOMER}/credit"))
        .header("content-type", "application/json")
        .header("idempotency-key", "unreachable-1")
        .body(r#"{"amount": 1}"#)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn rejected_credentials_fail_readiness_until_tencent_accepts_them_again() {
    let app = spawn_app().await;
    assert_eq!(app.get("/readyz").await.status, 200);
    app.fault(Fault::error(Some(INVITE), "AuthFailure.SecretIdNotFound"));
    let reply = invite(&app).await;
    assert_problem(&reply, 502, "/problems/upstream-auth-failed", "AuthFailure");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 503);
    assert!(
        ready.json()["checks"]["upstream_auth"]
            .as_str()
            .unwrap()
            .contains("AuthFailure.SecretIdNotFound")
    );
    // The next accepted call restores readiness.
    assert_eq!(invite(&app).await.status, 201);
    assert_eq!(app.get("/readyz").await.status, 200);
}

#[tokio::test]
async fn a_wrong_secret_key_is_an_auth_failure_at_the_simulator() {
    let app = spawn_app_with(Options {
        gateway_secret_key: Some("not-the-right-key".into()),
        ..Options::default()
    })
    .await;
    let reply = allocate(&app).await;
    assert_problem(&reply, 502, "/problems/upstream-auth-failed", "wrong key");
    assert_eq!(reply.json()["upstreamCode"], "AuthFailure.SignatureFailure");
    assert_eq!(app.sandbox.stats().action(CREDIT).executed, 0);
    assert_eq!(app.get("/readyz").await.status, 503);
}

#[tokio::test]
async fn a_clock_off_by_more_than_five_minutes_is_signature_expire() {
    let skewed = partner_gateway::clock::ManualClock::at(
        partner_gateway::clock::SystemClock.now_unix_ms() - 6 * 60 * 1000,
    );
    let app = spawn_app_with(Options {
        gateway_clock: skewed,
        ..Options::default()
    })
    .await;
    let reply = invite(&app).await;
    assert_problem(&reply, 502, "/problems/upstream-auth-failed", "skew");
    assert_eq!(reply.json()["upstreamCode"], "AuthFailure.SignatureExpire");
}

#[tokio::test]
async fn faults_can_be_injected_over_the_simulators_admin_route() {
    let app = spawn_app().await;
    let admin = format!("http://{}/_sandbox/faults", app.sandbox_addr);
    let body = r#"{"action": "AllocateCustomerCredit", "kind": "error", "code": "OperationDenied.ServiceBusy", "times": 1}"#;
    let added = app
        .client
        .post(&admin)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 204);
    assert_problem(
        &allocate(&app).await,
        503,
        "/problems/upstream-unavailable",
        "injected over HTTP",
    );
    assert_eq!(allocate(&app).await.status, 200, "times: 1 is used up");
    let bad = app
        .client
        .post(&admin)
        .body(r#"{"kind": "explode"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let stats_url = format!("http://{}/_sandbox/stats", app.sandbox_addr);
    let stats: serde_json::Value = app.send(app.client.get(stats_url)).await.json();
    assert_eq!(stats["actions"][CREDIT]["executed"], 1);
}

#[tokio::test]
async fn an_unkeyed_allocation_of_unknown_outcome_is_told_to_read_the_history_not_to_retry() {
    let mut options = Options::default();
    options.settings.upstream.timeout_ms = 300;
    options.settings.credit.require_idempotency_key = false;
    let app = spawn_app_with(options).await;
    app.fault(Fault::once(
        Some(CREDIT),
        FaultKind::HangAfterExecute { ms: 5_000 },
    ));
    // No Idempotency-Key: a blind retry would be a second allocation.
    let reply = app
        .send(
            app.client
                .post(app.url(&format!("/customers/{CUSTOMER}/credit")))
                .bearer_auth(&app.api_key)
                .header("content-type", "application/json")
                .body(json!({"amount": 10}).to_string()),
        )
        .await;
    assert_problem(&reply, 504, "/problems/credit-outcome-unknown", "unkeyed");
    let detail = reply.json()["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("allocation history"), "{detail}");
    assert!(!detail.contains("Idempotency-Key"), "{detail}");
}

/// A keyed retry that settles an unknown allocation sends nothing itself: when settling outlives
/// the request's deadline (the history read hangs), the answer is a request timeout, not an
/// allocation of unknown outcome, and the allocation was still sent once.
#[tokio::test]
async fn a_retry_whose_settling_outlives_the_deadline_is_a_timeout_and_sends_nothing() {
    const HISTORY: &str = "QueryCreditAllocationHistory";
    let mut options = Options::default();
    options.settings.server.request_timeout_ms = 300;
    options.settings.upstream.timeout_ms = 3_000;
    let app = spawn_app_with(options).await;
    app.fault(Fault::once(
        Some(CREDIT),
        FaultKind::HangAfterExecute { ms: 5_000 },
    ));
    let key = uuid::Uuid::new_v4().to_string();
    let first = app
        .post_credit_keyed(CUSTOMER, &key, json!({"amount": 10}))
        .await;
    assert_problem(&first, 504, "/problems/credit-outcome-unknown", "first");
    let detail = first.json()["detail"].as_str().unwrap().to_owned();
    assert!(
        detail.contains("Retry with the same Idempotency-Key"),
        "{detail}"
    );
    app.fault(Fault::once(
        Some(HISTORY),
        FaultKind::HangBeforeExecute { ms: 5_000 },
    ));
    let retry = app
        .post_credit_keyed(CUSTOMER, &key, json!({"amount": 10}))
        .await;
    assert_problem(&retry, 504, "/problems/request-timeout", "retry");
    assert_eq!(app.sandbox.stats().action(CREDIT).received, 1);
    let logged = captured_logs();
    let line = logged
        .lines()
        .find(|l| {
            l.contains("request served")
                && l.contains(&retry.json()["requestId"].as_str().unwrap().to_owned())
        })
        .expect("the retry's log line");
    assert!(line.contains("\"caller\":\"key:test-suite\""), "{line}");
}
