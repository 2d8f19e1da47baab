//! The gateway on a Redis Cluster (three primaries made by the test itself): every script touches
//! keys of one hash tag, so the idempotency store, the shared quota and the fleet's heartbeats run
//! as on a single primary.

use std::sync::Arc;

use partner_gateway::config::Settings;
use partner_gateway::metrics::Metrics;
use partner_gateway::readiness::ReadinessChecks;
use partner_gateway::redis_link::RedisLink;
use secrecy::SecretString;
use serde_json::json;

use crate::helpers::*;
use crate::redis_server::TestCluster;
use crate::scale_out::{store_contract, use_redis, wait_joined};

const CREDIT: &str = "AllocateCustomerCredit";

fn use_cluster(settings: &mut Settings, cluster: &TestCluster) {
    settings.store.backend = partner_gateway::config::StoreBackend::Redis;
    settings.store.redis_url = Some(SecretString::from(cluster.urls.clone()));
    settings.store.redis_cluster = true;
    settings.store.key_prefix = cluster.prefix.clone();
    settings.store.redis_probe_ms = 100;
    settings.store.heartbeat_ms = 200;
    settings.store.partition_lease_ms = 10_000;
    // A cluster's first connection discovers its slots: allow more than a single node's answer.
    settings.store.redis_timeout_ms = 1_000;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_keeps_its_contract_on_a_redis_cluster() {
    let cluster = TestCluster::start();
    let mut settings = Settings::default();
    use_cluster(&mut settings, &cluster);
    settings.validate().unwrap();
    let link = RedisLink::new(
        &settings.store,
        Arc::new(ReadinessChecks::default()),
        Arc::new(Metrics::new()),
    )
    .unwrap();
    assert!(
        link.probe().await,
        "the cluster at {} answers",
        cluster.urls
    );
    store_contract(link).await;
}

/// Two replicas on the cluster: one quota for both (a burst of 4N with a wait budget shorter
/// than a window admits exactly N), one idempotency record for a key sent to both, and each sees the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_quota_and_keys_on_a_redis_cluster() {
    let cluster = TestCluster::start();
    let mut options = Options::default();
    // Only to reuse its settings for the rest; the store is the cluster's.
    let unused = crate::redis_server::TestRedis::shared_or_private();
    use_redis(&mut options.settings, &unused, 0);
    use_cluster(&mut options.settings, &cluster);
    // Room for connections to be made before the slots, not for a second window.
    options.settings.quotas.max_wait_ms = 500;
    let fleet: Vec<Arc<TestApp>> = spawn_fleet(2, options)
        .await
        .into_iter()
        .map(Arc::new)
        .collect();
    for app in &fleet {
        wait_joined(app, 2).await;
    }
    let n = 5;
    let calls: Vec<_> = (0..4 * n)
        .map(|i| {
            let app = fleet[i % 2].clone();
            tokio::spawn(
                async move { app.post_credit(CUSTOMER, json!({"amount": 1})).await.status },
            )
        })
        .collect();
    let mut ok = 0;
    for call in calls {
        match call.await.unwrap() {
            200 => ok += 1,
            429 => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, n, "one quota of {n} for the fleet");
    let stats = fleet[0].sandbox.stats().action(CREDIT);
    assert!(stats.max_per_second <= n as u32);
    assert_eq!(stats.rate_limited, 0);

    // The same key at both replicas: one allocation.
    let executed = stats.executed;
    let key = uuid::Uuid::new_v4().to_string();
    // The quota is spent for this window: a 429 sends nothing, so the caller simply retries.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let first = loop {
        let reply = fleet[0]
            .post_credit_keyed(CUSTOMER, &key, json!({"amount": 2}))
            .await;
        if reply.status != 429 || std::time::Instant::now() > deadline {
            break reply;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let second = fleet[1]
        .post_credit_keyed(CUSTOMER, &key, json!({"amount": 2}))
        .await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(second.status, 200, "{}", second.text);
    assert_eq!(first.json(), second.json(), "the replay is the same answer");
    assert_eq!(
        fleet[0].sandbox.stats().action(CREDIT).executed,
        executed + 1
    );
}
