//! An OTLP/HTTP receiver and the gateway binary as a process, for the trace tests: the real
//! binary has its own subscriber, exporter and environment, which a test process cannot share.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use parking_lot::Mutex;
use prost::Message;
use tokio::io::AsyncBufReadExt;
use tokio::net::TcpListener;

use crate::binary::free_port;
use crate::helpers::Upstream;

/// Long enough for a loaded machine; the tests poll and stop as soon as what they wait for is
/// there, so the bound is never what they take.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// One span as the receiver got it.
#[derive(Debug, Clone)]
pub struct Got {
    pub trace: String,
    pub span: String,
    pub parent: String,
    pub name: String,
    /// 2 server, 3 client (OTLP's numbering).
    pub kind: i32,
    pub attributes: BTreeMap<String, String>,
    pub service: String,
}

/// An OTLP/HTTP receiver: what each export carried, and its `x-collector-key` header. A stalled
/// one never answers (a collector that accepts connections and hangs).
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    pub exports: Exports,
}

/// Each export the receiver got, with its `x-collector-key` header.
type Exports = Arc<Mutex<Vec<(Option<String>, ExportTraceServiceRequest)>>>;

pub async fn receiver(stalled: bool) -> Receiver {
    async fn export(
        State((exports, stalled)): State<(Exports, bool)>,
        headers: http::HeaderMap,
        body: Bytes,
    ) -> ([(http::HeaderName, &'static str); 1], Vec<u8>) {
        if stalled {
            std::future::pending::<()>().await;
        }
        let json = headers
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        let request = if json {
            serde_json::from_slice(&body).expect("an OTLP/JSON export")
        } else {
            ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export")
        };
        let key = headers
            .get("x-collector-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        exports.lock().push((key, request));
        (
            [(http::header::CONTENT_TYPE, "application/x-protobuf")],
            Vec::new(),
        )
    }
    let exports: Exports = Arc::default();
    let app = Router::new()
        .route("/v1/traces", post(export))
        .with_state((exports.clone(), stalled));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { addr, exports }
}

impl Got {
    /// Its name; `request` for the server span.
    pub fn role(&self) -> &str {
        if self.kind == 2 {
            "request"
        } else {
            &self.name
        }
    }
}

impl Receiver {
    pub fn spans(&self) -> Vec<Got> {
        let text = |value: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>| match value
            .as_ref()
            .and_then(|v| v.value.as_ref())
        {
            Some(AnyValue::StringValue(s)) => s.clone(),
            Some(AnyValue::IntValue(i)) => i.to_string(),
            Some(AnyValue::BoolValue(b)) => b.to_string(),
            Some(AnyValue::DoubleValue(d)) => d.to_string(),
            _ => String::new(),
        };
        let attributes = |kvs: &[KeyValue]| -> BTreeMap<String, String> {
            kvs.iter()
                .map(|kv| (kv.key.clone(), text(&kv.value)))
                .collect()
        };
        let mut spans = Vec::new();
        for (_, export) in self.exports.lock().iter() {
            for resource in &export.resource_spans {
                let service = resource
                    .resource
                    .as_ref()
                    .map(|r| attributes(&r.attributes))
                    .and_then(|a| a.get("service.name").cloned())
                    .unwrap_or_default();
                for scope in &resource.scope_spans {
                    for span in &scope.spans {
                        spans.push(Got {
                            trace: hex::encode(&span.trace_id),
                            span: hex::encode(&span.span_id),
                            parent: hex::encode(&span.parent_span_id),
                            name: span.name.clone(),
                            kind: span.kind,
                            attributes: attributes(&span.attributes),
                            service: service.clone(),
                        });
                    }
                }
            }
        }
        spans
    }

    pub fn trace(&self, trace: &str) -> Vec<Got> {
        self.spans()
            .into_iter()
            .filter(|s| s.trace == trace)
            .collect()
    }

    /// Waits until the trace holds a span of each name in `names` (`request`: the server span,
    /// named after its method and route).
    pub async fn wait_for(&self, trace: &str, names: &[&str]) -> Vec<Got> {
        let started = Instant::now();
        loop {
            let spans = self.trace(trace);
            let have: BTreeSet<&str> = spans.iter().map(|s| s.role()).collect();
            if names.iter().all(|n| have.contains(n)) {
                return spans;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "trace {trace} has {have:?}, not all of {names:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The gateway binary, its stdout and stderr collected line by line.
pub struct Gateway {
    pub child: tokio::process::Child,
    pub port: u16,
    pub lines: Arc<Mutex<Vec<String>>>,
    readers: Vec<tokio::task::JoinHandle<()>>,
    /// With a timeout: a request the gateway held would fail the test, not hang it.
    pub client: reqwest::Client,
}

pub async fn start_gateway(upstream: &Upstream, env: &[(&str, String)]) -> Gateway {
    let port = free_port();
    let mut cmd = tokio::process::Command::from(crate::binary::gateway());
    cmd.args(["serve"])
        .env("TENCENTCLOUD_SECRET_ID", &upstream.secret_id)
        .env("TENCENTCLOUD_SECRET_KEY", &upstream.secret_key)
        .env(
            "GATEWAY__UPSTREAM__ENDPOINT",
            format!("http://{}", upstream.addr),
        )
        .env("GATEWAY__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("GATEWAY__SERVER__SHUTDOWN_DELAY_MS", "100")
        .env("GATEWAY__AUTH__DISABLED", "true")
        .env("GATEWAY__LOG__FORMAT", "json")
        // No background resolver: a retry settles the unknown allocation, in its own trace.
        .env("GATEWAY__CREDIT__RESOLVE_INTERVAL_MS", "3600000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (name, value) in env {
        cmd.env(name, value);
    }
    let mut child = cmd.spawn().expect("the gateway binary starts");
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let readers = [
        Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(stderr),
    ]
    .into_iter()
    .map(|stream| {
        let lines = lines.clone();
        tokio::spawn(async move {
            let mut reader = tokio::io::BufReader::new(stream).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                lines.lock().push(line);
            }
        })
    })
    .collect();
    let gateway = Gateway {
        child,
        port,
        lines,
        readers,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
    };
    let started = Instant::now();
    loop {
        let ready = gateway
            .client
            .get(gateway.url("/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200);
        if ready {
            return gateway;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "the gateway never became ready:\n{}",
            gateway.lines.lock().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Gateway {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub async fn post(
        &self,
        path: &str,
        traceparent: Option<&str>,
        key: &str,
        body: &str,
    ) -> (u16, serde_json::Value, reqwest::header::HeaderMap) {
        let mut request = self
            .client
            .post(self.url(path))
            .header("idempotency-key", key)
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(traceparent) = traceparent {
            request = request.header("traceparent", traceparent);
        }
        let reply = request.send().await.expect("the gateway answers");
        let status = reply.status().as_u16();
        let headers = reply.headers().clone();
        let text = reply.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or_default();
        (status, body, headers)
    }

    pub async fn metric(&self, name: &str) -> f64 {
        let text = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} is not in /metrics"))
    }

    /// SIGTERM, and the exit: what the exporter held is sent before it.
    pub async fn stop(mut self) -> String {
        let pid = self.child.id().expect("running").to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        let status = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("the gateway exits")
            .unwrap();
        assert!(status.success(), "exit status {status}");
        // Both streams end with the process: every line is in.
        for reader in self.readers.drain(..) {
            reader.await.unwrap();
        }
        self.lines.lock().join("\n")
    }
}
