//! The quota in Redis, shared by every replica: the reservation log, the learned quota, and the
//! fleet's heartbeats and shares.
//!
//! [`RESERVE`] is [`super::log::ReservationLog::reserve`] transcribed into one Lua script, so
//! reading the log, choosing the slot and recording it are one atomic step for the whole fleet,
//! on one clock (Redis's `TIME`). In the same step it reads the action's learned quota
//! ([`super::learn`], kept fleet-wide by [`EVIDENCE`] and the heartbeats) and takes off the shares
//! of replicas that may be forwarding on their own ([`super::fleet`]). Its window is one second
//! plus the largest guard any live replica published, plus the spread of their paths' shortest
//! round trips, so a replica closer to Tencent cannot overtake one further away.
//! `shared_script_matches_the_pure_log` (in the Redis tests) runs random arrival patterns through
//! the script and the pure log and requires the same answers.
//!
//! Every key of the quota carries one hash tag (`{PREFIXquota}`), so each script touches a single
//! slot and the gateway runs on Redis Cluster as on a single primary. The log of an action is a
//! list of at most the configured N slot instants (µs since the Unix epoch) that expires once it
//! can no longer delay anyone; the fleet hash holds one short entry per live replica.

use std::sync::Arc;
use std::time::Duration;

use redis::Script;

use super::learn::Verdict;
use crate::redis_link::RedisLink;
use crate::store::StoreError;

/// KEYS: log, learn, fleet, shares. ARGV: configured limit, own guard µs, max wait µs, stale µs,
/// expiry µs, and (tests only) a fixed "now" in µs instead of Redis's `TIME`.
/// Returns `{1, slot, wait, limit, window}` or `{0, retry_after, 0, limit, window}`.
/// Integers up to 2^53 are exact in Lua's doubles; Unix µs are below 2^51.
pub const RESERVE: &str = r#"
local configured = tonumber(ARGV[1])
local guard = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local stale = tonumber(ARGV[4])
local expire = tonumber(ARGV[5])
local now
if ARGV[6] then
  now = tonumber(ARGV[6])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local n = tonumber(redis.call('HGET', KEYS[2], 'n') or configured)
if n > configured then n = configured end
local reserved = 0
local lo_min, lo_max
local fleet = redis.call('HGETALL', KEYS[3])
for i = 1, #fleet, 2 do
  local beat, hold, g, lo = string.match(fleet[i + 1], '^(%d+),(%d+),(%d+),(%d+)$')
  beat = tonumber(beat)
  if beat and now <= beat + expire then
    if now > beat + stale or now < tonumber(hold) then
      reserved = reserved + tonumber(redis.call('HGET', KEYS[4], fleet[i]) or '0')
    end
    if now <= beat + stale then
      g = tonumber(g)
      lo = tonumber(lo)
      if g > guard then guard = g end
      if lo_min == nil or lo < lo_min then lo_min = lo end
      if lo_max == nil or lo > lo_max then lo_max = lo end
    end
  end
end
if lo_min then guard = guard + (lo_max - lo_min) end
local window = 1000000 + guard
local limit = n - reserved
if limit < 1 then
  return {0, 1000000, 0, 0, window}
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
  return {0, wait - max_wait, 0, limit, window}
end
redis.call('RPUSH', KEYS[1], string.format('%.0f', slot))
redis.call('LTRIM', KEYS[1], -configured, -1)
redis.call('PEXPIRE', KEYS[1], math.floor((wait + window) / 1000) + 1000)
return {1, slot, wait, limit, window}
"#;

/// [`super::learn::Learned::suffix`] transcribed. KEYS: learn. ARGV: configured, probe µs,
/// persistence µs, decrease-every µs, refusals in the suffix, calls admitted before it, and
/// (tests only) "now". Returns
/// `{verdict, n, from}`: 0 noted, 1 lowered, 2 already lowered.
pub const EVIDENCE: &str = r#"
local configured = tonumber(ARGV[1])
local probe = tonumber(ARGV[2])
local persist = tonumber(ARGV[3])
local every = tonumber(ARGV[4])
local refused = tonumber(ARGV[5])
local admitted = tonumber(ARGV[6])
local now
if ARGV[7] then
  now = tonumber(ARGV[7])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local h = redis.call('HMGET', KEYS[1], 'n', 'changed', 'evidence', 'raised')
local n = tonumber(h[1] or configured)
if n > configured then n = configured end
local changed = tonumber(h[2])
local evidence = tonumber(h[3])
local raised = h[4] == '1'
local function recent(t, within) return t ~= nil and now < t + within end
local strong = refused >= 2 or recent(evidence, persist) or (raised and recent(changed, probe))
redis.call('HSET', KEYS[1], 'evidence', string.format('%.0f', now))
if not strong then return {0, n, n} end
if (not raised) and recent(changed, every) then return {2, n, n} end
local to = math.floor(n / 2)
if admitted >= 1 and admitted < to then to = admitted end
if to < 1 then to = 1 end
if to >= n then return {2, n, n} end
redis.call('HSET', KEYS[1], 'n', to, 'changed', string.format('%.0f', now), 'raised', '0')
return {1, to, n}
"#;

