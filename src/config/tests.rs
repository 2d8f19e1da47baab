use std::collections::HashMap;
use std::path::PathBuf;

use super::*;

fn load_env(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    Settings::load(&Sources {
        files: vec![],
        env: Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
    })
}

#[test]
fn the_redis_backend_needs_a_url_but_not_the_replica_count() {
    let err = load_env(&[("GATEWAY__STORE__BACKEND", "redis")]).unwrap_err();
    assert!(err.to_string().contains("store.redis_url"), "{err}");
    load_env(&[
        ("GATEWAY__STORE__BACKEND", "redis"),
        ("REDIS_URL", "redis://127.0.0.1:6379/"),
    ])
    .expect("the fleet's size comes from heartbeats");
    let err = load_env(&[
        ("GATEWAY__STORE__BACKEND", "redis"),
        ("GATEWAY__STORE__REDIS_URL", "http://127.0.0.1:6379/"),
        ("GATEWAY__STORE__EXPECTED_REPLICAS", "3"),
    ])
    .unwrap_err();
    assert!(err.to_string().contains("redis://"), "{err}");
    let ok = load_env(&[
        ("GATEWAY__STORE__BACKEND", "redis"),
        ("REDIS_URL", "redis://app:s3cret-pw@redis.internal:6379/2"),
        ("GATEWAY__STORE__EXPECTED_REPLICAS", "3"),
    ])
    .unwrap();
    assert_eq!(ok.store.backend, StoreBackend::Redis);
    // The password never shows: not in Debug, not in check-config's output.
    let shown = toml::to_string(&ok).unwrap();
    assert!(
        shown.contains("redis://app:***@redis.internal:6379/2"),
        "{shown}"
    );
    assert!(!shown.contains("s3cret-pw") && !format!("{ok:?}").contains("s3cret-pw"));
    // A URL in the settings wins over REDIS_URL.
    let file_wins = load_env(&[
        ("GATEWAY__STORE__REDIS_URL", "redis://primary:6379/"),
        ("REDIS_URL", "redis://other:6379/"),
    ])
    .unwrap();
    assert_eq!(
        file_wins.store.redis_url_redacted().as_deref(),
        Some("redis://primary:6379/")
    );
}

#[test]
fn defaults_match_the_design() {
    let s = load_env(&[]).unwrap();
    assert_eq!(s.server.listen, "0.0.0.0:8080");
    assert_eq!(s.server.max_body_bytes, 16 * 1024);
    assert_eq!(
        s.upstream.endpoint,
        "https://intlpartnersmgt.intl.tencentcloudapi.com"
    );
    assert_eq!(s.quotas.invitations_per_second, 20);
    assert_eq!(s.quotas.credit_per_second, 5);
    assert_eq!(s.region(), None);
}

#[test]
fn environment_overrides_with_double_underscores() {
    let s = load_env(&[
        ("GATEWAY__UPSTREAM__ENDPOINT", "http://127.0.0.1:9"),
        ("GATEWAY__QUOTAS__CREDIT_PER_SECOND", "3"),
        ("GATEWAY__UPSTREAM__REGION", "ap-singapore"),
    ])
    .unwrap();
    assert_eq!(s.upstream.endpoint, "http://127.0.0.1:9");
    assert_eq!(s.quotas.credit_per_second, 3);
    assert_eq!(s.region(), Some("ap-singapore"));
}

#[test]
fn cors_origins_come_as_a_comma_separated_variable() {
    let s = load_env(&[(
        "GATEWAY__SERVER__CORS_ALLOWED_ORIGINS",
        "https://a.example.com,http://localhost:3000",
    )])
    .unwrap();
    assert_eq!(
        s.server.cors_allowed_origins,
        ["https://a.example.com", "http://localhost:3000"]
    );
    for bad in [
        "https://a.example.com/",
        "*",
        "a.example.com",
        "https://a.example.com/path",
    ] {
        let err = load_env(&[("GATEWAY__SERVER__CORS_ALLOWED_ORIGINS", bad)]).unwrap_err();
        assert!(
            err.to_string().contains("server.cors_allowed_origins"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn invalid_values_name_their_key() {
    for (var, value, key) in [
        ("GATEWAY__SERVER__LISTEN", "nowhere", "server.listen"),
        (
            "GATEWAY__UPSTREAM__ENDPOINT",
            "ftp://x",
            "upstream.endpoint",
        ),
        (
            "GATEWAY__UPSTREAM__ENDPOINT",
            "https://h/path",
            "upstream.endpoint",
        ),
        (
            "GATEWAY__QUOTAS__CREDIT_PER_SECOND",
            "0",
            "quotas.credit_per_second",
        ),
        ("GATEWAY__CREDIT__MAX_AMOUNT", "0.001", "credit.max_amount"),
        (
            "GATEWAY__SERVER__MAX_BODY_BYTES",
            "1",
            "server.max_body_bytes",
        ),
    ] {
        let err = load_env(&[(var, value)]).unwrap_err().to_string();
        assert!(err.contains(key), "{var}={value}: {err}");
    }
}

#[test]
fn unknown_keys_and_wrong_types_are_rejected() {
    let err = load_env(&[("GATEWAY__QUOTAS__CREDIT_PER_SECCOND", "3")]).unwrap_err();
    assert!(err.to_string().contains("credit_per_seccond"), "{err}");
    let err = load_env(&[("GATEWAY__QUOTAS__CREDIT_PER_SECOND", "many")]).unwrap_err();
    assert!(err.to_string().contains("credit_per_second"), "{err}");
}

#[test]
fn the_shipped_default_file_loads_and_equals_the_built_in_defaults() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_FILE);
    let from_file = Settings::load(&Sources {
        files: vec![path],
        env: Some(HashMap::new()),
    })
    .unwrap();
    let built_in = Settings::default();
    assert_eq!(
        toml::to_string(&from_file).unwrap(),
        toml::to_string(&built_in).unwrap()
    );
}

#[test]
fn credentials_debug_is_redacted() {
    let c = Credentials {
        secret_id: "AKIDabcdefghijklmnop".into(),
        secret_key: secrecy::SecretString::from("super-secret-key"),
        token: Some(secrecy::SecretString::from("tok-123")),
    };
    let dbg = format!("{c:?}");
    assert!(
        !dbg.contains("super-secret-key")
            && !dbg.contains("tok-123")
            && !dbg.contains("AKIDabcdef"),
        "{dbg}"
    );
    // Enough of the id to tell two keys apart, and no more.
    assert!(dbg.contains("AKID…mnop"), "{dbg}");
    assert_eq!(crate::config::redact_id("AKIDshort"), "AKID…");
}

#[test]
fn the_auto_log_format_is_pretty_in_sandbox_mode_only_and_a_chosen_one_stays() {
    let auto = load_env(&[]).unwrap().log;
    assert_eq!(auto.format, LogFormat::Auto);
    assert_eq!(auto.format_for(true), LogFormat::Pretty);
    assert_eq!(auto.format_for(false), LogFormat::Json);
    let json = load_env(&[("GATEWAY__LOG__FORMAT", "json")]).unwrap().log;
    assert_eq!(json.format_for(true), LogFormat::Json);
    let pretty = load_env(&[("GATEWAY__LOG__FORMAT", "pretty")]).unwrap().log;
    assert_eq!(pretty.format_for(false), LogFormat::Pretty);
}
