//! Credentials the way Tencent's SDKs find them: each source alone, the chain's order, a
//! rotated profile file picked up without a restart, temporary credentials refreshed ahead of
//! their expiry, and a failing source made visible.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use partner_gateway::config::{CredentialSettings, CredentialSourceSetting};
use partner_gateway::credentials::refresh::Lookup;
use partner_gateway::credentials::remote::Oidc;
use partner_gateway::credentials::{Origin, Source, discover};
use partner_gateway::sandbox::{SandboxKey, sts};
use secrecy::{ExposeSecret, SecretString};

use crate::helpers::*;
use crate::scale_out::{metric, wait_readiness};

/// An environment of these variables only.
fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Sync + use<> {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

fn settings(source: CredentialSourceSetting, metadata: &str) -> CredentialSettings {
    CredentialSettings {
        source,
        metadata_endpoint: metadata.to_owned(),
        ..CredentialSettings::default()
    }
}

/// A directory of this test's own.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "pg-credentials-{name}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn profile(secret_id: &str, secret_key: &str) -> String {
    format!(
        "[other]\nsecret_id = AKIDnotthisone\nsecret_key = not-this-one\n\n[default]\nsecret_id = {secret_id}\nsecret_key = {secret_key}\n"
    )
}

/// Replaces a file at once, as a Kubernetes Secret volume or a careful operator does.
fn rewrite(path: &std::path::Path, text: &str) {
    let next = path.with_extension("next");
    std::fs::write(&next, text).unwrap();
    std::fs::rename(&next, path).unwrap();
}

impl TestApp {
    /// Makes the simulator's metadata service answer or fail, through its admin route.
    async fn metadata_service_up(&self, up: bool) {
        let reply = self
            .client
            .post(format!("http://{}/_sandbox/metadata", self.sandbox_addr))
            .header("content-type", "application/json")
            .body(serde_json::json!({ "up": up }).to_string())
            .send()
            .await
            .unwrap();
        assert!(reply.status().is_success());
    }
}

/// Nothing listens there: a metadata service that is not there.
const NO_METADATA: &str = "http://127.0.0.1:9";

