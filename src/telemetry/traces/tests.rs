use super::*;

#[test]
fn only_the_gateways_spans_and_its_warnings_are_exported() {
    use tracing::callsite::Identifier;
    use tracing::field::FieldSet;
    use tracing::metadata::Kind;
    struct Site;
    impl tracing::Callsite for Site {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &Metadata<'_> {
            unreachable!()
        }
    }
    static SITE: Site = Site;
    let meta = |target: &'static str, level: Level, kind: Kind| {
        Metadata::new(
            "m",
            target,
            level,
            None,
            None,
            None,
            FieldSet::new(&[], Identifier(&SITE)),
            kind,
        )
    };
    let ours = "partner_gateway::store";
    assert!(exported(&meta(ours, Level::DEBUG, Kind::SPAN)));
    assert!(exported(&meta(ours, Level::INFO, Kind::SPAN)));
    assert!(!exported(&meta(ours, Level::TRACE, Kind::SPAN)));
    assert!(exported(&meta(ours, Level::WARN, Kind::EVENT)));
    assert!(
        !exported(&meta(ours, Level::INFO, Kind::EVENT)),
        "access log lines stay in the log"
    );
    assert!(
        !exported(&meta("audit", Level::INFO, Kind::EVENT)),
        "audit records stay in the log"
    );
    assert!(!exported(&meta("hyper::client", Level::DEBUG, Kind::SPAN)));
    assert!(
        !exported(&meta(UNTRACED_TARGET, Level::INFO, Kind::SPAN)),
        "probes are not traced"
    );
    assert!(!exported(&meta(
        "reqwest::connect",
        Level::WARN,
        Kind::EVENT
    )));
}

#[test]
fn a_repeated_or_oversized_traceparent_is_none_and_an_oversized_tracestate_is_dropped() {
    use opentelemetry::propagation::Extractor;
    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let headers = |pairs: &[(&'static str, String)]| {
        let mut map = http::HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, http::HeaderValue::from_str(value).unwrap());
        }
        map
    };
    let one = headers(&[("traceparent", PARENT.into()), ("tracestate", "a=1".into())]);
    assert_eq!(Incoming(&one).get("traceparent"), Some(PARENT));
    assert_eq!(Incoming(&one).get("tracestate"), Some("a=1"));
    assert_eq!(
        Incoming(&one).get("authorization"),
        None,
        "only the trace headers"
    );
    let twice = headers(&[
        ("traceparent", PARENT.into()),
        ("traceparent", PARENT.into()),
    ]);
    assert_eq!(Incoming(&twice).get("traceparent"), None);
    let long = headers(&[
        ("traceparent", format!("{PARENT}-{}", "0".repeat(200))),
        ("tracestate", format!("a={}", "x".repeat(600))),
    ]);
    assert_eq!(Incoming(&long).get("traceparent"), None);
    assert_eq!(Incoming(&long).get("tracestate"), None);
}
