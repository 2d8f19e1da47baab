//! The embedded store: bounded, expiring maps behind a mutex, on the injected clock.
//!
//! Bounded by `idempotency.max_entries` records. When full, expired records go first, then the
//! oldest completed records created [`Retention::Evictable`]; records money depends on
//! ([`Retention::Keep`]) are never dropped before their TTL: a full store refuses new keys
//! ([`StoreError::Full`], which the routes answer 503 `store-unavailable`, nothing sent).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use super::{KeyState, NewKey, Retention, StoreError, Swap};
use crate::clock::SharedClock;

#[derive(Debug)]
struct Held {
    record: KeyState,
    expires: u64,
    retention: Retention,
}

/// Store failures to inject, for tests: the next `lose_answers` writes take effect and then
/// report the store unavailable (a Redis answer lost to a timeout); the next `fail_reads` reads
/// fail.
#[derive(Debug, Default)]
pub struct StoreFaults {
    pub lose_answers: AtomicU32,
    pub fail_reads: AtomicU32,
}

fn take(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

#[derive(Debug)]
pub struct MemoryStore {
    clock: SharedClock,
    max_entries: usize,
    records: Mutex<HashMap<String, Held>>,
    cooldowns: Mutex<HashMap<String, u64>>,
    evictions: AtomicUsize,
    pub faults: StoreFaults,
}

impl MemoryStore {
    pub fn new(clock: SharedClock, max_entries: usize) -> Self {
        Self {
            clock,
            max_entries,
            records: Mutex::new(HashMap::new()),
            cooldowns: Mutex::new(HashMap::new()),
            evictions: AtomicUsize::new(0),
            faults: StoreFaults::default(),
        }
    }

    fn lost(&self) -> Result<(), StoreError> {
        if take(&self.faults.lose_answers) {
            Err(StoreError::Unavailable(
                "injected: the answer was lost".into(),
            ))
        } else {
            Ok(())
        }
    }

    /// (records held, capacity); expired records count until the next prune (every 5 s).
    pub fn fill(&self) -> (usize, usize) {
        (self.live().len(), self.max_entries)
    }

    /// Records evicted since the last call.
    pub fn take_evictions(&self) -> usize {
        self.evictions.swap(0, Ordering::SeqCst)
    }

    fn now(&self) -> u64 {
        self.clock.now_unix_ms()
    }

    fn live(&self) -> parking_lot::MutexGuard<'_, HashMap<String, Held>> {
        self.records.lock()
    }

    fn expiry(&self, ttl: Duration) -> u64 {
        self.now() + ttl.as_millis() as u64
    }

    pub fn create(&self, new: NewKey<'_>) -> Result<Result<(), KeyState>, StoreError> {
        let NewKey {
            key,
            state: record,
            ttl,
            retention,
        } = new;
        let now = self.now();
        let mut records = self.live();
        match records.get(key) {
            Some(held) if held.expires > now => return Ok(Err(held.record.clone())),
            _ => {}
        }
        if records.len() >= self.max_entries {
            records.retain(|_, held| held.expires > now);
            if records.len() >= self.max_entries {
                let oldest_evictable = records
                    .iter()
                    .filter(|(_, h)| {
                        h.retention == Retention::Evictable
                            && matches!(h.record, KeyState::Completed { .. })
                    })
                    .min_by_key(|(_, h)| h.expires)
                    .map(|(k, _)| k.clone());
                match oldest_evictable {
                    Some(k) => {
                        records.remove(&k);
                        self.evictions.fetch_add(1, Ordering::SeqCst);
                    }
                    None => return Err(StoreError::Full),
                }
            }
        }
        records.insert(
            key.to_owned(),
            Held {
                record,
                expires: self.expiry(ttl),
                retention,
            },
        );
        drop(records);
        self.lost()?;
        Ok(Ok(()))
    }

    pub fn replace(&self, swap: Swap<'_>) -> Result<bool, StoreError> {
        let now = self.now();
        let mut records = self.live();
        let replaced = match records.get_mut(swap.key) {
            Some(held) if held.expires > now && held.record == *swap.expected => {
                held.record = swap.new;
                held.expires = self.expiry(swap.ttl);
                true
            }
            _ => false,
        };
        drop(records);
        self.lost()?;
        Ok(replaced)
    }

    pub fn remove(&self, key: &str, expected: &KeyState) -> Result<bool, StoreError> {
        let mut records = self.live();
        let removed = match records.get(key) {
            Some(held) if held.record == *expected => {
                records.remove(key);
                true
            }
            _ => false,
        };
        drop(records);
        self.lost()?;
        Ok(removed)
    }

    pub fn get(&self, key: &str) -> Result<Option<KeyState>, StoreError> {
        if take(&self.faults.fail_reads) {
            return Err(StoreError::Unavailable("injected: read failed".into()));
        }
        let now = self.now();
        Ok(self
            .live()
            .get(key)
            .filter(|h| h.expires > now)
            .map(|h| h.record.clone()))
    }

    pub fn unknown(&self) -> Vec<(String, KeyState)> {
        let now = self.now();
        self.live()
            .iter()
            .filter(|(_, h)| h.expires > now && matches!(h.record, KeyState::Unknown { .. }))
            .map(|(k, h)| (k.clone(), h.record.clone()))
            .collect()
    }

    pub fn cooldown_until(&self, key: &str) -> Option<u64> {
        let now = self.now();
        let mut cooldowns = self.cooldowns.lock();
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
        self.live().retain(|_, held| held.expires > now);
        self.cooldowns.lock().retain(|_, until| *until > now);
    }

    /// How many records and cooldowns are held (expired ones included until pruned).
    pub fn len(&self) -> (usize, usize) {
        let cooldowns = self.cooldowns.lock().len();
        (self.live().len(), cooldowns)
    }

    pub fn start_cooldown(&self, key: &str, until_ms: u64) {
        let now = self.now();
        let mut cooldowns = self.cooldowns.lock();
        if cooldowns.len() >= self.max_entries {
            cooldowns.retain(|_, until| *until > now);
        }
        let entry = cooldowns.entry(key.to_owned()).or_insert(until_ms);
        *entry = (*entry).max(until_ms);
    }
}

#[cfg(test)]
mod tests;
