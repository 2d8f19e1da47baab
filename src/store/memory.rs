//! The embedded store: bounded, expiring maps behind a mutex, on the injected clock.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::{Record, StoreError};
use crate::clock::SharedClock;

#[derive(Debug)]
pub struct MemoryStore {
    clock: SharedClock,
    max_entries: usize,
    records: Mutex<HashMap<String, (Record, u64)>>,
    cooldowns: Mutex<HashMap<String, u64>>,
}

impl MemoryStore {
    pub fn new(clock: SharedClock, max_entries: usize) -> Self {
        Self {
            clock,
            max_entries,
            records: Mutex::new(HashMap::new()),
            cooldowns: Mutex::new(HashMap::new()),
        }
    }

    fn now(&self) -> u64 {
        self.clock.now_unix_ms()
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Record, u64)>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn expiry(&self, ttl: Duration) -> u64 {
        self.now() + ttl.as_millis() as u64
    }

    pub fn create(
        &self,
        key: &str,
        record: Record,
        ttl: Duration,
    ) -> Result<Result<(), Record>, StoreError> {
        let now = self.now();
        let mut records = self.live();
        match records.get(key) {
            Some((existing, expires)) if *expires > now => return Ok(Err(existing.clone())),
            _ => {}
        }
        if records.len() >= self.max_entries {
            records.retain(|_, (_, expires)| *expires > now);
            // Completed records can be dropped (only their replay is lost); records of work in
            // progress or of unknown outcome never are.
            if records.len() >= self.max_entries {
                let oldest_completed = records
                    .iter()
                    .filter(|(_, (r, _))| matches!(r, Record::Completed { .. }))
                    .min_by_key(|(_, (_, expires))| *expires)
                    .map(|(k, _)| k.clone());
                match oldest_completed {
                    Some(k) => {
                        records.remove(&k);
                    }
                    None => return Err(StoreError::Full),
                }
            }
        }
        records.insert(key.to_owned(), (record, self.expiry(ttl)));
        Ok(Ok(()))
    }

    pub fn replace(&self, key: &str, expected: &Record, new: Record, ttl: Duration) -> bool {
        let now = self.now();
        let mut records = self.live();
        match records.get(key) {
            Some((current, expires)) if *expires > now && current == expected => {
                records.insert(key.to_owned(), (new, self.expiry(ttl)));
                true
            }
            _ => false,
        }
    }

    pub fn remove(&self, key: &str, expected: &Record) -> bool {
        let mut records = self.live();
        match records.get(key) {
            Some((current, _)) if current == expected => {
                records.remove(key);
                true
            }
            _ => false,
        }
    }

    pub fn get(&self, key: &str) -> Option<Record> {
        let now = self.now();
        self.live()
            .get(key)
            .filter(|(_, expires)| *expires > now)
            .map(|(r, _)| r.clone())
    }

    pub fn unknown(&self) -> Vec<(String, Record)> {
        let now = self.now();
        self.live()
            .iter()
            .filter(|(_, (r, expires))| *expires > now && matches!(r, Record::Unknown { .. }))
            .map(|(k, (r, _))| (k.clone(), r.clone()))
            .collect()
    }

    pub fn cooldown_until(&self, key: &str) -> Option<u64> {
        let now = self.now();
        let mut cooldowns = self.cooldowns.lock().unwrap_or_else(|e| e.into_inner());
        match cooldowns.get(key).copied() {
            Some(until) if until > now => Some(until),
            Some(_) => {
                cooldowns.remove(key);
                None
            }
            None => None,
        }
    }

    /// Forgets expired records and cooldowns, so memory follows what is live rather than
    /// `idempotency.max_entries` (a cooldown to an address nobody invites again is otherwise
    /// never looked up, so never dropped). Called every few seconds by the upkeep task.
    pub fn prune(&self) {
        let now = self.now();
        self.live().retain(|_, (_, expires)| *expires > now);
        self.cooldowns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, until| *until > now);
    }

    /// How many records and cooldowns are held (expired ones included until pruned).
    pub fn len(&self) -> (usize, usize) {
        let cooldowns = self
            .cooldowns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len();
        (self.live().len(), cooldowns)
    }

    pub fn start_cooldown(&self, key: &str, until_ms: u64) {
        let now = self.now();
        let mut cooldowns = self.cooldowns.lock().unwrap_or_else(|e| e.into_inner());
        if cooldowns.len() >= self.max_entries {
            cooldowns.retain(|_, until| *until > now);
        }
        let entry = cooldowns.entry(key.to_owned()).or_insert(until_ms);
        *entry = (*entry).max(until_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::StoredResponse;

    fn in_flight(fp: &str) -> Record {
        Record::InFlight {
            fingerprint: fp.into(),
            started_ms: 0,
        }
    }

    fn completed(fp: &str) -> Record {
        Record::Completed {
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
            .create("old", in_flight("a"), Duration::from_secs(1))
            .unwrap()
            .unwrap();
        store
            .create("new", in_flight("b"), Duration::from_secs(60))
            .unwrap()
            .unwrap();
        store.start_cooldown("gone@example.com", 2_000);
        store.start_cooldown("kept@example.com", 50_000);
        clock.advance(Duration::from_secs(5));
        assert_eq!(store.len(), (2, 2));
        store.prune();
        assert_eq!(store.len(), (1, 1));
        assert_eq!(store.get("new"), Some(in_flight("b")));
        assert_eq!(store.cooldown_until("kept@example.com"), Some(50_000));
    }

    #[test]
    fn create_if_absent_and_compare_and_set() {
        let clock = ManualClock::at(1_000);
        let store = MemoryStore::new(clock.clone(), 10);
        let ttl = Duration::from_secs(60);
        assert_eq!(store.create("k", in_flight("a"), ttl).unwrap(), Ok(()));
        assert_eq!(
            store.create("k", in_flight("b"), ttl).unwrap(),
            Err(in_flight("a"))
        );
        assert!(
            !store.replace("k", &in_flight("b"), completed("b"), ttl),
            "CAS on a stale value fails"
        );
        assert!(store.replace("k", &in_flight("a"), completed("a"), ttl));
        assert_eq!(store.get("k"), Some(completed("a")));
        assert!(!store.remove("k", &in_flight("a")));
        assert!(store.remove("k", &completed("a")));
        assert_eq!(store.get("k"), None);
    }

    #[test]
    fn records_expire() {
        let clock = ManualClock::at(1_000);
        let store = MemoryStore::new(clock.clone(), 10);
        store
            .create("k", in_flight("a"), Duration::from_secs(1))
            .unwrap()
            .unwrap();
        clock.advance(Duration::from_millis(999));
        assert!(store.get("k").is_some());
        clock.advance(Duration::from_millis(1));
        assert!(store.get("k").is_none());
        assert_eq!(
            store
                .create("k", in_flight("b"), Duration::from_secs(1))
                .unwrap(),
            Ok(())
        );
    }

    #[test]
    fn a_full_store_drops_completed_records_but_never_work_in_progress() {
        let store = MemoryStore::new(ManualClock::at(0), 2);
        let ttl = Duration::from_secs(60);
        store.create("done", completed("a"), ttl).unwrap().unwrap();
        store.create("busy", in_flight("b"), ttl).unwrap().unwrap();
        store.create("new", in_flight("c"), ttl).unwrap().unwrap();
        assert_eq!(store.get("done"), None);
        assert_eq!(
            store.create("more", in_flight("d"), ttl),
            Err(StoreError::Full)
        );
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
}
