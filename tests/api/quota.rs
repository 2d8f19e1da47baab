//! The quota limiter end to end: 10×N concurrent calls against a simulator that counts per
//! wall-clock second exactly as Tencent does. (Arrival order and burst timing are proven on a
//! paused clock in the limiter's unit tests; here the invariants are checked on real time.)

use serde_json::json;

use crate::helpers::*;

const CREDIT: &str = "AllocateCustomerCredit";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_times_n_concurrent_calls_never_exceed_n_per_second_upstream() {
    const N: u32 = 5;
    let mut options = Options::default();
    options.settings.quotas.credit_per_second = N;
    options.settings.quotas.max_wait_ms = 2_800;
    // The guard is learned; it starts at its ceiling until the path has been measured, so the
    // ceiling here puts the slots one window of 1.15 s apart. The pool has no connection yet, so
    // the first slots are a connection's time away (0.25 s before any was measured): slots at
    // ~0.25, ~1.4 and ~2.55 s are within the 2.8 s budget, the next (~3.7 s) is not.
    options.settings.quotas.guard_max_ms = 150;
    let app = std::sync::Arc::new(spawn_app_with(options).await);
    let calls: Vec<_> = (0..10 * N)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.post_credit(CUSTOMER, json!({"amount": 1})).await })
        })
        .collect();
    let mut ok = 0;
    let mut refused = Vec::new();
    for call in calls {
        let reply = call.await.unwrap();
        match reply.status {
            200 => ok += 1,
            429 => refused.push(reply),
            other => panic!("unexpected {other}: {}", reply.text),
        }
    }
    let stats = app.sandbox.stats().action(CREDIT);
    println!(
        "admitted {ok}, refused {}, per second upstream: {:?}",
        refused.len(),
        stats.per_second
    );
    assert!(
        stats.max_per_second <= N,
        "the simulator counted {} in one second",
        stats.max_per_second
    );
    assert_eq!(stats.rate_limited, 0, "no RequestLimitExceeded");
    assert_eq!(stats.executed, ok);
    // A burst of N at once, then N per window within the budget: exactly three bursts. (Until
    // the host's departures are measured, a call may leave up to half the guard's ceiling after
    // its slot, so a busy host does not make it miss one.)
    assert_eq!(ok, 3 * N as u64, "the slots within the wait budget");
    let first_second = stats.per_second.values().next().copied().unwrap();
    assert!(first_second >= 1);
    for reply in &refused {
        assert_eq!(reply.problem_type(), "/problems/quota-exceeded");
        let secs: u64 = reply.header("retry-after").unwrap().parse().unwrap();
        // The next free slot is ~3.7 s away, under a second past the budget: Retry-After is 1.
        assert_eq!(secs, 1, "{}", reply.text);
        assert_eq!(
            reply.header("ratelimit-policy"),
            Some("\"AllocateCustomerCredit\";q=5;w=1")
        );
        assert_eq!(
            reply.header("ratelimit"),
            Some(format!("\"AllocateCustomerCredit\";r=0;t={secs}").as_str())
        );
    }
}

#[tokio::test]
async fn a_burst_of_n_is_forwarded_at_once() {
    const N: u32 = 5;
    let mut options = Options::default();
    options.settings.quotas.credit_per_second = N;
    // Room for the first connections to be made before the slots (0.25 s before any was
    // measured), not for a second window (1 s + guard).
    options.settings.quotas.max_wait_ms = 500;
    let app = std::sync::Arc::new(spawn_app_with(options).await);
    // Exactly N succeed: the burst went at once, the next window is beyond the budget.
    let calls: Vec<_> = (0..2 * N)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(
                async move { app.post_credit(CUSTOMER, json!({"amount": 1})).await.status },
            )
        })
        .collect();
    let mut statuses = Vec::new();
    for c in calls {
        statuses.push(c.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        N as usize,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 429).count(),
        N as usize,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn each_action_has_its_own_quota() {
    let mut options = Options::default();
    options.settings.quotas.credit_per_second = 1;
    options.settings.quotas.max_wait_ms = 500;
    let app = spawn_app_with(options).await;
    assert_eq!(
        app.post_credit(CUSTOMER, json!({"amount": 1})).await.status,
        200
    );
    assert_eq!(
        app.post_credit(CUSTOMER, json!({"amount": 1})).await.status,
        429
    );
    // Invitations are unaffected by the exhausted credit quota.
    assert_eq!(
        app.post_invitation(json!({"email": "q@example.com"}))
            .await
            .status,
        201
    );
}
