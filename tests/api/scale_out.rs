//! Several replicas sharing one Redis: one quota for the fleet, one idempotency store, one set of
//! cooldowns; and what happens when Redis goes away and comes back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use partner_gateway::config::{Settings, StoreBackend};
use partner_gateway::metrics::Metrics;
use partner_gateway::quota::learn::Learned;
use partner_gateway::quota::shared::{Beat, BeatOutcome, Decision, ReserveArgs, SharedQuotas};
use partner_gateway::quota::{ReservationLog, Rule};
use partner_gateway::readiness::ReadinessChecks;
use partner_gateway::redis_link::RedisLink;
use partner_gateway::store::{
    KeyState, NewKey, PendingCredit, RedisStore, Retention, Store, StoredResponse, Swap,
};
use rand::{Rng, SeedableRng};
use secrecy::SecretString;
use serde_json::json;

use crate::helpers::*;
use crate::redis_server::TestRedis;

const CREDIT: &str = "AllocateCustomerCredit";
const INVITE: &str = "CreateAndSendClientInvitationMail";

pub fn use_redis(settings: &mut Settings, redis: &TestRedis, replicas: u32) {
    settings.store.backend = StoreBackend::Redis;
    settings.store.redis_url = Some(SecretString::from(redis.url.clone()));
    settings.store.key_prefix = redis.prefix.clone();
    settings.store.expected_replicas = replicas;
    settings.store.redis_probe_ms = 100;
    settings.store.heartbeat_ms = 200;
    settings.store.partition_lease_ms = 10_000;
}

/// A link that has made its first contact.
pub async fn connected_link(redis: &TestRedis) -> Arc<RedisLink> {
    let mut settings = Settings::default();
    use_redis(&mut settings, redis, 1);
    let link = RedisLink::new(
        &settings.store,
        Arc::new(ReadinessChecks::default()),
        Arc::new(Metrics::new()),
    )
    .unwrap();
    assert!(link.probe().await, "Redis at {} answers", redis.url);
    link
}

/// Polls `/readyz` until `done` holds for its body, for at most 10 s.
pub async fn wait_readiness(
    app: &TestApp,
    what: &str,
    done: impl Fn(u16, &serde_json::Value) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = app.get("/readyz").await;
        if done(reply.status, &reply.json()) {
            return;
        }
        assert!(Instant::now() < deadline, "never {what}: {}", reply.text);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `/metrics` until the replica's heartbeat has seen `replicas` live replicas (it holds its
/// share from then on), for at most 10 s.
pub async fn wait_joined(app: &TestApp, replicas: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = app.get("/metrics").await.text;
        if metric(&text, "gateway_fleet_replicas ") >= replicas as f64 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never joined a fleet of {replicas}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn metric(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name_and_labels))
        .and_then(|l| l.rsplit(' ').next())
        .map(|v| v.parse().unwrap())
        .unwrap_or(0.0)
}

/// The sum of the samples of `name` whose labels contain every one of `labels`.
pub fn metric_sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The Lua script is the pure log transcribed: random arrival patterns, budgets, limits and
/// guards give the same answers from both, on the same (pinned) clock.
#[tokio::test]
async fn shared_script_matches_the_pure_log() {
    let redis = TestRedis::shared_or_private();
    let link = connected_link(&redis).await;
    let shared = SharedQuotas::new(link);
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    for case in 0..40 {
        let limit = rng.random_range(1..8u32);
        let max_wait_us = rng.random_range(0..3_000_000u64);
        let action = format!("Case{case}");
        let mut log = ReservationLog::new(limit);
        // A realistic epoch (Unix µs today), so the script's number handling is exercised.
        let mut now = 1_790_000_000_000_000u64 + rng.random_range(0..1_000_000);
        for call in 0..80 {
            now += rng.random_range(0..400_000);
            let guard_us = rng.random_range(0..100_000u64);
            let rule = Rule {
                limit,
                window_us: 1_000_000 + guard_us,
            };
            let expected = log.reserve(now, max_wait_us, rule);
            let got = shared
                .reserve(
                    &action,
                    ReserveArgs {
                        configured: limit,
                        guard_us,
                        rtt_lo_us: None,
                        max_wait: Duration::from_micros(max_wait_us),
                        earliest: Duration::ZERO,
                        id: "pure",
                        epoch: 0,
                        blackout: Duration::from_secs(6),
                        guard_cap: Duration::from_secs(1),
                        now_us: Some(now),
                    },
                )
                .await
                .unwrap()
                .0;
            let expected = match expected {
                Ok(r) => Decision::Admitted {
                    slot_us: r.slot_us,
                    wait_us: r.wait_us,
                    limit,
                    window_us: rule.window_us,
                },
                Err(r) => Decision::Refused {
                    retry_after_us: r.retry_after_us,
                    limit,
                },
            };
            assert_eq!(got, expected, "case {case} call {call}");
        }
    }
}

