//! The real binary: start-up checks, and a whole sandbox session whose logs must hold no secret.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_partner-gateway");

pub(crate) fn gateway() -> Command {
    let mut cmd = Command::new(BIN);
    for name in [
        "TENCENTCLOUD_SECRET_ID",
        "TENCENTCLOUD_SECRET_KEY",
        "TENCENTCLOUD_TOKEN",
        "TENCENTCLOUD_SESSION_TOKEN",
        "TENCENTCLOUD_SECRET_ID_FILE",
        "TENCENTCLOUD_SECRET_KEY_FILE",
        "TENCENTCLOUD_TOKEN_FILE",
        "TENCENTCLOUD_CREDENTIALS_FILE",
        "RUST_LOG",
    ] {
        cmd.env_remove(name);
    }
    // No trace export but what a test asks for.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("OTEL_") {
            cmd.env_remove(name);
        }
    }
    // No profile file of the machine's, and a metadata service that is not there: only what a
    // test sets is found.
    cmd.env("HOME", std::env::temp_dir().join("pg-binary-no-home"))
        .env(
            "GATEWAY__CREDENTIALS__METADATA_ENDPOINT",
            "http://127.0.0.1:9",
        )
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn serve_without_credentials_exits_non_zero_naming_them() {
    let out = gateway().args(["serve"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("TENCENTCLOUD_SECRET_ID") && stderr.contains("TENCENTCLOUD_SECRET_KEY"),
        "{stderr}"
    );

    let out = gateway()
        .args(["serve"])
        .env("TENCENTCLOUD_SECRET_ID", "AKIDonly")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("TENCENTCLOUD_SECRET_KEY") && !stderr.contains("TENCENTCLOUD_SECRET_ID"),
        "{stderr}"
    );
}

#[test]
fn serve_with_no_caller_configured_refuses_to_start() {
    let out = gateway()
        .args(["serve"])
        .env("TENCENTCLOUD_SECRET_ID", "AKIDnocaller")
        .env("TENCENTCLOUD_SECRET_KEY", "no-caller-secret")
        .env("GATEWAY__SERVER__LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("auth.api_keys") && stderr.contains("auth.disabled"),
        "{stderr}"
    );
}

