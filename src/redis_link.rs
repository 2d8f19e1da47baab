//! The connection to Redis shared by the quota limiter and the store, and whether it works.
//!
//! One [`redis::aio::ConnectionManager`] (multiplexed, reconnects by itself) created lazily, so
//! the gateway starts while Redis is away; or, with `store.redis_cluster`, one Redis Cluster
//! connection (it follows the cluster's slots by itself), made at the first probe. Every script
//! the gateway runs touches keys of one hash tag, so both work alike. Every command runs under `store.redis_timeout_ms`; a
//! connection failure or timeout marks the link down, after which callers fail fast (the quota
//! falls back to its local share, keyed credit calls get 503) instead of each waiting for a
//! timeout. A prober pings every `store.redis_probe_ms` and marks the link up again, so recovery
//! needs no restart. The state is reported to readiness and to the `gateway_store_up` gauge.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use secrecy::ExposeSecret;

use crate::config::StoreSettings;
use crate::metrics::Metrics;
use crate::readiness::{ReadinessChecks, StoreState};

/// A connection to a single primary or to a cluster; cheap to clone.
#[derive(Clone)]
pub enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

enum Backend {
    Single(ConnectionManager),
    Cluster {
        client: Box<ClusterClient>,
        conn: parking_lot::Mutex<Option<ClusterConnection>>,
    },
}

/// Redis did not carry out a command: unreachable, timed out, or refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Redis is unavailable: {0}")]
pub struct LinkError(pub String);

/// [`RedisLink`]'s state, in an `AtomicU8`: never reached yet, answering, lost.
const CONNECTING: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

pub struct RedisLink {
    backend: Backend,
    prefix: String,
    timeout: Duration,
    probe_every: Duration,
    state: AtomicU8,
    /// Whether "not reachable yet" was logged (once, not at every probe).
    warned: AtomicBool,
    readiness: Arc<ReadinessChecks>,
    metrics: Arc<Metrics>,
    /// The URL with its password redacted, for logs.
    shown_url: String,
}

impl std::fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLink")
            .field("url", &self.shown_url)
            .field("prefix", &self.prefix)
            .field("state", &self.state.load(Ordering::Relaxed))
            .finish()
    }
}

