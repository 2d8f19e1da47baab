//! Read-your-writes across a fleet: an allocation through one replica is read back at once
//! through another, though both cache reads for a minute.

use serde_json::json;

use crate::helpers::*;
use crate::redis_server::TestRedis;
use crate::scale_out::{use_redis, wait_readiness};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allocation_through_one_replica_is_read_back_at_once_through_another() {
    let redis = TestRedis::shared_or_private();
    let mut options = Options::default();
    use_redis(&mut options.settings, &redis, 2);
    options.settings.reads.cache_ms = 60_000;
    let fleet = spawn_fleet(2, options).await;
    for app in &fleet {
        wait_readiness(app, "ready", |status, _| status == 200).await;
    }
    let (reader, writer) = (&fleet[0], &fleet[1]);
    let credit = format!("/customers/{CUSTOMER}/credit");
    let history = format!("/customers/{CUSTOMER}/credit/allocations");
    let profile = format!("/customers/{CUSTOMER}");
    let list = "/customers?order=asc&pageSize=1".to_owned();
    let partner = "/partner/credit".to_owned();
    let paths = [&credit, &history, &profile, &list, &partner];
    let mut before = Vec::new();
    for path in paths {
        let reply = reader.read(path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
        before.push(reply.json());
    }
    // Cached on the reader: reading again calls nothing.
    let calls = reader.upstream_calls();
    for path in paths {
        assert_eq!(reader.read(path).await.status, 200);
    }
    assert_eq!(
        reader.upstream_calls(),
        calls,
        "the second reads were cached"
    );

    let allocated = writer.post_credit(CUSTOMER, json!({"amount": 7.25})).await;
    assert_eq!(allocated.status, 200, "{}", allocated.text);
    let total = allocated.json()["totalCredit"].as_f64().unwrap();

    // At once, on the other replica: whatever the allocation changed is read anew.
    let after: Vec<_> = futures_util::future::join_all(paths.map(|p| reader.read(p)))
        .await
        .into_iter()
        .map(|r| r.json())
        .collect();
    assert_eq!(after[0]["totalCredit"], total, "credit: {}", after[0]);
    assert_eq!(
        after[1]["total"].as_u64().unwrap(),
        before[1]["total"].as_u64().unwrap() + 1,
        "history: {}",
        after[1]
    );
    assert_eq!(
        after[3]["customers"][0]["credit"], total,
        "list: {}",
        after[3]
    );
    assert_eq!(
        after[4]["allocatedCredit"].as_f64().unwrap(),
        before[4]["allocatedCredit"].as_f64().unwrap() + 7.25,
        "partner: {}",
        after[4]
    );
    // The profile does not depend on credit: still the cached answer, from the same call.
    assert_eq!(after[2]["requestId"], before[2]["requestId"]);
}

/// Another replica may allocate while this one cannot read the fleet's versions: so while Redis
/// does not answer, no read is reused (each goes upstream, batched as ever) rather than risk one
/// from before that allocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_redis_does_not_answer_no_read_is_reused() {
    let mut redis = TestRedis::private();
    let mut options = Options::default();
    use_redis(&mut options.settings, &redis, 1);
    options.settings.reads.cache_ms = 60_000;
    let app = spawn_app_with(options).await;
    wait_readiness(&app, "ready", |status, _| status == 200).await;
    let credit = format!("/customers/{CUSTOMER}/credit");
    for _ in 0..2 {
        assert_eq!(app.read(&credit).await.status, 200);
    }
    let calls = app.upstream_calls();
    assert_eq!(calls, 1, "the second read was cached");

    redis.stop();
    wait_readiness(&app, "degraded", |status, body| {
        status == 200 && body["degraded"]["store"].is_string()
    })
    .await;
    // Until the fleet stops counting on this replica's quota share, reads are refused (429);
    // then they are served on the share.
    let served = |path: String| {
        let app = &app;
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
            loop {
                let reply = app.read(&path).await;
                if reply.status == 200 {
                    return;
                }
                assert_eq!(reply.status, 429, "{}", reply.text);
                assert!(std::time::Instant::now() < deadline, "never served");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    served(credit.clone()).await;
    let calls = app.upstream_calls();
    served(credit.clone()).await;
    assert_eq!(app.upstream_calls(), calls + 1, "the read was not reused");
    // Profiles do not depend on allocations: still reused.
    let profile = format!("/customers/{CUSTOMER}");
    served(profile.clone()).await;
    let calls = app.upstream_calls();
    served(profile).await;
    assert_eq!(app.upstream_calls(), calls, "the profile was reused");
}
