//! Callers who try to exhaust or confuse the gateway without any credential: made-up methods,
//! slow headers, idle and excess connections, remarks that disguise text; and the keys of a JWKS
//! that the identity provider removed or that the gateway can no longer refresh.
//!
//! Where an attack is slow by nature (one byte every 2 s), the test sends it at that pace: the
//! slowness is the attack, not a wait for the gateway.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use partner_gateway::config::JwtSettings;
use serde_json::{Value, json};

use crate::auth::{claims, jwk, token};
use crate::helpers::*;
use crate::scale_out::metric;

const ISSUER: &str = "https://login.test/";
const AUDIENCE: &str = "partner-gateway";

/// How long a raw connection to `addr` stays open, reading until the server closes it (or
/// `give_up` passes), while `send` is called every `every` to write more.
fn open_for(
    addr: std::net::SocketAddr,
    give_up: Duration,
    every: Duration,
    mut send: impl FnMut(&mut TcpStream, usize) -> bool,
) -> Duration {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut next = Instant::now();
    let mut step = 0;
    let mut buf = [0u8; 4096];
    while started.elapsed() < give_up {
        if Instant::now() >= next {
            if !send(&mut stream, step) {
                return started.elapsed();
            }
            step += 1;
            next += every;
        }
        match stream.read(&mut buf) {
            Ok(0) => return started.elapsed(),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return started.elapsed(),
        }
    }
    give_up
}

/// Headers dribbled one byte at a time: closed once `server.header_timeout_ms` has passed since
/// the first byte, however the bytes are spaced: one every 2 s (the issue's attack), and one
/// every 200 ms (a timer that restarted at each byte would never fire).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_header_is_cut_off_at_the_header_timeout() {
    let mut options = Options::default();
    options.settings.server.header_timeout_ms = 1_000;
    let app = spawn_app_with(options).await;
    let addr = app.addr;
    let head = b"POST /customers/invitations HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaa";
    for every in [Duration::from_secs(2), Duration::from_millis(200)] {
        let open = tokio::task::spawn_blocking(move || {
            open_for(addr, Duration::from_secs(20), every, |s, i| {
                s.write_all(&head[i % head.len()..i % head.len() + 1])
                    .is_ok()
            })
        })
        .await
        .unwrap();
        println!("a byte every {every:?}: closed after {open:?}");
        assert!(open < Duration::from_secs(4), "held for {open:?}");
    }
    // A connection that sends nothing at all is closed as well.
    let silent = tokio::task::spawn_blocking(move || {
        open_for(
            addr,
            Duration::from_secs(20),
            Duration::from_secs(60),
            |_, _| true,
        )
    })
    .await
    .unwrap();
    assert!(silent < Duration::from_secs(4), "held for {silent:?}");
    let text = app.get("/metrics").await.text;
    assert!(
        metric(
            &text,
            "gateway_connections_timed_out_total{limit=\"header\"}"
        ) >= 3.0,
        "{text}"
    );
}

/// A client that asks for a large answer and stops reading it (its receive window shut) is cut
/// off once writing has made no progress for `server.write_timeout_ms`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_off_at_the_write_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut options = Options::default();
    options.settings.server.write_timeout_ms = 1_000;
    let app = spawn_app_with(options).await;
    const ASSET: &str = "/docs/swagger-ui-bundle.js";
    let whole = app.get(ASSET).await;
    assert_eq!(whole.status, 200);
    assert!(whole.text.len() > 1_000_000, "{} bytes", whole.text.len());
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(app.addr).await.unwrap();
    // Twenty requests at once (more than the socket buffers hold, however the kernel sizes
    // them), and nothing read: the gateway's writes stall. The slowness is the attack.
    const ASKED: usize = 20;
    let request = format!("GET {ASSET} HTTP/1.1\r\nHost: x\r\n\r\n").repeat(ASKED);
    stream.write_all(request.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut received = Vec::new();
    let read =
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut received)).await;
    assert!(read.is_ok(), "the connection was still open");
    assert!(
        received.len() < ASKED * whole.text.len(),
        "every answer arrived: {} bytes",
        received.len()
    );
    let text = app.get("/metrics").await.text;
    assert!(
        metric(
            &text,
            "gateway_connections_timed_out_total{limit=\"write\"}"
        ) >= 1.0,
        "{text}"
    );
}

