//! Metrics, the request log line, CORS, the outer timeout, the panic catcher and compression.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Duration;

use partner_gateway::sandbox::{Fault, FaultKind};
use serde_json::{Value, json};

use crate::helpers::*;

const INVITE: &str = "CreateAndSendClientInvitationMail";
const CREDIT: &str = "AllocateCustomerCredit";

/// Parses the Prometheus text format into `(name, labels) → value`.
fn scrape(text: &str) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    let mut samples = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').unwrap();
                let labels = body
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|pair| {
                        let (k, v) = pair.split_once('=').unwrap();
                        (k.to_owned(), v.trim_matches('"').to_owned())
                    })
                    .collect();
                (name.to_owned(), labels)
            }
            None => (series.to_owned(), BTreeMap::new()),
        };
        samples.insert((name, labels), value.parse().unwrap());
    }
    samples
}

fn sample(
    samples: &BTreeMap<(String, BTreeMap<String, String>), f64>,
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    let wanted: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples
        .get(&(name.to_owned(), wanted.clone()))
        .copied()
        .unwrap_or_else(|| panic!("no sample {name}{wanted:?}"))
}

#[tokio::test]
async fn metrics_count_each_outcome_under_its_labels() {
    let mut options = Options::default();
    options.settings.quotas.credit_per_second = 1;
    options.settings.quotas.max_wait_ms = 500;
    let app = spawn_app_with(options).await;
    // Two successes (the first after one retried RequestLimitExceeded), a validation failure, a
    // quota rejection and an upstream error.
    app.fault(Fault::error(Some(INVITE), "RequestLimitExceeded"));
    assert_eq!(
        app.post_invitation(json!({"email": "m1@example.com"}))
            .await
            .status,
        201
    );
    assert_eq!(
        app.post_invitation(json!({"email": "m2@example.com"}))
            .await
            .status,
        201
    );
    assert_eq!(
        app.post_credit(CUSTOMER, json!({"amount": 0})).await.status,
        422
    );
    assert_eq!(
        app.post_credit(CUSTOMER, json!({"amount": 1})).await.status,
        200
    );
    assert_eq!(
        app.post_credit(CUSTOMER, json!({"amount": 1})).await.status,
        429
    );
    app.fault(Fault::error(Some(INVITE), "InternalError"));
    assert_eq!(
        app.post_invitation(json!({"email": "m3@example.com"}))
            .await
            .status,
        502
    );

    let reply = app.get("/metrics").await;
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    let m = scrape(&reply.text);
    let server = "http_server_request_duration_seconds_count";
    let route = |r: &'static str, status: &'static str| {
        [
            ("http_route", r),
            ("http_request_method", "POST"),
            ("http_response_status_code", status),
        ]
    };
    assert_eq!(
        sample(&m, server, &route("/customers/invitations", "201")),
        2.0
    );
    assert_eq!(
        sample(&m, server, &route("/customers/invitations", "502")),
        1.0
    );
    assert_eq!(
        sample(&m, server, &route("/customers/{uin}/credit", "422")),
        1.0
    );
    assert_eq!(
        sample(&m, server, &route("/customers/{uin}/credit", "200")),
        1.0
    );
    assert_eq!(
        sample(&m, server, &route("/customers/{uin}/credit", "429")),
        1.0
    );

    let client = "http_client_request_duration_seconds_count";
    let call = |action: &'static str, outcome: &'static str, code: &'static str| {
        [
            ("tencent_action", action),
            ("outcome", outcome),
            ("tencent_code", code),
        ]
    };
    assert_eq!(sample(&m, client, &call(INVITE, "success", "")), 2.0);
    assert_eq!(
        sample(&m, client, &call(INVITE, "error", "RequestLimitExceeded")),
        1.0
    );
    assert_eq!(
        sample(&m, client, &call(INVITE, "error", "InternalError")),
        1.0
    );
    assert_eq!(sample(&m, client, &call(CREDIT, "success", "")), 1.0);

    assert_eq!(
        sample(
            &m,
            "gateway_quota_rejections_total",
            &[("tencent_action", CREDIT)]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            "gateway_quota_wait_seconds_count",
            &[("tencent_action", CREDIT)]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &m,
            "gateway_upstream_retries_total",
            &[
                ("tencent_action", INVITE),
                ("reason", "RequestLimitExceeded")
            ]
        ),
        1.0
    );
    assert_eq!(
        sample(&m, "http_server_active_requests", &[]),
        1.0,
        "the scrape itself is in flight"
    );
    assert_eq!(
        sample(
            &m,
            "gateway_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    // Buckets reach below a millisecond and past ten seconds.
    assert!(
        reply.text.contains("le=\"0.0005\"") && reply.text.contains("le=\"30\""),
        "{}",
        reply.text
    );
}

#[tokio::test]
async fn the_request_log_line_carries_the_request_id_and_masks_the_email() {
    let app = spawn_app().await;
    let id = format!("log-line-{}", uuid::Uuid::new_v4().simple());
    let reply = app
        .send(
            app.post("/customers/invitations")
                .header("x-request-id", &id)
                .header("content-type", "application/json")
                .body(json!({"email": "loggedperson@example.com"}).to_string()),
        )
        .await;
    assert_eq!(reply.status, 201);
    let tencent_request_id = reply.json()["requestId"].as_str().unwrap().to_owned();
    let logs = captured_logs();
    let lines: Vec<Value> = logs
        .lines()
        .filter(|l| l.contains(&id))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let served = lines
        .iter()
        .find(|l| l["message"] == "request served")
        .expect("one line per request");
    assert_eq!(served["status"], 201);
    assert_eq!(served["subject"], "l***@example.com");
    assert_eq!(served["tencent_action"], INVITE);
    assert_eq!(served["tencent_request_id"], tencent_request_id.as_str());
    assert_eq!(served["spans"][0]["route"], "/customers/invitations");
    assert!(served["latency_ms"].as_f64().unwrap() > 0.0);
    // Every line the request caused carries its id, and none holds the address.
    assert!(lines.len() >= 3, "{lines:?}");
    assert!(!logs.contains("loggedperson@example.com"));
}

#[tokio::test]
async fn cors_preflight_admits_configured_origins_only() {
    let mut options = Options::default();
    options.settings.server.cors_allowed_origins = vec!["https://admin.example.com".into()];
    let app = spawn_app_with(options).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/customers/invitations"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,x-request-id",
            )
    };
    let allowed = app.send(preflight("https://admin.example.com")).await;
    assert_eq!(allowed.status, 200);
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://admin.example.com")
    );
    assert!(
        allowed
            .header("access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
    let refused = app.send(preflight("https://evil.example.com")).await;
    assert_eq!(
        refused.header("access-control-allow-origin"),
        None,
        "a browser refuses this origin"
    );
    // Actual responses expose the headers a frontend needs.
    let reply = app
        .send(
            app.post("/customers/invitations")
                .header("origin", "https://admin.example.com")
                .header("content-type", "application/json")
                .body(json!({"email": "cors@example.com"}).to_string()),
        )
        .await;
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://admin.example.com")
    );
    let exposed = reply.header("access-control-expose-headers").unwrap();
    for name in [
        "retry-after",
        "idempotent-replayed",
        "etag",
        "age",
        "x-request-id",
    ] {
        assert!(exposed.contains(name), "{name} not in {exposed}");
    }
    // Without configuration no origin is allowed.
    let closed = spawn_app().await;
    let reply = closed
        .send(
            closed
                .client
                .request(
                    reqwest::Method::OPTIONS,
                    closed.url("/customers/invitations"),
                )
                .header("origin", "https://admin.example.com")
                .header("access-control-request-method", "POST"),
        )
        .await;
    assert_eq!(reply.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn a_body_that_arrives_too_slowly_gets_a_timeout_problem() {
    let mut options = Options::default();
    options.settings.server.request_timeout_ms = 200;
    let app = spawn_app_with(options).await;
    let addr = app.addr;
    let key = app.api_key.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // Promise 100 bytes, send 10, then stall.
        write!(stream, "POST /customers/invitations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"email\":").unwrap();
        let mut answer = String::new();
        let mut buf = [0; 4096];
        let n = stream.read(&mut buf).unwrap();
        answer.push_str(&String::from_utf8_lossy(&buf[..n]));
        answer
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    assert!(answer.contains("/problems/request-timeout"), "{answer}");
    assert_eq!(app.upstream_calls(), 0);
    // Answered by the outer timeout, above the handler: the log line still names the caller.
    assert!(
        captured_logs().lines().any(|l| l.contains("request served")
            && l.contains("\"problem\":\"request-timeout\"")
            && l.contains("\"route\":\"/customers/invitations\"")
            && l.contains("\"caller\":\"key:test-suite\"")),
        "no request-timeout line names the caller"
    );
}

async fn boom() -> &'static str {
    let fail = true;
    if fail {
        panic!("deliberate test panic");
    }
    "unreachable"
}

#[tokio::test]
async fn a_panicking_handler_becomes_a_logged_500_problem() {
    use axum::routing::get;
    let app = spawn_app().await;
    let mut settings = partner_gateway::config::Settings::default();
    settings.auth.disabled = true;
    let state = partner_gateway::app::build(
        settings,
        &partner_gateway::config::Credentials {
            secret_id: "AKIDpanic".into(),
            secret_key: "panic-test-key".to_owned().into(),
            token: None,
        },
        partner_gateway::clock::system(),
    )
    .unwrap()
    .state;
    let router =
        partner_gateway::middleware::stack(axum::Router::new().route("/boom", get(boom)), &state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let reply = app
        .send(app.client.get(format!("http://{addr}/boom")))
        .await;
    assert_eq!(reply.status, 500);
    assert_eq!(reply.problem_type(), "/problems/internal");
    assert!(
        !reply.text.contains("deliberate"),
        "the panic message is not handed out"
    );
    let id = reply.json()["requestId"].as_str().unwrap().to_owned();
    assert!(
        captured_logs()
            .lines()
            .any(|l| l.contains("a handler panicked") && l.contains(&id))
    );
}

#[tokio::test]
async fn large_answers_are_compressed_for_clients_that_ask() {
    let app = spawn_app().await;
    let reply = app
        .send(
            app.client
                .get(app.url("/openapi.json"))
                .header("accept-encoding", "gzip"),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-encoding"), Some("gzip"));
    let plain = app.get("/openapi.json").await;
    assert_eq!(plain.header("content-encoding"), None);
}

#[tokio::test]
async fn readiness_reports_each_check() {
    let app = spawn_app().await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 200);
    assert_eq!(
        ready.json(),
        json!({"status": "ready", "checks": {"credentials": "ok", "shutdown": "ok", "startup": "ok", "upstream_auth": "ok"}})
    );
    assert_eq!(app.get("/livez").await.status, 200);
    app.fault(Fault::once(
        Some(INVITE),
        FaultKind::Error {
            code: "AuthFailure.SecretIdNotFound".into(),
            message: "no".into(),
        },
    ));
    app.post_invitation(json!({"email": "r@example.com"})).await;
    let not_ready = app.get("/readyz").await;
    assert_eq!(not_ready.status, 503);
    assert_eq!(not_ready.json()["status"], "not ready");
    assert_eq!(app.get("/livez").await.status, 200, "alive all the same");
}