/// One replica's heartbeat. KEYS: fleet, then per action its shares and learn keys. ARGV: id,
/// guard µs, shortest round trip µs, fallback used recently (1/0), stale µs, expiry µs, hold µs,
/// probe µs, expected replicas, "now" (tests only, else empty), then per action its configured
/// limit and the share this replica holds. Returns the number of live replicas, then per action
/// `{share, n}`, flattened.
pub const HEARTBEAT: &str = r#"
local id = ARGV[1]
local stale = tonumber(ARGV[5])
local expire = tonumber(ARGV[6])
local hold_for = tonumber(ARGV[7])
local probe = tonumber(ARGV[8])
local expected = tonumber(ARGV[9])
local now
if ARGV[10] ~= '' then
  now = tonumber(ARGV[10])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local hold = 0
local prev = redis.call('HGET', KEYS[1], id)
if prev then hold = tonumber(string.match(prev, '^%d+,(%d+),')) or 0 end
if ARGV[4] == '1' and now + hold_for > hold then hold = now + hold_for end
redis.call('HSET', KEYS[1], id, string.format('%.0f,%.0f,%d,%d', now, hold, tonumber(ARGV[2]), tonumber(ARGV[3])))
local entries = redis.call('HGETALL', KEYS[1])
local live = 0
local gone = {}
for i = 1, #entries, 2 do
  local beat = tonumber(string.match(entries[i + 1], '^(%d+),'))
  if beat == nil or now > beat + expire then
    redis.call('HDEL', KEYS[1], entries[i])
    table.insert(gone, entries[i])
  else
    live = live + 1
  end
end
local divisor = math.max(live, expected, 1)
local out = {live}
local actions = (#KEYS - 1) / 2
for k = 1, actions do
  local shares = KEYS[2 * k]
  local learn = KEYS[2 * k + 1]
  local configured = tonumber(ARGV[9 + 2 * k])
  local held = tonumber(ARGV[10 + 2 * k])
  for _, g in ipairs(gone) do redis.call('HDEL', shares, g) end
  local h = redis.call('HMGET', learn, 'n', 'changed', 'evidence')
  local n = tonumber(h[1] or configured)
  if n > configured then n = configured end
  local changed = tonumber(h[2])
  local evidence = tonumber(h[3])
  local function quiet(t) return t == nil or now >= t + probe end
  if n < configured and quiet(changed) and quiet(evidence) then
    n = n + 1
    redis.call('HSET', learn, 'n', n, 'changed', string.format('%.0f', now), 'raised', '1')
  end
  local fair = math.floor(n / divisor)
  local others = 0
  local all = redis.call('HGETALL', shares)
  for i = 1, #all, 2 do
    if all[i] ~= id then others = others + tonumber(all[i + 1]) end
  end
  local share = math.min(fair, math.max(0, n - others))
  redis.call('HSET', shares, id, math.max(held, share))
  table.insert(out, share)
  table.insert(out, n)
end
return out
"#;

/// A replica leaving on purpose. KEYS: fleet, then every action's shares. ARGV: id.
pub const LEAVE: &str = r#"
for i = 1, #KEYS do redis.call('HDEL', KEYS[i], ARGV[1]) end
return 1
"#;

/// What the shared log answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Admitted {
        slot_us: u64,
        wait_us: u64,
        limit: u32,
        window_us: u64,
    },
    Refused {
        retry_after_us: u64,
        limit: u32,
    },
}

/// One reservation request.
#[derive(Debug, Clone, Copy)]
pub struct ReserveArgs {
    pub configured: u32,
    pub guard_us: u64,
    pub max_wait: Duration,
    pub stale: Duration,
    pub expire: Duration,
    /// Pins Redis's clock (tests only).
    pub now_us: Option<u64>,
}

/// One heartbeat.
#[derive(Debug, Clone)]
pub struct Beat<'a> {
    pub id: &'a str,
    pub guard_us: u64,
    pub rtt_lo_us: u64,
    pub fallback_recent: bool,
    pub stale: Duration,
    pub expire: Duration,
    pub hold: Duration,
    pub probe: Duration,
    pub expected_replicas: u32,
    /// Per action: name, configured limit, share held.
    pub actions: &'a [(&'static str, u32, u32)],
    pub now_us: Option<u64>,
}

/// Every quota key of the fleet, under one hash tag.
#[derive(Debug)]
pub struct SharedQuotas {
    link: Arc<RedisLink>,
    tag: String,
}