/// A kept-alive connection is closed after `server.idle_timeout_ms` without a request, and one
/// that keeps asking is not closed by the header timeout between its requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_and_busy_ones_are_not() {
    let mut options = Options::default();
    options.settings.server.header_timeout_ms = 1_000;
    options.settings.server.idle_timeout_ms = 1_500;
    let app = spawn_app_with(options).await;
    let addr = app.addr;
    const REQUEST: &[u8] = b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n";
    // One request, then silence: closed 1.5 s later.
    let idle = tokio::task::spawn_blocking(move || {
        open_for(
            addr,
            Duration::from_secs(20),
            Duration::from_secs(60),
            |s, _| s.write_all(REQUEST).is_ok(),
        )
    })
    .await
    .unwrap();
    assert!(
        idle >= Duration::from_millis(1_400) && idle < Duration::from_secs(4),
        "idle connection closed after {idle:?}"
    );
    // A request every 0.5 s for 4 s: never closed.
    let busy = tokio::task::spawn_blocking(move || {
        open_for(
            addr,
            Duration::from_secs(4),
            Duration::from_millis(500),
            |s, _| s.write_all(REQUEST).is_ok(),
        )
    })
    .await
    .unwrap();
    assert_eq!(busy, Duration::from_secs(4), "a busy connection was closed");
}

