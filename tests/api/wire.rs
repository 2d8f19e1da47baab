//! The quota on a real wire. The gateway talks HTTPS to the simulator through a proxy that behaves
//! like a path to a distant TLS endpoint (`partner_gateway::sandbox::wire`): new connections take
//! 0–300 ms to set up, every request is delayed by 0–50 ms of jitter, idle connections are dropped
//! after 0.4 s. The simulator counts arrivals per wall-clock second as Tencent does. The promise
//! under test: no second over N at arrival, no `RequestLimitExceeded`, and the quota still used.
//!
//! Utilization is measured as the forwarding rate once warm. Slots come in bursts of up to N one
//! window (1 s + guard) apart; arrivals are grouped into bursts (a gap of more than 300 ms starts a
//! new one), and the rate is the calls of the bursts that start from 2 s after the first arrival,
//! but the last, ÷ the time from the first of those bursts to the last ÷ N: 1 ÷ window when every
//! burst is full, whatever the phase of the bursts in the second. The first 2 s are left out
//! because a cold start costs a window or two: the pool has no connection yet and the gateway has
//! not measured its host and path, so the first slots are spaced for the guard's ceiling.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use partner_gateway::sandbox::wire::{Conditions, WireProxy, tls_front};
use serde_json::json;
use tokio::time::Instant;

use crate::helpers::*;
use crate::redis_server::TestRedis;
use crate::scale_out::{metric, metric_sum, use_redis, wait_joined};

const CREDIT: &str = "AllocateCustomerCredit";
const INVITE: &str = "CreateAndSendClientInvitationMail";

/// A path to a distant TLS endpoint, as the quota issue measured it.
pub const DISTANT: Conditions = Conditions {
    new_connection: (Duration::ZERO, Duration::from_millis(300)),
    jitter: (Duration::ZERO, Duration::from_millis(50)),
    idle_drop: Some(Duration::from_millis(400)),
};

const LOAD_SECS: u64 = 20;

/// The wire tests measure timing under 10× load with up to three gateways each: they run one at
/// a time, so they do not load the two cores for each other.
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static WIRE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    WIRE.lock().await
}

/// The simulator behind TLS behind the proxy; the gateway's settings pointed at it.
pub async fn distant_upstream(
    options: &mut Options,
    conditions: Conditions,
) -> (Upstream, WireProxy) {
    let upstream = spawn_upstream(options).await;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/wire");
    let cert = std::fs::read(format!("{dir}/cert.pem")).unwrap();
    let key = std::fs::read(format!("{dir}/key.pem")).unwrap();
    let (tls, _) = tls_front(upstream.addr, &cert, &key).await.unwrap();
    let proxy = WireProxy::start(tls, conditions).await.unwrap();
    options.upstream_endpoint = Some(format!("https://127.0.0.1:{}", proxy.addr().port()));
    options.settings.upstream.ca_file = Some(PathBuf::from(format!("{dir}/ca.pem")));
    // Below the path's idle limit, as the README asks (Tencent: 50 s, the default 45 s), and
    // longer than a connection takes to set up (up to 300 ms of delay plus the jitter of the
    // client's handshake messages here): a connection made for a call waits idle for its slot up
    // to the lead (at most nine tenths of this), and one idle past this is not written into.
    options.settings.upstream.pool_idle_timeout_ms = 370;
    (upstream, proxy)
}

/// Offers `per_second` calls of each action per second for `secs`, open loop, round robin over
/// `fleet`. Returns the statuses seen, per action.
pub async fn offer(
    fleet: &[Arc<TestApp>],
    secs: u64,
    credit_per_second: u64,
    invites_per_second: u64,
) -> BTreeMap<(&'static str, u16), u64> {
    let start = Instant::now();
    let mut calls = Vec::new();
    let mut next = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let (mut credit_sent, mut invites_sent) = (0u64, 0u64);
    while start.elapsed() < Duration::from_secs(secs) {
        tick.tick().await;
        let elapsed = start.elapsed().as_secs_f64();
        while (credit_sent as f64) < elapsed * credit_per_second as f64 {
            credit_sent += 1;
            let app = fleet[next % fleet.len()].clone();
            next += 1;
            calls.push(tokio::spawn(async move {
                (
                    CREDIT,
                    app.post_credit(CUSTOMER, json!({"amount": 1})).await.status,
                )
            }));
        }
        while (invites_sent as f64) < elapsed * invites_per_second as f64 {
            invites_sent += 1;
            let app = fleet[next % fleet.len()].clone();
            next += 1;
            let email = format!("wire-{}@example.com", uuid::Uuid::new_v4().simple());
            calls.push(tokio::spawn(async move {
                (
                    INVITE,
                    app.post_invitation(json!({"email": email})).await.status,
                )
            }));
        }
    }
    let mut statuses = BTreeMap::new();
    for call in calls {
        let (action, status) = call.await.unwrap();
        *statuses.entry((action, status)).or_insert(0) += 1;
    }
    statuses
}

