use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn an_allocation_is_applied_and_answered_with_the_documented_body() {
    let app = spawn_app().await;
    let reply = app
        .post_credit(CUSTOMER, json!({"amount": 100.5, "remark": "Q3 top-up"}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["uin"], CUSTOMER);
    assert_eq!(body["amount"], 100.5);
    assert_eq!(body["totalCredit"], 100.5);
    assert_eq!(body["remainingCredit"], 100.5);
    assert!(!body["requestId"].as_str().unwrap().is_empty());
    assert_eq!(body.as_object().unwrap().len(), 5);

    let ledger = app.sandbox.ledger();
    let history = &ledger.history[&CUSTOMER.parse::<u64>().unwrap()];
    assert_eq!(history.len(), 1);
    assert!(
        history[0].remark.starts_with("Q3 top-up [pgw:"),
        "{}",
        history[0].remark
    );
    assert_eq!(history[0].allocated_credit, 100.5);
}

#[tokio::test]
async fn a_negative_amount_takes_credit_back_but_never_below_zero() {
    let app = spawn_app().await;
    assert_eq!(
        app.post_credit(CUSTOMER, json!({"amount": 50}))
            .await
            .status,
        200
    );
    let reply = app.post_credit(CUSTOMER, json!({"amount": -20.25})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["remainingCredit"], 29.75);
    // Tencent refuses with a plain `FailedOperation`: a definite refusal in the account's
    // state, which the caller can act on (422), not a broken upstream (502).
    let reply = app.post_credit(CUSTOMER, json!({"amount": -100})).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(reply.problem_type(), "/problems/operation-refused");
    assert_eq!(reply.json()["upstreamCode"], "FailedOperation");
}

#[tokio::test]
async fn amounts_reach_tencent_exactly() {
    let app = spawn_app().await;
    for amount in ["0.07", "1e2", "12.30", "99999.99"] {
        let reply = app
            .post_raw(
                &format!("/customers/{CUSTOMER}/credit"),
                Some("application/json"),
                format!(r#"{{"amount": {amount}}}"#),
            )
            .await;
        assert_eq!(reply.status, 200, "{amount}: {}", reply.text);
    }
    let ledger = app.sandbox.ledger();
    let customer = ledger
        .customers
        .iter()
        .find(|c| c.uin.to_string() == CUSTOMER)
        .unwrap();
    assert_eq!(customer.total_credit, 0.07 + 100.0 + 12.3 + 99_999.99);
    let sum_cents: i64 = ledger.history[&customer.uin]
        .iter()
        .map(|h| (h.credit * 100.0).round() as i64)
        .sum();
    assert_eq!(sum_cents, 7 + 10_000 + 1_230 + 9_999_999);
}

#[tokio::test]
async fn a_customer_of_another_partner_is_forbidden() {
    let app = spawn_app().await;
    let reply = app.post_credit("123456789", json!({"amount": 1})).await;
    assert_eq!(reply.status, 403);
    assert_eq!(reply.problem_type(), "/problems/customer-not-authorized");
    assert_eq!(
        reply.json()["upstreamCode"],
        "UnauthorizedOperation.UinNoAuth"
    );
}

#[tokio::test]
async fn the_partner_cannot_allocate_more_than_it_has() {
    let mut options = Options::default();
    options.settings.credit.max_amount = 10_000_000.0;
    let app = spawn_app_with(options).await;
    let reply = app
        .post_credit(CUSTOMER, json!({"amount": 5_000_000}))
        .await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.problem_type(), "/problems/insufficient-credit");
}
