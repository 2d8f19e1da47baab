//! OpenTelemetry: the real binary in front of the simulator in this test, exporting to an
//! OTLP/HTTP receiver in this test (`otlp.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use partner_gateway::sandbox::{Fault, FaultKind};

use crate::helpers::{CUSTOMER, Options, Upstream, spawn_upstream};
use crate::otlp::{Gateway, Got, PATIENCE, receiver, start_gateway};

const COLLECTOR_KEY: &str = "collector-key-5b7e0c";

fn ids() -> (String, String) {
    let trace = uuid::Uuid::new_v4().simple().to_string();
    let span = trace[..16].chars().rev().collect::<String>();
    (trace, span)
}

fn all_trace_ids_seen(upstream: &Upstream) -> BTreeSet<String> {
    upstream
        .sandbox
        .recent_requests()
        .into_iter()
        .filter_map(|r| r.trace_id)
        .collect()
}

fn trace_ids_seen(upstream: &Upstream, action: &str) -> Vec<String> {
    upstream
        .sandbox
        .recent_requests()
        .into_iter()
        .filter(|r| r.action == action)
        .filter_map(|r| r.trace_id)
        .collect()
}

/// Whether `span` reaches `root` through parents in `spans`.
fn reaches(spans: &[Got], span: &Got, root: &Got) -> bool {
    let by_id: BTreeMap<&str, &Got> = spans.iter().map(|s| (s.span.as_str(), s)).collect();
    let mut at = span;
    // A trace of a request is a few dozen spans deep at most: more is a cycle.
    for _ in 0..64 {
        if at.span == root.span {
            return true;
        }
        match by_id.get(at.parent.as_str()) {
            Some(parent) => at = parent,
            None => return false,
        }
    }
    false
}

