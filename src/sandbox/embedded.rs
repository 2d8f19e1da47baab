//! The simulator started beside the gateway (`partner-gateway serve --sandbox`): its settings from
//! `[sandbox]`, a development API key with every scope, and the banner that tells a developer how
//! to use both.

use std::net::SocketAddr;

use tokio::net::TcpListener;

use super::{Sandbox, SandboxConfig};
use crate::auth::api_key;
use crate::clock::SharedClock;
use crate::config::{ApiKeySettings, Credentials, Settings};
use crate::domain::Scope;

/// The simulator's settings, from `[sandbox]`, accepting `credentials`.
pub fn config(settings: &Settings, credentials: &Credentials, clock: SharedClock) -> SandboxConfig {
    let mut config = SandboxConfig::new(credentials.clone(), clock);
    config.latency = settings.sandbox.latency();
    config.partner_credit_cents = (settings.sandbox.partner_credit * 100.0).round() as i64;
    if settings.sandbox.lift_quotas {
        config.quotas.values_mut().for_each(|q| *q = u32::MAX);
    }
    config
}

/// A running embedded simulator and the development key that was added for it.
#[derive(Debug)]
pub struct Embedded {
    pub simulator: SocketAddr,
    dev_key: String,
}

/// Starts the simulator on a free loopback port, points `upstream.endpoint` at it, and adds a
/// development API key with every scope to `settings`, so the sandbox works out of the box.
pub async fn start(
    settings: &mut Settings,
    credentials: &Credentials,
    clock: SharedClock,
) -> std::io::Result<Embedded> {
    let key = api_key::generate();
    settings.auth.api_keys.push(ApiKeySettings {
        name: "sandbox-developer".into(),
        sha256: api_key::hash_hex(&key),
        scopes: Scope::ALL.to_vec(),
    });
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let simulator = listener.local_addr()?;
    let sandbox = Sandbox::new(config(settings, credentials, clock));
    tokio::spawn(sandbox.serve(listener, std::future::pending()));
    settings.upstream.endpoint = format!("http://{simulator}");
    Ok(Embedded {
        simulator,
        dev_key: key,
    })
}

impl Embedded {
    /// What a developer reads first: where the gateway and the simulator are, the development
    /// key (a throwaway of this process), and two calls to try.
    pub fn banner(&self, gateway_port: u16, simulator_key: &Credentials) -> String {
        let base = format!("http://127.0.0.1:{gateway_port}");
        let (sim, key) = (self.simulator, &self.dev_key);
        let (id_var, key_var) = (crate::env::SECRET_ID, crate::env::SECRET_KEY);
        let (sdk_id, sdk_key) = (
            &simulator_key.secret_id,
            secrecy::ExposeSecret::expose_secret(&simulator_key.secret_key),
        );
        format!(
            "\npartner-gateway is running in SANDBOX mode: calls go to a local simulator, not Tencent Cloud.\n\
             \n  gateway     {base}   (API docs: {base}/docs)\n  simulator   http://{sim}   (stats: http://{sim}/_sandbox/stats)\n\
             \nDevelopment API key (all scopes, valid until this process stops):\n  export KEY={key}\n\
             \nTry:\n  curl -i -X POST {base}/customers/invitations -H \"Authorization: Bearer $KEY\" -H 'content-type: application/json' -d '{{\"email\":\"new.customer@example.com\"}}'\n  \
             curl -i -X POST {base}/customers/800000232018/credit -H \"Authorization: Bearer $KEY\" -H 'Idempotency-Key: first-top-up' -H 'content-type: application/json' -d '{{\"amount\":100.5,\"remark\":\"first top-up\"}}'\n\
             \nA Tencent Cloud SDK calls the simulator (endpoint {sim}, http) with its key:\n  {id_var}={sdk_id}\n  {key_var}={sdk_key}\n\
             \nStop with Ctrl-C.\n"
        )
    }
}
