//! Authentication, scopes, per-caller rates and the audit trail.

use std::sync::Arc;

use parking_lot::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::routing::get;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use partner_gateway::auth::api_key;
use partner_gateway::config::JwtSettings;
use partner_gateway::sandbox::{Fault, FaultKind};
use serde_json::{Value, json};

use crate::helpers::*;

const ISSUER: &str = "https://login.test/";
const AUDIENCE: &str = "partner-gateway";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/jwt/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

pub(crate) fn jwk(name: &str) -> Value {
    serde_json::from_slice(&fixture(&format!("{name}.jwk.json"))).unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token signed with the fixture key `signer`, naming `kid` in its header.
pub(crate) fn token(signer: &str, kid: &str, claims: Value) -> String {
    let pem = fixture(&format!("{signer}.pem"));
    let (alg, key) = if signer == "rs256" {
        (Algorithm::RS256, EncodingKey::from_rsa_pem(&pem).unwrap())
    } else {
        (Algorithm::ES256, EncodingKey::from_ec_pem(&pem).unwrap())
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    let token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
    register_secret(&token);
    token
}

pub(crate) fn claims(scope: &str) -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice@frontend", "exp": now() + 300, "nbf": now() - 5, "scope": scope})
}

/// A JWKS served on loopback, whose keys a test can change while the gateway runs.
pub(crate) async fn jwks_server(keys: Vec<Value>) -> (String, Arc<RwLock<Vec<Value>>>) {
    let keys = Arc::new(RwLock::new(keys));
    let served = keys.clone();
    let router = axum::Router::new().route(
        "/jwks.json",
        get(move || {
            let keys = served.read().clone();
            async move { axum::Json(json!({ "keys": keys })) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, keys)
}

pub(crate) fn jwt_options(jwks_url: String) -> Options {
    let mut options = Options::default();
    options.settings.auth.jwt = Some(JwtSettings {
        jwks_url: Some(jwks_url),
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        min_refresh_ms: 0,
        ..JwtSettings::default()
    });
    options
}

/// Sixteen credentials, from none to valid, on every route that needs one.
#[tokio::test]
async fn the_credential_matrix_on_both_routes() {
    let (url, _) = jwks_server(vec![jwk("es256-a"), jwk("rs256")]).await;
    let app = spawn_app_with(jwt_options(url)).await;
    let all = "invitations:send credit:allocate";
    let unknown_key = format!("Bearer {}", api_key::generate());
    let expired = token(
        "es256-a",
        "es256-a",
        json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "a", "exp": now() - 3600, "scope": all}),
    );
    let wrong_issuer = token(
        "es256-a",
        "es256-a",
        json!({"iss": "https://evil.test/", "aud": AUDIENCE, "sub": "a", "exp": now() + 300, "scope": all}),
    );
    let wrong_audience = token(
        "es256-a",
        "es256-a",
        json!({"iss": ISSUER, "aud": "another-api", "sub": "a", "exp": now() + 300, "scope": all}),
    );
    // Signed with key B but claiming to be key A: the signature cannot verify.
    let bad_signature = token("es256-b", "es256-a", claims(all));
    let untrusted = token("stranger", "stranger", claims(all));
    // No signature at all ("alg": "none"), naming a trusted key.
    let b64 = |v: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let unsigned = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": "es256-a"})),
        b64(&claims(all))
    );
    // HS256 with the public key as the HMAC secret (the classic algorithm confusion).
    let confused = {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("rs256".into());
        jsonwebtoken::encode(
            &header,
            &claims(all),
            &EncodingKey::from_secret(&fixture("rs256.jwk.json")),
        )
        .unwrap()
    };
    let no_kid = {
        let pem = fixture("es256-a.pem");
        jsonwebtoken::encode(
            &Header::new(Algorithm::ES256),
            &claims(all),
            &EncodingKey::from_ec_pem(&pem).unwrap(),
        )
        .unwrap()
    };
    for t in [&unsigned, &confused, &no_kid] {
        register_secret(t);
    }

    for (route, body, needs, other) in [
        (
            "/customers/invitations",
            json!({"email": "matrix@example.com"}),
            "invitations:send",
            "credit:allocate",
        ),
        (
            &*format!("/customers/{CUSTOMER}/credit"),
            json!({"amount": 1}),
            "credit:allocate",
            "invitations:send",
        ),
    ] {
        let without_scope = token("rs256", "rs256", claims(other));
        let with_scope = token("rs256", "rs256", claims(needs));
        let cases: Vec<(&str, Option<String>, u16)> = vec![
            ("no credentials", None, 401),
            ("malformed header", Some("Basic dXNlcjpwYXNz".into()), 401),
            ("unknown key", Some(unknown_key.clone()), 401),
            ("empty bearer", Some("Bearer ".into()), 401),
            (
                "the test key under another scheme",
                Some(format!("Token {}", app.api_key)),
                401,
            ),
            ("three dots of nothing", Some("Bearer a.b.c".into()), 401),
            ("unsigned JWT", Some(format!("Bearer {unsigned}")), 401),
            (
                "HS256 with the public key",
                Some(format!("Bearer {confused}")),
                401,
            ),
            ("JWT naming no key", Some(format!("Bearer {no_kid}")), 401),
            ("expired JWT", Some(format!("Bearer {expired}")), 401),
            ("wrong issuer", Some(format!("Bearer {wrong_issuer}")), 401),
            (
                "wrong audience",
                Some(format!("Bearer {wrong_audience}")),
                401,
            ),
            (
                "bad signature",
                Some(format!("Bearer {bad_signature}")),
                401,
            ),
            (
                "key not in the JWKS",
                Some(format!("Bearer {untrusted}")),
                401,
            ),
            (
                "valid without the scope",
                Some(format!("Bearer {without_scope}")),
                403,
            ),
            (
                "valid with the scope",
                Some(format!("Bearer {with_scope}")),
                if route.ends_with("credit") { 200 } else { 201 },
            ),
            (
                "valid, scheme in lower case",
                Some(format!("bearer {with_scope}")),
                if route.ends_with("credit") { 200 } else { 201 },
            ),
        ];
        assert!(cases.len() >= 16);
        for (case, authorization, status) in cases {
            let before = app.upstream_calls();
            // A fresh address each time, so a second success is not an invitation cooldown.
            let body = if route == "/customers/invitations" {
                json!({"email": format!("matrix-{}@example.com", uuid::Uuid::new_v4().simple())})
            } else {
                body.clone()
            };
            let mut request = app
                .client
                .post(app.url(route))
                .header("idempotency-key", uuid::Uuid::new_v4().to_string())
                .header("content-type", "application/json")
                .body(body.to_string());
            if let Some(value) = &authorization {
                request = request.header("authorization", value);
            }
            let reply = app.send(request).await;
            assert_eq!(reply.status, status, "{route} {case}: {}", reply.text);
            let reached = app.upstream_calls() - before;
            match status {
                401 => {
                    assert_eq!(reply.problem_type(), "/problems/unauthenticated", "{case}");
                    assert!(
                        reply
                            .header("www-authenticate")
                            .unwrap()
                            .starts_with("Bearer realm="),
                        "{case}"
                    );
                    assert_eq!(reached, 0, "{route} {case} reached the simulator");
                }
                403 => {
                    assert_eq!(
                        reply.problem_type(),
                        "/problems/insufficient-scope",
                        "{case}"
                    );
                    assert!(
                        reply
                            .header("www-authenticate")
                            .unwrap()
                            .contains("insufficient_scope")
                    );
                    assert_eq!(reached, 0, "{route} {case} reached the simulator");
                }
                _ => assert_eq!(reached, 1, "{route} {case}"),
            }
        }
    }
}

#[tokio::test]
async fn a_key_added_to_the_jwks_is_accepted_without_a_restart() {
    let (url, keys) = jwks_server(vec![jwk("es256-a")]).await;
    let app = spawn_app_with(jwt_options(url)).await;
    let rotated = token("es256-b", "es256-b", claims("invitations:send"));
    let send = || {
        app.client
            .post(app.url("/customers/invitations"))
            .header("idempotency-key", uuid::Uuid::new_v4().to_string())
            .bearer_auth(&rotated)
            .header("content-type", "application/json")
            .body(
                json!({"email": format!("{}@example.com", uuid::Uuid::new_v4().simple())})
                    .to_string(),
            )
    };
    let before = app.send(send()).await;
    assert_eq!(
        before.status, 401,
        "key B is not published yet: {}",
        before.text
    );
    keys.write().push(jwk("es256-b"));
    let after = app.send(send()).await;
    assert_eq!(
        after.status, 201,
        "key B is trusted once the JWKS has it: {}",
        after.text
    );
    // Tokens of the old key still work.
    let old = token("es256-a", "es256-a", claims("invitations:send"));
    let reply = app
        .send(
            app.client
                .post(app.url("/customers/invitations"))
                .header("idempotency-key", uuid::Uuid::new_v4().to_string())
                .bearer_auth(&old)
                .header("content-type", "application/json")
                .body(json!({"email": "old-key@example.com"}).to_string()),
        )
        .await;
    assert_eq!(reply.status, 201);
}

#[tokio::test]
async fn a_noisy_caller_is_held_to_its_own_rate_while_others_get_through() {
    let noisy_key = api_key::generate();
    let quiet_key = api_key::generate();
    register_secret(&noisy_key);
    register_secret(&quiet_key);
    let mut options = Options::default();
    options.settings.auth.caller_requests_per_minute = 1;
    options.settings.auth.caller_burst = 2;
    options.settings.auth.api_keys = vec![
        test_key_entry("noisy", &noisy_key, &ALL_SCOPES),
        test_key_entry("quiet", &quiet_key, &ALL_SCOPES),
    ];
    let app = spawn_app_with(options).await;
    let invite = |key: &str| {
        app.client
            .post(app.url("/customers/invitations"))
            .header("idempotency-key", uuid::Uuid::new_v4().to_string())
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(
                json!({"email": format!("{}@example.com", uuid::Uuid::new_v4().simple())})
                    .to_string(),
            )
    };
    assert_eq!(app.send(invite(&noisy_key)).await.status, 201);
    assert_eq!(app.send(invite(&noisy_key)).await.status, 201);
    let before = app.upstream_calls();
    let refused = app.send(invite(&noisy_key)).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.problem_type(), "/problems/caller-rate-limited");
    assert!(refused.json()["detail"].as_str().unwrap().contains("noisy"));
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after));
    assert_eq!(
        app.upstream_calls(),
        before,
        "the refused call never reached Tencent"
    );
    assert_eq!(
        app.send(invite(&quiet_key)).await.status,
        201,
        "another caller still gets through"
    );
}

