//! The fleet's lease on a customer's allocation history, when its holder dies mid-scan.

use std::time::{Duration, Instant};

use partner_gateway::sandbox::{Fault, FaultKind};
use serde_json::json;

use crate::helpers::*;
use crate::redis_server::TestRedis;
use crate::scale_out::Replica;

/// A replica SIGKILLed while it scans a customer's history leaves the fleet's lease on it; the
/// lease must lapse within two pages' time (here 2 x 2.25 s), not a whole scan's (50 pages: 112 s),
/// or every replica answers "outcome unknown" for that customer until it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_scan_holds_the_history_lease_for_two_pages_at_most() {
    let redis = TestRedis::shared_or_private();
    let upstream = spawn_upstream(&Options::default()).await;
    // The allocation's answer is lost; every page of the history hangs past the timeout.
    upstream.sandbox.add_fault(Fault::once(
        Some("AllocateCustomerCredit"),
        FaultKind::TruncateAfterExecute,
    ));
    upstream.sandbox.add_fault(Fault::always(
        Some("QueryCreditAllocationHistory"),
        FaultKind::HangBeforeExecute { ms: 60_000 },
    ));
    let key = partner_gateway::auth::api_key::generate();
    register_secret(&key);
    let mut replica = Replica::new(
        &upstream,
        &redis,
        &partner_gateway::auth::api_key::hash_hex(&key),
    );
    replica.start().await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let post = {
        let (client, key, port) = (client.clone(), key.clone(), replica.port);
        move || {
            let (client, key) = (client.clone(), key.clone());
            async move {
                client
                    .post(format!(
                        "http://127.0.0.1:{port}/customers/{CUSTOMER}/credit"
                    ))
                    .bearer_auth(&key)
                    .header("idempotency-key", "lease-test")
                    .header("content-type", "application/json")
                    .body(json!({"amount": 1}).to_string())
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            }
        }
    };
    assert_eq!(post().await.ok(), Some(502), "the outcome is unknown");
    // Retries settle through the history, whose scan takes the lease and hangs.
    let retrying = tokio::spawn({
        let post = post.clone();
        async move {
            loop {
                let _ = post().await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    let mut conn = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let pattern = format!("*{}*credit-history:{CUSTOMER}*", redis.prefix);
    let started = Instant::now();
    // The lease as the scanning replica set it: its key and the time it has left.
    let (lease, left_ms) = loop {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(&pattern)
            .query_async(&mut conn)
            .await
            .unwrap();
        let mut live = None;
        for key in keys {
            let left: i64 = redis::cmd("PTTL")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            if left > 0 {
                live = Some((key, left));
            }
        }
        if let Some(live) = live {
            break live;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no scan took the lease"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    // history timeout = quotas.max_wait_ms (2000) + upstream.timeout_ms (250) in the replica's
    // settings; two pages of it.
    assert!(
        left_ms <= 4_500,
        "a scan's lease lasts {left_ms} ms: a replica dying now would block settling that long"
    );
    // Killed while it may hold the lease: the lease lapses by itself, soon.
    replica.kill().await;
    retrying.abort();
    let killed = Instant::now();
    loop {
        let exists: bool = redis::cmd("EXISTS")
            .arg(&lease)
            .query_async(&mut conn)
            .await
            .unwrap();
        if !exists {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "the dead replica's lease outlived 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
