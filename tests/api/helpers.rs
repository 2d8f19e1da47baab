//! `spawn_app`: the real gateway on `127.0.0.1:0` in front of an in-process sandbox, with typed
//! helpers for the routes and a log capture every test writes into.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::OnceLock;

use parking_lot::Mutex;
use std::time::Duration;

use partner_gateway::app::{self, Shutdown};
use partner_gateway::auth::api_key;
use partner_gateway::clock::{self, SharedClock};
use partner_gateway::config::{ApiKeySettings, Credentials, LogFormat, LogSettings, Settings};
use partner_gateway::sandbox::{Fault, HistoryOrder, Sandbox, SandboxConfig, SandboxKey};
use secrecy::SecretString;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Everything any test's gateway logged, and every secret key a test handed out.
struct Capture {
    logs: Mutex<Vec<u8>>,
    secrets: Mutex<Vec<String>>,
}

fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        partner_gateway::telemetry::init(
            &LogSettings {
                format: LogFormat::Json,
                // Everything at `debug` but the spans only traces use (their own target): they
                // carry no secret and would only add to every in-process test's work.
                level: "debug,partner_gateway::spans=info".into(),
            },
            || CaptureWriter,
            None,
        );
        Capture {
            logs: Mutex::new(Vec::new()),
            secrets: Mutex::new(Vec::new()),
        }
    })
}

struct CaptureWriter;

impl Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        capture().logs.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The log output of every test so far.
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&capture().logs.lock()).into_owned()
}

/// Adds a credential (an API key, a token) to what must never appear in the logs.
pub fn register_secret(secret: &str) {
    capture().secrets.lock().push(secret.to_owned());
}

