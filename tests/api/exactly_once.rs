//! Credit is applied exactly once: idempotency keys, outcome reconciliation, invitation cooldown.

use std::sync::Arc;
use std::time::Duration;

use partner_gateway::clock::{Clock, ManualClock, SystemClock};
use partner_gateway::sandbox::{Fault, FaultKind};
use serde_json::{Value, json};

use crate::helpers::*;

const CREDIT: &str = "AllocateCustomerCredit";

fn credit_path() -> String {
    format!("/customers/{CUSTOMER}/credit")
}

/// A credit request with a chosen key.
fn keyed(app: &TestApp, key: &str, body: &Value) -> reqwest::RequestBuilder {
    app.client
        .post(app.url(&credit_path()))
        .bearer_auth(&app.api_key)
        .header("idempotency-key", key)
        .header("content-type", "application/json")
        .body(body.to_string())
}

fn customer_total(app: &TestApp) -> f64 {
    app.sandbox
        .ledger()
        .customers
        .iter()
        .find(|c| c.uin.to_string() == CUSTOMER)
        .unwrap()
        .total_credit
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_requests_with_one_key_make_one_tencent_call() {
    let app = Arc::new(spawn_app().await);
    // Slow enough upstream that the fifty overlap the first.
    app.fault(Fault::once(Some(CREDIT), FaultKind::Delay { ms: 400 }));
    let body = json!({"amount": 25.5, "remark": "once"});
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let app = app.clone();
            let body = body.clone();
            tokio::spawn(async move { app.send(keyed(&app, "concurrent-key-1", &body)).await })
        })
        .collect();
    let mut replies = Vec::new();
    for t in tasks {
        replies.push(t.await.unwrap());
    }
    assert_eq!(
        app.sandbox.stats().action(CREDIT).received,
        1,
        "exactly one Tencent call"
    );
    let first: Vec<&Reply> = replies
        .iter()
        .filter(|r| r.status == 200 && r.header("idempotent-replayed").is_none())
        .collect();
    assert_eq!(first.len(), 1, "one request did the work");
    let first = first[0];
    for reply in &replies {
        match reply.status {
            200 if reply.header("idempotent-replayed") == Some("true") => {
                assert_eq!(
                    reply.text, first.text,
                    "a replay is byte-identical to the first answer"
                )
            }
            200 => {}
            409 => assert_eq!(reply.problem_type(), "/problems/idempotency-key-in-use"),
            other => panic!("unexpected {other}: {}", reply.text),
        }
    }
    // After the fact, the key replays the same answer, and the ledger moved once.
    let again = app.send(keyed(&app, "concurrent-key-1", &body)).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.text, first.text);
    assert_eq!(customer_total(&app), 25.5);
    let metrics = app.get("/metrics").await.text;
    assert!(
        metrics.contains("gateway_idempotency_requests_total{route=\"credit\",result=\"new\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("gateway_idempotency_requests_total{route=\"credit\",result=\"replayed\"}"),
        "{metrics}"
    );
    // `10` and `10.0` are the same intent; a different amount is not.
    let reused = app
        .send(keyed(
            &app,
            "concurrent-key-1",
            &json!({"amount": 25.50, "remark": "once"}),
        ))
        .await;
    assert_eq!(
        reused.status, 200,
        "same meaning, same key: {}",
        reused.text
    );
}

