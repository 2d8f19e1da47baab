//! Every input rule of design.md, exercised with bad values: each gets its 4xx naming the field,
//! and nothing reaches the simulator.

use serde_json::{Value, json};

use crate::helpers::*;

async fn assert_rejected(
    app: &TestApp,
    reply: Reply,
    status: u16,
    problem: &str,
    field: Option<&str>,
    case: &str,
) {
    assert_eq!(reply.status, status, "{case}: {}", reply.text);
    assert_eq!(reply.problem_type(), problem, "{case}");
    if let Some(field) = field {
        assert!(
            reply.fields().iter().any(|f| f == field),
            "{case}: expected field {field}: {}",
            reply.text
        );
        assert!(
            reply.json()["detail"].as_str().unwrap().contains(field) || reply.fields().len() > 1,
            "{case}"
        );
    }
    assert!(reply.json()["requestId"].is_string(), "{case}");
    assert_eq!(app.upstream_calls(), 0, "{case} reached the simulator");
}

#[tokio::test]
async fn invalid_invitations_never_reach_tencent() {
    let app = spawn_app().await;
    let long_local = format!("{}@example.com", "a".repeat(65));
    let too_long = format!("a@{}.com", vec!["b".repeat(60); 5].join("."));
    let cases: Vec<(&str, Value, &str)> = vec![
        ("missing email", json!({}), "email"),
        ("empty email", json!({"email": ""}), "email"),
        ("blank email", json!({"email": "   "}), "email"),
        (
            "no at sign",
            json!({"email": "customer.example.com"}),
            "email",
        ),
        (
            "two addresses",
            json!({"email": "a@example.com,b@example.com"}),
            "email",
        ),
        ("space inside", json!({"email": "a b@example.com"}), "email"),
        (
            "control character",
            json!({"email": "a\u{7}@example.com"}),
            "email",
        ),
        (
            "no top-level domain",
            json!({"email": "a@localhost"}),
            "email",
        ),
        ("local part over 64", json!({"email": long_local}), "email"),
        ("over 254 characters", json!({"email": too_long}), "email"),
        ("email not a string", json!({"email": 42}), "email"),
        ("email null", json!({"email": null}), "email"),
        (
            "unknown role",
            json!({"email": "a@example.com", "role": "admin"}),
            "role",
        ),
        (
            "role in Tencent's spelling",
            json!({"email": "a@example.com", "role": "SubAgent"}),
            "role",
        ),
        (
            "material without sub-agent",
            json!({"email": "a@example.com", "materialUrl": "https://e.com/x"}),
            "materialUrl",
        ),
        (
            "material not a URL",
            json!({"email": "a@example.com", "role": "subAgent", "materialUrl": "kit.pdf"}),
            "materialUrl",
        ),
        (
            "material not http",
            json!({"email": "a@example.com", "role": "subAgent", "materialUrl": "javascript:alert(1)"}),
            "materialUrl",
        ),
        (
            "unknown field",
            json!({"email": "a@example.com", "emial": "x"}),
            "emial",
        ),
        ("an array", json!(["a@example.com"]), "body"),
        ("a string", json!("a@example.com"), "body"),
    ];
    for (case, body, field) in cases {
        let reply = app.post_invitation(body).await;
        assert_rejected(
            &app,
            reply,
            422,
            "/problems/validation-failed",
            Some(field),
            case,
        )
        .await;
    }
}

