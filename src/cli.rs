//! The `partner-gateway` commands: `serve`, `sandbox`, `check-config`, `healthcheck`, `openapi`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;
use tokio::net::TcpListener;

use crate::app::{self, Shutdown};
use crate::auth::{Scope, api_key};
use crate::clock::{self};
use crate::config::{self, Credentials, Settings, Sources};
use crate::sandbox::{Sandbox, embedded};
use crate::{env, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "partner-gateway",
    version,
    about = "A signed, quota-exact REST gateway to the Tencent Cloud International partner API"
)]
pub struct Cli {
    /// A TOML configuration file; repeat to layer several (later wins). Default: config/default.toml.
    #[arg(long = "config", value_name = "FILE", global = true)]
    config: Vec<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        /// Talk to an embedded simulator of Tencent Cloud instead of the real API (no account needed).
        #[arg(long)]
        sandbox: bool,
    },
    /// Run the Tencent Cloud simulator alone (for SDK clients and experiments).
    Sandbox {
        /// Address to listen on (default: sandbox.listen).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Validate the configuration and print the effective values, secrets redacted.
    CheckConfig,
    /// Exit 0 when the local gateway's /readyz answers 200 (for container health checks).
    Healthcheck {
        /// The URL to probe (default: /readyz on server.listen, via loopback).
        #[arg(long)]
        url: Option<String>,
    },
    /// Print the OpenAPI document.
    Openapi,
    /// Generate a new API key and print it with its configuration entry.
    HashKey {
        /// The caller's name, as logged and audited.
        #[arg(long, default_value = "my-service")]
        name: String,
        /// A scope to grant (repeat for several); all scopes when none is given.
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
    },
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let sources = Sources {
        files: cli.config.clone(),
        env: None,
    };
    match &cli.command {
        Command::Openapi => {
            println!(
                "{}",
                app::openapi()
                    .to_pretty_json()
                    .expect("the document serializes")
            );
            return ExitCode::SUCCESS;
        }
        Command::HashKey { name, scopes } => return hash_key(name, scopes),
        _ => {}
    }
    let settings = match Settings::load(&sources) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("partner-gateway: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    runtime.block_on(async move {
        match cli.command {
            Command::Serve { sandbox } => serve(settings, sandbox).await,
            Command::Sandbox { listen } => sandbox_alone(settings, listen).await,
            Command::CheckConfig => check_config(&settings).await,
            Command::Healthcheck { url } => healthcheck(&settings, url).await,
            Command::Openapi | Command::HashKey { .. } => unreachable!("handled above"),
        }
    })
}

fn hash_key(name: &str, scopes: &[String]) -> ExitCode {
    let scopes: Vec<&str> = if scopes.is_empty() {
        Scope::ALL.iter().map(|s| s.as_str()).collect()
    } else {
        scopes.iter().map(String::as_str).collect()
    };
    if let Some(bad) = scopes.iter().find(|s| Scope::parse(s).is_none()) {
        return fail(format!(
            "`{bad}` is not a scope (invitations:send, credit:allocate, customers:read)"
        ));
    }
    let key = api_key::generate();
    println!(
        "# The new API key for `{name}`. It is shown only now: hand it to the caller's secret store."
    );
    println!("# {key}");
    println!("# Add this entry to the gateway's configuration (it holds only the key's SHA-256):");
    println!("[[auth.api_keys]]");
    println!("name = \"{name}\"");
    println!("sha256 = \"{}\"", api_key::hash_hex(&key));
    // A TOML array of strings: scope names (checked above) are plain ASCII, so Rust's quoting is
    // TOML's.
    println!("scopes = {scopes:?}");
    ExitCode::SUCCESS
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("partner-gateway: {message}");
    ExitCode::FAILURE
}

fn no_credentials(why: &str) -> String {
    format!(
        "{why} (or run `partner-gateway serve --sandbox` to try it without a Tencent Cloud account)"
    )
}

