//! The committed OpenAPI document is the one the routes generate, and the server serves it.

use crate::helpers::*;

#[test]
fn the_committed_document_is_current() {
    let generated = partner_gateway::app::openapi().to_pretty_json().unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed.trim_end() == generated.trim_end(),
        "openapi/openapi.json is stale; regenerate it with:\n  cargo run -q -- openapi > openapi/openapi.json"
    );
}

#[tokio::test]
async fn the_document_and_the_docs_page_are_served() {
    let app = spawn_app().await;
    let doc = app.get("/openapi.json").await.json();
    assert!(doc["paths"]["/customers/invitations"]["post"]["responses"]["201"].is_object());
    assert!(doc["paths"]["/customers/{uin}/credit"]["post"]["responses"]["200"].is_object());
    let docs = app.get("/docs/").await;
    assert_eq!(docs.status, 200);
    assert!(
        docs.text.contains("swagger"),
        "Swagger UI is vendored and served"
    );
}
