//! Readiness: the checks `/readyz` reports, shared by the parts of the gateway that can fail them.
//!
//! Missing credentials are not a readiness state: the gateway refuses to start without them.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// What `/readyz` answers from. Each check is `Ok` or a short reason.
#[derive(Debug, Default)]
pub struct Health {
    /// Set once the server is accepting requests; until then readiness reports "starting".
    started: AtomicBool,
    shutting_down: AtomicBool,
    /// The last `AuthFailure*` code Tencent answered, until a call succeeds again.
    upstream_auth: Mutex<Option<String>>,
    store: Mutex<StoreState>,
}

/// The shared store as readiness sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StoreState {
    /// In-process store: nothing to reach.
    #[default]
    Local,
    /// Redis has not answered yet since the start: not ready.
    Connecting,
    Up,
    /// Redis answered before but not now: still ready, degraded (local quota share, keyed credit
    /// calls refused).
    Down,
}

/// A readiness answer: `ready` is true when every check is `"ok"`.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Readiness {
    #[schema(example = "ready")]
    pub status: &'static str,
    /// Each check and its state: `ok` or why it fails.
    pub checks: BTreeMap<&'static str, String>,
    /// What works in a reduced way without making the gateway unready (e.g. Redis lost).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub degraded: BTreeMap<&'static str, String>,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.status == "ready"
    }
}

impl Health {
    pub fn set_started(&self) {
        self.started.store(true, Ordering::SeqCst);
    }

    pub fn set_shutting_down(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    /// Tencent rejected the gateway's credentials.
    pub fn report_auth_failure(&self, code: &str) {
        *self.upstream_auth.lock().unwrap_or_else(|e| e.into_inner()) = Some(code.to_owned());
    }

    /// Tencent accepted the credentials (any answer that is not `AuthFailure*`).
    pub fn report_auth_ok(&self) {
        let mut state = self.upstream_auth.lock().unwrap_or_else(|e| e.into_inner());
        if state.is_some() {
            tracing::info!("Tencent accepts the gateway's credentials again");
            *state = None;
        }
    }

    pub fn report_store(&self, state: StoreState) {
        *self.store.lock().unwrap_or_else(|e| e.into_inner()) = state;
    }

    pub fn store_state(&self) -> StoreState {
        *self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn upstream_auth_failed(&self) -> bool {
        self.upstream_auth
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    pub fn readiness(&self) -> Readiness {
        let mut checks = BTreeMap::new();
        let started = self.started.load(Ordering::SeqCst);
        checks.insert(
            "startup",
            if started {
                "ok".into()
            } else {
                "starting".into()
            },
        );
        let shutting_down = self.shutting_down.load(Ordering::SeqCst);
        checks.insert(
            "shutdown",
            if shutting_down {
                "shutting down".into()
            } else {
                "ok".into()
            },
        );
        let auth = self
            .upstream_auth
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        checks.insert(
            "upstream_auth",
            auth.map(|code| format!("Tencent rejected the credentials: {code}"))
                .unwrap_or_else(|| "ok".into()),
        );
        let mut degraded = BTreeMap::new();
        match self.store_state() {
            StoreState::Local => {}
            StoreState::Up => {
                checks.insert("store", "ok".into());
            }
            StoreState::Connecting => {
                checks.insert("store", "connecting to Redis".into());
            }
            StoreState::Down => {
                checks.insert("store", "ok".into());
                degraded.insert(
                    "store",
                    "Redis unreachable: quota at this replica's share, keyed credit calls refused, invitations use local cooldowns".into(),
                );
            }
        }
        let ready = checks.values().all(|v| v == "ok");
        Readiness {
            status: if ready { "ready" } else { "not ready" },
            checks,
            degraded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_follows_the_lifecycle() {
        let health = Health::default();
        let r = health.readiness();
        assert!(!r.is_ready());
        assert_eq!(r.checks["startup"], "starting");
        health.set_started();
        assert!(health.readiness().is_ready());
        health.report_auth_failure("AuthFailure.SecretIdNotFound");
        let r = health.readiness();
        assert!(!r.is_ready());
        assert!(r.checks["upstream_auth"].contains("AuthFailure.SecretIdNotFound"));
        health.report_auth_ok();
        assert!(health.readiness().is_ready());
        health.report_store(StoreState::Connecting);
        assert_eq!(health.readiness().checks["store"], "connecting to Redis");
        assert!(!health.readiness().is_ready());
        health.report_store(StoreState::Up);
        assert!(health.readiness().is_ready());
        health.report_store(StoreState::Down);
        let r = health.readiness();
        assert!(
            r.is_ready(),
            "losing Redis degrades, it does not stop the gateway"
        );
        assert!(r.degraded["store"].contains("Redis unreachable"));
        health.set_shutting_down();
        assert_eq!(health.readiness().checks["shutdown"], "shutting down");
        assert!(!health.readiness().is_ready());
    }
}