/// Every secret key handed to a gateway so far.
pub fn secrets_in_use() -> Vec<String> {
    capture().secrets.lock().clone()
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub sandbox: Sandbox,
    pub sandbox_addr: SocketAddr,
    pub client: reqwest::Client,
    /// A key of the caller `test-suite`, with every scope; the typed helpers send it.
    pub api_key: String,
    shutdown: Option<oneshot::Sender<Shutdown>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// Knobs a test can turn before the app starts.
pub struct Options {
    pub settings: Settings,
    /// The gateway's wall clock (signing, cooldowns, reconciliation).
    pub gateway_clock: SharedClock,
    /// The simulator's wall clock (timestamp window, per-second quotas, its own cooldown).
    pub sandbox_clock: SharedClock,
    /// The key the gateway signs with; the sandbox always knows the right one.
    pub gateway_secret_key: Option<String>,
    /// Per-second quotas of the simulator that differ from Tencent's.
    pub sandbox_quotas: Vec<(&'static str, u32)>,
    /// Send upstream calls here instead of to the simulator (a misbehaving server).
    pub upstream_endpoint: Option<String>,
    /// The simulator's allocation-history order and page cap (Tencent documents neither).
    pub sandbox_history: (HistoryOrder, usize),
    /// Keys the simulator accepts besides the test's own.
    pub sandbox_extra_keys: Vec<SandboxKey>,
    /// How long the simulator's metadata service's temporary credentials last.
    pub sandbox_temporary_ttl: Option<Duration>,
    /// Where the gateway finds its credentials (kept current while it runs), given the
    /// simulator; `None`: the simulator's key, fixed.
    pub credential_origin: Option<CredentialOrigin>,
}

/// Where a test gateway's credentials come from, once the simulator is known.
pub type CredentialOrigin = std::sync::Arc<
    dyn Fn(
            &Upstream,
        ) -> (
            partner_gateway::credentials::Origin,
            partner_gateway::credentials::refresh::Lookup,
        ) + Send
        + Sync,
>;

/// The API key every test app accepts for the caller `test-suite`, with every scope.
pub fn test_key_entry(name: &str, key: &str, scopes: &[&str]) -> ApiKeySettings {
    ApiKeySettings {
        name: name.into(),
        sha256: api_key::hash_hex(key),
        scopes: scopes
            .iter()
            .map(|s| partner_gateway::domain::Scope::parse(s).expect("a scope"))
            .collect(),
    }
}

pub const ALL_SCOPES: [&str; 3] = ["invitations:send", "credit:allocate", "customers:read"];

impl Default for Options {
    fn default() -> Self {
        let mut settings = Settings::default();
        settings.upstream.timeout_ms = 2_000;
        settings.upstream.retry_backoff_ms = 10;
        settings.server.shutdown_delay_ms = 300;
        settings.server.shutdown_grace_ms = 5_000;
        Self {
            settings,
            gateway_clock: clock::system(),
            sandbox_clock: clock::system(),
            gateway_secret_key: None,
            sandbox_quotas: Vec::new(),
            upstream_endpoint: None,
            sandbox_history: (HistoryOrder::NewestFirst, 100),
            sandbox_extra_keys: Vec::new(),
            sandbox_temporary_ttl: None,
            credential_origin: None,
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    spawn_fleet(1, options).await.pop().unwrap()
}

/// The simulator every gateway of a test talks to, and the credentials it accepts.
#[derive(Clone)]
pub struct Upstream {
    pub sandbox: Sandbox,
    pub addr: SocketAddr,
    pub secret_id: String,
    pub secret_key: String,
}

pub async fn spawn_upstream(options: &Options) -> Upstream {
    let capture = capture();
    let secret_key = format!("test-secret-{}", uuid::Uuid::new_v4().simple());
    capture.secrets.lock().push(secret_key.clone());
    let secret_id = format!("AKIDtest{}", uuid::Uuid::new_v4().simple());
    let mut sandbox_config = SandboxConfig::new(
        SandboxKey {
            secret_id: secret_id.clone(),
            secret_key: SecretString::from(secret_key.clone()),
            token: None,
        },
        options.sandbox_clock.clone(),
    );
    (
        sandbox_config.history_order,
        sandbox_config.history_page_cap,
    ) = options.sandbox_history;
    for (action, limit) in &options.sandbox_quotas {
        sandbox_config.quotas.insert((*action).to_owned(), *limit);
    }
    sandbox_config
        .keys
        .extend(options.sandbox_extra_keys.iter().cloned());
    if let Some(ttl) = options.sandbox_temporary_ttl {
        sandbox_config.temporary_ttl = ttl;
    }
    let sandbox = Sandbox::new(sandbox_config);
    let sandbox_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = sandbox_listener.local_addr().unwrap();
    tokio::spawn(
        sandbox
            .clone()
            .serve(sandbox_listener, std::future::pending()),
    );
    Upstream {
        sandbox,
        addr,
        secret_id,
        secret_key,
    }
}

/// `n` gateways (replicas: same settings, own ports) in front of one simulator.
pub async fn spawn_fleet(n: usize, options: Options) -> Vec<TestApp> {
    let upstream = spawn_upstream(&options).await;
    let test_key = api_key::generate();
    capture().secrets.lock().push(test_key.clone());
    let mut fleet = Vec::new();
    for _ in 0..n {
        fleet.push(spawn_gateway(&options, &upstream, &test_key).await);
    }
    fleet
}

/// One gateway in front of `upstream`, accepting `test_key` for the caller `test-suite`.
pub async fn spawn_gateway(options: &Options, upstream: &Upstream, test_key: &str) -> TestApp {
    let capture = capture();
    let mut settings = options.settings.clone();
    settings.upstream.endpoint = options
        .upstream_endpoint
        .clone()
        .unwrap_or_else(|| format!("http://{}", upstream.addr));
    settings
        .auth
        .api_keys
        .push(test_key_entry("test-suite", test_key, &ALL_SCOPES));
    settings.validate().expect("test settings are valid");
    let gateway_key = options
        .gateway_secret_key
        .clone()
        .unwrap_or_else(|| upstream.secret_key.clone());
    if gateway_key != upstream.secret_key {
        capture.secrets.lock().push(gateway_key.clone());
    }
    let credentials = Credentials {
        secret_id: upstream.secret_id.clone(),
        secret_key: SecretString::from(gateway_key),
        token: None,
    };
    let app = match &options.credential_origin {
        None => app::build(settings, &credentials, options.gateway_clock.clone()).unwrap(),
        Some(origin) => {
            let (origin, lookup) = origin(upstream);
            let issued = origin
                .fetch(lookup.0.as_ref())
                .await
                .expect("the test's credentials are found");
            let cell = partner_gateway::credentials::CredentialCell::new(issued);
            app::build_with(settings, cell, options.gateway_clock.clone())
                .unwrap()
                .refreshing(origin, lookup)
        }
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    let server = tokio::spawn(app.run_until_stopped(listener, async move {
        rx.await.unwrap_or(Shutdown::Interrupt)
    }));
    TestApp {
        addr,
        sandbox: upstream.sandbox.clone(),
        sandbox_addr: upstream.addr,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        api_key: test_key.to_owned(),
        shutdown: Some(tx),
        server: Some(server),
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The problem's `type`, asserting the media type of a problem.
    pub fn problem_type(&self) -> String {
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.text
        );
        self.json()["type"].as_str().unwrap().to_owned()
    }

    /// The fields named in a validation problem.
    pub fn fields(&self) -> Vec<String> {
        self.json()["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| e["field"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("the gateway answers");
        Reply {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            text: response.text().await.unwrap(),
        }
    }

    /// A POST carrying the test suite's key and a fresh Idempotency-Key.
    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .post(self.url(path))
            .bearer_auth(&self.api_key)
            .header("idempotency-key", uuid::Uuid::new_v4().to_string())
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> Reply {
        let mut request = self.post(path).body(body);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        self.send(request).await
    }

    /// A credit allocation with a chosen Idempotency-Key.
    pub async fn post_credit_keyed(&self, uin: &str, key: &str, body: Value) -> Reply {
        let request = self
            .client
            .post(self.url(&format!("/customers/{uin}/credit")))
            .bearer_auth(&self.api_key)
            .header("idempotency-key", key)
            .header("content-type", "application/json")
            .body(body.to_string());
        self.send(request).await
    }

    pub async fn post_invitation(&self, body: Value) -> Reply {
        self.post_raw(
            "/customers/invitations",
            Some("application/json"),
            body.to_string(),
        )
        .await
    }

    pub async fn post_credit(&self, uin: &str, body: Value) -> Reply {
        self.post_raw(
            &format!("/customers/{uin}/credit"),
            Some("application/json"),
            body.to_string(),
        )
        .await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(self.client.get(self.url(path))).await
    }

    pub fn fault(&self, fault: Fault) {
        self.sandbox.add_fault(fault);
    }

    /// Every request the simulator received, valid or not.
    pub fn upstream_calls(&self) -> u64 {
        self.sandbox.stats().received
    }

    /// Asks the server to stop as a SIGTERM would; returns the join handle to await.
    pub fn begin_shutdown(
        &mut self,
        how: Shutdown,
    ) -> tokio::task::JoinHandle<std::io::Result<()>> {
        self.shutdown.take().unwrap().send(how).unwrap();
        self.server.take().unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// A seeded customer of the sandbox.
pub const CUSTOMER: &str = "800000232018";

/// After a chaos run: the simulator's ledger holds each of the `intents` allocations exactly once
/// (one history entry per intent, no gateway marker twice) and the customers' credit adds up to
/// `expected_cents`. Returns the number of history entries.
pub fn assert_each_intent_applied_once(
    sandbox: &Sandbox,
    intents: usize,
    expected_cents: i64,
) -> usize {
    let ledger = sandbox.ledger();
    let applied: i64 = ledger
        .customers
        .iter()
        .map(|c| (c.total_credit * 100.0).round() as i64)
        .sum();
    let entries: Vec<_> = ledger.history.values().flatten().collect();
    let mut markers: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for entry in &entries {
        let marker = entry
            .remark
            .rsplit_once(' ')
            .map(|(_, m)| m.to_owned())
            .unwrap_or_default();
        assert!(marker.starts_with("[pgw:"), "{}", entry.remark);
        *markers.entry(marker).or_default() += 1;
    }
    assert_eq!(entries.len(), intents, "one history entry per intent");
    assert!(
        markers.values().all(|&n| n == 1),
        "an allocation appears twice in the history"
    );
    assert_eq!(
        applied, expected_cents,
        "the ledger equals the sum of the intents"
    );
    entries.len()
}

/// After a chaos run: every customer's credit equals the sum of the intents for that customer.
pub fn assert_ledger_per_customer(sandbox: &Sandbox, intents: &[(u64, i64)]) {
    let mut expected: std::collections::BTreeMap<u64, i64> = Default::default();
    for (uin, cents) in intents {
        *expected.entry(*uin).or_default() += cents;
    }
    for customer in sandbox.ledger().customers {
        let held = (customer.total_credit * 100.0).round() as i64;
        assert_eq!(
            held,
            expected.get(&customer.uin).copied().unwrap_or(0),
            "customer {}'s credit",
            customer.uin
        );
    }
}