/// One reservation on a pinned Redis clock, as replica `id` with guard `guard_ms`.
fn args(id: &str, guard_ms: u64, epoch: u64, now_us: u64) -> ReserveArgs<'_> {
    ReserveArgs {
        configured: 1,
        guard_us: guard_ms * 1000,
        rtt_lo_us: None,
        max_wait: Duration::from_secs(5),
        earliest: Duration::ZERO,
        id,
        epoch,
        blackout: Duration::from_secs(12),
        guard_cap: Duration::from_millis(250),
        now_us: Some(now_us),
    }
}

fn slot(decision: (Decision, u64)) -> u64 {
    match decision.0 {
        Decision::Admitted { slot_us, .. } => slot_us,
        refused => panic!("refused: {refused:?}"),
    }
}

/// The window of a reservation covers the guard of another replica whose calls may still arrive,
/// and forgets it once they cannot.
#[tokio::test]
async fn the_window_covers_other_replicas_calls_in_flight_and_only_those() {
    let redis = TestRedis::shared_or_private();
    let shared = SharedQuotas::new(connected_link(&redis).await);
    let t = 1_790_000_000_000_000u64;
    // Replica "far" (guard 200 ms) takes the one slot of a quota of 1.
    let far = slot(shared.reserve("W", args("far", 200, 0, t)).await.unwrap());
    assert_eq!(far, t);
    // Replica "near" (guard 10 ms) must be spaced a window of 1 s + 200 ms from it, not 10 ms.
    let near = slot(
        shared
            .reserve("W", args("near", 10, 0, t + 1_000))
            .await
            .unwrap(),
    );
    assert_eq!(near, far + 1_200_000);
    // Long after "far"'s call can arrive, "near" is spaced by its own guard again.
    let later = near + 5_000_000;
    let next = slot(
        shared
            .reserve("W", args("near", 10, 0, later))
            .await
            .unwrap(),
    );
    assert_eq!(next, later);
    let after = slot(
        shared
            .reserve("W", args("near", 10, 0, later + 1))
            .await
            .unwrap(),
    );
    assert_eq!(after, later + 1_010_000);
}

/// A replica that names an epoch Redis no longer has (its data was lost) makes the fleet grant
/// nothing for the blackout; a fresh fleet (no epoch known) starts at once.
#[tokio::test]
async fn a_redis_that_lost_its_data_grants_nothing_for_the_blackout() {
    let redis = TestRedis::shared_or_private();
    let shared = SharedQuotas::new(connected_link(&redis).await);
    let t = 1_790_000_000_000_000u64;
    let (decision, epoch) = shared.reserve("E", args("a", 10, 0, t)).await.unwrap();
    assert!(matches!(decision, Decision::Admitted { wait_us: 0, .. }));
    assert!(epoch > 0);
    // The same replica later meets another Redis (the data is gone: a fresh prefix here).
    let emptied = TestRedis::shared_or_private();
    let shared = SharedQuotas::new(connected_link(&emptied).await);
    let (decision, new_epoch) = shared
        .reserve("E", args("a", 10, epoch, t + 1_000_000))
        .await
        .unwrap();
    assert_ne!(new_epoch, epoch);
    // Blackout 12 s, wait budget 5 s: refused, to come back when the blackout ends.
    assert_eq!(
        decision,
        Decision::Refused {
            retry_after_us: 7_000_000,
            limit: 1
        }
    );
    // Everyone gets the same answer, whatever epoch it knows, until the blackout is over.
    let (decision, _) = shared
        .reserve("E", args("b", 10, 0, t + 2_000_000))
        .await
        .unwrap();
    assert!(matches!(decision, Decision::Refused { .. }), "{decision:?}");
    let open = slot(
        shared
            .reserve("E", args("b", 10, new_epoch, t + 13_000_000))
            .await
            .unwrap(),
    );
    assert_eq!(open, t + 13_000_000);
}

