//! An open-loop load generator for the bench scripts: requests go out at a fixed rate whatever
//! the answers (wrk keeps a fixed number of connections busy instead, which turns instant 429s
//! into thousands of requests per second). Prints one JSON line: answers by status, and latency
//! percentiles of the admitted (2xx) calls, which is their quota wait plus the upstream time.
//!
//! `cargo run --release --example loadgen -- URL KEY ROUTE RATE SECONDS`
//! ROUTE: `credit` (unkeyed 0.01 allocations to a seeded customer) or `invite` (a new address
//! each time). KEY: the bearer key.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, key, route, rate, seconds] = &args[..] else {
        eprintln!("usage: loadgen URL KEY ROUTE RATE SECONDS");
        std::process::exit(2);
    };
    let rate: f64 = rate.parse().expect("RATE: calls per second");
    let seconds: f64 = seconds.parse().expect("SECONDS");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let statuses = Arc::new(Mutex::new(BTreeMap::<u16, u64>::new()));
    let admitted = Arc::new(Mutex::new(Vec::<f64>::new()));
    let total = (rate * seconds).round() as u64;
    let start = tokio::time::Instant::now();
    let tag = std::process::id();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate)).await;
        let (client, statuses, admitted) = (client.clone(), statuses.clone(), admitted.clone());
        let (target, body) = match route.as_str() {
            "credit" => (
                format!("{url}/customers/800000232018/credit"),
                r#"{"amount":0.01}"#.to_owned(),
            ),
            "invite" => (
                format!("{url}/customers/invitations"),
                format!(r#"{{"email":"load-{tag}-{i}@example.com"}}"#),
            ),
            other => panic!("unknown route {other}"),
        };
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let status = match client
                .post(target)
                .bearer_auth(key)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
            {
                Ok(r) => {
                    let s = r.status().as_u16();
                    let _ = r.bytes().await;
                    s
                }
                Err(_) => 0,
            };
            if (200..300).contains(&status) {
                admitted.lock().push(sent.elapsed().as_secs_f64() * 1000.0);
            }
            *statuses.lock().entry(status).or_default() += 1;
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut lat = admitted.lock().clone();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        if lat.is_empty() {
            0.0
        } else {
            lat[((p / 100.0) * (lat.len() - 1) as f64).round() as usize]
        }
    };
    let statuses = statuses.lock().clone();
    println!(
        "{}",
        serde_json::json!({
            "sent": total,
            "statuses": statuses,
            "admitted_ms": {"p50": pct(50.0), "p90": pct(90.0), "p99": pct(99.0), "max": pct(100.0)},
        })
    );
}
