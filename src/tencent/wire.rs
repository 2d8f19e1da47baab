//! The connections to Tencent: open and ready *before* a call's quota slot, never after it.
//!
//! A general-purpose client (reqwest) connects when a request is sent, so a call granted a slot
//! would spend 50–300 ms on TCP and TLS after it, and arrive in a later second than the limiter
//! counted. This pool hands out a connection that is already open (a kept-alive one, or a new one
//! made before the slot), so between the slot and the wire there is only the write.
//!
//! HTTP/1.1 with keep-alive, one request per connection at a time. Tencent's API documentation
//! promises HTTPS only and says nothing of HTTP/2; the official SDKs (Python's `requests`, the
//! Node SDK) speak HTTP/1.1; whether the endpoint negotiates `h2` could not be checked from a
//! machine without internet, so the pool offers only `http/1.1` in ALPN.
//!
//! Idle connections are kept `upstream.pool_idle_timeout_ms` (shorter than the server's own idle
//! timeout, so the pool never hands out a connection the server is about to drop: a request
//! written into a connection closed under it may or may not have arrived, which for credit means
//! an unknown outcome). A connection made for a call and waiting for its slot is held to the same
//! timeout. [`Wire::lead`] says how long a new connection takes: the longest of the recent
//! connection setups, plus a quarter; a call without an idle connection reserves its slot no
//! sooner than that and connects meanwhile.

use std::collections::VecDeque;
use std::time::Duration;

use parking_lot::Mutex;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::time::Instant;
use tower_service::Service;

/// Connection setups remembered for [`Wire::lead`].
const SETUPS: usize = 16;
/// Idle connections kept at most.
const MAX_IDLE: usize = 64;
/// The lead before any connection was made.
const FIRST_LEAD: Duration = Duration::from_millis(250);

/// A connection that is open and ready for one request.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    /// Whether it carried a request before.
    pub reused: bool,
    /// Since when it has been idle.
    since: Instant,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("reused", &self.reused)
            .finish()
    }
}

impl Conn {
    /// Whether the connection is still open (the server may have closed it while it waited).
    pub fn is_open(&self) -> bool {
        !self.sender.is_closed()
    }

    /// How long it has been idle.
    pub fn idle_for(&self) -> Duration {
        self.since.elapsed()
    }
}

/// Why a request did not get an answer.
#[derive(Debug)]
pub enum WireError {
    /// Nothing was sent: connecting failed or timed out, or the connection closed before the
    /// request was written.
    NotSent(String),
    /// The request may have arrived.
    Broken(String),
    /// The answer was larger than allowed.
    TooLarge,
}

/// The connection pool of one endpoint.
pub struct Wire {
    connector: Mutex<HttpsConnector<HttpConnector>>,
    uri: http::Uri,
    idle: Mutex<Vec<(SendRequest<Full<Bytes>>, Instant)>>,
    idle_timeout: Duration,
    connect_timeout: Duration,
    setups: Mutex<VecDeque<Duration>>,
}

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wire").field("uri", &self.uri).finish()
    }
}

