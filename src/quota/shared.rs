//! The quota in Redis, shared by every replica: the reservation log, the learned quota, and the
//! fleet's heartbeats and shares.
//!
//! [`RESERVE`] is [`super::reservations::ReservationLog::reserve`] transcribed into one Lua script, so
//! reading the log, choosing the slot and recording it are one atomic step for the whole fleet,
//! on one clock (Redis's `TIME`). In the same step it reads the action's learned quota
//! ([`super::learn`], kept fleet-wide by [`EVIDENCE`] and the heartbeats) and takes off the shares
//! of replicas that may be forwarding on their own ([`super::fleet`]), each judged by the timing
//! it announced itself (so replicas configured differently during a rolling change still agree).
//! Its window is one second plus the largest guard of the replicas with calls of this action that
//! may still arrive (each reservation records its replica's guard and shortest round trip in the
//! action's `active` hash until its slot's window has passed), plus the spread of their shortest
//! round trips, so a replica closer to Tencent cannot overtake one further away; never more than
//! one second plus the ceiling of the guard. An idle replica, or one not yet measured, widens
//! nobody's window until it has calls of its own.
//! `shared_script_matches_the_pure_log` (in the Redis tests) runs random arrival patterns through
//! the script and the pure log and requires the same answers.
//!
//! **A Redis that lost its data** (a restart without persistence, a flush, a failover to a replica
//! that had not received the keys) has forgotten the slots it granted and the shares it set aside.
//! Every script checks the fleet's *epoch*: an id created with the fleet's state, which each
//! replica remembers from its answers. A replica that names an epoch Redis no longer has proves
//! the loss; the scripts then start a new epoch and grant no slot for `lease + max_wait + window`:
//! long enough for every forgotten slot to pass and for every replica still cut off (which may
//! forward on its share until its lease ends) to stop and its last calls to stop counting. That
//! is the price of a Redis without persistence: with the defaults, about 33 s without calls.
//! Not detected: a failover that kept the epoch but lost the last few slots (their calls may be
//! granted again), and a replica that starts, and reaches the emptied Redis, before any replica
//! that knew the old epoch does (its first grants may meet forgotten slots).
//!
//! Every key of the quota carries one hash tag (`{PREFIXquota}`), so each script touches a single
//! slot and the gateway runs on Redis Cluster as on a single primary. The log of an action is a
//! list of slot instants (µs since the Unix epoch), kept while they can still delay anyone, that
//! expires once it can no longer delay anyone; the fleet hash holds one short entry per live
//! replica.
//!
//! The scripts themselves are in `lua/`, one file each, included here as text.

use std::sync::Arc;
use std::time::Duration;

use redis::Script;

use super::learn::Verdict;
use crate::redis_link::{LinkError, RedisLink};

/// Prepended to [`RESERVE`] and [`HEARTBEAT`]: the fleet's epoch (see the module docs). `known`
/// is the epoch the caller last saw (0: none), `blackout` µs. Returns the epoch id and the instant
/// before which no slot may be granted.
pub const EPOCH: &str = include_str!("lua/epoch.lua");

/// Prepended to every script: `clock_us(override)`, Redis's `TIME` in µs unless a test passes
/// its own "now"; `numbers(from, to)`, a run of arguments as numbers.
pub const PRELUDE: &str = include_str!("lua/prelude.lua");

/// KEYS: log, learn, fleet, shares, active, epoch. ARGV: configured limit, own guard µs, max
/// wait µs, earliest µs after now, replica id, own shortest round trip µs (0: not measured),
/// known epoch, blackout µs, guard ceiling µs, and (tests only) a fixed "now" in µs instead of
/// Redis's `TIME`. Returns `{1, slot, wait, limit, window, epoch}` or
/// `{0, retry_after, 0, limit, window, epoch}`.
/// Integers up to 2^53 are exact in Lua's doubles; Unix µs are below 2^51.
pub const RESERVE: &str = include_str!("lua/reserve.lua");
/// [`super::learn::Learned::suffix`] transcribed. KEYS: learn. ARGV: configured, probe µs,
/// persistence µs, decrease-every µs, refusals in the suffix, calls admitted before it, and
/// (tests only) "now". Returns
/// `{verdict, n, from}`: 0 noted, 1 lowered, 2 already lowered.
pub const EVIDENCE: &str = include_str!("lua/evidence.lua");

