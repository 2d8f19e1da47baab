//! The whole HTTP surface in-process: any method, target, headers and body, through every layer
//! of the router (authentication, validation, the quota, the simulator behind it). Never a panic,
//! only the statuses the gateway documents (never 500), and `/metrics` stays bounded however many
//! odd requests it has seen (every label comes from a closed set).
//!
//! Input layout: the first byte's low bits say whether to send the test key and a JSON content
//! type; then lines: the method, the target, headers as `name: value`, an empty line, the body.
#![no_main]

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use libfuzzer_sys::fuzz_target;
use partner_gateway::auth::api_key;
use partner_gateway::config::{ApiKeySettings, Credentials, Settings};
use partner_gateway::sandbox::Sandbox;
use tower::ServiceExt;

const DOCUMENTED: [u16; 16] = [
    200, 201, 400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 431, 502, 503, 504,
];

struct World {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    key: String,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (router, key) = runtime.block_on(async {
            let credentials = Credentials::generate_sandbox();
            let mut settings = Settings::default();
            settings.quotas.max_wait_ms = 0;
            settings.upstream.timeout_ms = 1_000;
            settings.server.request_timeout_ms = 2_000;
            let key = api_key::generate();
            settings.auth.api_keys.push(ApiKeySettings {
                name: "fuzz".into(),
                sha256: api_key::hash_hex(&key),
                scopes: partner_gateway::domain::Scope::ALL.to_vec(),
            });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            settings.upstream.endpoint = format!("http://{}", listener.local_addr().unwrap());
            let clock = partner_gateway::clock::system();
            let simulator = Sandbox::new(partner_gateway::sandbox::embedded::config(
                &settings,
                &credentials,
                clock.clone(),
            ));
            tokio::spawn(simulator.serve(listener, std::future::pending()));
            let app = partner_gateway::app::build(settings, &credentials, clock).unwrap();
            (app.router(), key)
        });
        World {
            runtime,
            router,
            key,
        }
    })
}

fn request(data: &[u8], key: &str) -> Option<http::Request<Body>> {
    let (&flags, rest) = data.split_first()?;
    let (head, body) = match rest.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&rest[..at], &rest[at + 2..]),
        None => (rest, &[][..]),
    };
    let mut lines = head.split(|&b| b == b'\n');
    let method = http::Method::from_bytes(lines.next()?).ok()?;
    let target = std::str::from_utf8(lines.next()?).ok()?;
    let mut builder = http::Request::builder().method(method).uri(target);
    for line in lines {
        let text = std::str::from_utf8(line).ok()?;
        let (name, value) = text.split_once(':')?;
        builder = builder.header(name.trim(), value.trim());
    }
    if flags & 1 == 1 {
        builder = builder.header("authorization", format!("Bearer {key}"));
    }
    if flags & 2 == 2 {
        builder = builder.header("content-type", "application/json");
    }
    builder.body(Body::from(body.to_vec())).ok()
}

fuzz_target!(|data: &[u8]| {
    let world = world();
    let Some(request) = request(data, &world.key) else {
        return;
    };
    let response = world
        .runtime
        .block_on(world.router.clone().oneshot(request))
        .unwrap();
    let status = response.status().as_u16();
    assert!(DOCUMENTED.contains(&status), "status {status}");
    static SEEN: AtomicU64 = AtomicU64::new(0);
    if SEEN.fetch_add(1, Ordering::Relaxed) % 5_000 == 4_999 {
        let metrics = http::Request::get("/metrics").body(Body::empty()).unwrap();
        let text = world.runtime.block_on(async {
            let response = world.router.clone().oneshot(metrics).await.unwrap();
            axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap()
        });
        let text = String::from_utf8_lossy(&text);
        let series = text
            .lines()
            .filter(|l| l.starts_with("http_server_request_duration_seconds_count"))
            .count();
        assert!(series <= 15 * 10 * DOCUMENTED.len(), "{series} request series");
        assert!(text.len() < 1024 * 1024, "/metrics is {} bytes", text.len());
    }
});
