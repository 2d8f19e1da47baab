use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn an_invitation_is_sent_and_answered_with_the_documented_body() {
    let app = spawn_app().await;
    let reply = app
        .post_invitation(json!({"email": "  New.Customer@EXAMPLE.com "}))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["email"], "New.Customer@example.com");
    assert!(
        body["invitationLink"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    );
    assert!(!body["requestId"].as_str().unwrap().is_empty());
    assert_eq!(
        body.as_object().unwrap().len(),
        3,
        "exactly email, invitationLink, requestId"
    );
    assert!(reply.header("x-request-id").is_some());
    assert_eq!(
        app.sandbox
            .stats()
            .action("CreateAndSendClientInvitationMail")
            .executed,
        1
    );
}

#[tokio::test]
async fn a_sub_agent_invitation_carries_its_material_link() {
    let app = spawn_app().await;
    let reply = app
        .post_invitation(json!({"email": "agent@example.com", "role": "subAgent", "materialUrl": "https://example.com/kit.pdf"}))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
}

#[tokio::test]
async fn the_callers_request_id_is_echoed_and_forwarded() {
    let app = spawn_app().await;
    let reply = app
        .send(
            app.post("/customers/invitations")
                .header("x-request-id", "frontend-trace-42")
                .header("content-type", "application/json")
                .body(json!({"email": "trace@example.com"}).to_string()),
        )
        .await;
    assert_eq!(reply.status, 201);
    assert_eq!(reply.header("x-request-id"), Some("frontend-trace-42"));
    let seen = app.sandbox.recent_requests().pop().unwrap();
    assert_eq!(
        seen.trace_id.as_deref(),
        Some("frontend-trace-42"),
        "sent upstream as X-TC-TraceId"
    );
    assert_eq!(seen.version.as_deref(), Some("2022-09-28"));
    assert_eq!(seen.language.as_deref(), Some("en-US"));
    assert!(seen.request_client.unwrap().starts_with("partner-gateway"));
    assert_eq!(seen.region, None, "X-TC-Region only when configured");
    // An insane id is replaced by a fresh one.
    let reply = app
        .send(
            app.client
                .get(app.url("/livez"))
                .header("x-request-id", "bad id with spaces"),
        )
        .await;
    let id = reply.header("x-request-id").unwrap();
    assert_ne!(id, "bad id with spaces");
    assert!(uuid::Uuid::parse_str(id).is_ok());
}

#[tokio::test]
async fn a_registered_address_is_a_conflict() {
    let app = spawn_app().await;
    let reply = app
        .post_invitation(json!({"email": "registered@example.com"}))
        .await;
    assert_eq!(reply.status, 409);
    assert_eq!(reply.problem_type(), "/problems/email-already-registered");
    assert_eq!(
        reply.json()["upstreamCode"],
        "FailedOperation.MailIsRegistered"
    );
    assert!(reply.json()["upstreamRequestId"].is_string());
}

#[tokio::test]
async fn a_second_invitation_within_the_cooldown_is_told_when_to_retry() {
    let app = spawn_app().await;
    assert_eq!(
        app.post_invitation(json!({"email": "abc@example.com"}))
            .await
            .status,
        201
    );
    let reply = app
        .post_invitation(json!({"email": "abc@Example.COM"}))
        .await;
    assert_eq!(reply.status, 429);
    assert_eq!(reply.problem_type(), "/problems/invitation-cooldown");
    let retry_after: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=180).contains(&retry_after));
}

#[tokio::test]
async fn a_configured_region_is_sent() {
    let mut options = Options::default();
    options.settings.upstream.region = Some("ap-singapore".into());
    let app = spawn_app_with(options).await;
    assert_eq!(
        app.post_invitation(json!({"email": "region@example.com"}))
            .await
            .status,
        201
    );
    let seen = app.sandbox.recent_requests().pop().unwrap();
    assert_eq!(seen.region.as_deref(), Some("ap-singapore"));
    assert!(
        uuid::Uuid::parse_str(seen.trace_id.as_deref().unwrap()).is_ok(),
        "a generated request id is a UUID"
    );
}
