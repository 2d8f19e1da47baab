use super::learn::Verdict;
use super::*;
use std::sync::Arc;

fn quotas(n: u32, guard_ms: u64) -> Quotas {
    let us = guard_ms * 1000;
    Quotas::local(
        &[("A", n)],
        QuotaConfig {
            guard: GuardBounds {
                min_us: us,
                max_us: us,
                slack_us: 0,
            },
            max_wait: Duration::from_secs(2),
            probe: Duration::from_secs(30),
        },
        Arc::new(Metrics::new()),
    )
}

/// Reserves and waits for the slot, as the client does (minus the connection).
async fn acquire(q: &Quotas, max_wait: Duration) -> Result<Duration, QuotaExceeded> {
    match q.reserve("A", max_wait, Duration::ZERO).await {
        Ok(ticket) => {
            tokio::time::sleep_until(ticket.not_before).await;
            assert!(ticket.on_time(Instant::now()));
            Ok(ticket.waited)
        }
        Err(QuotaError::Exceeded(e)) => Err(e),
        Err(other) => panic!("{other:?}"),
    }
}

/// 10×N concurrent callers on a paused clock: the first N are admitted without time passing,
/// the rest in arrival order one window apart, and those beyond the budget are refused at once
/// with a Retry-After that admits them when obeyed.
#[tokio::test(start_paused = true)]
async fn ten_times_n_concurrent_callers() {
    const N: u32 = 5;
    let limiter = Arc::new(quotas(N, 0));
    let start = Instant::now();
    let max_wait = Duration::from_millis(3_500);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for i in 0..10 * N {
        let limiter = limiter.clone();
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            let result = acquire(&limiter, max_wait).await;
            tx.send((i, Instant::now() - start, result)).unwrap();
        }));
        // Let each task reserve before the next is spawned, so arrival order is i.
        tokio::task::yield_now().await;
    }
    drop(tx);
    for t in tasks {
        t.await.unwrap();
    }
    let mut admitted = Vec::new();
    let mut refused = Vec::new();
    while let Some((i, at, result)) = rx.recv().await {
        match result {
            Ok(waited) => admitted.push((i, at, waited)),
            Err(e) => refused.push((i, at, e)),
        }
    }
    // Burst: the first N went at once.
    let burst: Vec<_> = admitted.iter().filter(|(_, at, _)| at.is_zero()).collect();
    assert_eq!(burst.len(), N as usize);
    assert!(burst.iter().all(|(i, _, w)| *i < N && w.is_zero()));
    // Budget of 3.5 s: slots at 0, 1, 2, 3 s → 4N admitted, the rest refused immediately.
    assert_eq!(admitted.len(), 4 * N as usize);
    assert_eq!(refused.len(), 6 * N as usize);
    assert!(refused.iter().all(|(_, at, _)| at.is_zero()));
    // FIFO: completion order follows arrival order.
    let order: Vec<u32> = admitted.iter().map(|(i, _, _)| *i).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted);
    // Each second got exactly N.
    for (k, chunk) in admitted.chunks(N as usize).enumerate() {
        assert!(
            chunk
                .iter()
                .all(|(_, at, _)| *at == Duration::from_secs(k as u64))
        );
    }
    // Retry-After: the next free slot is at 4 s, 0.5 s past the budget → 1 s, rounded up.
    assert!(
        refused
            .iter()
            .all(|(_, _, e)| e.retry_after_secs() == 1 && e.limit == N)
    );
}

#[tokio::test(start_paused = true)]
async fn obeying_retry_after_gets_admitted() {
    let limiter = quotas(1, 0);
    acquire(&limiter, Duration::ZERO).await.unwrap();
    let refused = acquire(&limiter, Duration::ZERO).await.unwrap_err();
    assert_eq!(refused.retry_after, Duration::from_secs(1));
    tokio::time::advance(Duration::from_secs(refused.retry_after_secs())).await;
    assert_eq!(
        acquire(&limiter, Duration::ZERO).await.unwrap(),
        Duration::ZERO
    );
}

