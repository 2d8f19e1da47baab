//! No secret key reaches the logs, whatever path a request takes.

use partner_gateway::sandbox::{Fault, FaultKind};
use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn no_secret_key_appears_in_any_captured_log_line() {
    let app = spawn_app().await;
    // Successes, validation failures, upstream errors, auth failures and retries all log.
    app.post_invitation(json!({"email": "logs@example.com"}))
        .await;
    app.post_credit(CUSTOMER, json!({"amount": 1, "remark": "logs"}))
        .await;
    app.post_credit("0", json!({"amount": 0})).await;
    app.fault(Fault::error(None, "AuthFailure.SignatureFailure"));
    app.post_credit(CUSTOMER, json!({"amount": 1})).await;
    app.fault(Fault::error(None, "RequestLimitExceeded"));
    app.post_credit(CUSTOMER, json!({"amount": 1})).await;
    app.fault(Fault::once(None, FaultKind::TruncateAfterExecute));
    app.post_credit(CUSTOMER, json!({"amount": 1})).await;
    // Tokens, good and bad, through a JWT-enabled gateway.
    let (url, _) = crate::auth::jwks_server(vec![crate::auth::jwk("es256-a")]).await;
    let jwt_app = spawn_app_with(crate::auth::jwt_options(url)).await;
    for token in [
        crate::auth::token("es256-a", "es256-a", crate::auth::claims("credit:allocate")),
        crate::auth::token(
            "stranger",
            "stranger",
            crate::auth::claims("credit:allocate"),
        ),
        crate::auth::token(
            "es256-a",
            "es256-a",
            crate::auth::claims("invitations:send"),
        ),
    ] {
        let reply = jwt_app
            .send(
                jwt_app
                    .client
                    .post(jwt_app.url(&format!("/customers/{CUSTOMER}/credit")))
                    .header("idempotency-key", uuid::Uuid::new_v4().to_string())
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(json!({"amount": 1}).to_string()),
            )
            .await;
        assert!(matches!(reply.status, 200 | 401 | 403), "{}", reply.text);
    }
    let wrong = spawn_app_with(Options {
        gateway_secret_key: Some("wrong-key-for-log-test".into()),
        ..Options::default()
    })
    .await;
    wrong.post_credit(CUSTOMER, json!({"amount": 1})).await;
    // Temporary credentials: issued, refreshed, and failing to refresh (CVM role), and an
    // exchange of a web-identity token, as the credential chain finds them.
    let (temporary, web_identity_token) =
        crate::credentials::temporary_credentials_exercised().await;
    register_secret(&web_identity_token);
    for key in temporary.temporary_keys() {
        register_secret(secrecy::ExposeSecret::expose_secret(&key.secret_key));
        if let Some(token) = &key.token {
            register_secret(secrecy::ExposeSecret::expose_secret(token));
        }
    }

    let logs = captured_logs();
    assert!(logs.contains(&app_request_marker()), "logs were captured");
    for secret in secrets_in_use() {
        assert!(
            !logs.contains(&secret),
            "secret {secret} appeared in the logs"
        );
    }
    assert!(
        !logs.contains("logs@example.com"),
        "an unmasked e-mail address appeared in the logs"
    );
    assert!(logs.contains("l***@example.com"));
}

fn app_request_marker() -> String {
    "request served".to_owned()
}
