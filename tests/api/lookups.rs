//! The lookups (`GET /customers/{uin}`, `GET /invitations/{token}`), batched; and the history
//! and list reads, coalesced and cached.

use partner_gateway::sandbox::SEEDED_CUSTOMERS;
use serde_json::json;

use crate::helpers::*;

const DESCRIBE: &str = "DescribeCustomerInfo";
const INVITATION_INFO: &str = "QueryInvitationInfo";
const HISTORY: &str = "QueryCreditAllocationHistory";
const LIST: &str = "QueryCustomersCredit";

/// The token of an `invitationLink` (its last path segment, in the sandbox).
fn token_of(reply: &Reply) -> String {
    let link = reply.json()["invitationLink"].as_str().unwrap().to_owned();
    link.rsplit('/').next().unwrap().to_owned()
}

#[tokio::test]
async fn sixty_profile_reads_of_forty_customers_share_a_few_calls_each_getting_its_own() {
    let mut options = Options::default();
    // Every read goes upstream: only batching can keep the calls down.
    options.settings.reads.cache_ms = 0;
    let app = spawn_app_with(options).await;
    let reads = (0..60).map(|i| {
        let app = &app;
        async move {
            let uin = SEEDED_CUSTOMERS[i % 40];
            (i % 40, uin, app.read(&format!("/customers/{uin}")).await)
        }
    });
    let reads = futures_util::future::join_all(reads).await;
    for (index, uin, reply) in &reads {
        assert_eq!(reply.status, 200, "{}", reply.text);
        let body = reply.json();
        assert_eq!(body["uin"], uin.to_string(), "the UIN, as a string");
        assert_eq!(body["name"], format!("Customer {index:02}"));
        assert_eq!(body["email"], format!("customer{index:02}@example.com"));
        assert!(reply.header("etag").is_some());
    }
    let stats = app.sandbox.stats().action(DESCRIBE);
    eprintln!(
        "{} {DESCRIBE} for 60 reads: {:?}",
        stats.received, stats.per_second
    );
    // 40 UINs are 2 full batches of 20, and the first reader's call may leave alone.
    assert!(stats.received <= 4, "{} calls for 60 reads", stats.received);
    assert_eq!(stats.rate_limited, 0);
    let unknown = app.read("/customers/12345").await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    let bad = app.read("/customers/12x").await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert_eq!(bad.fields(), ["uin"]);
}

#[tokio::test]
async fn an_invitation_reads_unused_then_used_by_whom_and_many_share_a_call() {
    let mut options = Options::default();
    options.settings.reads.cache_ms = 0;
    // The setup's 30 invitations, quickly.
    options.settings.quotas.invitations_per_second = 100;
    options.sandbox_quotas = vec![("CreateAndSendClientInvitationMail", 100)];
    let app = spawn_app_with(options).await;
    let mut tokens = Vec::new();
    for i in 0..30 {
        let reply = app
            .post_invitation(json!({"email": format!("invitee{i}@example.com")}))
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        tokens.push(token_of(&reply));
    }
    let first = app.read(&format!("/invitations/{}", tokens[0])).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let body = first.json();
    assert_eq!(body["status"], "unused");
    assert_eq!(body["email"], "invitee0@example.com");
    assert!(body["uin"].is_null() && body["usedAt"].is_null());
    // The customer uses the link.
    let accepted = app
        .client
        .post(format!(
            "http://{}/_sandbox/invitations/{}/accept",
            app.sandbox_addr, tokens[0]
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 200);
    let accepted: serde_json::Value =
        serde_json::from_str(&accepted.text().await.unwrap()).unwrap();
    let uin = accepted["clientUin"].as_u64().unwrap();
    let used = app
        .read(&format!("/invitations/{}", tokens[0]))
        .await
        .json();
    assert_eq!(used["status"], "used");
    assert_eq!(used["uin"], uin.to_string(), "the UIN, as a string");
    assert_eq!(used["clientType"], "customer");
    assert!(used["usedAt"].is_string() && used["boundAt"].is_string());
    // The new customer is the partner's now: its profile reads.
    assert_eq!(app.read(&format!("/customers/{uin}")).await.status, 200);

    // 90 concurrent reads of the 30 tokens: each its own entry, from a few calls.
    let before = app.sandbox.stats().action(INVITATION_INFO).received;
    let reads = (0..90).map(|i| {
        let (app, token) = (&app, tokens[i % 30].clone());
        async move { (i % 30, app.read(&format!("/invitations/{token}")).await) }
    });
    for (i, reply) in futures_util::future::join_all(reads).await {
        assert_eq!(reply.status, 200, "{}", reply.text);
        let body = reply.json();
        assert_eq!(body["token"], tokens[i]);
        assert_eq!(body["email"], format!("invitee{i}@example.com"));
    }
    let calls = app.sandbox.stats().action(INVITATION_INFO).received - before;
    assert!(calls <= 2, "{calls} calls for 90 reads of 30 tokens");

    let unknown = app.read("/invitations/0123456789abcdef").await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    for bad in [
        "bad%20token",
        &"a".repeat(65),
        "%C3%A9t%C3%A9",
        "a.b",
        "a~b",
    ] {
        let reply = app.read(&format!("/invitations/{bad}")).await;
        assert_eq!(reply.status, 422, "{bad}: {}", reply.text);
        assert_eq!(reply.fields(), ["token"]);
    }
}

#[tokio::test]
async fn identical_history_and_list_reads_share_one_call_and_are_reused() {
    let mut options = Options::default();
    options.settings.reads.cache_ms = 60_000;
    let app = spawn_app_with(options).await;
    let allocated = app.post_credit(CUSTOMER, json!({"amount": 3})).await;
    assert_eq!(allocated.status, 200, "{}", allocated.text);
    let history = format!("/customers/{CUSTOMER}/credit/allocations?pageSize=10");
    let list = "/customers?pageSize=5&order=asc";
    for (path, action) in [(history.as_str(), HISTORY), (list, LIST)] {
        let before = app.sandbox.stats().action(action).received;
        let reads = (0..50).map(|_| app.read(path));
        let reads = futures_util::future::join_all(reads).await;
        let first = reads[0].json();
        for reply in &reads {
            assert_eq!(reply.status, 200, "{}", reply.text);
            assert_eq!(
                reply.json(),
                first,
                "{path}: every reader gets the same answer"
            );
        }
        // Later reads come from the cache, with an ETag and 304 for its holder.
        let etag = reads[0].header("etag").unwrap().to_owned();
        assert_eq!(app.read_if_none_match(path, &etag).await.status, 304);
        let calls = app.sandbox.stats().action(action).received - before;
        assert_eq!(calls, 1, "{path}: {calls} calls for 51 reads");
    }
    // An allocation makes both stale at once.
    let again = app.post_credit(CUSTOMER, json!({"amount": 4})).await;
    assert_eq!(again.status, 200, "{}", again.text);
    let history = app.read(&history).await.json();
    assert_eq!(history["total"], 2, "{history}");
    // The oldest customer first: the one credited.
    let list = app.read(list).await.json();
    assert_eq!(list["customers"][0]["uin"], CUSTOMER, "{list}");
    assert_eq!(list["customers"][0]["credit"], 7.0, "{list}");
}
