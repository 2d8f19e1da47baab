//! Chaos: 500 credit intents against a faulty upstream, each retried by its client with its key
//! until a definite answer. The ledger must equal the sum of the intents, with no allocation twice.

use std::sync::Arc;
use std::time::Duration;

use partner_gateway::sandbox::SEEDED_CUSTOMERS;
use partner_gateway::sandbox::{Fault, FaultKind};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::helpers::*;

const CREDIT: &str = "AllocateCustomerCredit";
const INTENTS: usize = 500;

/// What a client does with one intent, as the README says: send with its key, and retry with the
/// same key until a definite answer. Returns every status seen.
async fn retry_until_definite(
    app: &TestApp,
    i: usize,
    uin: u64,
    key: &str,
    body: &Value,
) -> Vec<u16> {
    let mut seen: Vec<u16> = Vec::new();
    for _ in 0..400 {
        let reply = app
            .send(
                app.client
                    .post(app.url(&format!("/customers/{uin}/credit")))
                    .bearer_auth(&app.api_key)
                    .header("idempotency-key", key)
                    .header("content-type", "application/json")
                    .body(body.to_string()),
            )
            .await;
        seen.push(reply.status);
        match reply.status {
            200 => return seen,
            // Not definite: the client retries with the same key.
            409 | 429 | 502 | 503 | 504 => tokio::time::sleep(Duration::from_millis(40)).await,
            other => panic!("intent {i}: unexpected {other}: {}", reply.text),
        }
    }
    panic!("intent {i} never got a definite answer: {seen:?}");
}

fn fault(kind: FaultKind, probability: f64) -> Fault {
    Fault {
        action: Some(CREDIT.into()),
        kind,
        times: None,
        probability: Some(probability),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_intents_through_faults_are_each_applied_exactly_once() {
    let mut options = Options::default();
    // Quotas lifted on both sides so the test spends its time on faults, not on waiting.
    options.settings.quotas.credit_per_second = 400;
    options.settings.quotas.queries_per_second = 400;
    options.settings.quotas.max_wait_ms = 2_000;
    options.settings.upstream.timeout_ms = 250;
    options.settings.credit.settle_ms = 400;
    options.settings.credit.resolve_interval_ms = 200;
    options.sandbox_quotas = vec![(CREDIT, 400), ("QueryCreditAllocationHistory", 400)];
    let app = Arc::new(spawn_app_with(options).await);
    // The first matching fault that fires wins, so the probabilities are conditional:
    // 10% lost after the ledger changed, then 5% of all timeouts before it changed, 5% rate limits.
    app.fault(fault(FaultKind::HangAfterExecute { ms: 600 }, 0.10));
    app.fault(fault(FaultKind::HangBeforeExecute { ms: 600 }, 0.05 / 0.90));
    app.fault(fault(
        FaultKind::Error {
            code: "RequestLimitExceeded".into(),
            message: "injected".into(),
        },
        0.05 / (0.90 * (1.0 - 0.05 / 0.90)),
    ));

    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let intents: Vec<(u64, i64)> = (0..INTENTS)
        .map(|_| {
            (
                SEEDED_CUSTOMERS[rng.random_range(0..SEEDED_CUSTOMERS.len())],
                rng.random_range(1..=10_000),
            )
        })
        .collect();
    let expected: i64 = intents.iter().map(|(_, cents)| cents).sum();

    let gate = Arc::new(Semaphore::new(16));
    let tasks: Vec<_> = intents
        .iter()
        .enumerate()
        .map(|(i, &(uin, cents))| {
            let app = app.clone();
            let gate = gate.clone();
            tokio::spawn(async move {
                let _permit = gate.acquire().await.unwrap();
                let body = json!({"amount": cents as f64 / 100.0, "remark": format!("intent {i}")});
                retry_until_definite(&app, i, uin, &format!("chaos-{i}"), &body).await
            })
        })
        .collect();
    let mut histories = Vec::new();
    for t in tasks {
        histories.push(t.await.unwrap());
    }

    let stats = app.sandbox.stats().action(CREDIT);
    let first_tries_unknown = histories
        .iter()
        .filter(|h| matches!(h[0], 502 | 504))
        .count();
    let retries: usize = histories.iter().map(|h| h.len() - 1).sum();
    println!(
        "chaos: {INTENTS} intents, {} upstream allocation calls, {} executed, {} rate-limited upstream, \
         {first_tries_unknown} first answers outcome-unknown, {retries} client retries",
        stats.received, stats.executed, stats.rate_limited,
    );
    assert_each_intent_applied_once(&app.sandbox, INTENTS, expected);
    assert!(
        first_tries_unknown > 0,
        "the faults did produce unknown outcomes"
    );
}

/// The faults of the money-safety acceptance: 30% of executed allocations lose their answer,
/// half as an HTTP 500 after the ledger changed, half as a hang past the gateway's timeout.
pub fn lost_answers() -> Vec<Fault> {
    vec![
        fault(FaultKind::StatusAfterExecute { status: 500 }, 0.15),
        // Conditional on the first not firing: 0.15 of all calls.
        fault(FaultKind::HangAfterExecute { ms: 600 }, 0.15 / 0.85),
    ]
}

/// Intents over the first nine seeded customers, seeded for reproducibility.
pub fn nine_customer_intents(n: usize, seed: u64) -> Vec<(u64, i64)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            (
                SEEDED_CUSTOMERS[rng.random_range(0..9)],
                rng.random_range(1..=10_000),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_answers_across_nine_customers_settle_exactly_once() {
    const N: usize = 120;
    let mut options = Options::default();
    options.settings.quotas.credit_per_second = 400;
    options.settings.quotas.queries_per_second = 400;
    options.settings.quotas.max_wait_ms = 2_000;
    options.settings.upstream.timeout_ms = 250;
    options.settings.credit.settle_ms = 400;
    options.settings.credit.resolve_interval_ms = 200;
    options.sandbox_quotas = vec![(CREDIT, 400), ("QueryCreditAllocationHistory", 400)];
    let app = Arc::new(spawn_app_with(options).await);
    for f in lost_answers() {
        app.fault(f);
    }
    let intents = nine_customer_intents(N, 23);
    let expected: i64 = intents.iter().map(|(_, cents)| cents).sum();
    let gate = Arc::new(Semaphore::new(16));
    let tasks: Vec<_> = intents
        .iter()
        .enumerate()
        .map(|(i, &(uin, cents))| {
            let (app, gate) = (app.clone(), gate.clone());
            tokio::spawn(async move {
                let _permit = gate.acquire().await.unwrap();
                let body = json!({"amount": cents as f64 / 100.0, "remark": format!("lost {i}")});
                retry_until_definite(&app, i, uin, &format!("lost-{i}"), &body).await
            })
        })
        .collect();
    let mut histories = Vec::new();
    for t in tasks {
        histories.push(t.await.unwrap());
    }
    let stats = app.sandbox.stats().action(CREDIT);
    let lost = histories
        .iter()
        .filter(|h| matches!(h[0], 502 | 504))
        .count();
    println!(
        "lost-answer chaos: {N} intents over 9 customers, {} executed, {lost} first answers lost",
        stats.executed
    );
    assert_eq!(stats.executed as usize, N, "executions equal intents");
    assert_each_intent_applied_once(&app.sandbox, N, expected);
    assert_ledger_per_customer(&app.sandbox, &intents);
    assert!(lost >= N / 10, "the faults did lose answers ({lost})");
}