/// Every span of `spans` is `root` or under it.
fn assert_all_under(spans: &[Got], root: &Got) {
    for span in spans {
        assert!(
            reaches(spans, span, root),
            "{} ({}) is not under {}: {spans:#?}",
            span.name,
            span.span,
            root.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incoming_traceparent_is_continued_to_the_collector_to_tencent_and_to_the_log() {
    let receiver = receiver(false).await;
    let upstream = spawn_upstream(&Options::default()).await;
    let gateway = start_gateway(
        &upstream,
        &[
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://{}", receiver.addr),
            ),
            ("OTEL_SERVICE_NAME", "pg-trace-test".into()),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                format!("x-collector-key={COLLECTOR_KEY}"),
            ),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
        ],
    )
    .await;

    // An allocation in the caller's trace.
    let (trace, parent) = ids();
    let traceparent = format!("00-{trace}-{parent}-01");
    let (status, body, _) = gateway
        .post(
            &format!("/customers/{CUSTOMER}/credit"),
            Some(&traceparent),
            &uuid::Uuid::new_v4().to_string(),
            r#"{"amount": 12.5}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let spans = receiver
        .wait_for(
            &trace,
            &[
                "request",
                "authenticate",
                "store",
                "tencent",
                "quota_wait",
                "tencent.attempt",
            ],
        )
        .await;
    // The request's span is the child of the caller's, and every other span is under it.
    let request = spans
        .iter()
        .find(|s| s.role() == "request")
        .expect("a request span");
    assert_eq!(request.name, "POST /customers/{uin}/credit");
    assert_eq!(request.parent, parent, "the caller's span is the parent");
    assert_eq!(
        request.attributes.get("http.route").map(String::as_str),
        Some("/customers/{uin}/credit")
    );
    assert_eq!(
        request
            .attributes
            .get("http.response.status_code")
            .map(String::as_str),
        Some("200")
    );
    assert_eq!(
        request.service, "pg-trace-test",
        "OTEL_SERVICE_NAME is honoured"
    );
    assert_all_under(&spans, request);
    let attempt = spans
        .iter()
        .find(|s| s.name == "tencent.attempt")
        .expect("an attempt span");
    assert_eq!(attempt.kind, 3, "a client span");
    assert_eq!(
        attempt.attributes.get("tencent.action").map(String::as_str),
        Some("AllocateCustomerCredit")
    );
    assert_eq!(
        attempt.attributes.get("tencent.request_id"),
        body["requestId"].as_str().map(str::to_owned).as_ref(),
        "the attempt names Tencent's RequestId"
    );
    let quota_wait = spans.iter().find(|s| s.name == "quota_wait").unwrap();
    let tencent = spans.iter().find(|s| s.name == "tencent").unwrap();
    assert_eq!(
        quota_wait.parent, tencent.span,
        "the wait is part of the call"
    );
    assert_eq!(
        attempt.parent, tencent.span,
        "each attempt is part of the call"
    );
    // Tencent got the trace id, and so did every log line of the request.
    assert!(
        trace_ids_seen(&upstream, "AllocateCustomerCredit").contains(&trace),
        "X-TC-TraceId is the trace id: {:?}",
        upstream.sandbox.recent_requests()
    );

    // An outcome left unknown, settled by the retry: the reconciliation is in the retry's trace.
    upstream.sandbox.add_fault(Fault::once(
        Some("AllocateCustomerCredit"),
        FaultKind::TruncateAfterExecute,
    ));
    let (retry_trace, retry_parent) = ids();
    let retry_traceparent = format!("00-{retry_trace}-{retry_parent}-01");
    let key = uuid::Uuid::new_v4().to_string();
    let path = format!("/customers/{CUSTOMER}/credit");
    let (status, body, _) = gateway
        .post(&path, Some(&retry_traceparent), &key, r#"{"amount": 3}"#)
        .await;
    assert_ne!(
        status, 200,
        "the answer was cut: the outcome is unknown ({body})"
    );
    let started = Instant::now();
    loop {
        let (status, body, headers) = gateway
            .post(&path, Some(&retry_traceparent), &key, r#"{"amount": 3}"#)
            .await;
        if status == 200 {
            break;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "never settled: {status} {body}"
        );
        let wait = headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(1u64);
        tokio::time::sleep(Duration::from_millis(100).max(Duration::from_secs(wait) / 4)).await;
    }
    let spans = receiver
        .wait_for(&retry_trace, &["request", "reconcile", "tencent.attempt"])
        .await;
    let reconcile = spans.iter().find(|s| s.name == "reconcile").unwrap();
    assert_eq!(
        reconcile.attributes.get("outcome").map(String::as_str),
        Some("applied")
    );
    let requests: Vec<&Got> = spans.iter().filter(|s| s.role() == "request").collect();
    assert!(requests.iter().all(|r| r.parent == retry_parent));
    assert!(
        requests.iter().any(|root| reaches(&spans, reconcile, root)),
        "the reconciliation is under a request of the retry: {spans:#?}"
    );

    // A read: its call to Tencent (batched, on a task of its own) is in the reader's trace.
    let (read_trace, read_parent) = ids();
    let before: BTreeSet<String> = all_trace_ids_seen(&upstream);
    let reply = gateway
        .client
        .get(gateway.url(&format!("/customers/{CUSTOMER}/credit")))
        .header("traceparent", format!("00-{read_trace}-{read_parent}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let spans = receiver
        .wait_for(&read_trace, &["request", "tencent.attempt"])
        .await;
    let request = spans.iter().find(|s| s.role() == "request").unwrap();
    assert_eq!(request.parent, read_parent);
    assert_all_under(&spans, request);
    let new: Vec<String> = all_trace_ids_seen(&upstream)
        .difference(&before)
        .cloned()
        .collect();
    assert_eq!(
        new,
        std::slice::from_ref(&read_trace),
        "the read's X-TC-TraceId"
    );

    // Hostile trace headers: a traceparent sent twice is ignored (a trace of the gateway's own);
    // a tracestate of kilobytes is dropped and the trace still continues.
    let (twice, twice_parent) = ids();
    let (long, long_parent) = ids();
    for (traceparents, tracestate) in [
        (
            vec![
                format!("00-{twice}-{twice_parent}-01"),
                format!("00-{twice}-{twice_parent}-01"),
            ],
            String::new(),
        ),
        (
            vec![format!("00-{long}-{long_parent}-01")],
            format!("vendor={}", "x".repeat(8000)),
        ),
    ] {
        let mut request = gateway
            .client
            .get(gateway.url(&format!("/customers/{CUSTOMER}/credit")));
        for traceparent in traceparents {
            request = request.header("traceparent", traceparent);
        }
        if !tracestate.is_empty() {
            request = request.header("tracestate", tracestate);
        }
        assert_eq!(request.send().await.unwrap().status(), 200);
    }
    receiver.wait_for(&long, &["request"]).await;

    // A caller's unsampled trace: nothing exported, but Tencent still gets its id.
    let (unsampled, unsampled_parent) = ids();
    let (status, body, _) = gateway
        .post(
            "/customers/invitations",
            Some(&format!("00-{unsampled}-{unsampled_parent}-00")),
            &uuid::Uuid::new_v4().to_string(),
            r#"{"email":"unsampled.trace@example.com"}"#,
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(trace_ids_seen(&upstream, "CreateAndSendClientInvitationMail").contains(&unsampled));
    // A malformed traceparent starts a trace of the gateway's own.
    let before = trace_ids_seen(&upstream, "CreateAndSendClientInvitationMail").len();
    let (status, _, headers) = gateway
        .post(
            "/customers/invitations",
            Some("00-zzzz-not-a-trace-01"),
            &uuid::Uuid::new_v4().to_string(),
            r#"{"email":"malformed.trace@example.com"}"#,
        )
        .await;
    assert_eq!(status, 201);
    let seen = trace_ids_seen(&upstream, "CreateAndSendClientInvitationMail");
    let own = seen.last().expect("a trace id").clone();
    assert_eq!(seen.len(), before + 1);
    assert!(
        own.len() == 32 && own.chars().all(|c| c.is_ascii_hexdigit()),
        "{own}"
    );
    assert_ne!(
        Some(own.as_str()),
        headers.get("x-request-id").and_then(|v| v.to_str().ok())
    );
    receiver.wait_for(&own, &["request"]).await;
    assert_eq!(
        gateway.metric("gateway_trace_spans_dropped_total").await,
        0.0
    );

    let log = gateway.stop().await;
    assert!(
        receiver.trace(&unsampled).is_empty(),
        "an unsampled trace is not exported"
    );
    assert!(
        receiver.trace(&twice).is_empty(),
        "a repeated traceparent is not followed"
    );
    // The collector's key went to the collector, and nowhere in the log.
    let keys: BTreeSet<Option<String>> = receiver
        .exports
        .lock()
        .iter()
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(keys, BTreeSet::from([Some(COLLECTOR_KEY.to_owned())]));
    assert!(
        !log.contains(COLLECTOR_KEY),
        "the collector's key was logged"
    );
    let served: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("request served") && l.contains(&trace))
        .collect();
    assert_eq!(
        served.len(),
        1,
        "the request's log line carries its trace id:\n{log}"
    );
    assert!(
        served[0].contains(&format!("\"trace_id\":\"{trace}\"")),
        "{}",
        served[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_sdk_disabled_nothing_is_exported_and_tencent_gets_the_request_id() {
    let receiver = receiver(false).await;
    let upstream = spawn_upstream(&Options::default()).await;
    let gateway = start_gateway(
        &upstream,
        &[
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://{}", receiver.addr),
            ),
            ("OTEL_SDK_DISABLED", "true".into()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
        ],
    )
    .await;
    let (trace, parent) = ids();
    let (status, _, headers) = gateway
        .post(
            "/customers/invitations",
            Some(&format!("00-{trace}-{parent}-01")),
            &uuid::Uuid::new_v4().to_string(),
            r#"{"email":"no.traces@example.com"}"#,
        )
        .await;
    assert_eq!(status, 201);
    let request_id = headers["x-request-id"].to_str().unwrap().to_owned();
    let log = gateway.stop().await;
    assert!(receiver.exports.lock().is_empty(), "something was exported");
    assert_eq!(
        trace_ids_seen(&upstream, "CreateAndSendClientInvitationMail"),
        [request_id]
    );
    assert!(!log.contains("\"trace_id\""), "no trace id without traces");
    assert!(
        log.contains("\"traces\":\"off\""),
        "the start line says traces are off"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_collector_never_holds_a_request_its_spans_are_dropped_and_counted() {
    let receiver = receiver(true).await;
    let upstream = spawn_upstream(&Options::default()).await;
    let gateway = start_gateway(
        &upstream,
        &[
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                format!("http://{}/v1/traces", receiver.addr),
            ),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "8".into()),
            ("OTEL_BSP_SCHEDULE_DELAY", "50".into()),
            // The export waits up to a minute for the stalled collector; requests never do.
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "60000".into()),
            ("OTEL_BSP_EXPORT_TIMEOUT", "60000".into()),
        ],
    )
    .await;
    // Spans of the first requests fill the export (stalled) and then the queue; every request is
    // answered all the same.
    let mut answered = 0;
    let started = Instant::now();
    while gateway.metric("gateway_trace_spans_dropped_total").await == 0.0 {
        for _ in 0..20 {
            let status = gateway
                .client
                .get(gateway.url("/no-such-route"))
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, 404, "an unmatched route is traced too");
            answered += 1;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "{answered} requests and no span dropped"
        );
    }
    let (status, body, _) = gateway
        .post(
            "/customers/invitations",
            None,
            &uuid::Uuid::new_v4().to_string(),
            r#"{"email":"stalled.collector@example.com"}"#,
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(gateway.metric("gateway_trace_spans_dropped_total").await > 0.0);
    // The exit waits for the stalled export a few seconds at most, not its minute.
    let stopping = Instant::now();
    let log = gateway.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(50),
        "the exit waited for the collector"
    );
    assert!(log.contains("were not all exported in time"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standard_variables_choose_the_protocol_and_the_sampler() {
    let upstream = spawn_upstream(&Options::default()).await;
    // OTLP/JSON instead of protobuf.
    let receiver_json = receiver(false).await;
    let gateway = start_gateway(
        &upstream,
        &[
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://{}", receiver_json.addr),
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".into()),
        ],
    )
    .await;
    let (trace, parent) = ids();
    invite(&gateway, &trace, &parent, "json.protocol@example.com").await;
    // The default schedule (5 s) has not come: the spans go at the exit.
    gateway.stop().await;
    let spans = receiver_json.trace(&trace);
    let names: BTreeSet<&str> = spans.iter().map(Got::role).collect();
    assert!(
        names.contains("request") && names.contains("tencent.attempt"),
        "queued spans were sent at the exit: {names:?}"
    );
    let request = spans.iter().find(|s| s.role() == "request").unwrap();
    assert_eq!(request.parent, parent);
    assert_eq!(
        request.service, "partner-gateway",
        "the default service name"
    );

    // A sampler that samples nothing: the caller's sampled trace is not exported, and Tencent
    // still gets its id.
    let receiver_off = receiver(false).await;
    let gateway = start_gateway(
        &upstream,
        &[
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://{}", receiver_off.addr),
            ),
            ("OTEL_TRACES_SAMPLER", "always_off".into()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
        ],
    )
    .await;
    let (trace, parent) = ids();
    invite(&gateway, &trace, &parent, "sampler.off@example.com").await;
    gateway.stop().await;
    assert!(receiver_off.spans().is_empty(), "always_off exported spans");
    assert!(trace_ids_seen(&upstream, "CreateAndSendClientInvitationMail").contains(&trace));
}

async fn invite(gateway: &Gateway, trace: &str, parent: &str, email: &str) {
    let (status, body, _) = gateway
        .post(
            "/customers/invitations",
            Some(&format!("00-{trace}-{parent}-01")),
            &uuid::Uuid::new_v4().to_string(),
            &format!(r#"{{"email":"{email}"}}"#),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}
