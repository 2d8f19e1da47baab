//! With Redis: the heartbeat that announces this replica, learns its shares and the fleet's
//! epoch, and the goodbye at shutdown.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::time::Instant;

use super::shared::{Beat, BeatAnswer, BeatOutcome};
use super::{FleetPart, Quotas};

impl Quotas {
    /// With Redis: announces this replica every heartbeat, forever.
    pub async fn run_heartbeat(self: Arc<Self>) {
        let Some(fleet) = &self.fleet else {
            return;
        };
        let every = fleet.membership.lock().timing().heartbeat;
        loop {
            self.beat(fleet).await;
            tokio::time::sleep(every).await;
        }
    }

    async fn beat(&self, fleet: &FleetPart) {
        // While the link is down nothing is sent: a heartbeat that might arrive late must not
        // make this replica look present while it may be forwarding on its share. The prober
        // brings the link back.
        if !fleet.quotas.is_up() {
            return;
        }
        let sent = Instant::now();
        let (fallback_age, not_after_us, timing, held) = {
            let mut m = fleet.membership.lock();
            let (recent, not_after) = m.beat_started(sent);
            let held: Vec<_> = self
                .names
                .iter()
                .map(|a| (*a, self.actions[a].configured, m.share(a)))
                .collect();
            (recent, not_after, m.timing(), held)
        };
        let beat = Beat {
            id: &fleet.id,
            fallback_age,
            stale: timing.stale,
            expire: timing.expire(),
            hold: timing.reach(),
            probe: self.config.probe,
            expected_replicas: fleet.expected_replicas,
            not_after_us,
            epoch: fleet.epoch.load(Ordering::Relaxed),
            blackout: timing.blackout(),
            reach: timing.reach(),
            seq: fleet.beats.fetch_add(1, Ordering::Relaxed) + 1,
            actions: &held,
            now_us: None,
        };
        match fleet.quotas.heartbeat(&beat).await {
            Ok(BeatOutcome::Processed(answer)) => {
                let reply = Instant::now();
                let BeatAnswer {
                    redis_now_us,
                    epoch,
                    live,
                    fleet_reach,
                    per_action,
                } = answer;
                fleet.epoch.store(epoch, Ordering::Relaxed);
                self.metrics.fleet_replicas(live);
                let shares: Vec<_> = self
                    .names
                    .iter()
                    .zip(&per_action)
                    .map(|(a, &(share, n))| {
                        self.actions[a].effective.store(n, Ordering::Relaxed);
                        self.metrics.quota_share(a, share);
                        (*a, share)
                    })
                    .collect();
                fleet.membership.lock().beat_answered(
                    sent,
                    reply,
                    redis_now_us,
                    fleet_reach,
                    shares,
                );
            }
            Ok(BeatOutcome::Refused { redis_now_us }) => fleet
                .membership
                .lock()
                .beat_refused(redis_now_us, Instant::now()),
            Err(_) => fleet.membership.lock().beat_failed(sent),
        }
    }

    /// With Redis: gives this replica's shares back (graceful shutdown).
    pub async fn leave(&self) {
        if let Some(fleet) = &self.fleet {
            let _ = fleet.quotas.leave(&fleet.id, &self.names).await;
        }
    }
}