fn beat(seq: u64, not_after_us: Option<u64>, now_us: u64) -> Beat<'static> {
    Beat {
        id: "r",
        fallback_age: None,
        stale: Duration::from_secs(3),
        expire: Duration::from_secs(40),
        hold: Duration::from_secs(3),
        probe: Duration::from_secs(30),
        expected_replicas: 0,
        not_after_us,
        epoch: 0,
        blackout: Duration::from_secs(33),
        reach: Duration::from_millis(3_250),
        seq,
        actions: &[("H", 4, 0)],
        now_us: Some(now_us),
    }
}

/// A heartbeat that arrives after its not-after, or after a later one of the same replica (both:
/// delayed in the network), is refused unprocessed, so it cannot make a replica that gave up on it
/// look present.
#[tokio::test]
async fn late_or_overtaken_heartbeats_are_refused_unprocessed() {
    let redis = TestRedis::shared_or_private();
    let shared = SharedQuotas::new(connected_link(&redis).await);
    let t = 1_790_000_000_000_000u64;
    let processed = |o: &BeatOutcome| matches!(o, BeatOutcome::Processed(_));
    assert!(processed(
        &shared.heartbeat(&beat(2, None, t)).await.unwrap()
    ));
    assert_eq!(
        shared.heartbeat(&beat(1, None, t + 10)).await.unwrap(),
        BeatOutcome::Refused {
            redis_now_us: t + 10
        },
        "overtaken by heartbeat 2"
    );
    assert_eq!(
        shared
            .heartbeat(&beat(3, Some(t + 19), t + 20))
            .await
            .unwrap(),
        BeatOutcome::Refused {
            redis_now_us: t + 20
        },
        "past its not-after"
    );
    let BeatOutcome::Processed(answer) = shared
        .heartbeat(&beat(4, Some(t + 30), t + 30))
        .await
        .unwrap()
    else {
        panic!("heartbeat 4 is on time")
    };
    assert_eq!(answer.live, 1);
    assert_eq!(answer.per_action, vec![(4, 4)]);
}

/// The fleet's learned quota is the pure one transcribed: random patterns of suffixes give the
/// same verdicts and the same effective quota.
#[tokio::test]
async fn shared_learning_matches_the_pure_rules() {
    let redis = TestRedis::shared_or_private();
    let link = connected_link(&redis).await;
    let shared = SharedQuotas::new(link);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let probe = Duration::from_secs(30);
    for case in 0..20 {
        let configured = rng.random_range(1..25u32);
        let action = format!("Learn{case}");
        let mut pure = Learned::new(configured);
        let mut now = 1_790_000_000_000_000u64;
        for call in 0..60 {
            now += rng.random_range(0..2_500_000);
            let refused = rng.random_range(1..4u32);
            let admitted = rng.random_range(0..30u32);
            let expected = pure.suffix(now, admitted, refused, probe.as_micros() as u64);
            let (got, n) = shared
                .suffix(&action, configured, admitted, refused, probe, Some(now))
                .await
                .unwrap();
            assert_eq!(got, expected, "case {case} call {call}");
            assert_eq!(n, pure.effective, "case {case} call {call}");
        }
    }
}

fn stored(status: u16) -> KeyState {
    KeyState::Completed {
        fingerprint: "f".into(),
        response: StoredResponse {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: b"{\"ok\":true}".to_vec(),
        },
    }
}