fn script(which: &'static str) -> &'static Script {
    use std::sync::OnceLock;
    static SCRIPTS: [OnceLock<Script>; 4] = [const { OnceLock::new() }; 4];
    let (i, text) = match which {
        "reserve" => (0, RESERVE),
        "evidence" => (1, EVIDENCE),
        "heartbeat" => (2, HEARTBEAT),
        _ => (3, LEAVE),
    };
    SCRIPTS[i].get_or_init(|| Script::new(text))
}

fn micros(d: Duration) -> u64 {
    d.as_micros() as u64
}

impl SharedQuotas {
    pub fn new(link: Arc<RedisLink>) -> Self {
        Self {
            tag: link.key("quota"),
            link,
        }
    }

    /// `{PREFIXquota}:what`: the braces make Redis Cluster keep every quota key in one slot.
    pub fn key(&self, what: &str) -> String {
        format!("{{{}}}:{what}", self.tag)
    }

    /// Asks the shared log for a slot at most `max_wait` away.
    pub async fn reserve(&self, action: &str, args: ReserveArgs) -> Result<Decision, StoreError> {
        let keys = [
            self.key(&format!("log:{action}")),
            self.key(&format!("learn:{action}")),
            self.key("fleet"),
            self.key(&format!("shares:{action}")),
        ];
        let answer: (u8, u64, u64, u32, u64) = self
            .link
            .run("quota", |mut conn| async move {
                let mut invocation = script("reserve").prepare_invoke();
                for key in &keys {
                    invocation.key(key);
                }
                invocation
                    .arg(args.configured)
                    .arg(args.guard_us)
                    .arg(micros(args.max_wait))
                    .arg(micros(args.stale))
                    .arg(micros(args.expire));
                if let Some(now) = args.now_us {
                    invocation.arg(now);
                }
                invocation.invoke_async(&mut conn).await
            })
            .await?;
        Ok(match answer {
            (1, slot_us, wait_us, limit, window_us) => Decision::Admitted {
                slot_us,
                wait_us,
                limit,
                window_us,
            },
            (_, retry_after_us, _, limit, _) => Decision::Refused {
                retry_after_us,
                limit,
            },
        })
    }

    /// A second of `action` whose `refused` refusals formed a suffix: the fleet's verdict and
    /// its effective quota.
    pub async fn suffix(
        &self,
        action: &str,
        configured: u32,
        admitted: u32,
        refused: u32,
        probe: Duration,
        now_us: Option<u64>,
    ) -> Result<(Verdict, u32), StoreError> {
        let key = self.key(&format!("learn:{action}"));
        let (verdict, n, from): (u8, u32, u32) = self
            .link
            .run("quota", |mut conn| async move {
                let mut invocation = script("evidence").key(&key);
                invocation
                    .arg(configured)
                    .arg(micros(probe))
                    .arg(super::learn::PERSISTENCE_US)
                    .arg(super::learn::DECREASE_EVERY_US)
                    .arg(refused)
                    .arg(admitted);
                if let Some(now) = now_us {
                    invocation.arg(now);
                }
                invocation.invoke_async(&mut conn).await
            })
            .await?;
        let verdict = match verdict {
            0 => Verdict::Noted,
            1 => Verdict::Lowered { from, to: n },
            _ => Verdict::AlreadyLowered,
        };
        Ok((verdict, n))
    }

    /// Announces this replica; returns how many replicas are live and per action (in
    /// `beat.actions` order) this replica's share and the fleet's effective quota.
    pub async fn heartbeat(&self, beat: &Beat<'_>) -> Result<(u32, Vec<(u32, u32)>), StoreError> {
        let mut keys = vec![self.key("fleet")];
        for (action, _, _) in beat.actions {
            keys.push(self.key(&format!("shares:{action}")));
            keys.push(self.key(&format!("learn:{action}")));
        }
        let flat: Vec<u32> = self
            .link
            .run("heartbeat", |mut conn| async move {
                let mut invocation = script("heartbeat").prepare_invoke();
                for key in &keys {
                    invocation.key(key);
                }
                invocation
                    .arg(beat.id)
                    .arg(beat.guard_us)
                    .arg(beat.rtt_lo_us)
                    .arg(if beat.fallback_recent { 1 } else { 0 })
                    .arg(micros(beat.stale))
                    .arg(micros(beat.expire))
                    .arg(micros(beat.hold))
                    .arg(micros(beat.probe))
                    .arg(beat.expected_replicas)
                    .arg(beat.now_us.map(|n| n.to_string()).unwrap_or_default());
                for (_, configured, held) in beat.actions {
                    invocation.arg(*configured).arg(*held);
                }
                invocation.invoke_async(&mut conn).await
            })
            .await?;
        let live = flat.first().copied().unwrap_or(0);
        let per_action = flat[1.min(flat.len())..]
            .chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| (c[0], c[1]))
            .collect();
        Ok((live, per_action))
    }

    /// Removes this replica and its shares (a graceful shutdown gives its share back at once).
    pub async fn leave(&self, id: &str, actions: &[&'static str]) -> Result<(), StoreError> {
        let mut keys = vec![self.key("fleet")];
        keys.extend(actions.iter().map(|a| self.key(&format!("shares:{a}"))));
        let id = id.to_owned();
        self.link
            .run("heartbeat", |mut conn| async move {
                let mut invocation = script("leave").prepare_invoke();
                for key in &keys {
                    invocation.key(key);
                }
                invocation.arg(&id);
                invocation.invoke_async::<i64>(&mut conn).await
            })
            .await
            .map(|_| ())
    }
}