#[tokio::test]
async fn each_source_alone_and_the_chain_in_the_sdks_order() {
    use CredentialSourceSetting as S;
    let dir = scratch("sources");
    let home = dir.join("home").display().to_string();

    // The environment, with the Node SDK's name for the token.
    let env = [
        ("TENCENTCLOUD_SECRET_ID", "AKIDfromenv"),
        ("TENCENTCLOUD_SECRET_KEY", "env-secret-key"),
        ("TENCENTCLOUD_SESSION_TOKEN", "env-token"),
        ("HOME", home.as_str()),
    ];
    let (origin, issued) = discover(&settings(S::Env, NO_METADATA), &vars(&env))
        .await
        .unwrap();
    assert!(matches!(origin, Origin::Env));
    assert_eq!(issued.credentials.secret_id, "AKIDfromenv");
    assert_eq!(
        issued.credentials.token.as_ref().unwrap().expose_secret(),
        "env-token"
    );

    // The `*_FILE` variants: files holding each value, as a mounted Secret gives them.
    std::fs::write(dir.join("id"), "AKIDfromfile\n").unwrap();
    std::fs::write(dir.join("key"), "file-secret-key\n").unwrap();
    let id_file = dir.join("id").display().to_string();
    let key_file = dir.join("key").display().to_string();
    let files = [
        ("TENCENTCLOUD_SECRET_ID_FILE", id_file.as_str()),
        ("TENCENTCLOUD_SECRET_KEY_FILE", key_file.as_str()),
    ];
    let (_, issued) = discover(&settings(S::Env, NO_METADATA), &vars(&files))
        .await
        .unwrap();
    assert_eq!(issued.credentials.secret_id, "AKIDfromfile");
    assert_eq!(
        issued.credentials.secret_key.expose_secret(),
        "file-secret-key"
    );

    // The profile file: the one the variable names, else the home directory's.
    let named = dir.join("named-credentials");
    std::fs::write(&named, profile("AKIDnamedprofile", "named-key")).unwrap();
    let named_path = named.display().to_string();
    let file_only = [
        ("TENCENTCLOUD_CREDENTIALS_FILE", named_path.as_str()),
        ("HOME", home.as_str()),
    ];
    let (origin, issued) = discover(&settings(S::File, NO_METADATA), &vars(&file_only))
        .await
        .unwrap();
    assert!(matches!(origin, Origin::File(ref p) if *p == named));
    assert_eq!(
        issued.credentials.secret_id, "AKIDnamedprofile",
        "[default], not [other]"
    );
    std::fs::create_dir_all(dir.join("home/.tencentcloud")).unwrap();
    std::fs::write(
        dir.join("home/.tencentcloud/credentials"),
        profile("AKIDhomeprofile", "home-key"),
    )
    .unwrap();
    let home_only = [("HOME", home.as_str())];
    let (_, issued) = discover(&settings(S::File, NO_METADATA), &vars(&home_only))
        .await
        .unwrap();
    assert_eq!(issued.credentials.secret_id, "AKIDhomeprofile");

    // The CVM role, from the simulator's metadata service.
    let upstream = spawn_upstream(&Options::default()).await;
    let metadata = format!("http://{}", upstream.addr);
    let (origin, issued) = discover(&settings(S::CvmRole, &metadata), &vars(&[]))
        .await
        .unwrap();
    assert_eq!(origin.source(), Source::CvmRole);
    assert!(issued.credentials.token.is_some());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(issued.expires.unwrap() > now);

    // The chain: the environment, then the profile file, then the CVM role.
    let chain = |pairs: &[(&str, &str)]| {
        let lookup = vars(pairs);
        let settings = settings(S::Chain, &metadata);
        async move { discover(&settings, &lookup).await }
    };
    let everything = [env.as_slice(), file_only.as_slice()].concat();
    let (origin, _) = chain(&everything).await.unwrap();
    assert_eq!(origin.source(), Source::Env);
    let (origin, _) = chain(&file_only).await.unwrap();
    assert_eq!(origin.source(), Source::File);
    let nowhere = dir.join("nowhere").display().to_string();
    let (origin, _) = chain(&[("HOME", nowhere.as_str())]).await.unwrap();
    assert_eq!(origin.source(), Source::CvmRole);
    // Nothing anywhere: the error says what each source lacked.
    let none = discover(
        &settings(S::Chain, NO_METADATA),
        &vars(&[
            ("HOME", nowhere.as_str()),
            ("TENCENTCLOUD_SECRET_ID", "AKIDonly"),
        ]),
    )
    .await
    .unwrap_err();
    assert!(
        none.contains("TENCENTCLOUD_SECRET_KEY")
            && !none.contains("TENCENTCLOUD_SECRET_ID not")
            && none.contains("file:")
            && none.contains("cvm_role:")
            && none.contains("tke_oidc: TKE_REGION, TKE_PROVIDER_ID"),
        "{none}"
    );
    // A profile file the variable names is the only one looked at: missing is an error, even
    // with a good file in the home directory (as in the Go SDK).
    let missing = dir.join("missing").display().to_string();
    let error = chain(&[
        ("TENCENTCLOUD_CREDENTIALS_FILE", missing.as_str()),
        ("HOME", home.as_str()),
    ])
    .await
    .unwrap_err();
    assert!(error.contains("missing"), "{error}");
    // A profile file that is there but wrong is an error, not a reason to try the next source.
    let broken = dir.join("broken");
    std::fs::write(&broken, "[default]\nsecret_id = AKIDnokey\n").unwrap();
    let broken_path = broken.display().to_string();
    let error = chain(&[("TENCENTCLOUD_CREDENTIALS_FILE", broken_path.as_str())])
        .await
        .unwrap_err();
    assert!(error.contains("lacks secret_id or secret_key"), "{error}");
}

