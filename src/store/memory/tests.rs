use super::*;
use crate::clock::ManualClock;
use crate::store::StoredResponse;
use Retention::{Evictable, Keep};

impl MemoryStore {
    fn get_ok(&self, key: &str) -> Option<KeyState> {
        self.get(key).unwrap()
    }
}

fn in_flight(fp: &str) -> KeyState {
    KeyState::InFlight {
        fingerprint: fp.into(),
        started_ms: 0,
        claim: String::new(),
    }
}

fn completed(fp: &str) -> KeyState {
    KeyState::Completed {
        fingerprint: fp.into(),
        response: StoredResponse {
            status: 200,
            headers: vec![],
            body: b"{}".to_vec(),
        },
    }
}

#[test]
fn prune_forgets_what_expired_and_keeps_what_is_live() {
    let clock = ManualClock::at(1_000);
    let store = MemoryStore::new(clock.clone(), 100);
    store
        .create(new_key("old", in_flight("a"), Duration::from_secs(1), Keep))
        .unwrap()
        .unwrap();
    store
        .create(new_key(
            "new",
            in_flight("b"),
            Duration::from_secs(60),
            Keep,
        ))
        .unwrap()
        .unwrap();
    store.start_cooldown("gone@example.com", 2_000);
    store.start_cooldown("kept@example.com", 50_000);
    clock.advance(Duration::from_secs(5));
    assert_eq!(store.len(), (2, 2));
    store.prune();
    assert_eq!(store.len(), (1, 1));
    assert_eq!(store.get_ok("new"), Some(in_flight("b")));
    assert_eq!(store.cooldown_until("kept@example.com"), Some(50_000));
}

#[test]
fn create_if_absent_and_compare_and_set() {
    let clock = ManualClock::at(1_000);
    let store = MemoryStore::new(clock.clone(), 10);
    let ttl = Duration::from_secs(60);
    assert_eq!(
        store
            .create(new_key("k", in_flight("a"), ttl, Keep))
            .unwrap(),
        Ok(())
    );
    assert_eq!(
        store
            .create(new_key("k", in_flight("b"), ttl, Keep))
            .unwrap(),
        Err(in_flight("a"))
    );
    assert!(
        !store
            .replace(swap("k", &in_flight("b"), completed("b"), ttl))
            .unwrap(),
        "CAS on a stale value fails"
    );
    assert!(
        store
            .replace(swap("k", &in_flight("a"), completed("a"), ttl))
            .unwrap()
    );
    assert_eq!(store.get_ok("k"), Some(completed("a")));
    assert!(!store.remove("k", &in_flight("a")).unwrap());
    assert!(store.remove("k", &completed("a")).unwrap());
    assert_eq!(store.get_ok("k"), None);
}

#[test]
fn records_expire() {
    let clock = ManualClock::at(1_000);
    let store = MemoryStore::new(clock.clone(), 10);
    store
        .create(new_key("k", in_flight("a"), Duration::from_secs(1), Keep))
        .unwrap()
        .unwrap();
    clock.advance(Duration::from_millis(999));
    assert!(store.get_ok("k").is_some());
    clock.advance(Duration::from_millis(1));
    assert!(store.get_ok("k").is_none());
    assert_eq!(
        store
            .create(new_key("k", in_flight("b"), Duration::from_secs(1), Keep))
            .unwrap(),
        Ok(())
    );
}

#[test]
fn a_full_store_drops_only_evictable_completed_records_and_never_money() {
    let store = MemoryStore::new(ManualClock::at(0), 3);
    let ttl = Duration::from_secs(60);
    store
        .create(new_key("credit", completed("a"), ttl, Keep))
        .unwrap()
        .unwrap();
    store
        .create(new_key("invite", completed("b"), ttl, Evictable))
        .unwrap()
        .unwrap();
    store
        .create(new_key("busy", in_flight("c"), ttl, Evictable))
        .unwrap()
        .unwrap();
    // Full: the completed invitation record makes room, once.
    store
        .create(new_key("new", in_flight("d"), ttl, Keep))
        .unwrap()
        .unwrap();
    assert_eq!(store.get_ok("invite"), None);
    assert_eq!(store.take_evictions(), 1);
    // Nothing evictable is left: new keys are refused, the credit record stays.
    assert_eq!(
        store.create(new_key("more", in_flight("e"), ttl, Keep)),
        Err(StoreError::Full)
    );
    assert_eq!(store.get_ok("credit"), Some(completed("a")));
    assert_eq!(store.fill(), (3, 3));
}

#[test]
fn a_lost_answer_still_took_effect() {
    let store = MemoryStore::new(ManualClock::at(0), 3);
    let ttl = Duration::from_secs(60);
    store.faults.lose_answers.store(1, Ordering::SeqCst);
    assert!(
        store
            .create(new_key("k", in_flight("a"), ttl, Keep))
            .is_err()
    );
    assert_eq!(store.get_ok("k"), Some(in_flight("a")));
}

#[test]
fn cooldowns_run_until_their_end() {
    let clock = ManualClock::at(0);
    let store = MemoryStore::new(clock.clone(), 10);
    store.start_cooldown("a@example.com", 180_000);
    assert_eq!(store.cooldown_until("a@example.com"), Some(180_000));
    store.start_cooldown("a@example.com", 1_000);
    assert_eq!(
        store.cooldown_until("a@example.com"),
        Some(180_000),
        "never shortened"
    );
    clock.advance(Duration::from_secs(180));
    assert_eq!(store.cooldown_until("a@example.com"), None);
}

fn new_key(key: &str, state: KeyState, ttl: Duration, retention: Retention) -> NewKey<'_> {
    NewKey {
        key,
        state,
        ttl,
        retention,
    }
}

fn swap<'a>(key: &'a str, expected: &'a KeyState, new: KeyState, ttl: Duration) -> Swap<'a> {
    Swap {
        key,
        expected,
        new,
        ttl,
    }
}
