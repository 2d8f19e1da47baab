use super::*;
use crate::telemetry::vars as lookup;

fn endpoint_of(pairs: &[(&str, &str)]) -> Option<(&'static str, String)> {
    wanted(&lookup(pairs)).expect("valid").map(|w| w.shown)
}

#[test]
fn traces_are_off_unless_an_otlp_endpoint_is_set_and_nothing_turns_them_off() {
    assert_eq!(wanted(&lookup(&[])), Ok(None));
    assert_eq!(wanted(&lookup(&[("OTEL_SERVICE_NAME", "gw")])), Ok(None));
    assert_eq!(
        wanted(&lookup(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])),
        Ok(None)
    );
    assert_eq!(
        endpoint_of(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")]),
        Some((
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://collector:4318/v1/traces".into()
        ))
    );
    // The traces-specific variable wins.
    assert_eq!(
        endpoint_of(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "https://traces.example/v1/traces"
            ),
        ]),
        Some((
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "https://traces.example/v1/traces".into()
        ))
    );
    for off in [
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_SDK_DISABLED", "TRUE"),
        ][..],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ][..],
    ] {
        assert_eq!(wanted(&lookup(off)), Ok(None), "{off:?}");
    }
}

#[test]
fn what_the_gateway_cannot_do_is_refused_naming_the_variable() {
    let refused = |pairs: &[(&str, &str)], name: &str| {
        let error = wanted(&lookup(pairs)).expect_err("refused");
        assert!(error.contains(name), "{error}");
    };
    refused(
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ],
        "OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
    );
    refused(
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        ],
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    );
    refused(
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_TRACES_EXPORTER", "zipkin"),
        ],
        "OTEL_TRACES_EXPORTER",
    );
    refused(
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")],
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    );
    refused(
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "many"),
        ],
        "OTEL_BSP_MAX_QUEUE_SIZE",
    );
    let json = wanted(&lookup(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "HTTP/JSON"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
    ]))
    .expect("valid")
    .expect("on");
    assert_eq!(json.protocol, Protocol::HttpJson);
    assert_eq!(json.timeout, Duration::from_millis(2500));
}

#[test]
fn the_endpoint_is_shown_without_its_query() {
    assert_eq!(
        endpoint_of(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "https://collector.example:4318/otlp?api_key=s3cret"
        )]),
        Some((
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "https://collector.example:4318/otlp/v1/traces".into()
        ))
    );
    let error = wanted(&lookup(&[(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "ftp://user:hunter2@collector",
    )]))
    .expect_err("not http");
    assert!(!error.contains("hunter2"), "{error}");
}

#[test]
fn the_general_endpoint_gets_the_traces_path_and_the_traces_one_is_kept_as_given() {
    let url = |pairs: &[(&str, &str)]| wanted(&lookup(pairs)).unwrap().unwrap().url;
    assert_eq!(
        url(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")]),
        "http://c:4318/v1/traces"
    );
    assert_eq!(
        url(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/custom")]),
        "http://c:4318/custom"
    );
    // What the exporter is given keeps the query the collector may need.
    assert_eq!(
        url(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c/otlp?key=k")]),
        "https://c/otlp/v1/traces?key=k"
    );
}

#[test]
fn a_list_of_exporters_is_read_as_the_spec_lists_them_and_a_zero_timeout_is_refused() {
    let on = |pairs: &[(&str, &str)]| wanted(&lookup(pairs)).map(|w| w.is_some());
    let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318");
    assert_eq!(
        on(&[endpoint, ("OTEL_TRACES_EXPORTER", "otlp, console")]),
        Ok(true)
    );
    assert_eq!(
        on(&[endpoint, ("OTEL_TRACES_EXPORTER", "otlp,none")]),
        Ok(false)
    );
    assert!(on(&[endpoint, ("OTEL_TRACES_EXPORTER", "console")]).is_err());
    let error = on(&[endpoint, ("OTEL_EXPORTER_OTLP_TIMEOUT", "0")]).expect_err("refused");
    assert!(error.contains("OTEL_EXPORTER_OTLP_TIMEOUT"), "{error}");
}

#[test]
fn user_info_a_bad_header_list_or_compression_is_refused_without_its_value() {
    let refused = |pairs: &[(&str, &str)], name: &str| {
        let error = wanted(&lookup(pairs)).expect_err("refused");
        assert!(error.contains(name), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    };
    let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318");
    refused(
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://user:hunter2@c:4318")],
        "OTEL_EXPORTER_OTLP_HEADERS",
    );
    refused(
        &[
            endpoint,
            ("OTEL_EXPORTER_OTLP_HEADERS", "authorization hunter2"),
        ],
        "OTEL_EXPORTER_OTLP_HEADERS",
    );
    refused(
        &[
            endpoint,
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "bad key=hunter2"),
        ],
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    );
    refused(
        &[endpoint, ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd")],
        "OTEL_EXPORTER_OTLP_COMPRESSION",
    );
    let fine = wanted(&lookup(&[
        endpoint,
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "authorization=Basic aHVudGVyMg==, x-tenant=a",
        ),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
    ]));
    assert!(matches!(fine, Ok(Some(_))), "{fine:?}");
}
