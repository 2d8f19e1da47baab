//! The quota limiter's own latency: in-process versus Redis, side by side in one run.
//!
//! Sequential `Quotas::reserve` calls with the quota lifted (no waiting), in alternating batches so
//! both see the same machine conditions; percentiles over all calls. Needs Redis: `REDIS_URL` or
//! redis://127.0.0.1:6379/. Run: `cargo bench --bench limiter`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use partner_gateway::config::{StoreBackend, StoreSettings};
use partner_gateway::metrics::Metrics;
use partner_gateway::quota::guard::GuardBounds;
use partner_gateway::quota::{FleetConfig, LimiterKind, QuotaConfig, Quotas};
use partner_gateway::readiness::ReadinessChecks;
use partner_gateway::redis_link::RedisLink;
use secrecy::SecretString;

const ACTION: &str = "AllocateCustomerCredit";
const BATCHES: usize = 20;
const PER_BATCH: usize = 2_000;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let metrics = Arc::new(Metrics::new());
    let limits = [(ACTION, 1_000_000)];
    let config = QuotaConfig {
        guard: GuardBounds {
            min_us: 10_000,
            max_us: 10_000,
            slack_us: 5_000,
        },
        max_wait: Duration::from_secs(2),
        probe: Duration::from_secs(30),
    };
    let local = Quotas::local(&limits, config, metrics.clone());
    let store = StoreSettings {
        backend: StoreBackend::Redis,
        redis_url: Some(SecretString::from(url.clone())),
        key_prefix: format!("pgw-bench-{}:", std::process::id()),
        expected_replicas: 1,
        ..StoreSettings::default()
    };
    let link = RedisLink::new(
        &store,
        Arc::new(ReadinessChecks::default()),
        metrics.clone(),
    )
    .unwrap();
    assert!(link.probe().await, "Redis at {url} does not answer");
    let fleet = FleetConfig {
        heartbeat: Duration::from_secs(1),
        lease: Duration::from_secs(30),
        expected_replicas: 1,
        redis_timeout: Duration::from_millis(250),
    };
    let shared = Quotas::shared(&limits, config, link, fleet, metrics);

    let mut times = [Vec::new(), Vec::new()];
    for _ in 0..BATCHES {
        for (i, quotas) in [&local, &shared].into_iter().enumerate() {
            for _ in 0..PER_BATCH {
                let started = Instant::now();
                let ticket = quotas
                    .reserve(ACTION, Duration::ZERO, Duration::ZERO)
                    .await
                    .unwrap();
                times[i].push(started.elapsed());
                assert_ne!(
                    ticket.kind,
                    LimiterKind::Fallback,
                    "Redis stopped answering"
                );
            }
        }
    }
    println!(
        "{} sequential acquisitions each, {BATCHES} alternating batches",
        BATCHES * PER_BATCH
    );
    println!(
        "{:<12} {:>9} {:>9} {:>9} {:>9}",
        "limiter", "p50 µs", "p99 µs", "p99.9 µs", "max µs"
    );
    let mut p = Vec::new();
    for (name, t) in ["in-process", "redis"].iter().zip(times.iter_mut()) {
        t.sort();
        let row = [
            percentile(t, 50.0),
            percentile(t, 99.0),
            percentile(t, 99.9),
            percentile(t, 100.0),
        ];
        println!(
            "{name:<12} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            row[0], row[1], row[2], row[3]
        );
        p.push(row);
    }
    println!(
        "added by Redis: p50 {:+.1} µs, p99 {:+.1} µs",
        p[1][0] - p[0][0],
        p[1][1] - p[0][1]
    );
}