/// The store's contract, on Redis: create-if-absent, compare-and-set, remove-if-unchanged, the
/// index of unknown outcomes, TTLs, and cooldowns that keep the later end.
#[tokio::test]
async fn the_redis_store_keeps_the_store_contract() {
    let redis = TestRedis::shared_or_private();
    store_contract(connected_link(&redis).await).await;
}

/// The store's contract on any Redis link (a single primary or a cluster).
pub async fn store_contract(link: Arc<RedisLink>) {
    let clock = partner_gateway::clock::system();
    let memory = Arc::new(partner_gateway::store::MemoryStore::new(clock.clone(), 10));
    let store = Store::Redis(Arc::new(RedisStore::new(link, clock.clone(), memory)));
    let ttl = Duration::from_secs(60);
    let in_flight = KeyState::InFlight {
        fingerprint: "f".into(),
        started_ms: 1,
        claim: "c".into(),
    };
    assert_eq!(
        store
            .create(NewKey {
                key: "k",
                state: in_flight.clone(),
                ttl,
                retention: Retention::Keep
            })
            .await
            .unwrap(),
        Ok(())
    );
    assert_eq!(
        store
            .create(NewKey {
                key: "k",
                state: stored(200),
                ttl,
                retention: Retention::Keep
            })
            .await
            .unwrap(),
        Err(in_flight.clone()),
        "create never overwrites"
    );
    assert!(
        !store
            .replace(Swap {
                key: "k",
                expected: &stored(200),
                new: stored(201),
                ttl
            })
            .await
            .unwrap(),
        "replace compares first"
    );
    let unknown = KeyState::Unknown {
        fingerprint: "f".into(),
        pending: PendingCredit {
            marker: "[pgw:0123456789abcdef]".into(),
            uin: 800000232018,
            amount_cents: 150,
            sent_ms: 5,
            caller: "svc".into(),
            request_id: "r".into(),
        },
    };
    assert!(
        store
            .replace(Swap {
                key: "k",
                expected: &in_flight,
                new: unknown.clone(),
                ttl
            })
            .await
            .unwrap()
    );
    assert_eq!(
        store.unknown().await.unwrap(),
        vec![("k".to_owned(), unknown.clone())]
    );
    assert!(
        store
            .replace(Swap {
                key: "k",
                expected: &unknown,
                new: stored(200),
                ttl
            })
            .await
            .unwrap()
    );
    assert!(
        store.unknown().await.unwrap().is_empty(),
        "settled records leave the index"
    );
    assert_eq!(store.get("k").await.unwrap(), Some(stored(200)));
    assert!(!store.remove("k", &in_flight).await.unwrap());
    assert!(store.remove("k", &stored(200)).await.unwrap());
    assert_eq!(store.get("k").await.unwrap(), None);

    // Records expire with their TTL (Redis's own clock: poll, bounded).
    store
        .create(NewKey {
            key: "short",
            state: in_flight.clone(),
            ttl: Duration::from_millis(50),
            retention: Retention::Keep,
        })
        .await
        .unwrap()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.get("short").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "the record never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let now = clock.now_unix_ms();
    store.start_cooldown("a@example.com", now + 60_000).await;
    store.start_cooldown("a@example.com", now + 30_000).await;
    assert_eq!(
        store.cooldown_until("a@example.com").await,
        Some(now + 60_000),
        "a cooldown keeps its later end"
    );
    assert_eq!(store.cooldown_until("b@example.com").await, None);
}