#[tokio::test]
async fn key_rules() {
    let app = spawn_app().await;
    // Reuse with another body: 422, nothing sent.
    assert_eq!(
        app.send(keyed(&app, "k-reuse", &json!({"amount": 1})))
            .await
            .status,
        200
    );
    let reused = app
        .send(keyed(&app, "k-reuse", &json!({"amount": 2})))
        .await;
    assert_eq!(reused.status, 422);
    assert_eq!(reused.problem_type(), "/problems/idempotency-key-reused");
    // The same key on another customer is another request too.
    let other = app
        .send(
            app.client
                .post(app.url("/customers/800000000001/credit"))
                .bearer_auth(&app.api_key)
                .header("idempotency-key", "k-reuse")
                .header("content-type", "application/json")
                .body(json!({"amount": 1}).to_string()),
        )
        .await;
    assert_eq!(other.status, 422);
    // Missing or malformed key on credit: 400, nothing sent.
    let before = app.upstream_calls();
    let missing = app
        .send(
            app.client
                .post(app.url(&credit_path()))
                .bearer_auth(&app.api_key)
                .header("content-type", "application/json")
                .body(json!({"amount": 1}).to_string()),
        )
        .await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.problem_type(), "/problems/idempotency-key-required");
    let malformed = app
        .send(keyed(&app, "has space", &json!({"amount": 1})))
        .await;
    assert_eq!(malformed.status, 400);
    assert_eq!(app.upstream_calls(), before);
    // Definite failures before sending are not stored: the key stays free.
    let invalid = app
        .send(keyed(&app, "k-fresh", &json!({"amount": 0})))
        .await;
    assert_eq!(invalid.status, 422);
    assert_eq!(
        app.send(keyed(&app, "k-fresh", &json!({"amount": 3})))
            .await
            .status,
        200
    );
    // Keys are per caller: another caller's identical key is a different intent.
    assert_eq!(customer_total(&app), 4.0);
}

#[tokio::test]
async fn quota_refusals_leave_the_key_free() {
    let mut options = Options::default();
    options.settings.quotas.credit_per_second = 1;
    options.settings.quotas.max_wait_ms = 500;
    let app = spawn_app_with(options).await;
    assert_eq!(
        app.send(keyed(&app, "q-1", &json!({"amount": 1})))
            .await
            .status,
        200
    );
    assert_eq!(
        app.send(keyed(&app, "q-2", &json!({"amount": 1})))
            .await
            .status,
        429
    );
    // Not stored: another body with the same key is not a reuse, just another quota refusal.
    let again = app.send(keyed(&app, "q-2", &json!({"amount": 2}))).await;
    assert_eq!(again.status, 429, "{}", again.text);
    assert_eq!(again.problem_type(), "/problems/quota-exceeded");
}

#[tokio::test]
async fn an_answer_lost_after_the_ledger_changed_is_recovered_from_the_history() {
    let mut options = Options::default();
    options.settings.upstream.timeout_ms = 300;
    options.settings.credit.settle_ms = 300;
    let app = spawn_app_with(options).await;
    app.fault(Fault::once(
        Some(CREDIT),
        FaultKind::HangAfterExecute { ms: 3_000 },
    ));
    let body = json!({"amount": 40, "remark": "lost answer"});
    let lost = app.send(keyed(&app, "lost-1", &body)).await;
    assert_eq!(lost.status, 504);
    assert_eq!(lost.problem_type(), "/problems/credit-outcome-unknown");
    assert!(
        lost.json()["detail"].as_str().unwrap().contains("lost-1"),
        "the answer names the key"
    );
    // The retry finds the allocation in Tencent's history and completes with its result.
    let retry = app.send(keyed(&app, "lost-1", &body)).await;
    assert_eq!(retry.status, 200, "{}", retry.text);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    let result = retry.json();
    assert_eq!(result["amount"], 40.0);
    assert_eq!(result["totalCredit"], 40.0);
    assert_eq!(result["remainingCredit"], 40.0);
    let stats = app.sandbox.stats();
    assert_eq!(
        stats.action(CREDIT).executed,
        1,
        "applied once, never re-sent"
    );
    assert!(stats.action("QueryCreditAllocationHistory").executed >= 1);
    assert_eq!(customer_total(&app), 40.0);
    let history = &app.sandbox.ledger().history[&CUSTOMER.parse::<u64>().unwrap()];
    assert_eq!(history.len(), 1);
    assert!(history[0].remark.starts_with("lost answer [pgw:"));
}