/// Options whose gateway reads GET /partner/credit straight from the simulator, fast.
fn partner_reads(mut options: Options) -> Options {
    options.settings.reads.cache_ms = 0;
    options.settings.quotas.queries_per_second = 1000;
    options.sandbox_quotas = vec![("QueryPartnerCredit", 1000)];
    options
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_profile_file_is_used_within_its_watch_interval_and_no_request_fails() {
    let dir = scratch("rotation");
    let path = dir.join("credentials");
    let rotated = SandboxKey {
        secret_id: format!("AKIDrotated{}", uuid::Uuid::new_v4().simple()),
        secret_key: SecretString::from(format!("rotated-key-{}", uuid::Uuid::new_v4())),
        token: None,
    };
    register_secret(rotated.secret_key.expose_secret());
    let mut options = partner_reads(Options::default());
    // Both keys work during the switch, as in a real rotation.
    options.sandbox_extra_keys = vec![rotated.clone()];
    options.settings.credentials.watch_ms = 100;
    let first = path.clone();
    options.credential_origin = Some(Arc::new(move |upstream: &Upstream| {
        std::fs::write(&first, profile(&upstream.secret_id, &upstream.secret_key)).unwrap();
        (Origin::File(first.clone()), Lookup(Arc::new(|_| None)))
    }));
    let app = spawn_app_with(options).await;
    let mut rewritten_at = None;
    let mut switched_after = None;
    for i in 0..60 {
        let reply = app.read("/partner/credit").await;
        assert_eq!(reply.status, 200, "call {i}: {}", reply.text);
        if i == 10 {
            rewrite(
                &path,
                &profile(&rotated.secret_id, rotated.secret_key.expose_secret()),
            );
            rewritten_at = Some(Instant::now());
        }
        let by_key = app.sandbox.stats().by_secret_id;
        if switched_after.is_none() && by_key.contains_key(&rotated.secret_id) {
            switched_after = rewritten_at.map(|t| t.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let switched_after = switched_after.expect("the rotated key was never used");
    // One watch interval (100 ms) and the call that notices, with slack for a loaded host.
    assert!(
        switched_after < Duration::from_millis(900),
        "switched {switched_after:?} after the rewrite"
    );
    let text = app.get("/metrics").await.text;
    assert_eq!(
        metric(&text, "gateway_credential_source{source=\"file\"}"),
        1.0
    );
}

/// A gateway on the simulator's CVM role, whose credentials last `ttl_s` seconds and are
/// replaced 1 s ahead of their expiry.
fn cvm_role_options(ttl_s: u64) -> Options {
    let mut options = partner_reads(Options::default());
    options.sandbox_temporary_ttl = Some(Duration::from_secs(ttl_s));
    options.settings.credentials.refresh_before_s = 1;
    options.credential_origin = Some(Arc::new(|upstream: &Upstream| {
        (
            Origin::CvmRole(format!("http://{}", upstream.addr)),
            Lookup(Arc::new(|_| None)),
        )
    }));
    options
}

/// 100 sequential calls, 60 ms apart, all served, while the credentials (3 s long) are replaced
/// at least twice.
async fn hundred_calls_across_three_second_credentials(app: &TestApp) {
    let started = Instant::now();
    for i in 0..100 {
        let reply = app.read("/partner/credit").await;
        assert_eq!(reply.status, 200, "call {i}: {}", reply.text);
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    let temporary = app
        .sandbox
        .stats()
        .by_secret_id
        .keys()
        .filter(|id| id.starts_with("AKIDtmp"))
        .count();
    assert!(
        temporary >= 3,
        "{temporary} temporary keys over {:?} of 3-s credentials",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cvm_role_credentials_expiring_every_three_seconds_are_refreshed_ahead_across_100_calls() {
    let options = cvm_role_options(3);
    let app = spawn_app_with(options).await;
    hundred_calls_across_three_second_credentials(&app).await;
    let text = app.get("/metrics").await.text;
    assert_eq!(
        metric(&text, "gateway_credential_source{source=\"cvm_role\"}"),
        1.0
    );
    assert!(metric(&text, "gateway_credential_expiry_timestamp_seconds") > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_metadata_service_keeps_the_credentials_until_they_expire_then_readiness_says_why()
 {
    let options = cvm_role_options(3);
    let app = spawn_app_with(options).await;
    wait_readiness(&app, "ready", |status, _| status == 200).await;
    app.metadata_service_up(false).await;
    // Still served with the credentials in use.
    assert_eq!(app.read("/partner/credit").await.status, 200);
    wait_readiness(&app, "unready for expired credentials", |status, body| {
        status == 503
            && body["checks"]["credentials"]
                .as_str()
                .is_some_and(|why| why.contains("cvm_role credentials expired"))
    })
    .await;
    let text = app.get("/metrics").await.text;
    assert!(
        metric(
            &text,
            "gateway_credential_refresh_failures_total{source=\"cvm_role\"}"
        ) >= 1.0
    );
    // A call now signs with the expired credentials: Tencent refuses it, plainly.
    let refused = app.read("/partner/credit").await;
    assert_eq!(refused.status, 502, "{}", refused.text);
    assert_eq!(refused.json()["upstreamCode"], "AuthFailure.TokenFailure");
    // The service is back: new credentials, ready again (the refusal of the old ones does not
    // hold the replica out until the 30-s re-check), served.
    app.metadata_service_up(true).await;
    wait_readiness(&app, "ready again", |status, body| {
        status == 200 && body["checks"]["credentials"] == "ok"
    })
    .await;
    assert_eq!(app.read("/partner/credit").await.status, 200);
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A web-identity token as the kubelet projects it: a JWT from `issuer`, expiring at `exp`.
/// The simulator checks issuer and expiry, not the signature.
fn web_identity_token(issuer: &str, exp: i64) -> String {
    use base64::Engine;
    let part = |value: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
    };
    format!(
        "{}.{}.c2lnbmF0dXJl",
        part(serde_json::json!({ "alg": "RS256", "typ": "JWT" })),
        part(serde_json::json!({
            "iss": issuer,
            "sub": "system:serviceaccount:partners:partner-gateway",
            "aud": "sts.cloud.tencent.com",
            "iat": unix_now(),
            "exp": exp,
        }))
    )
}

/// An environment of these variables only, their values owned (a pod's, from [`tke_env`]).
fn owned_vars(pairs: &[(&str, String)]) -> impl Fn(&str) -> Option<String> + Sync + use<> {
    let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    vars(&borrowed)
}

/// A token file in a directory of its own, holding a token from the simulator's issuer that
/// expires at `exp`.
fn token_file(name: &str, exp: i64) -> PathBuf {
    let path = scratch(name).join("token");
    std::fs::write(&path, web_identity_token(sts::DEFAULT_ISSUER, exp)).unwrap();
    path
}

/// The pod environment TKE workload identity gives, with its token file.
fn tke_env(token_file: &str) -> Vec<(&'static str, String)> {
    vec![
        ("TKE_REGION", "ap-singapore".to_owned()),
        ("TKE_PROVIDER_ID", sts::PROVIDER_ID.to_owned()),
        ("TKE_WEB_IDENTITY_TOKEN_FILE", token_file.to_owned()),
        ("TKE_ROLE_ARN", sts::ROLE_ARN.to_owned()),
    ]
}

#[tokio::test]
async fn tke_workload_identity_alone_last_in_the_chain_and_its_failures_are_clear() {
    use CredentialSourceSetting as S;
    let token_file = token_file("tke", unix_now() + 600);
    let dir = token_file.parent().unwrap();
    let upstream = spawn_upstream(&Options::default()).await;
    let sts_endpoint = format!("http://{}", upstream.addr);
    let with = |source, pairs: &[(&str, String)]| {
        let lookup = owned_vars(pairs);
        let settings = CredentialSettings {
            source,
            metadata_endpoint: NO_METADATA.to_owned(),
            sts_endpoint: sts_endpoint.clone(),
            ..CredentialSettings::default()
        };
        async move { discover(&settings, &lookup).await }
    };
    let nowhere = dir.join("nowhere").display().to_string();
    let mut pod = tke_env(&token_file.display().to_string());
    pod.push(("HOME", nowhere.clone()));

    // Alone: temporary credentials with a token, expiring.
    let (origin, issued) = with(S::TkeOidc, &pod).await.unwrap();
    assert_eq!(origin.source(), Source::TkeOidc);
    assert!(issued.credentials.secret_id.starts_with("AKIDtmp"));
    assert!(issued.credentials.token.is_some());
    assert!(issued.expires.unwrap() > unix_now());
    assert!(
        origin.describe().contains(sts::ROLE_ARN),
        "{}",
        origin.describe()
    );
    // Last in the chain: no environment keys, no profile file, no metadata service.
    let (origin, _) = with(S::Chain, &pod).await.unwrap();
    assert_eq!(origin.source(), Source::TkeOidc);
    // The environment still wins over it.
    let mut both = pod.clone();
    both.push(("TENCENTCLOUD_SECRET_ID", "AKIDfromenv".into()));
    both.push(("TENCENTCLOUD_SECRET_KEY", "env-secret-key".into()));
    let (origin, _) = with(S::Chain, &both).await.unwrap();
    assert_eq!(origin.source(), Source::Env);

    // Alone without its variables: each missing one named.
    let error = with(S::TkeOidc, &pod[..2]).await.unwrap_err();
    assert!(
        error.contains("TKE_WEB_IDENTITY_TOKEN_FILE, TKE_ROLE_ARN not set"),
        "{error}"
    );
    // An expired web-identity token: a clear error, found before STS is asked, and no panic
    // (tencentcloud-sdk-go panicked here).
    std::fs::write(
        &token_file,
        web_identity_token(sts::DEFAULT_ISSUER, unix_now() - 30),
    )
    .unwrap();
    for source in [S::TkeOidc, S::Chain] {
        let error = with(source, &pod).await.unwrap_err();
        assert!(
            error.contains("web-identity token") && error.contains("expired"),
            "{error}"
        );
    }
    // Not a JWT at all.
    std::fs::write(&token_file, "not-a-token\n").unwrap();
    let error = with(S::TkeOidc, &pod).await.unwrap_err();
    assert!(error.contains("does not hold a JWT"), "{error}");
    // A token STS refuses (another issuer): STS's code and message, as it said them.
    std::fs::write(
        &token_file,
        web_identity_token("https://someone-else.invalid", unix_now() + 600),
    )
    .unwrap();
    let error = with(S::TkeOidc, &pod).await.unwrap_err();
    assert!(
        error
            .contains("STS refused the web-identity token: InvalidParameter.WebIdentityTokenError"),
        "{error}"
    );
    // A role that is not there.
    let mut wrong_role = pod.clone();
    wrong_role[3].1 = "qcs::cam::uin/100000000001:roleName/nobody".into();
    std::fs::write(
        &token_file,
        web_identity_token(sts::DEFAULT_ISSUER, unix_now() + 600),
    )
    .unwrap();
    let error = with(S::TkeOidc, &wrong_role).await.unwrap_err();
    assert!(error.contains("ResourceNotFound.RoleNotExist"), "{error}");
    // STS that is not there.
    let error = discover(
        &CredentialSettings {
            source: S::TkeOidc,
            sts_endpoint: NO_METADATA.to_owned(),
            ..CredentialSettings::default()
        },
        &owned_vars(&pod),
    )
    .await
    .unwrap_err();
    assert!(error.contains("did not answer"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tke_oidc_credentials_expiring_every_three_seconds_are_refreshed_ahead_and_the_rotated_token_file_is_read_again()
 {
    // The token at start expires in 4 s: every exchange after that works only if the file the
    // kubelet rotates (below, at once) is read again.
    let token_file = token_file("tke-refresh", unix_now() + 4);
    let mut options = partner_reads(Options::default());
    options.sandbox_temporary_ttl = Some(Duration::from_secs(3));
    options.settings.credentials.refresh_before_s = 1;
    let file = token_file.clone();
    options.credential_origin = Some(Arc::new(move |upstream: &Upstream| {
        (
            Origin::TkeOidc(Oidc {
                region: "ap-singapore".into(),
                provider_id: sts::PROVIDER_ID.into(),
                token_file: file.clone(),
                role_arn: sts::ROLE_ARN.into(),
                sts_endpoint: format!("http://{}", upstream.addr),
            }),
            Lookup(Arc::new(|_| None)),
        )
    }));
    let app = spawn_app_with(options).await;
    rewrite(
        &token_file,
        &web_identity_token(sts::DEFAULT_ISSUER, unix_now() + 3600),
    );
    hundred_calls_across_three_second_credentials(&app).await;
    let text = app.get("/metrics").await.text;
    assert_eq!(
        metric(&text, "gateway_credential_source{source=\"tke_oidc\"}"),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "gateway_credential_refresh_failures_total{source=\"tke_oidc\"}"
        ),
        0.0
    );
}

/// A CVM-role gateway whose refresh fails then recovers, and a TKE OIDC exchange; returns the
/// simulator, so the secret scan can ask it for every temporary key it issued, and the
/// web-identity token.
pub async fn temporary_credentials_exercised() -> (partner_gateway::sandbox::Sandbox, String) {
    let options = cvm_role_options(2);
    let app = spawn_app_with(options).await;
    assert_eq!(app.read("/partner/credit").await.status, 200);
    app.metadata_service_up(false).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = app.get("/metrics").await.text;
        let failures = metric(
            &text,
            "gateway_credential_refresh_failures_total{source=\"cvm_role\"}",
        );
        if failures >= 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "no refresh ever failed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.metadata_service_up(true).await;
    wait_readiness(&app, "ready", |status, _| status == 200).await;
    assert_eq!(app.read("/partner/credit").await.status, 200);

    let token_file = token_file("tke-logs", unix_now() + 600);
    let pod = tke_env(&token_file.display().to_string());
    let settings = CredentialSettings {
        source: CredentialSourceSetting::TkeOidc,
        sts_endpoint: format!("http://{}", app.sandbox_addr),
        ..CredentialSettings::default()
    };
    let (origin, issued) = discover(&settings, &owned_vars(&pod)).await.unwrap();
    tracing::info!(origin = %origin.describe(), credentials = ?issued, "found for the log scan");
    let token = std::fs::read_to_string(&token_file).unwrap();
    (app.sandbox.clone(), token)
}

#[tokio::test]
async fn a_secret_swapped_between_the_reads_of_its_two_files_never_pairs_old_and_new() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = scratch("swap");
    for (name, text) in [
        ("old-id", "AKIDoldpair"),
        ("new-id", "AKIDnewpair"),
        ("new-key", "new-pair-key"),
    ] {
        std::fs::write(dir.join(name), text).unwrap();
    }
    // The kubelet swaps the volume just after the id was read: the first read of the id sees
    // the old file, every later one (and the key) the new.
    let id_reads = Arc::new(AtomicUsize::new(0));
    let (old_id, new_id, new_key) = (
        dir.join("old-id").display().to_string(),
        dir.join("new-id").display().to_string(),
        dir.join("new-key").display().to_string(),
    );
    let reads = id_reads.clone();
    let lookup = move |name: &str| match name {
        "TENCENTCLOUD_SECRET_ID_FILE" => Some(if reads.fetch_add(1, Ordering::SeqCst) == 0 {
            old_id.clone()
        } else {
            new_id.clone()
        }),
        "TENCENTCLOUD_SECRET_KEY_FILE" => Some(new_key.clone()),
        _ => None,
    };
    let (_, issued) = discover(
        &settings(CredentialSourceSetting::Env, NO_METADATA),
        &lookup,
    )
    .await
    .unwrap();
    assert_eq!(issued.credentials.secret_id, "AKIDnewpair");
    assert_eq!(
        issued.credentials.secret_key.expose_secret(),
        "new-pair-key"
    );
    assert!(
        id_reads.load(Ordering::SeqCst) >= 3,
        "the id was read again"
    );
}

#[tokio::test]
async fn a_fifo_or_a_directory_named_as_a_secret_file_is_refused_at_once_not_waited_on() {
    let dir = scratch("fifo");
    let fifo = dir.join("secret-key");
    // Opening a FIFO with no writer blocks; the gateway must look before it opens.
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    for path in [fifo.display().to_string(), dir.display().to_string()] {
        let pairs = [
            ("TENCENTCLOUD_SECRET_ID", "AKIDfifotest"),
            ("TENCENTCLOUD_SECRET_KEY_FILE", path.as_str()),
        ];
        let error = tokio::time::timeout(
            Duration::from_secs(10),
            discover(
                &settings(CredentialSourceSetting::Env, NO_METADATA),
                &vars(&pairs),
            ),
        )
        .await
        .expect("refused at once, not waited on")
        .unwrap_err();
        assert!(error.contains("is not a file"), "{error}");
    }
}
