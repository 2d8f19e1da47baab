//! The fault matrix: every way the upstream can fail on the wire × both routes. Each cell must
//! answer its documented status and problem type, within the request deadline, without a panic,
//! and be counted in the metrics.
//!
//! The misbehaving upstream is a raw TCP (or TLS) server written here, so each fault is exactly
//! what it says: a refused connection, a reset, silence, a trickle, a wrong page, a cut body, a
//! certificate nobody trusts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    ConnectionRefused,
    ResetMidAnswer,
    TimeoutBeforeHeaders,
    SlowBody,
    Http500Page,
    UnparsableJson,
    UnknownErrorCode,
    TruncatedBody,
    UntrustedCertificate,
}

const ALL: [Fault; 9] = [
    Fault::ConnectionRefused,
    Fault::ResetMidAnswer,
    Fault::TimeoutBeforeHeaders,
    Fault::SlowBody,
    Fault::Http500Page,
    Fault::UnparsableJson,
    Fault::UnknownErrorCode,
    Fault::TruncatedBody,
    Fault::UntrustedCertificate,
];

/// What each fault must produce, per route: (status, problem type, `outcome` label counted in
/// `http_client_request_duration_seconds`).
fn expected(fault: Fault, credit: bool) -> (u16, &'static str, &'static str) {
    use Fault::*;
    // An allocation that may have reached Tencent has an unknown outcome; an invitation simply
    // failed upstream.
    let maybe_sent = |status, plain: &'static str| {
        if credit {
            (status, "/problems/credit-outcome-unknown")
        } else {
            (status, plain)
        }
    };
    let ((status, problem), outcome) = match fault {
        // Nothing was sent: retried, then a plain upstream error on both routes.
        ConnectionRefused => ((502, "/problems/upstream-error"), "transport"),
        UntrustedCertificate => ((502, "/problems/upstream-error"), "transport"),
        ResetMidAnswer => (maybe_sent(502, "/problems/upstream-error"), "transport"),
        TruncatedBody => (maybe_sent(502, "/problems/upstream-error"), "transport"),
        TimeoutBeforeHeaders => (maybe_sent(504, "/problems/upstream-timeout"), "timeout"),
        SlowBody => (maybe_sent(504, "/problems/upstream-timeout"), "timeout"),
        Http500Page => (maybe_sent(502, "/problems/upstream-error"), "http_status"),
        UnparsableJson => (maybe_sent(502, "/problems/upstream-error"), "unparsable"),
        // Tencent answered with an error it names: definite, whatever the code.
        UnknownErrorCode => ((502, "/problems/upstream-error"), "error"),
    };
    (status, problem, outcome)
}

/// Reads one HTTP request (head and Content-Length body) so the answer comes after it.
async fn read_request(stream: &mut (impl AsyncReadExt + Unpin)) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap_or(0))
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return;
            }
        }
    }
}

fn answer(status: &str, content_type: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

async fn serve_plain(fault: Fault, mut stream: TcpStream) {
    read_request(&mut stream).await;
    match fault {
        Fault::ResetMidAnswer => {
            let _ = stream
                .write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"Resp",
                )
                .await;
            let _ = stream.flush().await;
            // RST instead of FIN.
            let _ = stream.set_zero_linger();
            drop(stream);
        }
        Fault::TimeoutBeforeHeaders => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Fault::SlowBody => {
            let _ = stream
                .write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
                )
                .await;
            for _ in 0..1000 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if stream.write_all(b" ").await.is_err() {
                    return;
                }
            }
        }
        Fault::Http500Page => {
            let page = "<html><body><h1>500 Internal Server Error</h1></body></html>";
            let _ = stream
                .write_all(answer("500 Internal Server Error", "text/html", page).as_bytes())
                .await;
        }
        Fault::UnparsableJson => {
            let _ = stream
                .write_all(answer("200 OK", "application/json", "<html>not json").as_bytes())
                .await;
        }
        Fault::UnknownErrorCode => {
            let body = json!({"Response": {
                "Error": {"Code": "NewFamily.SomethingNobodyDocumented", "Message": "new"},
                "RequestId": "fault-matrix-request"
            }})
            .to_string();
            let _ = stream
                .write_all(answer("200 OK", "application/json", &body).as_bytes())
                .await;
        }
        Fault::TruncatedBody => {
            // Promises 300 bytes, sends a plausible start, closes cleanly (FIN).
            let _ = stream
                .write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 300\r\n\r\n{\"Response\":{\"RequestId\":\"abc\",",
                )
                .await;
            let _ = stream.shutdown().await;
        }
        Fault::ConnectionRefused | Fault::UntrustedCertificate => unreachable!(),
    }
}

fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");
    let certs = CertificateDer::pem_file_iter(format!("{dir}/cert.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(format!("{dir}/key.pem")).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// Starts the misbehaving upstream; returns the endpoint the gateway should use.
async fn misbehaving_upstream(fault: Fault) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    match fault {
        Fault::ConnectionRefused => {
            // Nothing listens there any more.
            drop(listener);
            format!("http://{addr}")
        }
        Fault::UntrustedCertificate => {
            let acceptor = tls_acceptor();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        // The handshake fails on the client's side; if it ever succeeded, the
                        // server would answer a valid success and the test would catch it.
                        if let Ok(mut tls) = acceptor.accept(stream).await {
                            read_request(&mut tls).await;
                            let body =
                                json!({"Response": {"InvitationLink": "x", "RequestId": "r"}});
                            let _ = tls
                                .write_all(
                                    answer("200 OK", "application/json", &body.to_string())
                                        .as_bytes(),
                                )
                                .await;
                        }
                    });
                }
            });
            format!("https://{addr}")
        }
        _ => {
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve_plain(fault, stream));
                }
            });
            format!("http://{addr}")
        }
    }
}

fn counted(metrics: &str, action: &str, outcome: &str) -> bool {
    metrics.lines().any(|l| {
        l.starts_with("http_client_request_duration_seconds_count")
            && l.contains(&format!("tencent_action=\"{action}\""))
            && l.contains(&format!("outcome=\"{outcome}\""))
            && !l.ends_with(" 0")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_upstream_fault_on_both_routes_gets_its_documented_answer() {
    const REQUEST_TIMEOUT_MS: u64 = 3_000;
    let mut table = Vec::new();
    let mut request_ids = Vec::new();
    for fault in ALL {
        let mut options = Options::default();
        options.settings.upstream.timeout_ms = 300;
        options.settings.upstream.connect_timeout_ms = 300;
        options.settings.server.request_timeout_ms = REQUEST_TIMEOUT_MS;
        options.upstream_endpoint = Some(misbehaving_upstream(fault).await);
        let app = spawn_app_with(options).await;
        for credit in [false, true] {
            let started = Instant::now();
            let reply = if credit {
                app.post_credit(CUSTOMER, json!({"amount": 1.25})).await
            } else {
                app.post_invitation(json!({"email": "fault.matrix@example.com"}))
                    .await
            };
            let took = started.elapsed();
            request_ids.push(reply.header("x-request-id").unwrap().to_owned());
            let (status, problem, outcome) = expected(fault, credit);
            let route = if credit { "credit" } else { "invitations" };
            let action = if credit {
                "AllocateCustomerCredit"
            } else {
                "CreateAndSendClientInvitationMail"
            };
            table.push(format!(
                "{fault:?} × {route}: {} {} in {} ms",
                reply.status,
                reply.json()["type"].as_str().unwrap_or("-"),
                took.as_millis()
            ));
            assert_eq!(reply.status, status, "{fault:?} × {route}: {}", reply.text);
            assert_eq!(reply.problem_type(), problem, "{fault:?} × {route}");
            assert!(
                took < Duration::from_millis(REQUEST_TIMEOUT_MS),
                "{fault:?} × {route} took {took:?}, past the request deadline"
            );
            assert!(
                !reply.text.contains("127.0.0.1"),
                "{fault:?} × {route}: the answer names an upstream address: {}",
                reply.text
            );
            let metrics = app.get("/metrics").await.text;
            assert!(
                counted(&metrics, action, outcome),
                "{fault:?} × {route}: no {outcome} attempt of {action} in the metrics"
            );
            assert!(
                metrics.lines().any(|l| l
                    .starts_with("http_server_request_duration_seconds_count")
                    && l.contains(&format!("http_response_status_code=\"{status}\""))),
                "{fault:?} × {route}: the answer is not in the server metrics"
            );
        }
    }
    println!("fault matrix:\n  {}", table.join("\n  "));
    let logs = captured_logs();
    let panics: Vec<_> = logs
        .lines()
        .filter(|l| l.contains("a handler panicked"))
        .filter(|l| request_ids.iter().any(|id| l.contains(id.as_str())))
        .collect();
    assert!(panics.is_empty(), "a handler panicked: {panics:?}");
}
