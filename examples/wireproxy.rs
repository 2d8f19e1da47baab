//! The wire-conditions proxy of `partner_gateway::sandbox::wire` as a program, for the quota
//! precision benchmark (`bench/precision.sh`): TLS in front of a plain-HTTP simulator, then a
//! proxy that delays new connections, adds per-request jitter and drops idle connections.
//!
//! `wireproxy TARGET_PORT LISTEN_PORT NEW_CONNECTION_MAX_MS JITTER_MAX_MS IDLE_DROP_MS CERT KEY`

use std::time::Duration;

use partner_gateway::sandbox::wire::{Conditions, WireProxy, tls_front};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 8 {
        eprintln!(
            "usage: wireproxy TARGET_PORT LISTEN_PORT NEW_CONNECTION_MAX_MS JITTER_MAX_MS IDLE_DROP_MS CERT KEY"
        );
        std::process::exit(2);
    }
    let number = |i: usize| -> u64 { args[i].parse().expect("a number") };
    let target = format!("127.0.0.1:{}", number(1))
        .parse()
        .expect("an address");
    let cert = std::fs::read(&args[6])?;
    let key = std::fs::read(&args[7])?;
    let (tls, _front) = tls_front(target, &cert, &key).await?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", number(2) as u16)).await?;
    let conditions = Conditions {
        new_connection: (Duration::ZERO, Duration::from_millis(number(3))),
        jitter: (Duration::ZERO, Duration::from_millis(number(4))),
        idle_drop: Some(Duration::from_millis(number(5))).filter(|d| !d.is_zero()),
    };
    let _proxy = WireProxy::serve(listener, tls, conditions)?;
    std::future::pending::<()>().await;
    Ok(())
}