#[tokio::test]
async fn invalid_allocations_never_reach_tencent() {
    let app = spawn_app().await;
    for (case, uin) in [
        ("zero", "0"),
        ("leading zero", "0800000232018"),
        ("negative", "-1"),
        ("plus sign", "+1"),
        ("decimal", "1.5"),
        ("letters", "abc"),
        ("over u64", "18446744073709551616"),
        ("unicode digits", "%D9%A1"),
        ("space", "%201"),
    ] {
        let reply = app.post_credit(uin, json!({"amount": 1})).await;
        assert_rejected(
            &app,
            reply,
            422,
            "/problems/validation-failed",
            Some("uin"),
            case,
        )
        .await;
    }
    let long_remark = format!(r#"{{"amount": 1, "remark": "{}"}}"#, "r".repeat(257));
    let cases: Vec<(&str, &str, &str)> = vec![
        ("zero", r#"{"amount": 0}"#, "amount"),
        ("negative zero", r#"{"amount": -0.0}"#, "amount"),
        ("three decimals", r#"{"amount": 100.005}"#, "amount"),
        ("tiny", r#"{"amount": 1e-3}"#, "amount"),
        ("over max", r#"{"amount": 100000.01}"#, "amount"),
        ("under -max", r#"{"amount": -100000.01}"#, "amount"),
        ("huge", r#"{"amount": 1e308}"#, "amount"),
        ("beyond f64", r#"{"amount": 1e400}"#, "amount"),
        ("string", r#"{"amount": "10"}"#, "amount"),
        ("null", r#"{"amount": null}"#, "amount"),
        ("boolean", r#"{"amount": true}"#, "amount"),
        ("object", r#"{"amount": {"value": 1}}"#, "amount"),
        ("missing", r#"{"remark": "x"}"#, "amount"),
        ("typo", r#"{"amout": 10}"#, "amout"),
        ("duplicate", r#"{"amount": 1, "amount": 1000}"#, "amount"),
        ("remark too long", &long_remark, "remark"),
        (
            "remark control char",
            r#"{"amount": 1, "remark": "line\nbreak"}"#,
            "remark",
        ),
        (
            "remark escape",
            r#"{"amount": 1, "remark": "\u001b[31mred"}"#,
            "remark",
        ),
        (
            "remark not a string",
            r#"{"amount": 1, "remark": 5}"#,
            "remark",
        ),
    ];
    for (case, body, field) in cases {
        let reply = app
            .post_raw(
                &format!("/customers/{CUSTOMER}/credit"),
                Some("application/json"),
                body.to_owned(),
            )
            .await;
        assert_rejected(
            &app,
            reply,
            422,
            "/problems/validation-failed",
            Some(field),
            case,
        )
        .await;
    }
    // Every invalid field is listed at once.
    let reply = app
        .post_credit("007", json!({"amount": 0.001, "remark": "a\u{0}b"}))
        .await;
    assert_eq!(reply.fields(), ["uin", "amount", "remark"]);
    assert_eq!(app.upstream_calls(), 0);
}

#[tokio::test]
async fn bodies_that_are_not_json_are_refused_before_validation() {
    let app = spawn_app().await;
    let credit = format!("/customers/{CUSTOMER}/credit");
    for path in ["/customers/invitations", credit.as_str()] {
        let r = app
            .post_raw(path, Some("text/plain"), r#"{"amount": 1}"#)
            .await;
        assert_rejected(
            &app,
            r,
            415,
            "/problems/unsupported-media-type",
            None,
            "text/plain",
        )
        .await;
        let r = app.post_raw(path, None, r#"{"amount": 1}"#).await;
        assert_rejected(
            &app,
            r,
            415,
            "/problems/unsupported-media-type",
            None,
            "no content type",
        )
        .await;
        let r = app
            .post_raw(path, Some("application/x-www-form-urlencoded"), "amount=1")
            .await;
        assert_rejected(
            &app,
            r,
            415,
            "/problems/unsupported-media-type",
            None,
            "form",
        )
        .await;
        for (case, body) in [
            ("empty", ""),
            ("truncated", r#"{"amount": 1"#),
            ("garbage", "amount=1"),
            ("trailing", r#"{"amount": 1} {}"#),
        ] {
            let r = app.post_raw(path, Some("application/json"), body).await;
            assert_rejected(&app, r, 400, "/problems/malformed-request", None, case).await;
        }
        let big = format!(r#"{{"remark": "{}"}}"#, "x".repeat(17 * 1024));
        let r = app.post_raw(path, Some("application/json"), big).await;
        assert_rejected(
            &app,
            r,
            413,
            "/problems/payload-too-large",
            None,
            "17 KiB body",
        )
        .await;
    }
}

#[tokio::test]
async fn max_amount_follows_configuration() {
    let mut options = Options::default();
    options.settings.credit.max_amount = 50.0;
    let app = spawn_app_with(options).await;
    let reply = app.post_credit(CUSTOMER, json!({"amount": 50.01})).await;
    assert_eq!(reply.status, 422);
    assert!(reply.text.contains("between -50 and 50"), "{}", reply.text);
    assert_eq!(app.upstream_calls(), 0);
    assert_eq!(
        app.post_credit(CUSTOMER, json!({"amount": 50}))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems_too() {
    let app = spawn_app().await;
    let reply = app.get("/customers/800000232018/nothing").await;
    assert_eq!(
        (reply.status, reply.problem_type().as_str()),
        (404, "/problems/not-found")
    );
    let reply = app.get("/customers/invitations").await;
    assert_eq!(
        (reply.status, reply.problem_type().as_str()),
        (405, "/problems/method-not-allowed")
    );
}

#[tokio::test]
async fn every_problem_type_resolves_to_a_page() {
    let app = spawn_app().await;
    for kind in partner_gateway::problem::ProblemType::ALL {
        let reply = app.get(&kind.uri()).await;
        assert_eq!(reply.status, 200, "{}", kind.uri());
        assert!(
            reply
                .header("content-type")
                .unwrap()
                .starts_with("text/html")
        );
        assert!(reply.text.contains(kind.title()));
    }
    assert_eq!(app.get("/problems/no-such-thing").await.status, 404);
}