#[test]
fn disabling_authentication_is_explicit_and_warned_about() {
    let port = free_port();
    let mut serve = gateway()
        .args(["serve"])
        .env("TENCENTCLOUD_SECRET_ID", "AKIDdisabled")
        .env("TENCENTCLOUD_SECRET_KEY", "disabled-secret")
        .env("GATEWAY__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("GATEWAY__AUTH__DISABLED", "true")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !gateway()
        .args([
            "healthcheck",
            "--url",
            &format!("http://127.0.0.1:{port}/readyz"),
        ])
        .status()
        .unwrap()
        .success()
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never became ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Command::new("kill")
        .args(["-INT", &serve.id().to_string()])
        .status()
        .unwrap();
    serve.wait().unwrap();
    let mut out = String::new();
    serve
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(
        out.contains("WARN") && out.contains("authentication is DISABLED"),
        "{out}"
    );
}

#[test]
fn hash_key_prints_a_key_and_its_entry() {
    let out = gateway()
        .args([
            "hash-key",
            "--name",
            "billing",
            "--scope",
            "credit:allocate",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let key = stdout
        .lines()
        .find_map(|l| l.strip_prefix("# pgw_"))
        .map(|k| format!("pgw_{k}"))
        .unwrap();
    assert!(
        stdout.contains(&format!(
            "sha256 = \"{}\"",
            partner_gateway::auth::api_key::hash_hex(&key)
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("name = \"billing\"") && stdout.contains("scopes = [\"credit:allocate\"]"),
        "{stdout}"
    );
    assert!(
        !gateway()
            .args(["hash-key", "--scope", "admin"])
            .output()
            .unwrap()
            .status
            .success()
    );
}

#[test]
fn invalid_settings_stop_the_start_naming_the_key() {
    let out = gateway()
        .args(["serve", "--sandbox"])
        .env("GATEWAY__QUOTAS__CREDIT_PER_SECOND", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("quotas.credit_per_second"));
}

#[test]
fn check_config_prints_effective_values_with_secrets_redacted() {
    let out = gateway()
        .args(["check-config"])
        .env("TENCENTCLOUD_SECRET_ID", "AKIDcheckconfig123")
        .env("TENCENTCLOUD_SECRET_KEY", "check-config-secret-key")
        .env("GATEWAY__QUOTAS__INVITATIONS_PER_SECOND", "7")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("invitations_per_second = 7"), "{stdout}");
    assert!(
        stdout.contains("# source = env (the environment)"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("check-config-secret-key") && !stdout.contains("AKIDcheckconfig123"),
        "{stdout}"
    );
}

/// Runs `sandbox` and `serve` as a user would, with real credentials in the environment, sends
/// traffic including failures, stops with SIGTERM, and checks that no output holds the secret.
#[test]
fn a_whole_session_never_logs_the_secret_key() {
    let secret = "binary-session-secret-key-6f1c";
    let api_key = "pgw_binary_session_api_key_0123456789abcdef";
    let config = std::env::temp_dir().join(format!("pg-session-{}.toml", std::process::id()));
    std::fs::write(
        &config,
        format!(
            "[[auth.api_keys]]\nname = \"session-test\"\nsha256 = \"{}\"\nscopes = [\"invitations:send\", \"credit:allocate\"]\n",
            partner_gateway::auth::api_key::hash_hex(api_key)
        ),
    )
    .unwrap();
    let sandbox_port = free_port();
    let gateway_port = free_port();
    let mut sandbox = gateway()
        .args(["sandbox", "--listen", &format!("127.0.0.1:{sandbox_port}")])
        .env("TENCENTCLOUD_SECRET_ID", "AKIDbinarysession")
        .env("TENCENTCLOUD_SECRET_KEY", secret)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut serve = gateway()
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("TENCENTCLOUD_SECRET_ID", "AKIDbinarysession")
        .env("TENCENTCLOUD_SECRET_KEY", secret)
        .env(
            "GATEWAY__UPSTREAM__ENDPOINT",
            format!("http://127.0.0.1:{sandbox_port}"),
        )
        .env(
            "GATEWAY__SERVER__LISTEN",
            format!("127.0.0.1:{gateway_port}"),
        )
        .env("GATEWAY__SERVER__SHUTDOWN_DELAY_MS", "100")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let healthcheck = || {
        gateway()
            .args([
                "healthcheck",
                "--url",
                &format!("http://127.0.0.1:{gateway_port}/readyz"),
            ])
            .status()
            .unwrap()
            .success()
    };
    let started = Instant::now();
    while !healthcheck() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "gateway never became ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let client = reqwest::blocking::Client::new();
    let post = |path: &str, body: &str| {
        client
            .post(format!("http://127.0.0.1:{gateway_port}{path}"))
            .bearer_auth(api_key)
            .header("idempotency-key", uuid::Uuid::new_v4().to_string())
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(
        post(
            "/customers/invitations",
            r#"{"email":"secret.test@example.com"}"#
        ),
        201
    );
    assert_eq!(
        post(
            "/customers/invitations",
            r#"{"email":"secret.test@example.com"}"#
        ),
        429
    );
    assert_eq!(
        post(
            "/customers/800000232018/credit",
            r#"{"amount":12.5,"remark":"binary"}"#
        ),
        200
    );
    assert_eq!(post("/customers/1/credit", r#"{"amount":1}"#), 403);
    assert_eq!(
        post("/customers/800000232018/credit", r#"{"amount":0}"#),
        422
    );

    // SIGTERM: the gateway drains and exits 0.
    Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status()
        .unwrap();
    let status = serve.wait().unwrap();
    assert!(status.success(), "gateway exit status {status}");
    sandbox.kill().unwrap();
    sandbox.wait().unwrap();

    let mut output = String::new();
    for stream in [
        serve.stdout.take().map(|s| Box::new(s) as Box<dyn Read>),
        serve.stderr.take().map(|s| Box::new(s) as Box<dyn Read>),
        sandbox.stdout.take().map(|s| Box::new(s) as Box<dyn Read>),
        sandbox.stderr.take().map(|s| Box::new(s) as Box<dyn Read>),
    ]
    .into_iter()
    .flatten()
    {
        let mut stream = stream;
        stream.read_to_string(&mut output).unwrap();
    }
    assert!(
        output.contains("request served"),
        "the gateway logged its requests:\n{output}"
    );
    assert!(
        !output.contains(secret),
        "the secret key appeared in the output:\n{output}"
    );
    assert!(
        !output.contains("secret.test@example.com"),
        "an unmasked address appeared:\n{output}"
    );
    assert!(
        output.contains("s***@example.com"),
        "the masked address is logged"
    );
}

#[test]
fn openapi_command_prints_the_document() {
    let out = gateway().args(["openapi"]).output().unwrap();
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["paths"]["/customers/invitations"]["post"].is_object());
    assert!(doc["paths"]["/customers/{uin}/credit"]["post"].is_object());
}

/// A newcomer's first run: `serve --sandbox` in a terminal, where stdout and stderr land on the
/// same screen. Its first ten lines are whole: pretty log lines (no JSON, no colour codes when
/// not a terminal) and the banner, never one spliced into the other; the banner names the
/// gateway, the simulator, the development key and the simulator's keys for SDK users.
#[test]
fn the_first_ten_lines_of_serve_sandbox_read_cleanly() {
    let out = std::env::temp_dir().join(format!("pg-first-run-{}.out", uuid::Uuid::new_v4()));
    let file = std::fs::File::create(&out).unwrap();
    // One open file for both streams, as a terminal is: writes land in the order they happen.
    let mut serve = gateway()
        .args(["serve", "--sandbox"])
        .env_remove("GATEWAY__LOG__FORMAT")
        .env(
            "GATEWAY__SERVER__LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .stdout(Stdio::from(file.try_clone().unwrap()))
        .stderr(Stdio::from(file))
        .spawn()
        .unwrap();
    let started = Instant::now();
    let text = loop {
        let text = std::fs::read_to_string(&out).unwrap();
        if text.contains("Stop with Ctrl-C.") {
            break text;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no banner yet:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    serve.kill().unwrap();
    serve.wait().unwrap();
    let _ = std::fs::remove_file(&out);

    let first: Vec<&str> = text.lines().take(10).collect();
    let shown = first.join("\n");
    let is_log_line = |line: &str| {
        line.len() > 28
            && line.as_bytes()[..4].iter().all(u8::is_ascii_digit)
            && line.as_bytes()[10] == b'T'
            && [" INFO ", " WARN ", " ERROR "]
                .iter()
                .any(|level| line.contains(level))
    };
    let banner_line = |line: &str| {
        line.is_empty()
            || line.starts_with("partner-gateway is running in SANDBOX mode")
            || line.starts_with("  ")
            || line.ends_with(':')
    };
    for line in &first {
        assert!(
            !line.contains('\u{1b}') && !line.contains("\"timestamp\""),
            "not clean: {line:?}\n{shown}"
        );
        assert!(
            is_log_line(line) || banner_line(line),
            "neither a log line nor the banner's: {line:?}\n{shown}"
        );
    }
    let whole = |prefix: &str, rest: &[&str]| {
        let line = first
            .iter()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in the first ten:\n{shown}"));
        for part in rest {
            assert!(line.contains(part), "{line:?} lacks {part:?}");
        }
    };
    whole("partner-gateway is running in SANDBOX mode", &[]);
    whole(
        "  gateway     http://127.0.0.1:",
        &["(API docs: http://127.0.0.1:"],
    );
    whole("  simulator   http://127.0.0.1:", &["/_sandbox/stats)"]);
    whole("  export KEY=pgw_", &[]);
    // The banner is whole further down too: nothing logged in its middle, and the SDK keys named.
    let banner: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("partner-gateway is running"))
        .take_while(|l| !l.starts_with("Stop with Ctrl-C."))
        .collect();
    assert!(banner.iter().all(|l| !is_log_line(l)), "{text}");
    assert!(
        banner
            .iter()
            .any(|l| l.starts_with("  TENCENTCLOUD_SECRET_ID=AKID"))
            && banner
                .iter()
                .any(|l| l.starts_with("  TENCENTCLOUD_SECRET_KEY=")),
        "{text}"
    );
}