/// Three replicas, one Redis, one simulator on loopback: 10×N offered for 10 s, spread over the
/// replicas. No second over N at the simulator, no `RequestLimitExceeded`, the quota used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_one_quota() {
    use crate::wire::{assert_utilization, assert_within_quota, offer, one_at_a_time};
    let _one = one_at_a_time().await;
    let redis = TestRedis::shared_or_private();
    let mut options = Options::default();
    use_redis(&mut options.settings, &redis, 3);
    let credit_n = options.settings.quotas.credit_per_second as u64;
    let invite_n = options.settings.quotas.invitations_per_second as u64;
    let ceiling = options.settings.quotas.guard_max_ms;
    let fleet: Vec<Arc<TestApp>> = spawn_fleet(3, options)
        .await
        .into_iter()
        .map(Arc::new)
        .collect();
    for app in &fleet {
        wait_joined(app, 3).await;
    }
    let statuses = offer(&fleet, 10, 10 * credit_n, 10 * invite_n).await;
    println!("3 replicas: answers {statuses:?}");
    for ((action, status), count) in &statuses {
        assert!(
            matches!(status, 200 | 201 | 429),
            "{action}: {count} answers {status}"
        );
    }
    for (action, n) in [(CREDIT, credit_n), (INVITE, invite_n)] {
        let used = assert_within_quota(&fleet[0], action, n, "3 replicas");
        assert_utilization(&fleet, action, used, ceiling, "3 replicas").await;
    }
}