/// Utilization once warm: the forwarding rate as a share of `n` (see the module docs), and the
/// mean time between the starts of the bursts (the window the limiter used, in seconds).
pub fn utilization(admitted_ms: &[u64], n: u64) -> (f64, f64) {
    let Some(&first) = admitted_ms.first() else {
        return (0.0, 0.0);
    };
    // Each burst: its first arrival, its latest arrival, its calls.
    let mut bursts: Vec<(u64, u64, u64)> = Vec::new();
    for &t in admitted_ms {
        match bursts.last_mut() {
            Some((_, latest, calls)) if t <= *latest + 300 => {
                *latest = t;
                *calls += 1;
            }
            _ => bursts.push((t, t, 1)),
        }
    }
    let warm: Vec<_> = bursts
        .into_iter()
        .filter(|&(start, _, _)| start >= first + 2_000)
        .collect();
    let (Some(from), Some(to)) = (warm.first(), warm.last()) else {
        return (0.0, 0.0);
    };
    let calls: u64 = warm[..warm.len() - 1].iter().map(|b| b.2).sum();
    let span_s = (to.0 - from.0) as f64 / 1000.0;
    let window_s = span_s / (warm.len() - 1).max(1) as f64;
    (calls as f64 / span_s / n as f64, window_s)
}

/// Checks one action's arrivals at the simulator; returns its utilization and window.
pub fn assert_within_quota(app: &TestApp, action: &str, n: u64, what: &str) -> (f64, f64) {
    let s = app.sandbox.stats().action(action);
    let admitted: Vec<u64> = s.admitted_ms.iter().copied().collect();
    let (used, window_s) = utilization(&admitted, n);
    println!(
        "{what} {action}: N={n}, admitted {}, max in one second {}, RequestLimitExceeded {}, utilization {:.1}% (window {:.0} ms), per second {:?}",
        admitted.len(),
        s.max_per_second,
        s.rate_limited,
        used * 100.0,
        window_s * 1000.0,
        s.per_second
    );
    assert!(
        s.max_per_second as u64 <= n,
        "{what} {action}: {} arrivals in one wall-clock second",
        s.max_per_second
    );
    assert_eq!(s.rate_limited, 0, "{what} {action}: RequestLimitExceeded");
    (used, window_s)
}

/// Slots given up by calls that could not leave within the departure slack, over the fleet, by
/// reason (`connect`, `wake`, `redis`).
pub async fn late_departures(fleet: &[Arc<TestApp>], action: &str) -> [f64; 3] {
    let mut late = [0.0; 3];
    for app in fleet {
        let text = app.get("/metrics").await.text;
        for (i, reason) in ["connect", "wake", "redis"].iter().enumerate() {
            late[i] += metric_sum(
                &text,
                "gateway_quota_late_departures_total",
                &[action, &format!("reason=\"{reason}\"")],
            );
        }
    }
    late
}