/// One replica's heartbeat. KEYS: fleet, epoch, then per action its shares and learn keys.
/// ARGV: id, µs since this replica last forwarded on its share (empty: not within its reach),
/// stale µs, expiry µs, hold µs, probe µs, expected replicas, "now" (tests only, else empty),
/// not-after (Redis µs; 0: none), known epoch, blackout µs, reach µs (max wait + largest window),
/// sequence number, then per action its configured limit and the share this replica holds. A
/// heartbeat that arrives after its not-after, or after a later one of the same replica, is
/// refused unprocessed: `{0, now}`. Otherwise `{1, now, epoch, live replicas, the fleet's largest
/// reach}`, then per action `{share, n}`, flattened.
///
/// A fleet entry is `beat,hold,stale,expire,reach,seq` (µs but the last) under `fleet:v2`: the
/// keys carry the version, so replicas of an older release, whose entries read differently, keep
/// to their own fleet hash instead of misreading these.
pub const HEARTBEAT: &str = include_str!("lua/heartbeat.lua");

/// A replica leaving on purpose. KEYS: fleet, then every action's shares. ARGV: id. A replica
/// that forwarded on its share recently (its hold is still running) stays until its entry expires,
/// so the fleet keeps that share aside as long as those calls may count.
pub const LEAVE: &str = include_str!("lua/leave.lua");

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
pub struct ReserveArgs<'a> {
    pub configured: u32,
    /// This replica's guard for the action (its learned slack included).
    pub guard_us: u64,
    /// This replica's shortest round trip for the action, once measured.
    pub rtt_lo_us: Option<u64>,
    pub max_wait: Duration,
    /// The slot may not be sooner than this after now (the caller's connection is not ready yet).
    pub earliest: Duration,
    pub id: &'a str,
    /// The epoch this replica last saw (0: none yet).
    pub epoch: u64,
    /// How long a new epoch grants nothing after a loss of Redis's data.
    pub blackout: Duration,
    /// `quotas.guard_max_ms`: the widest window is one second plus this.
    pub guard_cap: Duration,
    /// Pins Redis's clock (tests only).
    pub now_us: Option<u64>,
}

/// One heartbeat.
#[derive(Debug, Clone)]
pub struct Beat<'a> {
    pub id: &'a str,
    /// How long ago this replica last forwarded on its share, if within its reach: Redis keeps
    /// the share aside until that grant can no longer count.
    pub fallback_age: Option<Duration>,
    pub stale: Duration,
    pub expire: Duration,
    pub hold: Duration,
    pub probe: Duration,
    pub expected_replicas: u32,
    /// Redis must refuse the heartbeat unprocessed past this instant of its clock (µs), so a
    /// heartbeat delayed in the network cannot make the replica look present after it gave up.
    pub not_after_us: Option<u64>,
    pub epoch: u64,
    pub blackout: Duration,
    /// This replica's `max_wait + 1 s + guard ceiling`: how long its grants can count.
    pub reach: Duration,
    /// Grows with every heartbeat of this replica: Redis refuses one older than the last it
    /// processed (a heartbeat delayed in the network).
    pub seq: u64,
    /// Per action: name, configured limit, share held.
    pub actions: &'a [(&'static str, u32, u32)],
    pub now_us: Option<u64>,
}

/// What Redis did with a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BeatOutcome {
    Processed(BeatAnswer),
    /// Refused unprocessed (past its not-after, or older than one already processed); Redis's
    /// clock then (µs).
    Refused {
        redis_now_us: u64,
    },
}

/// What a processed heartbeat answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeatAnswer {
    /// Redis's clock when it processed the heartbeat (µs).
    pub redis_now_us: u64,
    pub epoch: u64,
    pub live: u32,
    /// The largest reach any live replica announced.
    pub fleet_reach: Duration,
    /// Per action (in `Beat::actions` order): this replica's share and the fleet's quota.
    pub per_action: Vec<(u32, u32)>,
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
        "reserve" => (0, format!("{PRELUDE}{EPOCH}{RESERVE}")),
        "evidence" => (1, format!("{PRELUDE}{EVIDENCE}")),
        "heartbeat" => (2, format!("{PRELUDE}{EPOCH}{HEARTBEAT}")),
        _ => (3, format!("{PRELUDE}{LEAVE}")),
    };
    SCRIPTS[i].get_or_init(|| Script::new(&text))
}