async fn serve(mut settings: Settings, sandbox: bool) -> ExitCode {
    let lookup = crate::credentials::refresh::Lookup::process();
    let (origin, issued) = if sandbox {
        let issued = crate::credentials::Issued {
            credentials: Credentials::generate_sandbox(),
            expires: None,
            source: crate::credentials::Source::Env,
        };
        (None, issued)
    } else {
        match crate::credentials::discover(&settings.credentials, lookup.0.as_ref()).await {
            Ok((origin, issued)) => (Some(origin), issued),
            Err(why) => return fail(no_credentials(&why)),
        }
    };
    let credentials = issued.credentials.clone();
    let traces = match telemetry::wanted(&telemetry::process_env) {
        Ok(None) => None,
        Ok(Some(wanted)) => match telemetry::Traces::start(wanted) {
            Ok(traces) => Some(traces),
            Err(e) => return fail(e),
        },
        Err(e) => return fail(e),
    };
    let log = telemetry::init_stdout(&settings.log, settings.log.format_for(sandbox), traces);
    let clock = clock::system();
    let embedded = if sandbox {
        match embedded::start(&mut settings, &credentials, clock.clone()).await {
            Ok(embedded) => Some(embedded),
            Err(e) => return fail(format!("cannot start the sandbox: {e}")),
        }
    } else {
        None
    };
    let listener = match TcpListener::bind(&settings.server.listen).await {
        Ok(l) => l,
        Err(e) => {
            return fail(format!(
                "cannot listen on {} (server.listen): {e}",
                settings.server.listen
            ));
        }
    };
    let local = listener.local_addr().expect("bound");
    // As the source issued them, expiry included: the refresher times its first read by it.
    let cell = crate::credentials::CredentialCell::new(issued);
    let app = match app::build_with(settings, cell, clock) {
        Ok(app) => match origin {
            Some(origin) => app.refreshing(origin, lookup),
            None => app,
        },
        Err(e) => return fail(e),
    };
    let traces = log.traces().map_or_else(
        || "off".to_owned(),
        |t| format!("{} ({})", t.endpoint().1, t.endpoint().0),
    );
    tracing::info!(listen = %local, sandbox, secret_id = %config::redact_id(&credentials.secret_id), traces, "partner-gateway started");
    if let Some(embedded) = embedded {
        // Throwaway keys of a local sandbox: printing them is how a developer gets to use them.
        // Through the log's own writer, so the banner never interleaves with log lines.
        log.print(&embedded.banner(local.port(), &credentials));
    }
    match app.run_until_stopped(listener, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

async fn sandbox_alone(settings: Settings, listen: Option<String>) -> ExitCode {
    let log = telemetry::init_stdout(&settings.log, settings.log.format_for(true), None);
    // The key the environment gives (its `*_FILE` variants too), else a throwaway one.
    let lookup = crate::credentials::refresh::Lookup::process();
    let (credentials, generated) = match crate::credentials::Origin::Env
        .fetch(lookup.0.as_ref())
        .await
    {
        Ok(issued) => (issued.credentials, false),
        Err(_) => (Credentials::generate_sandbox(), true),
    };
    let addr = listen.unwrap_or_else(|| settings.sandbox.listen.clone());
    let listener = match TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => return fail(format!("cannot listen on {addr}: {e}")),
    };
    let local = listener.local_addr().expect("bound");
    let simulator = Sandbox::new(embedded::config(&settings, &credentials, clock::system()));
    if generated {
        // Throwaway credentials of a local simulator: an SDK client needs them to call it.
        log.print(&format!(
            "Tencent Cloud simulator on http://{local}\n  {}={}\n  {}={}\n(set both variables before starting to choose your own)\n",
            env::SECRET_ID,
            credentials.secret_id,
            env::SECRET_KEY,
            credentials.secret_key.expose_secret()
        ));
    } else {
        log.print(&format!(
            "Tencent Cloud simulator on http://{local}, accepting the key in {}\n",
            env::SECRET_ID
        ));
    }
    let stop = async {
        shutdown_signal().await;
    };
    match simulator.serve(listener, stop).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

async fn check_config(settings: &Settings) -> ExitCode {
    println!(
        "# effective configuration (defaults < files < {}__* variables)",
        env::CONFIG_PREFIX
    );
    println!(
        "{}",
        toml::to_string_pretty(settings).expect("settings serialize")
    );
    match telemetry::wanted(&telemetry::process_env) {
        Ok(None) => println!(
            "# traces: off (set {} to export them)\n",
            env::OTEL_ENDPOINT
        ),
        Ok(Some(wanted)) => println!(
            "# traces: exported to {} ({}), {:?}; headers, if any, not shown\n",
            wanted.shown.1, wanted.shown.0, wanted.protocol
        ),
        Err(why) => return fail(why),
    }
    println!(
        "# credentials (credentials.source = {})",
        serde_json::to_value(settings.credentials.source).expect("a unit variant serializes")
    );
    let lookup = crate::credentials::refresh::Lookup::process();
    let found = crate::credentials::discover(&settings.credentials, lookup.0.as_ref()).await;
    match found {
        Ok((origin, issued)) => {
            println!(
                "# source = {} ({})",
                origin.source().label(),
                origin.describe()
            );
            println!(
                "# secret_id = {}",
                config::redact_id(&issued.credentials.secret_id)
            );
            println!("# secret_key = [set, redacted]");
            println!(
                "# token = {}",
                if issued.credentials.token.is_some() {
                    "[set, redacted]"
                } else {
                    "[not set]"
                }
            );
            if let Some(expires) = issued.expires {
                println!("# expires = {expires} (Unix time; refreshed ahead of it)");
            }
            ExitCode::SUCCESS
        }
        Err(why) => fail(no_credentials(&why)),
    }
}

async fn healthcheck(settings: &Settings, url: Option<String>) -> ExitCode {
    let url = url.unwrap_or_else(|| {
        let addr: std::net::SocketAddr = settings.server.listen.parse().expect("validated");
        let host = match addr.ip() {
            ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
            ip if ip.is_unspecified() => "[::1]".to_owned(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        format!("http://{host}:{}/readyz", addr.port())
    });
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .expect("client builds");
    match client.get(&url).send().await {
        Ok(r) if r.status() == reqwest::StatusCode::OK => ExitCode::SUCCESS,
        Ok(r) => fail(format!("{url} answered {}", r.status())),
        Err(e) => fail(format!("{url}: {e}")),
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() -> Shutdown {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => Shutdown::Interrupt,
            _ = term.recv() => Shutdown::Terminate,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        Shutdown::Interrupt
    }
}
