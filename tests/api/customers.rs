//! `GET /customers`: the partner's customers, filtered and paged, every parameter checked.

use serde_json::json;

use crate::helpers::*;

impl TestApp {
    async fn list(&self, query: &str) -> Reply {
        let url = self.url(&format!("/customers{query}"));
        self.send(self.client.get(url).bearer_auth(&self.api_key))
            .await
    }
}

#[tokio::test]
async fn customers_are_listed_with_their_credit_paged_and_filtered() {
    let app = spawn_app().await;
    let allocated = app.post_credit(CUSTOMER, json!({"amount": 42})).await;
    assert_eq!(allocated.status, 200, "{}", allocated.text);

    let first = app.list("?page=1&pageSize=10&order=asc").await;
    assert_eq!(first.status, 200, "{}", first.text);
    let body = first.json();
    assert_eq!(body["total"], 50);
    assert_eq!(body["customers"].as_array().unwrap().len(), 10);
    // Oldest association first: the README's customer, with the credit just allocated.
    assert_eq!(body["customers"][0]["uin"], CUSTOMER);
    assert_eq!(body["customers"][0]["credit"], 42.0);
    assert_eq!(body["customers"][0]["email"], "customer00@example.com");

    let by_uin = app
        .list(&format!("?filterType=ClientUin&filter={CUSTOMER}"))
        .await
        .json();
    assert_eq!(by_uin["total"], 1);
    let by_mail = app.list("?filterType=Email&filter=customer4").await.json();
    assert_eq!(by_mail["total"], 10, "customer40 to customer49");

    let upstream = app.sandbox.stats().action("QueryCustomersCredit").received;
    let bad = app
        .list("?page=0&pageSize=500&order=up&filterType=Phone&filter=x&extra=1")
        .await;
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert_eq!(
        bad.fields(),
        ["page", "pageSize", "order", "filterType", "extra"]
    );
    let lonely = app.list("?filter=x").await;
    assert_eq!(lonely.fields(), ["filterType"]);
    let not_a_uin = app.list("?filterType=ClientUin&filter=abc").await;
    assert_eq!(not_a_uin.fields(), ["filter"]);
    assert_eq!(
        app.sandbox.stats().action("QueryCustomersCredit").received,
        upstream,
        "nothing the gateway refused reached Tencent"
    );
}