#[tokio::test]
async fn an_allocation_lost_before_it_applied_is_sent_again_once_settled() {
    let clock = ManualClock::at(SystemClock.now_unix_ms());
    let mut options = Options {
        gateway_clock: clock.clone(),
        ..Options::default()
    };
    options.settings.upstream.timeout_ms = 300;
    options.settings.credit.settle_ms = 60_000;
    let app = spawn_app_with(options).await;
    app.fault(Fault::once(
        Some(CREDIT),
        FaultKind::HangBeforeExecute { ms: 3_000 },
    ));
    let body = json!({"amount": 7});
    assert_eq!(app.send(keyed(&app, "before-1", &body)).await.status, 504);
    // Too early to conclude: still unknown, come back when it can be settled.
    let early = app.send(keyed(&app, "before-1", &body)).await;
    assert_eq!(early.status, 502);
    assert_eq!(early.problem_type(), "/problems/credit-outcome-unknown");
    assert_eq!(early.header("retry-after"), Some("60"));
    assert_eq!(
        app.sandbox.stats().action(CREDIT).received,
        1,
        "not re-sent while unsettled"
    );
    // Once settle_ms has passed without the marker in the history, it was not applied: sent again.
    clock.advance(Duration::from_secs(61));
    let settled = app.send(keyed(&app, "before-1", &body)).await;
    assert_eq!(settled.status, 200, "{}", settled.text);
    assert_eq!(
        settled.header("idempotent-replayed"),
        None,
        "a fresh, applied answer"
    );
    assert_eq!(app.sandbox.stats().action(CREDIT).executed, 1);
    assert_eq!(customer_total(&app), 7.0);
    // And from then on it replays.
    let replay = app.send(keyed(&app, "before-1", &body)).await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.text, settled.text);
}

#[tokio::test]
async fn the_background_resolver_settles_what_nobody_retries() {
    let mut options = Options::default();
    options.settings.upstream.timeout_ms = 300;
    options.settings.credit.settle_ms = 300;
    options.settings.credit.resolve_interval_ms = 50;
    let app = spawn_app_with(options).await;
    app.fault(Fault::once(
        Some(CREDIT),
        FaultKind::HangAfterExecute { ms: 3_000 },
    ));
    let body = json!({"amount": 9});
    assert_eq!(app.send(keyed(&app, "bg-1", &body)).await.status, 504);
    // Wait (bounded) for the resolver's observable effect: an applied count.
    metrics_show(
        &app,
        &["gateway_credit_reconciliations_total{result=\"applied\"} 1"],
    )
    .await;
    let reply = app.send(keyed(&app, "bg-1", &body)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("idempotent-replayed"), Some("true"));
    assert_eq!(app.sandbox.stats().action(CREDIT).executed, 1);
    let audit = captured_logs()
        .lines()
        .filter(|l| l.contains("credit_reconciliation") && l.contains("\"outcome\":\"applied\""))
        .count();
    assert!(audit >= 1, "the reconciliation is audited");
}

