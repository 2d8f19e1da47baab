//! The read side: batched, coalesced and cached credit queries, and who may read.

use std::collections::BTreeMap;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use partner_gateway::auth::api_key;
use partner_gateway::sandbox::{Fault, FaultKind, SEEDED_CUSTOMERS};
use serde_json::json;

use crate::helpers::*;

const BY_UIN: &str = "QueryCreditByUinList";
const PARTNER: &str = "QueryPartnerCredit";

impl TestApp {
    pub(crate) async fn get_keyed(&self, path: &str, key: &str) -> Reply {
        self.send(self.client.get(self.url(path)).bearer_auth(key))
            .await
    }

    /// A GET with the test suite's key and `If-None-Match: etag`.
    pub(crate) async fn read_if_none_match(&self, path: &str, etag: &str) -> Reply {
        let request = self.client.get(self.url(path)).bearer_auth(&self.api_key);
        self.send(request.header("if-none-match", etag)).await
    }

    /// A GET with the test suite's key (every scope).
    pub(crate) async fn read(&self, path: &str) -> Reply {
        self.get_keyed(path, &self.api_key).await
    }
}

#[tokio::test]
async fn two_hundred_viewers_of_forty_customers_take_a_few_batched_calls() {
    let mut options = Options::default();
    // Every read goes upstream: only batching can keep the calls down.
    options.settings.reads.cache_ms = 0;
    // The setup's 40 allocations, quickly.
    options.settings.quotas.credit_per_second = 50;
    options.sandbox_quotas = vec![("AllocateCustomerCredit", 50)];
    let app = spawn_app_with(options).await;
    // Each customer holds a different amount, so a reader given another's entry is caught.
    let customers = &SEEDED_CUSTOMERS[..40];
    for (i, uin) in customers.iter().enumerate() {
        let reply = app
            .post_credit(&uin.to_string(), json!({"amount": i + 1}))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let before = app.sandbox.stats().action(BY_UIN).received;
    assert_eq!(before, 0);
    let reads = (0..200).map(|i| {
        let uin = customers[i % customers.len()];
        let app = &app;
        async move { (uin, app.read(&format!("/customers/{uin}/credit")).await) }
    });
    let reads = futures_util::future::join_all(reads).await;
    let ledger = app.sandbox.ledger();
    for (uin, reply) in &reads {
        assert_eq!(reply.status, 200, "{}", reply.text);
        let body = reply.json();
        let account = ledger.customers.iter().find(|c| c.uin == *uin).unwrap();
        assert_eq!(body["uin"], uin.to_string());
        assert_eq!(body["totalCredit"], account.total_credit, "{uin}");
        assert_eq!(body["remainingCredit"], account.remaining_credit, "{uin}");
        assert!(reply.header("etag").is_some());
    }
    let stats = app.sandbox.stats().action(BY_UIN);
    eprintln!(
        "{} QueryCreditByUinList for 200 reads: {:?}",
        stats.received, stats.per_second
    );
    assert!(
        stats.received <= 10,
        "{} calls for 200 reads",
        stats.received
    );
    assert!(stats.max_per_second <= 5, "{:?}", stats.per_second);
    assert_eq!(stats.rate_limited, 0);
}

#[tokio::test]
async fn fifty_concurrent_partner_credit_reads_share_at_most_two_calls() {
    let app = spawn_app().await;
    let reads = (0..50).map(|_| app.read("/partner/credit"));
    let reads = futures_util::future::join_all(reads).await;
    let ledger = app.sandbox.ledger();
    for reply in &reads {
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(
            reply.json()["remainingCredit"],
            ledger.partner_remaining_credit
        );
    }
    let calls = app.sandbox.stats().action(PARTNER).received;
    assert!(calls <= 2, "{calls} calls for 50 reads");
}

#[tokio::test]
async fn an_allocation_is_read_back_at_once_and_etags_give_304() {
    let mut options = Options::default();
    options.settings.reads.cache_ms = 60_000;
    let app = spawn_app_with(options).await;
    let path = format!("/customers/{CUSTOMER}/credit");
    let partner_before = app.read("/partner/credit").await.json();
    let first = app.read(&path).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let etag = first.header("etag").unwrap().to_owned();
    // Cached: the same answer, no new call, and 304 for the holder of its ETag.
    let again = app.read_if_none_match(&path, &etag).await;
    assert_eq!(again.status, 304);
    assert_eq!(app.sandbox.stats().action(BY_UIN).received, 1);
    // An allocation through the gateway is visible at once, cache or not.
    let allocated = app.post_credit(CUSTOMER, json!({"amount": 12.5})).await;
    assert_eq!(allocated.status, 200, "{}", allocated.text);
    let after = app.read_if_none_match(&path, &etag).await;
    assert_eq!(after.status, 200);
    assert_eq!(after.json()["totalCredit"], allocated.json()["totalCredit"]);
    assert_ne!(after.header("etag").unwrap(), etag);
    let partner_after = app.read("/partner/credit").await.json();
    assert_eq!(
        partner_after["allocatedCredit"].as_f64().unwrap(),
        partner_before["allocatedCredit"].as_f64().unwrap() + 12.5,
        "the partner's credit is read back at once too"
    );
}

#[tokio::test]
async fn a_uin_tencent_does_not_list_is_404_and_a_bad_one_422() {
    let app = spawn_app().await;
    let unknown = app.read("/customers/12345/credit").await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    let bad = app.read("/customers/0123/credit").await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert_eq!(bad.fields(), ["uin"]);
    assert_eq!(
        app.sandbox.stats().action(BY_UIN).received,
        1,
        "only the valid UIN went upstream"
    );
}

#[tokio::test]
async fn scopes_read_and_write_are_separate() {
    let reader = api_key::generate();
    let writer = api_key::generate();
    let mut options = Options::default();
    options.settings.auth.api_keys.extend([
        test_key_entry("reader", &reader, &["customers:read"]),
        test_key_entry("writer", &writer, &["invitations:send", "credit:allocate"]),
    ]);
    let app = spawn_app_with(options).await;
    let invited = app
        .post_invitation(json!({"email": "read.scopes@example.com"}))
        .await;
    assert_eq!(invited.status, 201, "{}", invited.text);
    let link = invited.json()["invitationLink"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = link.rsplit('/').next().unwrap();
    let reads = [
        format!("/customers/{CUSTOMER}/credit"),
        format!("/customers/{CUSTOMER}/credit/allocations"),
        "/partner/credit".to_owned(),
        "/customers".to_owned(),
        format!("/customers/{CUSTOMER}"),
        format!("/invitations/{token}"),
    ];
    let mut seen = BTreeMap::new();
    for path in &reads {
        seen.insert(
            (path.clone(), "writer"),
            app.get_keyed(path, &writer).await.status,
        );
        seen.insert(
            (path.clone(), "reader"),
            app.get_keyed(path, &reader).await.status,
        );
    }
    let invite = |key: &str| {
        app.client
            .post(app.url("/customers/invitations"))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(json!({"email": "scopes@example.com"}).to_string())
    };
    let allocate = |key: &str| {
        app.client
            .post(app.url(&format!("/customers/{CUSTOMER}/credit")))
            .bearer_auth(key)
            .header("idempotency-key", uuid::Uuid::new_v4().to_string())
            .header("content-type", "application/json")
            .body(json!({"amount": 1}).to_string())
    };
    seen.insert(
        ("invite".into(), "reader"),
        app.send(invite(&reader)).await.status,
    );
    seen.insert(
        ("allocate".into(), "reader"),
        app.send(allocate(&reader)).await.status,
    );
    for path in &reads {
        assert_eq!(
            seen[&(path.clone(), "writer")],
            403,
            "{path} without customers:read"
        );
        assert_eq!(
            seen[&(path.clone(), "reader")],
            200,
            "{path} with customers:read"
        );
    }
    assert_eq!(seen[&("invite".into(), "reader")], 403);
    assert_eq!(seen[&("allocate".into(), "reader")], 403);
}

#[tokio::test]
async fn readers_beyond_what_the_quota_can_batch_are_refused_not_left_waiting() {
    let app = spawn_app().await;
    // 5 calls a second for 2 s of waiting, 50 UINs each: about 550 UINs at once. 2000 distinct
    // ones (not customers: 404 for those served) leave many that no call can take.
    let reads = (0..2000u64).map(|i| {
        let app = &app;
        async move {
            app.read(&format!("/customers/{}/credit", 900_000_000_000 + i))
                .await
        }
    });
    let started = std::time::Instant::now();
    let replies = futures_util::future::join_all(reads).await;
    let mut statuses = BTreeMap::new();
    for reply in &replies {
        *statuses.entry(reply.status).or_insert(0) += 1;
    }
    assert_eq!(
        statuses.keys().copied().collect::<Vec<_>>(),
        [404, 429],
        "{statuses:?}"
    );
    // Answered within the quota's wait budget and a call, far from the request deadline (30 s).
    assert!(started.elapsed().as_secs() < 15, "{:?}", started.elapsed());
    let stats = app.sandbox.stats().action(BY_UIN);
    assert!(stats.max_per_second <= 5, "{:?}", stats.per_second);
}

#[tokio::test]
async fn the_allocation_history_reads_without_markers_and_checks_its_paging() {
    let app = spawn_app().await;
    let allocated = app
        .post_credit(CUSTOMER, json!({"amount": 7.5, "remark": "Q3 top-up"}))
        .await;
    assert_eq!(allocated.status, 200, "{}", allocated.text);
    let page = app
        .read(&format!(
            "/customers/{CUSTOMER}/credit/allocations?page=1&pageSize=10"
        ))
        .await;
    assert_eq!(page.status, 200, "{}", page.text);
    let body = page.json();
    assert_eq!(body["total"], 1);
    assert_eq!(
        body["allocations"][0]["remark"], "Q3 top-up",
        "the marker is taken off"
    );
    assert_eq!(body["allocations"][0]["viaGateway"], true);
    assert_eq!(body["allocations"][0]["amount"], 7.5);
    let bad = app
        .read(&format!(
            "/customers/{CUSTOMER}/credit/allocations?page=0&pageSize=101&sort=x"
        ))
        .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert_eq!(bad.fields(), ["page", "pageSize", "sort"]);
}

const HISTORY: &str = "QueryCreditAllocationHistory";

#[tokio::test]
async fn reconciliation_settles_while_a_hundred_history_reads_a_second_hit_the_customer() {
    let mut options = Options::default();
    options.settings.upstream.timeout_ms = 300;
    options.settings.credit.settle_ms = 300;
    options.settings.credit.resolve_interval_ms = 50;
    // Reads are not reused, and each asks for a different page size: no two share a call.
    options.settings.reads.cache_ms = 0;
    let app = Arc::new(spawn_app_with(options).await);
    // 100 reads a second of the customer's history, from before the allocation to its settling.
    let stop = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicU64::new(0));
    let readers = {
        let (app, stop, refused) = (app.clone(), stop.clone(), refused.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let mut reads = tokio::task::JoinSet::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                n += 1;
                let (app, refused) = (app.clone(), refused.clone());
                reads.spawn(async move {
                    let size = n % 100 + 1;
                    let path = format!("/customers/{CUSTOMER}/credit/allocations?pageSize={size}");
                    let reply = app.read(&path).await;
                    assert!([200, 429].contains(&reply.status), "{}", reply.text);
                    if reply.status == 429 {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            while reads.join_next().await.is_some() {}
        })
    };
    // The history quota is saturated: readers are being refused.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while refused.load(Ordering::Relaxed) < 20 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reads never filled the quota"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // An allocation whose answer is lost: only the history can settle it.
    app.fault(Fault::once(
        Some("AllocateCustomerCredit"),
        FaultKind::HangAfterExecute { ms: 3_000 },
    ));
    let lost = app
        .post_credit_keyed(CUSTOMER, "lost-under-reads", json!({"amount": 9}))
        .await;
    assert_eq!(lost.status, 504, "{}", lost.text);
    let lost_at = std::time::Instant::now();
    let metrics = loop {
        let metrics = app.get("/metrics").await.text;
        if metrics.contains("gateway_credit_reconciliations_total{result=\"applied\"} 1") {
            break metrics;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never settled while the reads went on:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!("settled {:?} after the loss", lost_at.elapsed());
    stop.store(true, Ordering::Relaxed);
    readers.await.unwrap();
    // Every pass of the resolver found a slot: none failed for want of quota.
    assert!(
        !metrics.contains("gateway_credit_reconciliations_total{result=\"failed\"}"),
        "{metrics}"
    );
    let stats = app.sandbox.stats().action(HISTORY);
    assert!(stats.max_per_second <= 5, "{:?}", stats.per_second);
    assert_eq!(
        app.sandbox
            .stats()
            .action("AllocateCustomerCredit")
            .executed,
        1
    );
}
