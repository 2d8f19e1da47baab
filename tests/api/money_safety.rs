//! The four ways exactly-once credit broke under attack and faults, each reproduced as a test:
//! a full store, a copied marker, a history paged differently, and a JWT named like an API key.

use std::time::Duration;

use partner_gateway::clock::{Clock, ManualClock, SystemClock};
use partner_gateway::credit::marker::MarkerKey;
use partner_gateway::idempotency::IdempotencyKey;
use partner_gateway::sandbox::{Fault, FaultKind, HistoryOrder};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::auth::{jwk, jwks_server, jwt_options, token};
use crate::helpers::*;

const CREDIT: &str = "AllocateCustomerCredit";
const HISTORY: &str = "QueryCreditAllocationHistory";
const SECRET: &str = "a-marker-secret-of-at-least-32-characters";

fn uin() -> u64 {
    CUSTOMER.parse().unwrap()
}

fn allocate(app: &TestApp, bearer: &str, key: &str, body: &Value) -> reqwest::RequestBuilder {
    app.client
        .post(app.url(&format!("/customers/{CUSTOMER}/credit")))
        .bearer_auth(bearer)
        .header("idempotency-key", key)
        .header("content-type", "application/json")
        .body(body.to_string())
}

fn invite(app: &TestApp, key: &str, email: &str) -> reqwest::RequestBuilder {
    app.client
        .post(app.url("/customers/invitations"))
        .bearer_auth(&app.api_key)
        .header("idempotency-key", key)
        .header("content-type", "application/json")
        .body(json!({ "email": email }).to_string())
}