/// Waits (bounded) until `/metrics` has every one of `lines`.
async fn metrics_show(app: &TestApp, lines: &[&str]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = app.get("/metrics").await.text;
        if lines.iter().all(|l| metrics.lines().any(|m| m == *l)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never saw {lines:?}:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn unsettled_allocations_are_reported_with_their_send_time_until_they_settle() {
    let sent_ms = SystemClock.now_unix_ms();
    let clock = ManualClock::at(sent_ms);
    let mut options = Options {
        gateway_clock: clock.clone(),
        ..Options::default()
    };
    options.settings.upstream.timeout_ms = 300;
    options.settings.credit.settle_ms = 60_000;
    options.settings.credit.resolve_interval_ms = 50;
    let app = spawn_app_with(options).await;
    app.fault(Fault::once(
        Some(CREDIT),
        FaultKind::HangBeforeExecute { ms: 3_000 },
    ));
    let body = json!({"amount": 3});
    assert_eq!(app.send(keyed(&app, "age-1", &body)).await.status, 504);
    // The alert's input: one allocation, and when it was sent (the clock is the gateway's own).
    clock.advance(Duration::from_secs(30));
    let sent = format!(
        "gateway_credit_unsettled_oldest_timestamp_seconds {}",
        sent_ms as f64 / 1000.0
    );
    metrics_show(&app, &["gateway_credit_unsettled 1", &sent]).await;
    // Past settle_ms without the marker in the history: settled as not applied, nothing left.
    clock.advance(Duration::from_secs(31));
    metrics_show(
        &app,
        &[
            "gateway_credit_reconciliations_total{result=\"not_applied\"} 1",
            "gateway_credit_unsettled 0",
            "gateway_credit_unsettled_oldest_timestamp_seconds 0",
        ],
    )
    .await;
}

#[tokio::test]
async fn invitation_cooldown_is_enforced_at_the_gateway() {
    let clock = ManualClock::at(SystemClock.now_unix_ms());
    // One clock for both sides, so Tencent's own 180 s cooldown passes with the gateway's.
    let options = Options {
        gateway_clock: clock.clone(),
        sandbox_clock: clock.clone(),
        ..Options::default()
    };
    let app = spawn_app_with(options).await;
    assert_eq!(
        app.post_invitation(json!({"email": "abc@example.com"}))
            .await
            .status,
        201
    );
    let second = app
        .post_invitation(json!({"email": "Abc@Example.com"}))
        .await;
    assert_eq!(second.status, 429);
    assert_eq!(second.problem_type(), "/problems/invitation-cooldown");
    assert_eq!(second.header("retry-after"), Some("180"));
    assert_eq!(
        app.sandbox
            .stats()
            .action("CreateAndSendClientInvitationMail")
            .received,
        1,
        "the simulator saw one call"
    );
    clock.advance(Duration::from_secs(179));
    assert_eq!(
        app.post_invitation(json!({"email": "abc@example.com"}))
            .await
            .header("retry-after"),
        Some("1")
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        app.post_invitation(json!({"email": "ABC@example.com"}))
            .await
            .status,
        201
    );
    // Another address is not affected.
    assert_eq!(
        app.post_invitation(json!({"email": "other@example.com"}))
            .await
            .status,
        201
    );
}

#[tokio::test]
async fn tencents_cooldown_answer_starts_the_gateways_cooldown() {
    let app = spawn_app().await;
    app.fault(Fault::error(
        Some("CreateAndSendClientInvitationMail"),
        "FailedOperation.SendMailLimit180",
    ));
    let first = app
        .post_invitation(json!({"email": "seen@example.com"}))
        .await;
    assert_eq!(first.status, 429);
    assert_eq!(first.header("retry-after"), Some("180"));
    let before = app.upstream_calls();
    let second = app
        .post_invitation(json!({"email": "seen@example.com"}))
        .await;
    assert_eq!(second.status, 429);
    assert_eq!(app.upstream_calls(), before, "refused at the gateway");
}

#[tokio::test]
async fn invitation_keys_replay_the_first_answer() {
    let app = spawn_app().await;
    let send = || {
        app.client
            .post(app.url("/customers/invitations"))
            .bearer_auth(&app.api_key)
            .header("idempotency-key", "invite-1")
            .header("content-type", "application/json")
            .body(json!({"email": "replay@example.com"}).to_string())
    };
    let first = app.send(send()).await;
    assert_eq!(first.status, 201);
    let second = app.send(send()).await;
    assert_eq!(
        second.status, 201,
        "a replay, not a cooldown refusal: {}",
        second.text
    );
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(second.text, first.text);
    assert_eq!(
        app.sandbox
            .stats()
            .action("CreateAndSendClientInvitationMail")
            .received,
        1
    );
}

#[tokio::test]
async fn a_client_that_hangs_up_mid_allocation_does_not_strand_its_key() {
    let app = spawn_app().await;
    app.fault(Fault::once(Some(CREDIT), FaultKind::Delay { ms: 600 }));
    let body = json!({"amount": 12});
    // The client gives up long before the upstream answers.
    let impatient = keyed(&app, "hangup-1", &body)
        .timeout(Duration::from_millis(100))
        .send()
        .await;
    assert!(impatient.is_err(), "the client timed out");
    // The allocation still completes and is recorded: a retry soon gets the definite answer.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let reply = loop {
        let reply = app.send(keyed(&app, "hangup-1", &body)).await;
        if reply.status != 409 {
            break reply;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the key stayed in flight after the client left"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.header("idempotent-replayed"), Some("true"));
    assert_eq!(app.sandbox.stats().action(CREDIT).executed, 1);
}
