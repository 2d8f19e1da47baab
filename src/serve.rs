//! Serving HTTP/1.1 connections with a limit on every phase, so no client can hold the gateway.
//!
//! `axum::serve` runs hyper without a timer: headers dribbled one byte at a time keep a
//! connection (and its task) open for ever, and there is no cap on connections. This accept loop
//! gives every connection a [`ConnClock`]:
//!
//! - **headers**: from the moment a connection opens, or the first byte of its next request, the
//!   whole request head must arrive within `server.header_timeout_ms`, however it is dribbled;
//! - **idle**: a kept-alive connection with no request in flight is closed after
//!   `server.idle_timeout_ms` (longer than a load balancer's own idle timeout, usually 60 s, so the
//!   balancer never reuses a connection the gateway is closing);
//! - **body and handling**: the request deadline (`server.request_timeout_ms`, in
//!   [`crate::middleware::stack`]);
//! - **answer**: a client that stops reading its answer (its window closed, the socket full) is
//!   cut off once writes have made no progress for `server.write_timeout_ms`; otherwise a slow
//!   reader of a large answer (the Swagger UI bundle) would hold the connection for ever;
//! - **count**: at most `server.max_connections` at once; one more is closed at once and counted.
//!
//! A connection whose time runs out is closed (its read fails with `TimedOut`); hyper then drops
//! it. Request heads are limited to [`MAX_HEAD_BYTES`] (431 beyond). Shutdown stops accepting,
//! lets each connection finish the request it is serving, and gives up after the grace period
//! (hyper counts a connection that opened but has not sent a request yet as busy: such a
//! connection may keep the drain waiting until its header timeout, within the grace period).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use crate::metrics::Metrics;

/// The largest request head (request line and headers) a client may send; hyper answers 431
/// beyond it. Methods and header values of many kilobytes never reach the router.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// The limits of one connection's life.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// `server.header_timeout_ms`.
    pub header: Duration,
    /// `server.idle_timeout_ms`.
    pub idle: Duration,
    /// `server.write_timeout_ms`.
    pub write: Duration,
    /// `server.max_connections`.
    pub max_connections: usize,
}

/// Where a connection is in its life, and so what deadline applies.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for a request head that began (or a connection that opened) at `since`.
    Head { since: Instant },
    /// A request is being served: the request deadline applies, not this clock.
    Busy,
    /// Kept alive with no request since `since`.
    Idle { since: Instant },
}

/// The clock of one connection, shared by its reads ([`TimedIo`]) and its service, which marks
/// when a request starts and when its answer is ready.
#[derive(Debug)]
pub struct ConnClock {
    phase: Mutex<Phase>,
    limits: Limits,
    /// The task reading the connection, to wake when the phase changes: a read that waited
    /// while a request was served had no deadline, and must now take the idle one.
    reader: Mutex<Option<std::task::Waker>>,
}

impl ConnClock {
    fn new(limits: Limits) -> Self {
        Self {
            phase: Mutex::new(Phase::Head {
                since: Instant::now(),
            }),
            limits,
            reader: Mutex::new(None),
        }
    }

    /// Bytes arrived: on an idle connection they begin the next request head.
    fn bytes_arrived(&self) {
        let mut phase = self.phase.lock();
        if let Phase::Idle { .. } = *phase {
            *phase = Phase::Head {
                since: Instant::now(),
            };
        }
    }

    fn request_started(&self) {
        *self.phase.lock() = Phase::Busy;
    }

    fn answer_ready(&self) {
        *self.phase.lock() = Phase::Idle {
            since: Instant::now(),
        };
        if let Some(reader) = self.reader.lock().take() {
            reader.wake();
        }
    }

    /// When the connection must be closed if nothing changes, and which limit that is.
    fn deadline(&self) -> Option<(Instant, &'static str)> {
        match *self.phase.lock() {
            Phase::Head { since } => Some((since + self.limits.header, "header")),
            Phase::Idle { since } => Some((since + self.limits.idle, "idle")),
            Phase::Busy => None,
        }
    }
}

