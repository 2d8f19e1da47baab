//! The store in Redis: idempotency records and invitation cooldowns shared by every replica.
//!
//! Records are JSON strings under `PREFIX` + the scoped key (`idem:ROUTE:CALLER:KEY`) with the idempotency TTL. Each operation that
//! must be atomic is one Lua script: create-if-absent returns the existing record, replace and
//! remove compare the whole stored value first (compare-and-set). Keys of records whose
//! allocation outcome is unknown are also members of the set `PREFIX idem-unknown`, kept in step
//! by the same scripts, so the background resolver finds them without scanning. Cooldowns are
//! `PREFIX cooldown:SHA256(address)` holding the end instant (no address is written to Redis).
//!
//! Commands go to one Redis (a primary, possibly with replicas); Redis Cluster is not supported
//! (the scripts touch keys that may live in different slots).
//!
//! When Redis is unreachable, cooldowns fall back to an in-process map (invitations keep
//! working, with per-replica cooldowns); records do not: idempotent credit calls are refused.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use redis::{AsyncCommands, Script};
use sha2::{Digest, Sha256};

use super::{KeyState, MemoryStore, NewKey, StoreError, Swap};
use crate::clock::SharedClock;
use crate::redis_link::RedisLink;

/// KEYS[1] record. ARGV: value, ttl ms. Returns the existing value, or nil after creating.
const CREATE: &str = r#"
local current = redis.call('GET', KEYS[1])
if current then return current end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"#;

/// KEYS[1] record, KEYS[2] unknown set. ARGV: expected, new, ttl ms, "1" if new is unknown,
/// set member. Returns 1 if replaced.
const REPLACE: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
if ARGV[4] == '1' then
  redis.call('SADD', KEYS[2], ARGV[5])
else
  redis.call('SREM', KEYS[2], ARGV[5])
end
return 1
"#;

/// KEYS[1] record, KEYS[2] unknown set. ARGV: expected, set member. Returns 1 if removed.
const REMOVE: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[2])
return 1
"#;

/// KEYS[1] unknown set. ARGV: record key prefix. Returns member, value, member, value…; drops
/// members whose record expired.
const UNKNOWN: &str = r#"
local out = {}
for _, member in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local value = redis.call('GET', ARGV[1] .. member)
  if value then
    table.insert(out, member)
    table.insert(out, value)
  else
    redis.call('SREM', KEYS[1], member)
  end
end
return out
"#;

/// KEYS[1] cooldown. ARGV: until ms, ttl ms. Keeps the later end.
const COOLDOWN: &str = r#"
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
"#;

struct Scripts {
    create: Script,
    replace: Script,
    remove: Script,
    unknown: Script,
    cooldown: Script,
}

fn scripts() -> &'static Scripts {
    static SCRIPTS: OnceLock<Scripts> = OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        create: Script::new(CREATE),
        replace: Script::new(REPLACE),
        remove: Script::new(REMOVE),
        unknown: Script::new(UNKNOWN),
        cooldown: Script::new(COOLDOWN),
    })
}

#[derive(Debug)]
pub struct RedisStore {
    link: Arc<RedisLink>,
    clock: SharedClock,
    /// Cooldowns while Redis is unreachable (and for invitations' records, see `Store::lenient`).
    pub(super) fallback: Arc<MemoryStore>,
    record_prefix: String,
    unknown_set: String,
}

fn encode(record: &KeyState) -> String {
    serde_json::to_string(record).expect("records serialize")
}

fn decode(value: &str) -> Result<KeyState, StoreError> {
    serde_json::from_str(value).map_err(|e| {
        tracing::error!(error = %e, "an idempotency record in Redis is not readable");
        StoreError::Unavailable("unreadable record in Redis".into())
    })
}

fn ttl_ms(ttl: Duration) -> u64 {
    (ttl.as_millis() as u64).max(1)
}

impl RedisStore {
    pub fn new(link: Arc<RedisLink>, clock: SharedClock, fallback: Arc<MemoryStore>) -> Self {
        Self {
            // Scoped idempotency keys already read `idem:ROUTE:CALLER:KEY`. Records and the set
            // of unknown outcomes share one hash tag: the scripts that touch both run on one
            // Redis Cluster slot.
            record_prefix: format!("{{{}idem}}:", link.key("")),
            unknown_set: format!("{{{}idem}}:idem-unknown", link.key("")),
            link,
            clock,
            fallback,
        }
    }

    pub fn link(&self) -> &Arc<RedisLink> {
        &self.link
    }