/// A slot is good only if the call leaves within the slack after it.
#[tokio::test(start_paused = true)]
async fn a_late_departure_is_not_on_time() {
    let q = Quotas::local(
        &[("A", 1)],
        QuotaConfig {
            guard: GuardBounds {
                min_us: 30_000,
                max_us: 30_000,
                slack_us: 20_000,
            },
            max_wait: Duration::from_secs(2),
            probe: Duration::from_secs(30),
        },
        Arc::new(Metrics::new()),
    );
    let ticket = q
        .reserve("A", Duration::ZERO, Duration::ZERO)
        .await
        .unwrap();
    assert!(ticket.on_time(Instant::now()));
    tokio::time::advance(Duration::from_millis(20)).await;
    assert!(ticket.on_time(Instant::now()));
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(!ticket.on_time(Instant::now()));
}

/// Tencent enforcing 1/s where 20 are configured: each second's refusals form a suffix, the
/// effective quota comes down to 1, and the limiter then admits one call per window. A
/// refusal followed by an admitted call in its second widens the guard instead.
#[tokio::test(start_paused = true)]
async fn suffixes_lower_the_effective_quota_and_interleaving_widens_the_guard() {
    let q = quotas(20, 0);
    let second = 1_000_000u64;
    for i in 0..20 {
        q.outcome("A", second * 1000 + i, i > 0, second * 1000 + i)
            .await;
    }
    let later = (second + 2) * 1000;
    let verdicts = q.outcome("A", later, false, later).await;
    assert_eq!(verdicts, vec![Verdict::Lowered { from: 20, to: 1 }]);
    q.export();
    let text = q.metrics.render();
    assert!(
        text.contains("gateway_quota_effective{tencent_action=\"A\"} 1"),
        "{text}"
    );
    tokio::time::advance(Duration::from_secs(2)).await;
    acquire(&q, Duration::ZERO).await.unwrap();
    assert!(acquire(&q, Duration::ZERO).await.is_err());

    let jittery = Quotas::local(
        &[("A", 20)],
        QuotaConfig {
            guard: GuardBounds {
                min_us: 0,
                max_us: 250_000,
                slack_us: 0,
            },
            max_wait: Duration::from_secs(2),
            probe: Duration::from_secs(30),
        },
        Arc::new(Metrics::new()),
    );
    for i in 0..guard::MIN_SAMPLES {
        jittery.observe_round_trip("A", Duration::from_millis(5 + i as u64 % 2));
    }
    let before = jittery.guard("A");
    jittery.outcome("A", 5_000, true, 5_000).await;
    jittery.outcome("A", 5_001, false, 5_001).await;
    assert_eq!(
        jittery.outcome("A", 9_000, false, 9_000).await,
        vec![Verdict::Jitter]
    );
    assert!(
        jittery.guard("A") > before,
        "{:?} → {:?}",
        before,
        jittery.guard("A")
    );
    assert_eq!(jittery.actions["A"].effective.load(Ordering::Relaxed), 20);
}

/// N + 1 arrivals in one second, the last refused: the gateway's own count shows the second
/// was full, so the refusal is jitter beyond the guard (widened), never a lower quota, however
/// often it happens.
#[tokio::test(start_paused = true)]
async fn a_refusal_after_the_whole_quota_is_jitter_not_a_lower_quota() {
    let q = Quotas::local(
        &[("A", 5)],
        QuotaConfig {
            guard: GuardBounds {
                min_us: 0,
                max_us: 250_000,
                slack_us: 0,
            },
            max_wait: Duration::from_secs(2),
            probe: Duration::from_secs(30),
        },
        Arc::new(Metrics::new()),
    );
    for i in 0..guard::MIN_SAMPLES {
        q.observe_round_trip("A", Duration::from_millis(5 + i as u64 % 2));
    }
    let before = q.guard("A");
    let mut verdicts = Vec::new();
    for second in 0..4u64 {
        let base = (1_000 + second) * 1000;
        for i in 0..6 {
            let at = base + i * 10;
            verdicts.extend(q.outcome("A", at, i == 5, at).await);
        }
    }
    verdicts.extend(q.outcome("A", 2_000_000, false, 2_000_000).await);
    assert_eq!(verdicts, vec![Verdict::Jitter; 4]);
    assert_eq!(q.actions["A"].effective.load(Ordering::Relaxed), 5);
    assert!(q.guard("A") > before);
}

#[test]
fn retry_after_rounds_up_to_whole_seconds() {
    let e = |us| QuotaExceeded {
        limit: 1,
        retry_after: Duration::from_micros(us),
    };
    assert_eq!(e(1).retry_after_secs(), 1);
    assert_eq!(e(1_000_000).retry_after_secs(), 1);
    assert_eq!(e(1_000_001).retry_after_secs(), 2);
}