/// Over `server.max_connections` a connection is closed at once and counted; one closing makes
/// room again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_closed_at_once() {
    let mut options = Options::default();
    options.settings.server.max_connections = 3;
    let app = spawn_app_with(options).await;
    // The test client's own kept-alive connection may hold one place: make sure it is closed.
    let addr = app.addr;
    let held: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let extra = tokio::task::spawn_blocking(move || {
        open_for(
            addr,
            Duration::from_secs(5),
            Duration::from_secs(60),
            |_, _| true,
        )
    })
    .await
    .unwrap();
    assert!(extra < Duration::from_secs(1), "held for {extra:?}");
    drop(held);
    // The places are free again: a fresh client gets its answer.
    let deadline = Instant::now() + Duration::from_secs(5);
    let text = loop {
        match reqwest::Client::new()
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
        {
            Ok(reply) if reply.status() == 200 => break reply.text().await.unwrap(),
            _ => {
                assert!(Instant::now() < deadline, "no room again");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert!(
        metric(&text, "gateway_connections_rejected_total") >= 1.0,
        "{text}"
    );
}

/// 2,000 requests with invented 1,000-character methods (and a few of 60 KB): all refused early,
/// and neither `/metrics` nor the process grows with them (the method label is `_OTHER`).
#[test]
fn made_up_methods_grow_neither_metrics_nor_memory() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Logged at info, to see that the log does not carry the methods either.
    let log = tempfile_in_target("methods.log");
    let mut serve = Command::new(env!("CARGO_BIN_EXE_partner-gateway"))
        .args(["serve", "--sandbox"])
        .env_remove("RUST_LOG")
        .env("GATEWAY__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("GATEWAY__SANDBOX__LISTEN", "127.0.0.1:0")
        .env("GATEWAY__LOG__LEVEL", "info")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::from(log.reopen().unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::blocking::Client::new();
    let started = Instant::now();
    while client
        .get(format!("{base}/readyz"))
        .send()
        .map_or(true, |r| r.status() != 200)
    {
        assert!(started.elapsed() < Duration::from_secs(20), "never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let rss = |pid: u32| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap()
    };
    // Warm every path once, so what is measured after is growth, not first use.
    let odd = |i: usize, len: usize| {
        let mut m: String = format!("X{i}");
        while m.len() < len {
            m.push((b'A' + (m.len() % 26) as u8) as char);
        }
        reqwest::Method::from_bytes(m.as_bytes()).unwrap()
    };
    for i in 0..50 {
        let _ = client
            .request(odd(i, 1_000), format!("{base}/customers/invitations"))
            .send();
    }
    let metrics_before = client
        .get(format!("{base}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let rss_before = rss(serve.id());
    for i in 0..2_000 {
        let path = if i % 2 == 0 {
            "/customers/invitations"
        } else {
            "/no/such/path"
        };
        let reply = client
            .request(odd(i, 1_000), format!("{base}{path}"))
            .send()
            .unwrap();
        assert_eq!(reply.status(), 405, "method {i}");
    }
    for i in 0..5 {
        let status = client
            .request(odd(i, 60_000), format!("{base}/customers/invitations"))
            .send()
            .map(|r| r.status().as_u16());
        // 431 (the request head is over 16 KiB), or the connection closed.
        assert!(matches!(status, Ok(431) | Err(_)), "{status:?}");
    }
    let metrics_after = client
        .get(format!("{base}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let rss_after = rss(serve.id());
    let _ = serve.kill();
    let _ = serve.wait();
    let grew = metrics_after.len() as i64 - metrics_before.len() as i64;
    println!(
        "/metrics {} → {} bytes; RSS {rss_before} → {rss_after} KiB",
        metrics_before.len(),
        metrics_after.len()
    );
    assert!(grew < 20 * 1024, "/metrics grew by {grew} bytes");
    assert!(
        rss_after < rss_before + 4 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );
    assert!(metrics_after.contains("http_request_method=\"_OTHER\""));
    assert!(!metrics_after.contains("X1AAA"));
    let logged = std::fs::read_to_string(log.path()).unwrap();
    assert!(logged.contains("request served"), "nothing logged at info");
    assert!(
        !logged.contains("X1AAA"),
        "a made-up method reached the log"
    );
}

/// A file under the target directory, removed when dropped.
struct TargetFile(std::path::PathBuf);

impl TargetFile {
    fn path(&self) -> &std::path::Path {
        &self.0
    }

    fn reopen(&self) -> std::io::Result<std::fs::File> {
        std::fs::OpenOptions::new().append(true).open(&self.0)
    }
}

impl Drop for TargetFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn tempfile_in_target(name: &str) -> TargetFile {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!("{}-{name}", uuid::Uuid::new_v4().simple()));
    std::fs::File::create(&path).unwrap();
    TargetFile(path)
}

/// A JWKS the test can change, fail, or serve with a `Cache-Control: max-age`.
struct Jwks {
    url: String,
    keys: Arc<parking_lot::RwLock<Vec<Value>>>,
    failing: Arc<AtomicBool>,
    fetches: Arc<std::sync::atomic::AtomicU64>,
}

async fn jwks(keys: Vec<Value>, max_age: Option<u64>) -> Jwks {
    let keys = Arc::new(parking_lot::RwLock::new(keys));
    let failing = Arc::new(AtomicBool::new(false));
    let fetches = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (served, broken, counted) = (keys.clone(), failing.clone(), fetches.clone());
    let router = axum::Router::new().route(
        "/jwks.json",
        get(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            let keys = served.read().clone();
            let broken = broken.load(Ordering::SeqCst);
            async move {
                if broken {
                    return StatusCode::INTERNAL_SERVER_ERROR.into_response();
                }
                let mut reply = axum::Json(json!({ "keys": keys })).into_response();
                if let Some(age) = max_age {
                    reply.headers_mut().insert(
                        http::header::CACHE_CONTROL,
                        format!("public, max-age={age}").parse().unwrap(),
                    );
                }
                reply
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    Jwks {
        url,
        keys,
        failing,
        fetches,
    }
}

fn jwt_settings(url: String, refresh_interval_s: u64, max_stale_s: u64) -> Options {
    jwt_settings_with(url, refresh_interval_s, max_stale_s, 0)
}

fn jwt_settings_with(
    url: String,
    refresh_interval_s: u64,
    max_stale_s: u64,
    min_refresh_ms: u64,
) -> Options {
    let mut options = Options::default();
    options.settings.auth.jwt = Some(JwtSettings {
        jwks_url: Some(url),
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        min_refresh_ms,
        refresh_interval_s,
        max_stale_s,
        ..JwtSettings::default()
    });
    options
}

/// Polls `POST /customers/invitations` with `bearer` until it gets `status`, for at most `within`;
/// returns how long that took.
async fn until_status(app: &TestApp, bearer: &str, status: u16, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let reply = app
            .send(
                app.client
                    .post(app.url("/customers/invitations"))
                    .header("authorization", format!("Bearer {bearer}"))
                    .header("content-type", "application/json")
                    .body(json!({"email": format!("jwks-{}@example.com", uuid::Uuid::new_v4().simple())}).to_string()),
            )
            .await;
        if reply.status == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "still {} after {within:?}: {}",
            reply.status,
            reply.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Tokens naming unknown keys cannot make the gateway hammer the identity provider: at most one
/// fetch per `min_refresh_ms`, however many arrive.
#[tokio::test]
async fn unknown_kids_cannot_storm_the_identity_provider() {
    let server = jwks(vec![jwk("es256-a")], None).await;
    let app = spawn_app_with(jwt_settings_with(server.url.clone(), 300, 600, 2_000)).await;
    let before = server.fetches.load(Ordering::SeqCst);
    let started = Instant::now();
    for i in 0..60 {
        let forged = token("stranger", &format!("kid-{i}"), claims("invitations:send"));
        until_status(&app, &forged, 401, Duration::from_secs(1)).await;
    }
    let fetched = server.fetches.load(Ordering::SeqCst) - before;
    let allowed = started.elapsed().as_millis() as u64 / 2_000 + 1;
    println!(
        "60 unknown kids in {:?}: {fetched} fetches",
        started.elapsed()
    );
    assert!(
        fetched <= allowed,
        "{fetched} fetches, at most {allowed} allowed"
    );
}

/// An answer with no usable key is not a key set: the last good one stays, and it counts as a
/// failed refresh.
#[tokio::test]
async fn an_empty_jwks_does_not_replace_the_keys() {
    let server = jwks(vec![jwk("es256-a")], None).await;
    let app = spawn_app_with(jwt_settings(server.url.clone(), 1, 60)).await;
    let good = token("es256-a", "es256-a", claims("invitations:send"));
    until_status(&app, &good, 201, Duration::from_secs(2)).await;
    *server.keys.write() = vec![];
    let before = server.fetches.load(Ordering::SeqCst);
    while server.fetches.load(Ordering::SeqCst) < before + 2 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    until_status(&app, &good, 201, Duration::from_secs(1)).await;
    let text = app.get("/metrics").await.text;
    assert!(
        metric(&text, "gateway_jwks_refresh_failures_total") >= 1.0,
        "{text}"
    );
}

/// A key removed from the JWKS stops working at the next scheduled refresh: the holder of a
/// revoked key never sends an unknown `kid`, so nothing else would make the gateway look.
#[tokio::test]
async fn a_key_removed_from_the_jwks_is_refused_within_the_refresh_interval() {
    let server = jwks(vec![jwk("es256-a"), jwk("rs256")], None).await;
    let app = spawn_app_with(jwt_settings(server.url.clone(), 2, 60)).await;
    let revoked = token("rs256", "rs256", claims("invitations:send"));
    until_status(&app, &revoked, 201, Duration::from_secs(2)).await;
    *server.keys.write() = vec![jwk("es256-a")];
    let took = until_status(&app, &revoked, 401, Duration::from_secs(5)).await;
    println!("the removed key was refused after {took:?}");
    // The key that stayed works on.
    let kept = token("es256-a", "es256-a", claims("invitations:send"));
    until_status(&app, &kept, 201, Duration::from_secs(1)).await;
}

/// The JWKS answer's `max-age` shortens the refresh interval.
#[tokio::test]
async fn the_jwks_max_age_is_honoured_when_shorter() {
    let server = jwks(vec![jwk("es256-a"), jwk("rs256")], Some(1)).await;
    let app = spawn_app_with(jwt_settings(server.url.clone(), 300, 600)).await;
    let revoked = token("rs256", "rs256", claims("invitations:send"));
    until_status(&app, &revoked, 201, Duration::from_secs(2)).await;
    *server.keys.write() = vec![jwk("es256-a")];
    until_status(&app, &revoked, 401, Duration::from_secs(4)).await;
}

/// Refreshes that fail keep the last good keys for `max_stale_s`, then tokens are refused (fail
/// closed); the failures show in `/metrics` and the stale set in `/readyz`.
#[tokio::test]
async fn a_jwks_that_cannot_be_refreshed_fails_closed_after_max_stale() {
    let server = jwks(vec![jwk("es256-a")], None).await;
    let app = spawn_app_with(jwt_settings(server.url.clone(), 1, 3)).await;
    let good = token("es256-a", "es256-a", claims("invitations:send"));
    until_status(&app, &good, 201, Duration::from_secs(2)).await;
    server.failing.store(true, Ordering::SeqCst);
    let failed_at = Instant::now();
    // Still served on the last good keys for a while...
    until_status(&app, &good, 201, Duration::from_secs(1)).await;
    // ...then refused.
    until_status(&app, &good, 401, Duration::from_secs(6)).await;
    assert!(failed_at.elapsed() >= Duration::from_secs(1));
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 200, "API keys still work: {}", ready.text);
    assert!(
        ready.json()["degraded"]["jwks"]
            .as_str()
            .unwrap()
            .contains("tokens are refused"),
        "{}",
        ready.text
    );
    let text = app.get("/metrics").await.text;
    assert!(
        metric(&text, "gateway_jwks_refresh_failures_total") >= 1.0,
        "{text}"
    );
    // API keys are unaffected.
    assert_eq!(
        app.post_invitation(json!({"email": "key-holder@example.com"}))
            .await
            .status,
        201
    );
    // The identity provider is back: tokens work again at the next refresh.
    server.failing.store(false, Ordering::SeqCst);
    until_status(&app, &good, 201, Duration::from_secs(4)).await;
}

/// Tencent refusing one action for want of a permission (the CAM policy lacks it) degrades that
/// action only: the replica stays ready, names the permission, and the other actions work.
#[tokio::test]
async fn a_missing_permission_degrades_one_action_not_the_replica() {
    let app = spawn_app().await;
    app.fault(partner_gateway::sandbox::Fault::error(
        Some("CreateAndSendClientInvitationMail"),
        "AuthFailure.UnauthorizedOperation",
    ));
    let reply = app
        .post_invitation(json!({"email": "denied@example.com"}))
        .await;
    assert_eq!(reply.status, 502, "{}", reply.text);
    assert_eq!(reply.problem_type(), "/problems/upstream-auth-failed");
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert!(
        ready.json()["degraded"]["upstream_permissions"]
            .as_str()
            .unwrap()
            .contains("intlpartnersmgt:CreateAndSendClientInvitationMail"),
        "{}",
        ready.text
    );
    let text = app.get("/metrics").await.text;
    assert_eq!(
        metric(
            &text,
            "gateway_upstream_action_denied{tencent_action=\"CreateAndSendClientInvitationMail\"}"
        ),
        1.0
    );
    // Credit still works.
    assert_eq!(
        app.post_credit(CUSTOMER, json!({"amount": 1})).await.status,
        200
    );
    // Granted again: the next accepted call clears it.
    app.sandbox.clear_faults();
    assert_eq!(
        app.post_invitation(json!({"email": "granted@example.com"}))
            .await
            .status,
        201
    );
    let ready = app.get("/readyz").await;
    assert!(ready.json().get("degraded").is_none(), "{}", ready.text);
}

/// Remarks that would show reordered or hidden text in Tencent's console are refused before
/// anything is sent, naming the field; the same words typed in another normal form are one remark.
#[tokio::test]
async fn remarks_that_disguise_text_never_reach_tencent() {
    let app = spawn_app().await;
    for remark in [
        "refund \u{202E}001 tnuocca\u{202C}",
        "split\u{2028}line",
        "zero\u{200B}width",
        "\u{2067}isolated\u{2069}",
    ] {
        let before = app.upstream_calls();
        let reply = app
            .post_credit(CUSTOMER, json!({"amount": 1, "remark": remark}))
            .await;
        assert_eq!(reply.status, 422, "{remark:?}: {}", reply.text);
        assert_eq!(reply.json()["errors"][0]["field"], "remark");
        assert_eq!(app.upstream_calls(), before, "{remark:?} reached Tencent");
    }
    let key = uuid::Uuid::new_v4().to_string();
    let composed = app
        .post_credit_keyed(CUSTOMER, &key, json!({"amount": 1, "remark": "Café"}))
        .await;
    assert_eq!(composed.status, 200, "{}", composed.text);
    let decomposed = app
        .post_credit_keyed(
            CUSTOMER,
            &key,
            json!({"amount": 1, "remark": "Cafe\u{301}"}),
        )
        .await;
    assert_eq!(
        decomposed.status, 200,
        "the same intent: {}",
        decomposed.text
    );
    assert_eq!(decomposed.header("idempotent-replayed"), Some("true"));
}

/// The statuses the gateway documents; anything else (500 above all) is a defect.
const DOCUMENTED: [u16; 16] = [
    200, 201, 400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 431, 502, 503, 504,
];

/// One request as raw bytes: method, target, headers and body drawn at random, sometimes with
/// the test key and a JSON content type so requests also get past authentication.
fn raw_request() -> impl proptest::strategy::Strategy<Value = (Vec<u8>, bool)> {
    use proptest::prelude::*;
    let method = prop_oneof![
        Just("GET".to_owned()),
        Just("POST".to_owned()),
        Just("POST".to_owned()),
        Just("POST".to_owned()),
        Just("PUT".to_owned()),
        Just("OPTIONS".to_owned()),
        Just("HEAD".to_owned()),
        "[A-Z]{1,12}",
        "[!#$%&'*+.^_`|~0-9A-Za-z-]{1,40}",
    ];
    let segment = prop_oneof![
        Just("customers".to_owned()),
        Just("invitations".to_owned()),
        Just("credit".to_owned()),
        Just("800000232018".to_owned()),
        Just("..".to_owned()),
        Just("%2e%2e".to_owned()),
        Just("%00".to_owned()),
        Just("problems".to_owned()),
        Just("readyz".to_owned()),
        Just("metrics".to_owned()),
        "[a-z0-9%._~-]{0,20}",
        "[0-9]{1,25}",
    ];
    let routes = prop_oneof![
        Just("/customers/invitations".to_owned()),
        Just("/customers/800000232018/credit".to_owned()),
        Just("/customers/800000000001/credit".to_owned()),
        Just("/readyz".to_owned()),
        Just("/openapi.json".to_owned()),
        Just("/problems/validation-failed".to_owned()),
        "/customers/[0-9a-z%+-]{0,24}/credit",
    ];
    let anything = proptest::collection::vec(segment, 0..6)
        .prop_map(|segments| format!("/{}", segments.join("/")));
    let target = (
        prop_oneof![3 => routes, 2 => anything],
        proptest::option::of("[a-z=&%0-9]{0,30}"),
    )
        .prop_map(|(mut t, query)| {
            if let Some(q) = query {
                t.push('?');
                t.push_str(&q);
            }
            t
        });
    let header = prop_oneof![
        ("[A-Za-z][A-Za-z0-9-]{0,20}", "[ -~]{0,60}"),
        (Just("Expect".to_owned()), Just("100-continue".to_owned())),
        (Just("Idempotency-Key".to_owned()), "[ -~]{0,300}"),
    ];
    let body = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        proptest::collection::vec(any::<u8>(), 0..40_000),
        Just(br#"{"email": "fuzz@example.com"}"#.to_vec()),
        Just(br#"{"amount": 1}"#.to_vec()),
        Just(br#"{"amount": 1e400, "remark": "\u202e"}"#.to_vec()),
        "[ -~]{0,100}".prop_map(String::into_bytes),
    ];
    (
        method,
        target,
        proptest::collection::vec(header, 0..40),
        body,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(method, target, headers, body, authed, json)| {
            let mut raw = format!("{method} {target} HTTP/1.1\r\nHost: gateway\r\n");
            for (name, value) in headers {
                if !name.eq_ignore_ascii_case("content-length")
                    && !name.eq_ignore_ascii_case("transfer-encoding")
                    && !name.eq_ignore_ascii_case("host")
                    && !name.eq_ignore_ascii_case("connection")
                {
                    raw.push_str(&format!("{name}: {value}\r\n"));
                }
            }
            if json {
                raw.push_str("Content-Type: application/json\r\n");
            }
            raw.push_str(&format!(
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            ));
            let mut bytes = raw.into_bytes();
            bytes.extend_from_slice(&body);
            (bytes, authed)
        })
}

/// Sends `raw` (with the test key inserted when `authed`) and returns the status the gateway
/// answered, if it answered with a status line.
fn send_raw(addr: std::net::SocketAddr, raw: &[u8], key: Option<&str>) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    match key {
        Some(key) => {
            let split = raw.windows(2).position(|w| w == b"\r\n")? + 2;
            stream.write_all(&raw[..split]).ok()?;
            stream
                .write_all(format!("Authorization: Bearer {key}\r\n").as_bytes())
                .ok()?;
            stream.write_all(&raw[split..]).ok()?;
        }
        None => stream.write_all(raw).ok()?,
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    // The final status: interim 1xx answers (100 Continue) come first.
    let text = String::from_utf8_lossy(&answer);
    text.split("\r\n")
        .filter_map(|line| {
            line.strip_prefix("HTTP/1.1 ")?
                .get(..3)?
                .parse::<u16>()
                .ok()
        })
        .find(|status| *status >= 200)
}

/// Arbitrary methods, targets, headers and bodies, with and without a credential: the gateway
/// never panics, answers only documented statuses (never 500), and `/metrics` stays bounded
/// (labels come from closed sets).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_surface_holds_against_arbitrary_requests() {
    use proptest::test_runner::{Config, TestRunner};
    let mut options = Options::default();
    options.settings.quotas.max_wait_ms = 0;
    options.settings.upstream.timeout_ms = 2_000;
    let app = spawn_app_with(options).await;
    let addr = app.addr;
    let key = app.api_key.clone();
    let seen = tokio::task::spawn_blocking(move || {
        let mut runner = TestRunner::new(Config {
            cases: 600,
            failure_persistence: None,
            ..Config::default()
        });
        let seen = parking_lot::Mutex::new(std::collections::BTreeMap::new());
        runner
            .run(&raw_request(), |(raw, authed)| {
                // Every request gets an answer: no panic, no hang, no connection dropped.
                let status = send_raw(addr, &raw, authed.then_some(key.as_str()));
                proptest::prop_assert!(
                    status.is_some_and(|s| DOCUMENTED.contains(&s)),
                    "answer {:?} for {:?}…",
                    status,
                    String::from_utf8_lossy(&raw[..raw.len().min(400)])
                );
                *seen.lock().entry(status.unwrap_or(0)).or_insert(0u32) += 1;
                Ok(())
            })
            .unwrap();
        seen.into_inner()
    })
    .await
    .unwrap();
    println!("statuses: {seen:?}");
    assert!(seen.len() >= 5, "the requests hardly varied: {seen:?}");
    let text = app.get("/metrics").await.text;
    let series = text
        .lines()
        .filter(|l| l.starts_with("http_server_request_duration_seconds_count"))
        .count();
    println!("/metrics: {} bytes, {series} request series", text.len());
    // Routes (14 templates and `unmatched`) × standard methods and `_OTHER` × documented
    // statuses bound it; in practice far fewer.
    assert!(series <= 15 * 10 * DOCUMENTED.len(), "{series} series");
    assert!(text.len() < 512 * 1024, "/metrics is {} bytes", text.len());
}
