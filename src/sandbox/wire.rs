//! Wire conditions for tests and benchmarks: a TCP proxy that behaves like a path to a distant
//! TLS endpoint, and a TLS front for the simulator.
//!
//! [`WireProxy`] sits between a client and a server and, per [`Conditions`]:
//! - delays the server's first bytes on every new connection (with TLS in front of the server,
//!   that is the ServerHello, so the client's handshake, hence its connection setup, takes that
//!   long, as TCP + TLS to a far endpoint does);
//! - delays every chunk the client sends by a random jitter, keeping their order (a request leaves
//!   the client at once and reaches the server up to the jitter later);
//! - closes connections idle for longer than the idle limit, as load balancers do;
//! - can be cut (every connection closed, new ones refused) and restored;
//! - can be made *deaf*: what the client sends still arrives, the server's answers are dropped
//!   (a half partition: the server acts on requests whose answers never come back).
//!
//! [`tls_front`] terminates TLS with a certificate and forwards the plaintext to the simulator,
//! so the gateway talks HTTPS through the proxy as it does to Tencent.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use std::time::Duration;

use parking_lot::Mutex;

use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// What the path does to connections and requests.
#[derive(Debug, Clone, Copy, Default)]
pub struct Conditions {
    /// Extra setup time of a new connection, uniform in `[.0, .1]`.
    pub new_connection: (Duration, Duration),
    /// Delay of each chunk from the client, uniform in `[.0, .1]`.
    pub jitter: (Duration, Duration),
    /// Connections idle this long are closed.
    pub idle_drop: Option<Duration>,
}

fn uniform((lo, hi): (Duration, Duration)) -> Duration {
    if hi <= lo {
        return lo;
    }
    Duration::from_micros(rand::rng().random_range(lo.as_micros() as u64..=hi.as_micros() as u64))
}

#[derive(Debug, Default)]
struct ProxyState {
    cut: AtomicBool,
    deaf: Arc<AtomicBool>,
    connections: Mutex<Vec<AbortHandle>>,
    accepted: AtomicU64,
}

/// A running proxy; it stops when dropped.
#[derive(Debug)]
pub struct WireProxy {
    addr: SocketAddr,
    state: Arc<ProxyState>,
    accept: AbortHandle,
}

impl Drop for WireProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

impl WireProxy {
    /// Listens on a free loopback port and forwards to `target` under `conditions`.
    pub async fn start(target: SocketAddr, conditions: Conditions) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Self::serve(listener, target, conditions)
    }

    /// Forwards what `listener` accepts to `target` under `conditions`.
    pub fn serve(
        listener: TcpListener,
        target: SocketAddr,
        conditions: Conditions,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let state = Arc::new(ProxyState::default());
        let accept = tokio::spawn({
            let state = state.clone();
            async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    if state.cut.load(Ordering::SeqCst) {
                        drop(client);
                        continue;
                    }
                    state.accepted.fetch_add(1, Ordering::Relaxed);
                    let task = tokio::spawn(relay(client, target, conditions, state.deaf.clone()));
                    let mut connections = state.connections.lock();
                    connections.retain(|c| !c.is_finished());
                    connections.push(task.abort_handle());
                }
            }
        })
        .abort_handle();
        Ok(Self {
            addr,
            state,
            accept,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.state.accepted.load(Ordering::Relaxed)
    }

    /// Closes every connection and refuses new ones until [`WireProxy::restore`].
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
        for connection in self.state.connections.lock().drain(..) {
            connection.abort();
        }
    }

    /// Drops every answer from the server from now on, on open and new connections alike, while
    /// requests still reach it; until [`WireProxy::restore`].
    pub fn deafen(&self) {
        self.state.deaf.store(true, Ordering::SeqCst);
    }

    pub fn restore(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
        self.state.deaf.store(false, Ordering::SeqCst);
    }
}

/// One connection: client ⇄ server under `conditions`, until either side closes, the idle limit
/// passes, or the task is aborted (dropping both sockets closes them).
async fn relay(
    client: TcpStream,
    target: SocketAddr,
    conditions: Conditions,
    deaf: Arc<AtomicBool>,
) {
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let last = Arc::new(Mutex::new(Instant::now()));
    let touch = |last: &Mutex<Instant>| *last.lock() = Instant::now();

    // Client → server: every chunk delayed by the jitter, in order.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Vec<u8>, Instant)>();
    let upstream_read = {
        let last = last.clone();
        async move {
            let mut buf = vec![0u8; 16 * 1024];
            let mut release = Instant::now();
            loop {
                match client_read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        touch(&last);
                        release = release.max(Instant::now() + uniform(conditions.jitter));
                        if tx.send((buf[..n].to_vec(), release)).is_err() {
                            break;
                        }
                    }
                }
            }
        }
    };
    let upstream_write = async move {
        while let Some((chunk, at)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if server_write.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    // Server → client: the first bytes wait for the connection setup time.
    let downstream = {
        let last = last.clone();
        async move {
            let mut buf = vec![0u8; 16 * 1024];
            let mut first = true;
            loop {
                match server_read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if first {
                            first = false;
                            tokio::time::sleep(uniform(conditions.new_connection)).await;
                        }
                        touch(&last);
                        if deaf.load(Ordering::SeqCst) {
                            continue;
                        }
                        if client_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = client_write.shutdown().await;
        }
    };
    let idle = async {
        let Some(limit) = conditions.idle_drop else {
            return std::future::pending::<()>().await;
        };
        loop {
            let since = *last.lock();
            if since.elapsed() >= limit {
                return;
            }
            tokio::time::sleep_until(since + limit).await;
        }
    };
    tokio::select! {
        _ = async { tokio::join!(upstream_read, upstream_write, downstream) } => {}
        () = idle => {}
    }
}

/// Terminates TLS with `cert_pem`/`key_pem` on a free loopback port and forwards the plaintext
/// to `target`. Returns the address and the task serving it.
pub async fn tls_front(
    target: SocketAddr,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| std::io::Error::other(format!("certificate: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| std::io::Error::other(format!("key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(std::io::Error::other)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let Ok(mut plain) = TcpStream::connect(target).await else {
                    return;
                };
                let _ = plain.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    Ok((addr, task))
}