impl RedisLink {
    /// Prepares the link without connecting; [`RedisLink::run_prober`] makes the first contact.
    pub fn new(
        settings: &StoreSettings,
        readiness: Arc<ReadinessChecks>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Arc<Self>> {
        let url = settings
            .redis_url
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("store.redis_url is not set"))?;
        let timeout = settings.redis_timeout();
        let backend = if settings.redis_cluster {
            let nodes: Vec<&str> = url.expose_secret().split(',').map(str::trim).collect();
            let client = ClusterClient::builder(nodes)
                .connection_timeout(timeout)
                .response_timeout(timeout)
                .retries(1)
                .build()
                .map_err(|e| anyhow::anyhow!("store.redis_url: {e}"))?;
            Backend::Cluster {
                client: Box::new(client),
                conn: parking_lot::Mutex::new(None),
            }
        } else {
            let client = redis::Client::open(url.expose_secret())
                .map_err(|e| anyhow::anyhow!("store.redis_url: {e}"))?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                // One quick retry: the prober, not a command in a request, waits for Redis.
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_millis(100));
            let manager = ConnectionManager::new_lazy_with_config(client, config)
                .map_err(|e| anyhow::anyhow!("cannot prepare the Redis connection: {e}"))?;
            Backend::Single(manager)
        };
        readiness.report_store(StoreState::Connecting);
        metrics.store_up(false);
        Ok(Arc::new(Self {
            backend,
            prefix: settings.key_prefix.clone(),
            timeout,
            probe_every: settings.redis_probe(),
            state: AtomicU8::new(CONNECTING),
            warned: AtomicBool::new(false),
            readiness,
            metrics,
            shown_url: settings.redis_url_redacted().unwrap_or_default(),
        }))
    }

    /// `prefix` + `name`: every key the gateway writes.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    pub fn is_up(&self) -> bool {
        self.state.load(Ordering::SeqCst) == UP
    }

    /// Runs one command (or script) on the shared connection, under the timeout. Fails fast
    /// while the link is down.
    pub async fn run<T, F, Fut>(&self, op: &'static str, command: F) -> Result<T, LinkError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let conn = match (self.is_up(), self.conn()) {
            (true, Some(conn)) => conn,
            _ => return Err(LinkError("Redis is unreachable".into())),
        };
        let result = tokio::time::timeout(self.timeout, command(conn)).await;
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                self.metrics.store_error(op);
                if connectivity(&error) {
                    self.mark_down(&error.to_string());
                } else {
                    tracing::error!(op, %error, "Redis refused a command");
                }
                Err(LinkError(format!("Redis {op} failed")))
            }
            Err(_) => {
                self.metrics.store_error(op);
                self.mark_down("timed out");
                Err(LinkError(format!("Redis {op} timed out")))
            }
        }
    }

    /// The connection, if there is one yet (a cluster's is made at the first probe).
    fn conn(&self) -> Option<Conn> {
        match &self.backend {
            Backend::Single(manager) => Some(Conn::Single(manager.clone())),
            Backend::Cluster { conn, .. } => conn.lock().clone().map(Conn::Cluster),
        }
    }

    /// A connection for the prober: with a cluster, made now if there is none yet.
    async fn conn_for_probe(&self) -> Result<Conn, String> {
        if let Some(conn) = self.conn() {
            return Ok(conn);
        }
        let Backend::Cluster { client, conn } = &self.backend else {
            unreachable!("a single primary always has its lazy manager");
        };
        let made = tokio::time::timeout(self.timeout * 4, client.get_async_connection())
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        *conn.lock() = Some(made.clone());
        Ok(Conn::Cluster(made))
    }

    /// Pings once: marks the link up on an answer, down otherwise.
    pub async fn probe(&self) -> bool {
        let mut conn = match self.conn_for_probe().await {
            Ok(conn) => conn,
            Err(why) => {
                self.mark_down(&why);
                return false;
            }
        };
        let ping = tokio::time::timeout(self.timeout, async move {
            redis::cmd("PING").query_async::<String>(&mut conn).await
        })
        .await;
        match ping {
            Ok(Ok(_)) => {
                self.mark_up();
                true
            }
            Ok(Err(error)) => {
                self.mark_down(&error.to_string());
                false
            }
            Err(_) => {
                self.mark_down("timed out");
                false
            }
        }
    }

    /// Probes every `store.redis_probe_ms`, forever. After the first contact, checks once that
    /// Redis will not evict keys (idempotency records money depends on must live their TTL).
    pub async fn run_prober(self: Arc<Self>) {
        let mut policy_checked = false;
        loop {
            if self.probe().await && !policy_checked {
                policy_checked = true;
                self.check_eviction_policy().await;
            }
            tokio::time::sleep(self.probe_every).await;
        }
    }

    /// Logs an error when `maxmemory-policy` lets Redis evict keys. Managed services that refuse
    /// `CONFIG` are left unchecked (the README says what to set).
    async fn check_eviction_policy(&self) {
        let Some(mut conn) = self.conn() else {
            return;
        };
        let answer = tokio::time::timeout(self.timeout, async move {
            redis::cmd("CONFIG")
                .arg("GET")
                .arg("maxmemory-policy")
                .query_async::<Vec<String>>(&mut conn)
                .await
        })
        .await;
        match answer {
            Ok(Ok(pair)) => match pair.get(1).map(String::as_str) {
                Some("noeviction") | None => {}
                Some(policy) => tracing::error!(
                    policy,
                    "Redis maxmemory-policy lets Redis evict keys: an evicted idempotency record can make a retried allocation apply twice; set maxmemory-policy noeviction"
                ),
            },
            _ => tracing::info!("cannot read Redis's maxmemory-policy; make sure it is noeviction"),
        }
    }

    fn mark_up(&self) {
        let before = self.state.swap(UP, Ordering::SeqCst);
        if before != UP {
            if before == DOWN {
                tracing::info!(url = %self.shown_url, "Redis is reachable again: shared quota and store resume");
            } else {
                tracing::info!(url = %self.shown_url, "connected to Redis");
            }
            self.readiness.report_store(StoreState::Up);
            self.metrics.store_up(true);
        }
    }

    fn mark_down(&self, why: &str) {
        // Before the first contact the link stays "connecting": that is what readiness reports.
        let before = self
            .state
            .compare_exchange(UP, DOWN, Ordering::SeqCst, Ordering::SeqCst);
        match before {
            Ok(_) => {
                tracing::error!(url = %self.shown_url, why, "lost Redis: quota falls back to this replica's share, keyed credit calls are refused until it returns");
                self.readiness.report_store(StoreState::Down);
                self.metrics.store_up(false);
            }
            Err(CONNECTING) => {
                if !self.warned.swap(true, Ordering::SeqCst) {
                    tracing::warn!(url = %self.shown_url, why, "Redis not reachable yet: not ready; retrying in the background");
                }
            }
            Err(_) => {}
        }
    }
}

/// Whether `error` says the connection (not the command) failed.
fn connectivity(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_unrecoverable_error()
}