fn total_credit(app: &TestApp) -> f64 {
    app.sandbox
        .ledger()
        .customers
        .iter()
        .find(|c| c.uin == uin())
        .unwrap()
        .total_credit
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Break 1: a full store evicted the finished allocation, and its retry applied it twice.
#[tokio::test]
async fn a_full_store_never_forgets_an_allocation() {
    let mut options = Options::default();
    options.settings.idempotency.max_entries = 4;
    let app = spawn_app_with(options).await;
    let body = json!({"amount": 50});
    let first = app.send(allocate(&app, &app.api_key, "K", &body)).await;
    assert_eq!(first.status, 200, "{}", first.text);
    // Four keyed invitations fill the store; the oldest of them makes room, never the credit.
    for i in 0..4 {
        let reply = app
            .send(invite(
                &app,
                &format!("inv-{i}"),
                &format!("fill{i}@example.com"),
            ))
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
    }
    let retry = app.send(allocate(&app, &app.api_key, "K", &body)).await;
    assert_eq!(retry.status, 200);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.text, first.text);
    assert_eq!(
        app.sandbox.stats().action(CREDIT).executed,
        1,
        "applied once"
    );
    assert_eq!(total_credit(&app), 50.0);

    // A store full of records money depends on refuses new keys: 503, nothing sent.
    for i in 0..3 {
        let reply = app
            .send(allocate(&app, &app.api_key, &format!("K{i}"), &body))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let before = app.upstream_calls();
    let refused = app.send(allocate(&app, &app.api_key, "K-new", &body)).await;
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert_eq!(refused.problem_type(), "/problems/store-unavailable");
    assert!(refused.json()["detail"].as_str().unwrap().contains("full"));
    assert_eq!(app.upstream_calls(), before, "nothing sent");
    // Every credit key still replays; the fullness shows in the metrics.
    for key in ["K", "K0", "K1", "K2"] {
        let again = app.send(allocate(&app, &app.api_key, key, &body)).await;
        assert_eq!(again.header("idempotent-replayed"), Some("true"), "{key}");
    }
    assert_eq!(app.sandbox.stats().action(CREDIT).executed, 4);
    let metrics = app.get("/metrics").await.text;
    assert_eq!(
        metric(&metrics, "gateway_idempotency_records"),
        4.0,
        "{metrics}"
    );
    assert_eq!(metric(&metrics, "gateway_idempotency_capacity"), 4.0);
}

/// Break 2: a caller (or anyone at the console) who copies a victim's marker onto a small
/// allocation made the victim's lost 900 look applied.
#[tokio::test]
async fn a_copied_marker_never_makes_a_lost_allocation_look_applied() {
    let clock = ManualClock::at(SystemClock.now_unix_ms());
    let mut options = Options {
        gateway_clock: clock.clone(),
        ..Options::default()
    };
    options.settings.upstream.timeout_ms = 300;
    options.settings.credit.settle_ms = 60_000;
    options.settings.credit.marker_secret = Some(SecretString::from(SECRET));
    let mallory = partner_gateway::auth::api_key::generate();
    register_secret(&mallory);
    options
        .settings
        .auth
        .api_keys
        .push(test_key_entry("mallory", &mallory, &["credit:allocate"]));
    let app = spawn_app_with(options).await;

    // The victim's 900 is lost before Tencent applies it.
    app.fault(Fault::once(
        Some(CREDIT),
        FaultKind::HangBeforeExecute { ms: 2_000 },
    ));
    let body = json!({"amount": 900, "remark": "payroll"});
    let lost = app
        .send(allocate(&app, &app.api_key, "victim-1", &body))
        .await;
    assert_eq!(lost.problem_type(), "/problems/credit-outcome-unknown");
    let scoped = IdempotencyKey::parse("victim-1")
        .unwrap()
        .scoped("key:test-suite", "credit");
    let marker = MarkerKey::new(SECRET.as_bytes()).marker(&scoped, uin(), 90_000);
    let victims_remark = format!("payroll {marker}");

    // Through the gateway, marker syntax in a remark is refused, whatever the case.
    let before = app.upstream_calls();
    for remark in [
        marker.clone(),
        victims_remark.clone(),
        format!("x {}", marker.to_uppercase()),
    ] {
        let forged = app
            .send(allocate(
                &app,
                &mallory,
                &uuid::Uuid::new_v4().to_string(),
                &json!({"amount": 1, "remark": remark}),
            ))
            .await;
        assert_eq!(forged.status, 422, "{}", forged.text);
        assert_eq!(forged.fields(), vec!["remark"]);
    }
    assert_eq!(app.upstream_calls(), before, "nothing reached Tencent");

    // Outside the gateway (the console), the victim's exact remark on an allocation of 1.
    app.sandbox
        .allocate_directly("console", uin(), 100, &victims_remark)
        .unwrap();
    clock.advance(Duration::from_secs(61));
    let settled = app
        .send(allocate(&app, &app.api_key, "victim-1", &body))
        .await;
    assert_eq!(settled.status, 200, "{}", settled.text);
    assert_eq!(
        settled.header("idempotent-replayed"),
        None,
        "not taken as applied: sent again"
    );
    assert_eq!(settled.json()["totalCredit"], 901.0);
    assert_eq!(
        total_credit(&app),
        901.0,
        "the victim's 900 was applied, once"
    );
    assert_eq!(app.sandbox.stats().action(CREDIT).executed, 1);
    let metrics = app.get("/metrics").await.text;
    assert_eq!(
        metric(&metrics, "gateway_credit_marker_mismatches_total"),
        1.0,
        "an alarm: {metrics}"
    );
    assert!(captured_logs().contains("ALARM: an allocation history entry carries"));
}

/// Break 3: the history was assumed newest-first with 100 per page; oldest-first with 20 per
/// page hid an applied allocation behind 150 older ones, and it was sent again.
#[tokio::test]
async fn an_applied_allocation_is_found_in_an_oldest_first_history_of_capped_pages() {
    for order in [HistoryOrder::OldestFirst, HistoryOrder::NewestFirst] {
        // One clock for both sides, so history entries are one second apart.
        let clock = ManualClock::at(SystemClock.now_unix_ms() - 200_000);
        let mut options = Options {
            gateway_clock: clock.clone(),
            sandbox_clock: clock.clone(),
            sandbox_history: (order, 20),
            sandbox_quotas: vec![(CREDIT, 1_000), (HISTORY, 1_000)],
            ..Options::default()
        };
        options.settings.upstream.timeout_ms = 300;
        options.settings.credit.settle_ms = 1_000;
        options.settings.quotas.queries_per_second = 1_000;
        let app = spawn_app_with(options).await;
        for i in 0..150 {
            app.sandbox
                .allocate_directly("console", uin(), 1, &format!("older {i}"))
                .unwrap();
            clock.advance(Duration::from_secs(1));
        }
        app.fault(Fault::once(
            Some(CREDIT),
            FaultKind::HangAfterExecute { ms: 2_000 },
        ));
        let body = json!({"amount": 7});
        let lost = app
            .send(allocate(&app, &app.api_key, "paged-1", &body))
            .await;
        assert_eq!(lost.problem_type(), "/problems/credit-outcome-unknown");
        // Long past settle_ms: a search that missed it would send it again.
        clock.advance(Duration::from_secs(120));
        let retry = app
            .send(allocate(&app, &app.api_key, "paged-1", &body))
            .await;
        assert_eq!(retry.status, 200, "{order:?}: {}", retry.text);
        assert_eq!(
            retry.header("idempotent-replayed"),
            Some("true"),
            "{order:?}"
        );
        assert_eq!(app.sandbox.stats().action(CREDIT).executed, 1, "{order:?}");
        let answer = retry.json();
        assert_eq!(answer["amount"], 7.0);
        assert_eq!(answer["totalCredit"], 8.5, "AllocatedCredit is the total");
        assert_eq!(answer["remainingCredit"], 8.5);
        assert_eq!(total_credit(&app), 8.5);
    }
}

/// Break 4: a JWT whose subject equals an API key's name replayed that key's answers.
#[tokio::test]
async fn a_jwt_named_like_an_api_key_is_another_caller() {
    let (url, _) = jwks_server(vec![jwk("es256-a")]).await;
    let app = spawn_app_with(jwt_options(url)).await;
    let body = json!({"amount": 3});
    let by_key = app
        .send(allocate(&app, &app.api_key, "shared-1", &body))
        .await;
    assert_eq!(by_key.status, 200);
    let mut claims = crate::auth::claims("credit:allocate");
    claims["sub"] = json!("test-suite");
    let jwt = token("es256-a", "es256-a", claims);
    let by_jwt = app.send(allocate(&app, &jwt, "shared-1", &body)).await;
    assert_eq!(by_jwt.status, 200, "{}", by_jwt.text);
    assert_eq!(
        by_jwt.header("idempotent-replayed"),
        None,
        "not the API key's answer"
    );
    assert_ne!(by_jwt.text, by_key.text);
    assert_eq!(app.sandbox.stats().action(CREDIT).executed, 2);
    let audit: Vec<Value> = captured_logs()
        .lines()
        .filter(|l| {
            l.contains("\"credit_allocation\"")
                && l.contains(&by_jwt.json()["requestId"].as_str().unwrap().to_string())
        })
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(audit.len(), 1, "{audit:?}");
    let record = audit[0].get("fields").unwrap_or(&audit[0]);
    assert_eq!(record["caller"], "jwt:https://login.test/#test-suite");
    assert_eq!(record["caller_kind"], "jwt");
}

/// A keyed invitation's record holds no e-mail address: a replay puts back the request's own.
#[tokio::test]
async fn invitation_records_keep_no_address_yet_replay_byte_for_byte() {
    let app = spawn_app().await;
    let first = app
        .send(invite(&app, "inv-private", "private.person@example.com"))
        .await;
    assert_eq!(first.status, 201);
    let again = app
        .send(invite(&app, "inv-private", "private.person@example.com"))
        .await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.text, first.text);
}