/// At least 90% of the quota used once warm. With jitter J the physical limit is N per
/// (1 s + J), and a busy host is part of J (it wakes calls late: the slack learned from it widens
/// the window). So below 90% the run must show why: a window longer than 90% allows (1.11 s) but
/// clearly shorter than the guard's ceiling allows (a guard stuck at its ceiling has learned
/// nothing), and bursts that still fill at least 95% of what that window allows (slots given up
/// by late calls are the rest). A limiter that wastes slots, or never learns its window, fails.
pub async fn assert_utilization(
    fleet: &[Arc<TestApp>],
    action: &str,
    (used, window_s): (f64, f64),
    ceiling_ms: u64,
    what: &str,
) {
    let [connect, wake, redis] = late_departures(fleet, action).await;
    println!(
        "{what} {action}: utilization {used:.3}, window {:.0} ms, slots given up: {connect} (connection not ready), {wake} (woken late), {redis} (Redis slower than its allowance)",
        window_s * 1000.0
    );
    if used >= 0.9 {
        return;
    }
    assert!(
        window_s > 1.0 / 0.9,
        "{what} {action}: utilization {used:.3} although the window ({window_s:.3} s) allows 90%"
    );
    let stuck = 1.0 + (ceiling_ms as f64 - 20.0) / 1000.0;
    assert!(
        window_s < stuck,
        "{what} {action}: the window ({window_s:.3} s) is the guard's ceiling: nothing learned"
    );
    assert!(
        used >= 0.95 / window_s,
        "{what} {action}: utilization {used:.3}, under 95% of what the window ({window_s:.3} s) allows"
    );
    println!("{what} {action}: the host was busy: the window grew to {window_s:.3} s");
}