/// `which` script with `keys`, ready for its arguments.
fn invoke<'a>(which: &'static str, keys: &[String]) -> redis::ScriptInvocation<'a> {
    let mut invocation = script(which).prepare_invoke();
    for key in keys {
        invocation.key(key);
    }
    invocation
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

    /// Whether the link to Redis is up (commands fail fast while it is not).
    pub fn is_up(&self) -> bool {
        self.link.is_up()
    }

    /// Asks the shared log for a slot at most `max_wait` away. Also returns the fleet's epoch.
    pub async fn reserve(
        &self,
        action: &str,
        args: ReserveArgs<'_>,
    ) -> Result<(Decision, u64), LinkError> {
        let keys = [
            self.key(&format!("log:{action}")),
            self.key(&format!("learn:{action}")),
            self.key("fleet:v2"),
            self.key(&format!("shares:v2:{action}")),
            self.key(&format!("active:{action}")),
            self.key("epoch"),
        ];
        let answer: (u8, u64, u64, u32, u64, u64) = self
            .link
            .run("quota", |mut conn| async move {
                let mut invocation = invoke("reserve", &keys);
                invocation
                    .arg(args.configured)
                    .arg(args.guard_us)
                    .arg(micros(args.max_wait))
                    .arg(micros(args.earliest))
                    .arg(args.id)
                    .arg(args.rtt_lo_us.unwrap_or(0))
                    .arg(args.epoch)
                    .arg(micros(args.blackout))
                    .arg(micros(args.guard_cap));
                if let Some(now) = args.now_us {
                    invocation.arg(now);
                }
                invocation.invoke_async(&mut conn).await
            })
            .await?;
        let decision = match answer {
            (1, slot_us, wait_us, limit, window_us, _) => Decision::Admitted {
                slot_us,
                wait_us,
                limit,
                window_us,
            },
            (_, retry_after_us, _, limit, _, _) => Decision::Refused {
                retry_after_us,
                limit,
            },
        };
        Ok((decision, answer.5))
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
    ) -> Result<(Verdict, u32), LinkError> {
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

    /// Announces this replica.
    pub async fn heartbeat(&self, beat: &Beat<'_>) -> Result<BeatOutcome, LinkError> {
        let mut keys = vec![self.key("fleet:v2"), self.key("epoch")];
        for (action, _, _) in beat.actions {
            keys.push(self.key(&format!("shares:v2:{action}")));
            keys.push(self.key(&format!("learn:{action}")));
        }
        let flat: Vec<u64> = self
            .link
            .run("heartbeat", |mut conn| async move {
                let mut invocation = invoke("heartbeat", &keys);
                invocation
                    .arg(beat.id)
                    .arg(
                        beat.fallback_age
                            .map(|age| micros(age).to_string())
                            .unwrap_or_default(),
                    )
                    .arg(micros(beat.stale))
                    .arg(micros(beat.expire))
                    .arg(micros(beat.hold))
                    .arg(micros(beat.probe))
                    .arg(beat.expected_replicas)
                    .arg(beat.now_us.map(|n| n.to_string()).unwrap_or_default())
                    .arg(beat.not_after_us.unwrap_or(0))
                    .arg(beat.epoch)
                    .arg(micros(beat.blackout))
                    .arg(micros(beat.reach))
                    .arg(beat.seq);
                for (_, configured, held) in beat.actions {
                    invocation.arg(*configured).arg(*held);
                }
                invocation.invoke_async(&mut conn).await
            })
            .await?;
        if flat.first() != Some(&1) || flat.len() < 5 {
            return Ok(BeatOutcome::Refused {
                redis_now_us: flat.get(1).copied().unwrap_or(0),
            });
        }
        let per_action = flat[5..]
            .chunks(2)
            .filter(|c| c.len() == 2)
            .map(|c| (c[0] as u32, c[1] as u32))
            .collect();
        Ok(BeatOutcome::Processed(BeatAnswer {
            redis_now_us: flat[1],
            epoch: flat[2],
            live: flat[3] as u32,
            fleet_reach: Duration::from_micros(flat[4]),
            per_action,
        }))
    }

    /// Removes this replica and its shares (a graceful shutdown gives its share back at once),
    /// unless it forwarded on its share recently (see [`LEAVE`]).
    pub async fn leave(&self, id: &str, actions: &[&'static str]) -> Result<(), LinkError> {
        let mut keys = vec![self.key("fleet:v2")];
        keys.extend(actions.iter().map(|a| self.key(&format!("shares:v2:{a}"))));
        let id = id.to_owned();
        self.link
            .run("heartbeat", |mut conn| async move {
                let mut invocation = invoke("leave", &keys);
                invocation.arg(&id);
                invocation.invoke_async::<i64>(&mut conn).await
            })
            .await
            .map(|_| ())
    }
}