/// A key used again after its record expired carries the same marker as its first use: that
/// older history entry is not this allocation, so a lost second use is never taken as applied.
#[tokio::test]
async fn a_key_reused_after_its_ttl_is_not_settled_by_its_first_use() {
    let clock = ManualClock::at(SystemClock.now_unix_ms());
    let mut options = Options {
        gateway_clock: clock.clone(),
        sandbox_clock: clock.clone(),
        sandbox_quotas: vec![(CREDIT, 1_000), (HISTORY, 1_000)],
        ..Options::default()
    };
    options.settings.upstream.timeout_ms = 300;
    options.settings.credit.settle_ms = 1_000;
    options.settings.idempotency.ttl_s = 60;
    let app = spawn_app_with(options).await;
    let body = json!({"amount": 5});
    assert_eq!(
        app.send(allocate(&app, &app.api_key, "again-1", &body))
            .await
            .status,
        200
    );
    clock.advance(Duration::from_secs(7_200));
    app.fault(Fault::once(
        Some(CREDIT),
        FaultKind::HangBeforeExecute { ms: 2_000 },
    ));
    let lost = app
        .send(allocate(&app, &app.api_key, "again-1", &body))
        .await;
    assert_eq!(lost.problem_type(), "/problems/credit-outcome-unknown");
    clock.advance(Duration::from_secs(5));
    let retry = app
        .send(allocate(&app, &app.api_key, "again-1", &body))
        .await;
    assert_eq!(retry.status, 200, "{}", retry.text);
    assert_eq!(
        retry.header("idempotent-replayed"),
        None,
        "sent again, not the old entry"
    );
    assert_eq!(total_credit(&app), 10.0, "both uses applied, each once");
}
