//! The reservation log in Redis, shared by every replica.
//!
//! [`RESERVE`] is [`super::log::ReservationLog::reserve`] transcribed into one Lua script, so
//! reading the log, choosing the slot and recording it are one atomic step for the whole fleet,
//! on one clock (Redis's `TIME`). The log of an action is a Redis list of at most N slot instants
//! (µs since the Unix epoch), oldest first, that expires once it can no longer delay anyone:
//! memory per action is bounded by N. `shared_script_matches_the_pure_log` (in the Redis tests)
//! runs random arrival patterns through both and requires the same answers.

use std::sync::Arc;
use std::time::Duration;

use redis::Script;

use crate::redis_link::RedisLink;
use crate::store::StoreError;

/// KEYS[1]: the action's log. ARGV: limit, window µs, max wait µs, and (tests only) a fixed
/// "now" in µs instead of Redis's `TIME`. Returns `{1, slot, wait}` or `{0, retry_after, 0}`.
/// Integers up to 2^53 are exact in Lua's doubles; Unix µs are below 2^51.
pub const RESERVE: &str = r#"
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local now
if ARGV[4] then
  now = tonumber(ARGV[4])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local len = redis.call('LLEN', KEYS[1])
local slot = now
if len > 0 then
  local latest = tonumber(redis.call('LINDEX', KEYS[1], -1))
  if latest > slot then slot = latest end
end
if len >= limit then
  local nth_latest = tonumber(redis.call('LINDEX', KEYS[1], len - limit))
  if nth_latest + window > slot then slot = nth_latest + window end
end
local wait = slot - now
if wait > max_wait then
  return {0, wait - max_wait, 0}
end
redis.call('RPUSH', KEYS[1], string.format('%.0f', slot))
redis.call('LTRIM', KEYS[1], -limit, -1)
redis.call('PEXPIRE', KEYS[1], math.floor((wait + window) / 1000) + 1000)
return {1, slot, wait}
"#;

/// What the shared log answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Admitted { slot_us: u64, wait_us: u64 },
    Refused { retry_after_us: u64 },
}

/// The shared limiter of one action.
#[derive(Debug)]
pub struct SharedLimiter {
    link: Arc<RedisLink>,
    key: String,
    limit: u32,
    window_us: u64,
}

/// The script, loaded once per process (redis-rs sends EVALSHA and falls back to EVAL).
fn script() -> &'static Script {
    static SCRIPT: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| Script::new(RESERVE))
}

impl SharedLimiter {
    pub fn new(link: Arc<RedisLink>, action: &str, limit: u32, window: Duration) -> Self {
        Self {
            key: link.key(&format!("quota:{action}")),
            link,
            limit,
            window_us: window.as_micros() as u64,
        }
    }

    /// Asks the shared log for a slot at most `max_wait` away; `now_us` pins Redis's clock
    /// (tests only).
    pub async fn decide(
        &self,
        max_wait: Duration,
        now_us: Option<u64>,
    ) -> Result<Decision, StoreError> {
        let max_wait_us = max_wait.as_micros() as u64;
        let answer: (u8, u64, u64) = self
            .link
            .run("quota", |mut conn| async move {
                let mut invocation = script().key(&self.key);
                invocation
                    .arg(self.limit)
                    .arg(self.window_us)
                    .arg(max_wait_us);
                if let Some(now) = now_us {
                    invocation.arg(now);
                }
                invocation.invoke_async(&mut conn).await
            })
            .await?;
        Ok(match answer {
            (1, slot_us, wait_us) => Decision::Admitted { slot_us, wait_us },
            (_, retry_after_us, _) => Decision::Refused { retry_after_us },
        })
    }
}