/// A connection's socket whose reads fail once its [`ConnClock`] runs out.
struct TimedIo<T> {
    inner: T,
    clock: Arc<ConnClock>,
    sleep: Pin<Box<Sleep>>,
    /// Since when writes have not progressed, if they are stuck.
    write_stalled_since: Option<Instant>,
    write_sleep: Pin<Box<Sleep>>,
    metrics: Arc<Metrics>,
}

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.clock.bytes_arrived();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                {
                    let mut reader = this.clock.reader.lock();
                    if !reader.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        *reader = Some(cx.waker().clone());
                    }
                }
                let Some((deadline, limit)) = this.clock.deadline() else {
                    return Poll::Pending;
                };
                if this.sleep.deadline() != deadline {
                    this.sleep.as_mut().reset(deadline);
                }
                match this.sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.metrics.connection_timed_out(limit);
                        Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("connection {limit} timeout"),
                        )))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
            other => other,
        }
    }
}

impl<T> TimedIo<T> {
    /// A write that could not go on (the client does not read): armed at the first such
    /// moment, it fails the write once `limits.write` passes without progress.
    fn write_stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let deadline =
            *self.write_stalled_since.get_or_insert_with(Instant::now) + self.clock.limits.write;
        if self.write_sleep.deadline() != deadline {
            self.write_sleep.as_mut().reset(deadline);
        }
        match self.write_sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.metrics.connection_timed_out("write");
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection write timeout: the client does not read its answer",
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Passes a write's outcome through, tracking whether writes progress.
    fn track<R>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match poll {
            Poll::Pending => match self.write_stalled(cx) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                _ => Poll::Pending,
            },
            ready => {
                self.write_stalled_since = None;
                ready
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.track(cx, poll)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.track(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let poll = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.track(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.track(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The router as hyper's service, telling the connection's clock when a request starts and when
/// its answer is ready.
#[derive(Clone)]
struct Tracked {
    router: Router,
    clock: Arc<ConnClock>,
}

impl hyper::service::Service<http::Request<Incoming>> for Tracked {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn call(&self, request: http::Request<Incoming>) -> Self::Future {
        self.clock.request_started();
        let clock = self.clock.clone();
        let answer = self.router.clone().oneshot(request);
        Box::pin(async move {
            let response = answer.await;
            clock.answer_ready();
            response
        })
    }
}

/// The soft limit on open files, from `/proc/self/limits` (Linux).
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Logs an error when the process may open fewer files than `server.max_connections` needs (plus
/// room for Tencent, Redis and the JWKS): `accept` would fail before the cap is ever reached.
fn warn_if_files_are_short(max_connections: usize) {
    if let Some(soft) = open_file_limit() {
        let needed = max_connections as u64 + 256;
        if soft < needed {
            tracing::error!(
                open_file_limit = soft,
                max_connections,
                "the open-file limit is below server.max_connections + 256: raise it (ulimit -n, the container's nofile) or lower server.max_connections"
            );
        }
    }
}

/// Accepts connections on `listener` and serves `router` on each until `stop` resolves; then
/// lets open connections finish their requests for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    metrics: Arc<Metrics>,
    stop: impl Future<Output = ()>,
    grace: Duration,
) {
    warn_if_files_are_short(limits.max_connections);
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        // The connection's own clock enforces the header time, from its first byte.
        .header_read_timeout(None)
        .max_buf_size(MAX_HEAD_BYTES.max(8192) * 2)
        .max_header_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            metrics.connection_rejected();
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let clock = Arc::new(ConnClock::new(limits));
        let io = TimedIo {
            inner: stream,
            clock: clock.clone(),
            sleep: Box::pin(tokio::time::sleep(limits.header)),
            write_stalled_since: None,
            write_sleep: Box::pin(tokio::time::sleep(limits.write)),
            metrics: metrics.clone(),
        };
        let service = Tracked {
            router: router.clone(),
            clock,
        };
        let connection = graceful.watch(http.serve_connection(TokioIo::new(io), service));
        let open = metrics.connection_opened();
        tokio::spawn(async move {
            let _ = connection.await;
            drop(open);
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!(grace_ms = grace.as_millis() as u64, "grace period over; abandoning in-flight requests");
        }
    }
}