async fn a_distant_path_keeps_the_quota(redis: Option<&TestRedis>, replicas: usize) {
    let _one = one_at_a_time().await;
    let mut options = Options::default();
    let what = match redis {
        Some(redis) => {
            use_redis(&mut options.settings, redis, 0);
            format!("redis×{replicas}")
        }
        None => "memory×1".to_owned(),
    };
    let (upstream, proxy) = distant_upstream(&mut options, DISTANT).await;
    let key = partner_gateway::auth::api_key::generate();
    register_secret(&key);
    let mut fleet = Vec::new();
    for _ in 0..replicas {
        fleet.push(Arc::new(spawn_gateway(&options, &upstream, &key).await));
    }
    if redis.is_some() {
        for app in &fleet {
            wait_joined(app, replicas as u32).await;
        }
    }
    let credit_n = options.settings.quotas.credit_per_second as u64;
    let invite_n = options.settings.quotas.invitations_per_second as u64;
    let statuses = offer(&fleet, LOAD_SECS, 10 * credit_n, 10 * invite_n).await;
    println!(
        "{what}: answers {statuses:?}, connections made {}",
        proxy.accepted()
    );
    for ((action, status), count) in &statuses {
        assert!(
            matches!(status, 200 | 201 | 429),
            "{what} {action}: {count} answers {status}"
        );
    }
    let app = &fleet[0];
    for (action, n) in [(CREDIT, credit_n), (INVITE, invite_n)] {
        for (i, replica) in fleet.iter().enumerate() {
            let text = replica.get("/metrics").await.text;
            let guard = metric(
                &text,
                &format!("gateway_quota_guard_seconds{{tencent_action=\"{action}\"}}"),
            );
            println!(
                "{what} {action}: replica {i}: window 1 s + {:.0} ms",
                guard * 1000.0
            );
        }
        let used = assert_within_quota(app, action, n, &what);
        let ceiling = options.settings.quotas.guard_max_ms;
        assert_utilization(&fleet, action, used, ceiling, &what).await;
    }
    let text = app.get("/metrics").await.text;
    let guard = metric(
        &text,
        "gateway_quota_guard_seconds{tencent_action=\"CreateAndSendClientInvitationMail\"}",
    );
    let late = metric_sum(&text, "gateway_quota_late_departures_total", &[INVITE]);
    println!(
        "{what}: learned guard {:.0} ms, late departures (invitations) {late}",
        guard * 1000.0
    );
    // The guard covers the path's 50 ms of jitter. It may reach its ceiling on a busy host (late
    // wake-ups are part of what it learns, by design); whether the window then still used the
    // quota is what `assert_utilization` checked above.
    let ceiling = options.settings.quotas.guard_max_ms as f64 / 1000.0;
    assert!(
        guard >= 0.05 && guard <= ceiling,
        "the guard is learned from the path and covers its 50 ms of jitter: {guard}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_distant_path_keeps_the_quota_in_memory() {
    a_distant_path_keeps_the_quota(None, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_distant_path_keeps_the_quota_with_redis() {
    let redis = TestRedis::shared_or_private();
    a_distant_path_keeps_the_quota(Some(&redis), 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_distant_path_keeps_the_quota_across_three_replicas() {
    let redis = TestRedis::shared_or_private();
    a_distant_path_keeps_the_quota(Some(&redis), 3).await;
}

/// Invitations this replica forwarded and Tencent accepted.
async fn invitations_sent(app: &TestApp) -> f64 {
    metric_sum(
        &app.get("/metrics").await.text,
        "http_client_request_duration_seconds_count",
        &[INVITE, "outcome=\"success\""],
    )
}

/// How the cut-off replica loses Redis.
#[derive(Debug, Clone, Copy)]
enum Partition {
    /// Every connection closed, new ones refused.
    Cut,
    /// Its commands still reach Redis (and are executed), the answers never come back.
    Deaf,
}

/// Two replicas; one reaches Redis through a proxy that fails 5 s into 10× load and heals 11 s
/// later, 8 s before the load ends. The cut replica answers 429 until the fleet has set its share
/// aside, then forwards on that share while the other keeps the rest; when the link heals it
/// rejoins and reports what it forwarded, so its share stays aside as long as those calls count.
/// Throughout: no second over N, no `RequestLimitExceeded`, and callers see only success, 429 or
/// 503.
async fn a_partitioned_replica_never_pushes_the_fleet_over_the_quota(how: Partition) {
    let _one = one_at_a_time().await;
    let redis = TestRedis::shared_or_private();
    let mut options = Options::default();
    use_redis(&mut options.settings, &redis, 0);
    let upstream = spawn_upstream(&options).await;
    let key = partner_gateway::auth::api_key::generate();
    register_secret(&key);
    let whole = Arc::new(spawn_gateway(&options, &upstream, &key).await);
    let redis_addr: std::net::SocketAddr = redis
        .url
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .parse()
        .expect("a redis://host:port/ URL");
    let link = WireProxy::start(redis_addr, Conditions::default())
        .await
        .unwrap();
    let mut cut_options = Options::default();
    use_redis(&mut cut_options.settings, &redis, 0);
    cut_options.settings.store.redis_url = Some(secrecy::SecretString::from(format!(
        "redis://{}/",
        link.addr()
    )));
    let cut = Arc::new(spawn_gateway(&cut_options, &upstream, &key).await);
    wait_joined(&whole, 2).await;
    wait_joined(&cut, 2).await;
    let fleet = vec![whole.clone(), cut.clone()];
    let credit_n = options.settings.quotas.credit_per_second as u64;
    let invite_n = options.settings.quotas.invitations_per_second as u64;
    let load = tokio::spawn({
        let fleet = fleet.clone();
        async move { offer(&fleet, 24, 10 * credit_n, 10 * invite_n).await }
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    match how {
        Partition::Cut => link.cut(),
        Partition::Deaf => link.deafen(),
    }
    let at_cut = invitations_sent(&cut).await;
    tokio::time::sleep(Duration::from_secs(11)).await;
    let at_heal = invitations_sent(&cut).await;
    let cut_text = cut.get("/metrics").await.text;
    link.restore();
    let statuses = load.await.unwrap();
    println!("{how:?}: answers {statuses:?}");
    for ((action, status), count) in &statuses {
        assert!(
            matches!(status, 200 | 201 | 429 | 503),
            "{how:?} {action}: {count} answers {status}"
        );
    }
    for (action, n) in [(CREDIT, credit_n), (INVITE, invite_n)] {
        assert_within_quota(&whole, action, n, &format!("{how:?}"));
    }
    // The cut replica forwarded on its share while cut off, and only once the fleet had set it
    // aside.
    let granted = metric_sum(
        &cut_text,
        "gateway_quota_fallback_total",
        &[INVITE, "result=\"granted\""],
    );
    let not_yet = metric_sum(
        &cut_text,
        "gateway_quota_fallback_total",
        &[INVITE, "result=\"not_yet\""],
    );
    let share = metric(
        &cut_text,
        "gateway_quota_share{tencent_action=\"CreateAndSendClientInvitationMail\"}",
    );
    println!(
        "{how:?}: cut replica: share {share}, fallback slots granted {granted}, refused as not yet {not_yet}, invitations sent while cut off {}",
        at_heal - at_cut
    );
    assert_eq!(share, 10.0, "half of 20 for each of two replicas");
    assert!(not_yet > 0.0, "the share opened at once");
    assert!(granted > 0.0, "no slot of the share was granted");
    assert!(
        at_heal - at_cut > 0.0,
        "the cut replica forwarded nothing on its share"
    );
    // Healed: it rejoined the fleet.
    wait_joined(&cut, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_cut_off_from_redis_never_pushes_the_fleet_over_the_quota() {
    a_partitioned_replica_never_pushes_the_fleet_over_the_quota(Partition::Cut).await;
}

/// The half partition: the replica's heartbeats and reservations still reach Redis and are
/// executed there, but their answers are lost, so the replica cannot know when Redis last saw it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_answers_from_redis_are_lost_never_pushes_the_fleet_over_the_quota() {
    a_partitioned_replica_never_pushes_the_fleet_over_the_quota(Partition::Deaf).await;
}

/// Tencent enforces 1 invitation per second while the gateway is configured for 20 (Tencent's
/// current documentation page says 1, the older one 20). After at most 5 s of learning: no more
/// than 2 `RequestLimitExceeded` in the next 15 s, at least 90% of the real quota used, and the
/// effective quota in `/metrics`.
async fn a_lower_quota_upstream_is_learned(redis: Option<&TestRedis>, replicas: usize) {
    let _one = one_at_a_time().await;
    let mut options = Options {
        sandbox_quotas: vec![(INVITE, 1)],
        ..Options::default()
    };
    if let Some(redis) = redis {
        use_redis(&mut options.settings, redis, 0);
    }
    let fleet: Vec<Arc<TestApp>> = spawn_fleet(replicas, options)
        .await
        .into_iter()
        .map(Arc::new)
        .collect();
    if redis.is_some() {
        for app in &fleet {
            wait_joined(app, replicas as u32).await;
        }
    }
    let what = format!("learning ×{replicas}");
    let statuses = offer(&fleet, 20, 0, 20).await;
    println!("{what}: answers {statuses:?}");
    let app = &fleet[0];
    let s = app.sandbox.stats().action(INVITE);
    let first = *s
        .admitted_ms
        .front()
        .into_iter()
        .chain(s.refused_ms.front())
        .min()
        .unwrap();
    let (from, to) = (first + 5_000, first + 20_000);
    let refused = s
        .refused_ms
        .iter()
        .filter(|&&t| t >= from && t < to)
        .count();
    let admitted = s
        .admitted_ms
        .iter()
        .filter(|&&t| t >= from && t < to)
        .count();
    println!(
        "{what}: in the 15 s after the first 5: admitted {admitted}, RequestLimitExceeded {refused}; refusals at {:?}",
        s.refused_ms.iter().map(|t| t - first).collect::<Vec<_>>()
    );
    // A call the host wakes later than its departure slack gives its slot up rather than risk
    // the window (by design, and counted): on a loaded host those slots go unused.
    let mut given_up = 0.0;
    for app in &fleet {
        let text = app.get("/metrics").await.text;
        let effective = metric(
            &text,
            "gateway_quota_effective{tencent_action=\"CreateAndSendClientInvitationMail\"}",
        );
        assert_eq!(effective, 1.0, "{what}: the effective quota in /metrics");
        given_up += metric_sum(&text, "gateway_quota_late_departures_total", &[INVITE]);
    }
    assert!(
        refused <= 2,
        "{what}: {refused} RequestLimitExceeded after learning"
    );
    assert!(
        admitted + given_up as usize >= 14,
        "{what}: {admitted} of 15 possible, {given_up} given up for a late wake-up"
    );
    assert!(s.max_per_second <= 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lower_quota_upstream_is_learned_within_five_seconds() {
    a_lower_quota_upstream_is_learned(None, 1).await;
}

/// The same with two replicas sharing the learned quota in Redis: each sees only its own calls,
/// the fleet learns from both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lower_quota_upstream_is_learned_within_five_seconds_by_a_fleet() {
    let redis = TestRedis::shared_or_private();
    a_lower_quota_upstream_is_learned(Some(&redis), 2).await;
}