impl Wire {
    /// A pool for `endpoint` (`https://…`, or `http://…` for the simulator). Fails only when the
    /// system's TLS roots cannot be loaded.
    pub fn new(
        endpoint: &url::Url,
        connect_timeout: Duration,
        idle_timeout: Duration,
        extra_roots: Option<&std::path::Path>,
    ) -> std::io::Result<Self> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(extra_roots)?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let uri: http::Uri = endpoint
            .as_str()
            .parse()
            .map_err(|e| std::io::Error::other(format!("endpoint: {e}")))?;
        Ok(Self {
            connector: Mutex::new(connector),
            uri,
            idle: Mutex::new(Vec::new()),
            idle_timeout,
            connect_timeout,
            setups: Mutex::new(VecDeque::with_capacity(SETUPS)),
        })
    }

    /// Whether `conn` may still carry a request now: open, and idle for less than the pool's
    /// idle timeout, whether it carried a request before or was made for this call and waited
    /// for its slot (the server's own timeout is longer; past ours the server may be closing it,
    /// and a request written into a closing connection may or may not have arrived).
    pub fn usable(&self, conn: &Conn) -> bool {
        self.good_for(conn, Duration::ZERO)
    }

    /// Whether `conn` will still be usable `hold` from now.
    pub fn good_for(&self, conn: &Conn, hold: Duration) -> bool {
        conn.is_open() && conn.idle_for() + hold < self.idle_timeout
    }

    /// How long before a slot to start getting a connection: the longest recent setup plus a
    /// quarter, at most the connect timeout and nine tenths of the idle timeout (a connection made
    /// early must still be young enough at its slot).
    pub fn lead(&self) -> Duration {
        let setups = self.setups.lock();
        let lead = match setups.iter().max() {
            None => FIRST_LEAD,
            Some(&longest) => longest + longest / 4 + Duration::from_millis(5),
        };
        lead.min(self.connect_timeout)
            .min(self.idle_timeout * 9 / 10)
    }

    /// A connection ready now that will still be good `hold` from now: an idle one young enough,
    /// else a new one. Failing here sends nothing.
    pub async fn checkout(&self, hold: Duration) -> Result<Conn, WireError> {
        match self.take_idle(hold).await {
            Some(conn) => Ok(conn),
            None => self.connect().await,
        }
    }

    /// An idle kept-alive connection that is ready now and will still be good `hold` from now,
    /// if the pool has one.
    pub async fn take_idle(&self, hold: Duration) -> Option<Conn> {
        loop {
            let candidate = {
                let mut idle = self.idle.lock();
                let now = Instant::now();
                idle.retain(|(s, since)| !s.is_closed() && now < *since + self.idle_timeout);
                idle.pop()
                    .filter(|(_, since)| now + hold < *since + self.idle_timeout)
            };
            let (mut sender, since) = candidate?;
            // A kept-alive connection is ready at once, or it is closing.
            if let Ok(Ok(())) =
                tokio::time::timeout(Duration::from_millis(50), sender.ready()).await
            {
                return Some(Conn {
                    sender,
                    reused: true,
                    since,
                });
            }
        }
    }

    async fn connect(&self) -> Result<Conn, WireError> {
        let started = Instant::now();
        let mut connector = self.connector.lock().clone();
        let io = tokio::time::timeout(self.connect_timeout, connector.call(self.uri.clone()))
            .await
            .map_err(|_| WireError::NotSent("connecting timed out".into()))?
            .map_err(|e| WireError::NotSent(format!("connecting failed: {e}")))?;
        let (mut sender, connection) = http1::handshake(io)
            .await
            .map_err(|e| WireError::NotSent(format!("HTTP handshake failed: {e}")))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        sender
            .ready()
            .await
            .map_err(|e| WireError::NotSent(format!("connection closed at once: {e}")))?;
        let took = started.elapsed();
        {
            let mut setups = self.setups.lock();
            if setups.len() == SETUPS {
                setups.pop_front();
            }
            setups.push_back(took);
        }
        Ok(Conn {
            sender,
            reused: false,
            since: Instant::now(),
        })
    }

    /// Sends `request` on `conn` and reads the answer (at most `max_bytes`). Gives the connection
    /// back to the pool when it can carry another request.
    pub async fn send(
        &self,
        mut conn: Conn,
        request: http::Request<Full<Bytes>>,
        max_bytes: usize,
    ) -> Result<(http::StatusCode, Bytes), WireError> {
        let response = conn.sender.send_request(request).await.map_err(|e| {
            if e.is_canceled() {
                WireError::NotSent(format!("connection closed before the request left: {e}"))
            } else {
                WireError::Broken(describe(&e))
            }
        })?;
        let status = response.status();
        let keep = !response
            .headers()
            .get(http::header::CONNECTION)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let body = Limited::new(response.into_body(), max_bytes)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    WireError::TooLarge
                } else {
                    WireError::Broken(format!("reading the answer failed: {e}"))
                }
            })?
            .to_bytes();
        if keep {
            let mut idle = self.idle.lock();
            if idle.len() < MAX_IDLE {
                idle.push((conn.sender, Instant::now()));
            }
        }
        Ok((status, body))
    }

    /// Gives an unused connection back.
    pub fn checkin(&self, conn: Conn) {
        if conn.is_open() {
            let mut idle = self.idle.lock();
            if idle.len() < MAX_IDLE {
                idle.push((conn.sender, conn.since));
            }
        }
    }
}

/// The system's roots plus any extra CA file.
fn tls_config(extra_roots: Option<&std::path::Path>) -> std::io::Result<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = extra_roots {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| {
                std::io::Error::other(format!("upstream.ca_file {}: {e}", path.display()))
            })?;
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| std::io::Error::other(format!("upstream.ca_file: {e}")))?;
        }
    }
    if roots.is_empty() {
        return Err(std::io::Error::other(
            "no trusted certificate authorities found",
        ));
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    // ALPN is set by the connector builder (`enable_http1`: http/1.1 only).
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

fn describe(error: &hyper::Error) -> String {
    let mut detail = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    detail
}