/// Redis goes away while the gateway runs: it stays ready but degraded, credit calls are refused
/// (never sent without their record), invitations go on with local cooldowns, the quota falls back
/// to this replica's share; when Redis returns, all of it switches back without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_redis_degrades_and_recovery_needs_no_restart() {
    let mut redis = TestRedis::private();
    let mut options = Options::default();
    use_redis(&mut options.settings, &redis, 4);
    // Room for connections to be made before the slots, not for a second window.
    options.settings.quotas.max_wait_ms = 500;
    // The simulator must not refuse what the gateway admits in the second Redis returns (the
    // local share and the shared log may both admit calls in that second: the cost of degrading).
    options.sandbox_quotas = vec![(INVITE, 1000)];
    let app = Arc::new(spawn_app_with(options).await);
    wait_readiness(&app, "ready", |status, _| status == 200).await;
    wait_joined(&app, 1).await;
    assert_eq!(
        app.post_credit(CUSTOMER, json!({"amount": 1})).await.status,
        200
    );

    redis.stop();
    wait_readiness(&app, "degraded", |status, body| {
        status == 200 && body["degraded"]["store"].is_string()
    })
    .await;

    // Credit: refused before anything is sent.
    let executed = app.sandbox.stats().action(CREDIT).executed;
    let reply = app.post_credit(CUSTOMER, json!({"amount": 1})).await;
    assert_eq!(reply.status, 503, "{}", reply.text);
    assert_eq!(reply.problem_type(), "/problems/store-unavailable");
    assert_eq!(app.sandbox.stats().action(CREDIT).executed, executed);

    // Invitations: refused with 429 until the fleet has stopped counting on this replica's share
    // (three heartbeats, the wait budget and one window after the last heartbeat's answer), then
    // sent on that share; the local cooldown stops a second mail to the same address.
    let email = json!({"email": "degraded@example.com"});
    let cut_off = Instant::now();
    loop {
        let reply = app.post_invitation(email.clone()).await;
        if reply.status == 201 {
            break;
        }
        assert_eq!(reply.status, 429, "{}", reply.text);
        assert_eq!(reply.problem_type(), "/problems/quota-exceeded");
        assert!(
            cut_off.elapsed() < Duration::from_secs(10),
            "the share never opened"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let received = app.sandbox.stats().action(INVITE).received;
    let again = app.post_invitation(email).await;
    assert_eq!(again.status, 429, "{}", again.text);
    assert_eq!(again.problem_type(), "/problems/invitation-cooldown");
    assert_eq!(app.sandbox.stats().action(INVITE).received, received);

    // The quota: this replica's share (20 / 4 = 5 per second), not the fleet's 20.
    let burst: Vec<_> = (0..12)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                app.post_invitation(json!({"email": format!("share-{i}@example.com")}))
                    .await
                    .status
            })
        })
        .collect();
    let mut admitted = 0;
    for b in burst {
        match b.await.unwrap() {
            201 => admitted += 1,
            429 => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        (4..=5).contains(&admitted),
        "the fallback admitted {admitted} of 12 (share 5, one slot possibly used just before)"
    );
    let metrics = app.get("/metrics").await.text;
    assert_eq!(metric(&metrics, "gateway_store_up"), 0.0);
    let granted = metric(
        &metrics,
        "gateway_quota_fallback_total{tencent_action=\"CreateAndSendClientInvitationMail\",result=\"granted\"}",
    );
    assert!(granted >= 5.0, "{granted} slots granted on the share");

    // Redis comes back empty (this one keeps nothing on disk): it has forgotten the slots and
    // shares of the fleet. The gateway notices (the fleet's epoch is gone) and grants nothing
    // until any replica still cut off has reached the end of its lease and its calls, like every
    // forgotten slot, no longer count; then it serves from the shared quota again.
    redis.start();
    wait_readiness(&app, "recovered", |status, body| {
        status == 200 && body.get("degraded").is_none() && body["checks"]["store"] == "ok"
    })
    .await;
    assert_eq!(
        metric(&app.get("/metrics").await.text, "gateway_store_up"),
        1.0
    );
    let back = Instant::now();
    let mut waited_out = 0;
    let reply = loop {
        let reply = app.post_credit(CUSTOMER, json!({"amount": 1})).await;
        if reply.status != 429 {
            break reply;
        }
        assert_eq!(reply.problem_type(), "/problems/quota-exceeded");
        waited_out += 1;
        // The blackout: the partition lease (10 s here) and the reach of a grant (1.75 s).
        assert!(
            back.elapsed() < Duration::from_secs(15),
            "the new epoch never opened"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(
        waited_out > 0,
        "a Redis that lost its data was trusted at once"
    );
    // The shared quota again: a burst of the fleet's 20 goes at once.
    let burst: Vec<_> = (0..20)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                let reply = app
                    .post_invitation(json!({"email": format!("back-{i}@example.com")}))
                    .await;
                (reply.status, reply.text)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for b in burst {
        answers.push(b.await.unwrap());
    }
    for (status, text) in answers {
        assert_eq!(status, 201, "{text}");
    }
}

/// Redis unreachable at start: not ready (the load balancer sends nothing), keyed credit calls
/// refused; ready by itself once Redis answers.
#[tokio::test]
async fn without_redis_at_start_the_gateway_is_not_ready_until_it_connects() {
    let mut redis = TestRedis::private();
    redis.stop();
    let mut options = Options::default();
    use_redis(&mut options.settings, &redis, 2);
    let app = spawn_app_with(options).await;
    wait_readiness(&app, "reporting the store", |status, body| {
        status == 503 && body["checks"]["store"] == "connecting to Redis"
    })
    .await;
    let reply = app.post_credit(CUSTOMER, json!({"amount": 1})).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.problem_type(), "/problems/store-unavailable");
    assert_eq!(app.sandbox.stats().action(CREDIT).received, 0);
    redis.start();
    wait_readiness(&app, "ready", |status, _| status == 200).await;
    assert_eq!(
        app.post_credit(CUSTOMER, json!({"amount": 1})).await.status,
        200
    );
}

/// A gateway process (`partner-gateway serve`), so a replica can be killed for real.
pub(crate) struct Replica {
    pub(crate) port: u16,
    config: std::path::PathBuf,
    upstream: Upstream,
    child: Option<tokio::process::Child>,
}

impl Replica {
    pub(crate) fn new(upstream: &Upstream, redis: &TestRedis, key_hash: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = std::env::temp_dir().join(format!("pgw-replica-{port}.toml"));
        std::fs::write(
            &config,
            format!(
                r#"
[server]
listen = "127.0.0.1:{port}"
request_timeout_ms = 3000
shutdown_delay_ms = 0
[upstream]
endpoint = "http://{upstream}"
timeout_ms = 250
retry_backoff_ms = 10
[quotas]
credit_per_second = 400
queries_per_second = 400
max_wait_ms = 2000
[credit]
settle_ms = 400
resolve_interval_ms = 200
[store]
backend = "redis"
redis_url = "{url}"
key_prefix = "{prefix}"
expected_replicas = 3
redis_probe_ms = 200
[log]
level = "warn"
[[auth.api_keys]]
name = "test-suite"
sha256 = "{key_hash}"
scopes = ["credit:allocate"]
"#,
                upstream = upstream.addr,
                url = redis.url,
                prefix = redis.prefix,
            ),
        )
        .unwrap();
        Self {
            port,
            config,
            upstream: upstream.clone(),
            child: None,
        }
    }

    pub(crate) async fn start(&mut self) {
        let log = std::fs::File::create(self.config.with_extension("log")).unwrap();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_partner-gateway"))
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .env("TENCENTCLOUD_SECRET_ID", &self.upstream.secret_id)
            .env("TENCENTCLOUD_SECRET_KEY", &self.upstream.secret_key)
            .env_remove("TENCENTCLOUD_TOKEN")
            .env_remove("RUST_LOG")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = client
                .get(format!("http://127.0.0.1:{}/readyz", self.port))
                .send()
                .await
                .map(|r| r.status() == 200)
                .unwrap_or(false);
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replica on port {} never became ready; see {}",
                self.port,
                self.config.with_extension("log").display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: no drain, no settling; whatever it was doing is cut off.
    pub(crate) async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }
}

/// The exactly-once chaos test across three replica processes sharing Redis: intents over nine
/// customers, 30% of executed allocations losing their answer (half HTTP 500, half a hang past
/// the timeout), requests spread over the replicas, one replica SIGKILLed mid-run and restarted.
/// Every intent is applied exactly once and each customer's ledger is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_across_three_replicas_with_one_killed_and_restarted() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    const INTENTS: usize = 150;

    let redis = TestRedis::shared_or_private();
    let options = Options {
        sandbox_quotas: vec![(CREDIT, 400), ("QueryCreditAllocationHistory", 400)],
        ..Options::default()
    };
    let upstream = spawn_upstream(&options).await;
    for f in crate::chaos::lost_answers() {
        upstream.sandbox.add_fault(f);
    }
    let key = partner_gateway::auth::api_key::generate();
    register_secret(&key);
    let key_hash = partner_gateway::auth::api_key::hash_hex(&key);
    let mut replicas: Vec<Replica> = (0..3)
        .map(|_| Replica::new(&upstream, &redis, &key_hash))
        .collect();
    for r in replicas.iter_mut() {
        r.start().await;
    }
    let ports: Vec<u16> = replicas.iter().map(|r| r.port).collect();

    let intents = crate::chaos::nine_customer_intents(INTENTS, 11);
    let expected: i64 = intents.iter().map(|(_, cents)| cents).sum();
    let done = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(16));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let tasks: Vec<_> = intents
        .iter()
        .enumerate()
        .map(|(i, &(uin, cents))| {
            let (gate, client, key, done, ports) = (
                gate.clone(),
                client.clone(),
                key.clone(),
                done.clone(),
                ports.clone(),
            );
            tokio::spawn(async move {
                let _permit = gate.acquire().await.unwrap();
                let body = json!({"amount": cents as f64 / 100.0, "remark": format!("intent {i}")});
                let give_up = Instant::now() + Duration::from_secs(90);
                let mut seen = Vec::new();
                for attempt in 0.. {
                    // Spread over the replicas, as a load balancer would; a dead one refuses
                    // connections and the client goes on to the next.
                    let port = ports[(i + attempt) % ports.len()];
                    let sent = client
                        .post(format!("http://127.0.0.1:{port}/customers/{uin}/credit"))
                        .bearer_auth(&key)
                        .header("idempotency-key", format!("replicas-{i}"))
                        .header("content-type", "application/json")
                        .body(body.to_string())
                        .send()
                        .await;
                    let status = match sent {
                        Ok(r) => r.status().as_u16(),
                        Err(_) => 0,
                    };
                    seen.push(status);
                    match status {
                        200 => break,
                        0 | 409 | 429 | 502 | 503 | 504 => {}
                        other => panic!("intent {i}: unexpected {other}"),
                    }
                    assert!(
                        Instant::now() < give_up,
                        "intent {i} never got a definite answer: {seen:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(40)).await;
                }
                done.fetch_add(1, Ordering::SeqCst);
                seen
            })
        })
        .collect();

    // Mid-run: kill replica 1 once a third of the intents are done; restart it at two thirds.
    let wait_for = |n: usize| {
        let done = done.clone();
        async move {
            while done.load(Ordering::SeqCst) < n {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    wait_for(INTENTS / 3).await;
    replicas[1].kill().await;
    wait_for(2 * INTENTS / 3).await;
    replicas[1].start().await;

    let mut histories = Vec::new();
    for t in tasks {
        histories.push(t.await.unwrap());
    }
    let mut abandoned = 0.0;
    for r in &replicas {
        let text = reqwest::get(format!("http://127.0.0.1:{}/metrics", r.port))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        abandoned += metric(
            &text,
            "gateway_idempotency_requests_total{route=\"credit\",result=\"abandoned\"}",
        );
    }
    let refused_connections = histories.iter().flatten().filter(|s| **s == 0).count();
    let stats = upstream.sandbox.stats().action(CREDIT);
    println!(
        "replicas chaos: {INTENTS} intents over 3 replicas, one killed and restarted; {} upstream calls, {} executed, \
         {refused_connections} requests hit the dead replica, {abandoned} keys of the dead replica taken over",
        stats.received, stats.executed,
    );
    assert_eq!(stats.executed as usize, INTENTS, "executions equal intents");
    assert_each_intent_applied_once(&upstream.sandbox, INTENTS, expected);
    assert_ledger_per_customer(&upstream.sandbox, &intents);
    assert!(
        refused_connections > 0,
        "the kill happened while clients were sending"
    );
}

/// Keyed invitations and allocations write no e-mail address and no caller secret to Redis,
/// and a keyed invitation still replays byte for byte from another replica.
#[tokio::test]
async fn redis_holds_no_address_and_replays_across_replicas() {
    let redis = TestRedis::shared_or_private();
    let mut options = Options::default();
    use_redis(&mut options.settings, &redis, 2);
    let fleet = spawn_fleet(2, options).await;
    for app in &fleet {
        wait_readiness(app, "ready", |status, _| status == 200).await;
    }
    let address = "Very.Private.Person@Example.com";
    let invite = |app: &TestApp| {
        app.client
            .post(app.url("/customers/invitations"))
            .bearer_auth(&app.api_key)
            .header("idempotency-key", "redis-private-1")
            .header("content-type", "application/json")
            .body(json!({ "email": address }).to_string())
    };
    let first = fleet[0].send(invite(&fleet[0])).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let replay = fleet[1].send(invite(&fleet[1])).await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.text, first.text);
    assert_eq!(
        fleet[0]
            .post_credit(CUSTOMER, json!({"amount": 1}))
            .await
            .status,
        200
    );

    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    // Every key holds the prefix; hash-tagged ones start with a brace.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("*{}*", redis.prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        keys.iter().any(|k| k.contains("idem:invitations:")),
        "{keys:?}"
    );
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        if kind != "string" {
            continue;
        }
        let value: String = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        for needle in [
            "private.person",
            "Private.Person",
            fleet[0].api_key.as_str(),
        ] {
            assert!(!value.contains(needle), "{key} holds {needle}: {value}");
            assert!(!key.contains(needle), "{key}");
        }
    }
}

/// A Redis that may evict keys could drop a credit record: the gateway says so loudly.
#[tokio::test]
async fn a_redis_that_may_evict_keys_is_reported() {
    let redis = TestRedis::private();
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("allkeys-lru")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut options = Options::default();
    use_redis(&mut options.settings, &redis, 1);
    let app = spawn_app_with(options).await;
    wait_readiness(&app, "ready", |status, _| status == 200).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !captured_logs().contains("\"policy\":\"allkeys-lru\"") {
        assert!(
            Instant::now() < deadline,
            "no error about the eviction policy"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