/// The audit lines of the captured logs for one request id.
fn audit_records(request_id: &str) -> Vec<Value> {
    captured_logs()
        .lines()
        .filter(|l| l.contains("\"target\":\"audit\"") && l.contains(request_id))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn every_allocation_leaves_exactly_one_audit_record() {
    let mut options = Options::default();
    options.settings.auth.remark_caller = true;
    let app = spawn_app_with(options).await;
    let allocate = |id: &str, amount: f64| {
        app.post(&format!("/customers/{CUSTOMER}/credit"))
            .header("x-request-id", id)
            .header("content-type", "application/json")
            .body(json!({"amount": amount, "remark": "audited"}).to_string())
    };
    let mut applied = Vec::new();
    for i in 0..3 {
        let id = format!("audit-{}-{i}", uuid::Uuid::new_v4().simple());
        let reply = app.send(allocate(&id, 10.0 + i as f64)).await;
        assert_eq!(reply.status, 200);
        applied.push((
            id,
            reply.json()["requestId"].as_str().unwrap().to_owned(),
            10 + i,
        ));
    }
    for (id, tencent_request_id, amount) in &applied {
        let records = audit_records(id);
        assert_eq!(records.len(), 1, "{id}: {records:?}");
        let r = &records[0];
        assert_eq!(r["caller"], "key:test-suite");
        assert_eq!(r["caller_kind"], "api_key");
        assert_eq!(r["tencent_request_id"], tencent_request_id.as_str());
        assert_eq!(r["outcome"], "applied");
        assert_eq!(r["uin"], CUSTOMER.parse::<u64>().unwrap());
        assert_eq!(r["amount"], amount.to_string());
        assert!(
            r["remark"]
                .as_str()
                .unwrap()
                .starts_with("audited [by test-suite] [pgw:"),
            "{r}"
        );
        assert!(
            !r["idempotency_key"].as_str().unwrap().is_empty(),
            "the key is audited"
        );
        assert!(r["latency_ms"].as_f64().unwrap() > 0.0);
    }
    // Tencent stores the caller's name with the remark.
    let history = &app.sandbox.ledger().history[&CUSTOMER.parse::<u64>().unwrap()];
    assert!(
        history
            .iter()
            .all(|h| h.remark.starts_with("audited [by test-suite] [pgw:"))
    );

    // An allocation whose outcome is unknown is audited as such; a refused one as rejected.
    app.fault(Fault::once(
        Some("AllocateCustomerCredit"),
        FaultKind::Unparsable,
    ));
    let unknown = format!("audit-unknown-{}", uuid::Uuid::new_v4().simple());
    assert_eq!(app.send(allocate(&unknown, 1.0)).await.status, 502);
    assert_eq!(audit_records(&unknown)[0]["outcome"], "unknown");
    app.fault(Fault::error(
        Some("AllocateCustomerCredit"),
        "FailedOperation.BalanceInsufficient",
    ));
    let rejected = format!("audit-rejected-{}", uuid::Uuid::new_v4().simple());
    assert_eq!(app.send(allocate(&rejected, 1.0)).await.status, 422);
    let records = audit_records(&rejected);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["outcome"], "rejected");
    assert_eq!(
        records[0]["tencent_code"],
        "FailedOperation.BalanceInsufficient"
    );
}

#[tokio::test]
async fn a_jwks_file_works_too() {
    let path = std::env::temp_dir().join(format!("jwks-{}.json", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, json!({"keys": [jwk("es256-a")]}).to_string()).unwrap();
    let mut options = Options::default();
    options.settings.auth.jwt = Some(JwtSettings {
        jwks_file: Some(path.clone()),
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        ..JwtSettings::default()
    });
    let app = spawn_app_with(options).await;
    let good = token("es256-a", "es256-a", claims("credit:allocate"));
    let reply = app
        .send(
            app.client
                .post(app.url(&format!("/customers/{CUSTOMER}/credit")))
                .header("idempotency-key", uuid::Uuid::new_v4().to_string())
                .bearer_auth(&good)
                .header("content-type", "application/json")
                .body(json!({"amount": 1}).to_string()),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    std::fs::remove_file(path).ok();
}