    fn record_key(&self, key: &str) -> String {
        format!("{}{key}", self.record_prefix)
    }

    fn cooldown_key(&self, key: &str) -> String {
        let digest = Sha256::digest(key.as_bytes());
        self.link
            .key(&format!("cooldown:{}", hex::encode(&digest[..16])))
    }

    /// Redis expires records itself; the memory store's eviction (retention) does not apply.
    pub async fn create(&self, new: NewKey<'_>) -> Result<Result<(), KeyState>, StoreError> {
        let NewKey {
            key,
            state: record,
            ttl,
            ..
        } = new;
        let rkey = self.record_key(key);
        let value = encode(&record);
        let existing: Option<String> = self
            .link
            .run("create", |mut conn| async move {
                scripts()
                    .create
                    .key(&rkey)
                    .arg(&value)
                    .arg(ttl_ms(ttl))
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        match existing {
            None => Ok(Ok(())),
            Some(value) => Ok(Err(decode(&value)?)),
        }
    }

    pub async fn replace(&self, swap: Swap<'_>) -> Result<bool, StoreError> {
        let unknown = matches!(swap.new, KeyState::Unknown { .. });
        let args = [
            encode(swap.expected),
            encode(&swap.new),
            ttl_ms(swap.ttl).to_string(),
            if unknown { "1" } else { "0" }.to_owned(),
            swap.key.to_owned(),
        ];
        self.compare_and_set("replace", &scripts().replace, swap.key, &args)
            .await
    }

    pub async fn remove(&self, key: &str, expected: &KeyState) -> Result<bool, StoreError> {
        let args = [encode(expected), key.to_owned()];
        self.compare_and_set("remove", &scripts().remove, key, &args)
            .await
    }

    /// Runs a compare-and-set script on `key`'s record and the set of unknown outcomes, with
    /// `args`; true when it applied.
    async fn compare_and_set(
        &self,
        operation: &'static str,
        script: &'static Script,
        key: &str,
        args: &[String],
    ) -> Result<bool, StoreError> {
        let rkey = self.record_key(key);
        let applied: u8 = self
            .link
            .run(operation, |mut conn| async move {
                let mut invocation = script.key(&rkey);
                invocation.key(&self.unknown_set);
                for arg in args {
                    invocation.arg(arg);
                }
                invocation.invoke_async(&mut conn).await
            })
            .await?;
        Ok(applied == 1)
    }

    pub async fn get(&self, key: &str) -> Result<Option<KeyState>, StoreError> {
        let rkey = self.record_key(key);
        let value: Option<String> = self
            .link
            .run("get", |mut conn| async move { conn.get(&rkey).await })
            .await?;
        value.as_deref().map(decode).transpose()
    }

    pub async fn unknown(&self) -> Result<Vec<(String, KeyState)>, StoreError> {
        let flat: Vec<String> = self
            .link
            .run("unknown", |mut conn| async move {
                scripts()
                    .unknown
                    .key(&self.unknown_set)
                    .arg(&self.record_prefix)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        let mut out = Vec::with_capacity(flat.len() / 2);
        for pair in flat.chunks_exact(2) {
            let record = decode(&pair[1])?;
            if matches!(record, KeyState::Unknown { .. }) {
                out.push((pair[0].clone(), record));
            }
        }
        Ok(out)
    }

    /// The later of the shared cooldown and any local one (started while Redis was away).
    /// Never fails: without Redis, the local cooldowns answer.
    pub async fn cooldown_until(&self, key: &str) -> Option<u64> {
        let local = self.fallback.cooldown_until(key);
        let ckey = self.cooldown_key(key);
        let shared: Result<Option<u64>, _> = self
            .link
            .run(
                "cooldown_get",
                |mut conn| async move { conn.get(&ckey).await },
            )
            .await;
        let now = self.clock.now_unix_ms();
        let shared = shared.ok().flatten().filter(|until| *until > now);
        local.max(shared)
    }

    /// Starts the cooldown in Redis, or locally while Redis is unreachable.
    pub async fn start_cooldown(&self, key: &str, until_ms: u64) {
        let ckey = self.cooldown_key(key);
        let ttl = until_ms.saturating_sub(self.clock.now_unix_ms()).max(1);
        let stored = self
            .link
            .run("cooldown_set", |mut conn| async move {
                scripts()
                    .cooldown
                    .key(&ckey)
                    .arg(until_ms)
                    .arg(ttl)
                    .invoke_async::<u8>(&mut conn)
                    .await
            })
            .await;
        if stored.is_err() {
            self.fallback.start_cooldown(key, until_ms);
        }
    }
}
