use super::*;

#[test]
fn renders_histograms_with_buckets_and_labels() {
    let m = Metrics::new();
    m.http_request(
        "/customers/invitations",
        "POST",
        201,
        Duration::from_millis(3),
    );
    m.quota_rejected("AllocateCustomerCredit");
    let text = m.render();
    assert!(text.contains("http_server_request_duration_seconds_bucket{http_route=\"/customers/invitations\",http_request_method=\"POST\",http_response_status_code=\"201\",le=\"0.005\"} 1"), "{text}");
    assert!(
        text.contains(
            "gateway_quota_rejections_total{tencent_action=\"AllocateCustomerCredit\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("gateway_build_info{version="), "{text}");
    assert!(
        text.contains("# HELP http_server_request_duration_seconds"),
        "{text}"
    );
}

#[test]
fn separate_instances_do_not_share_numbers() {
    let a = Metrics::new();
    let b = Metrics::new();
    a.quota_rejected("X");
    assert!(!b.render().contains("gateway_quota_rejections_total{"));
}

/// The metric names in the README's metrics table (first column, backquoted).
fn readme_metric_names() -> std::collections::BTreeSet<String> {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("| metric | labels |")
        .expect("the README has a metrics table");
    readme[start..]
        .lines()
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .flat_map(|line| {
            let first = line.split('|').nth(1).unwrap_or("");
            first
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn catalog_matches_the_readme() {
    let catalog: std::collections::BTreeSet<String> =
        CATALOG.iter().map(|m| m.name.to_owned()).collect();
    assert_eq!(catalog.len(), CATALOG.len(), "a metric is listed twice");
    let readme = readme_metric_names();
    let undocumented: Vec<_> = catalog.difference(&readme).collect();
    let unknown: Vec<_> = readme.difference(&catalog).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "README metrics table and metrics::CATALOG differ: not in the README {undocumented:?}, not registered {unknown:?}"
    );
}

/// Every name the recording functions use is a constant of `catalog.rs`; every constant there
/// is in the catalog, so nothing is recorded without a type and help text.
#[test]
fn every_metric_name_is_in_the_catalog() {
    let source = include_str!("catalog.rs");
    let names: Vec<&str> = source
        .lines()
        .filter_map(|line| line.strip_prefix("pub const "))
        .filter_map(|rest| rest.split('"').nth(1))
        .collect();
    assert!(names.len() >= 20, "found {names:?}");
    for name in &names {
        assert!(
            CATALOG.iter().any(|m| m.name == *name),
            "{name} is a metric name without a CATALOG entry"
        );
    }
    assert_eq!(names.len(), CATALOG.len());
    let record = include_str!("record.rs");
    assert!(
        !record.contains("from_parts(\"") && !record.contains("from_name(\""),
        "record.rs names a metric by a literal instead of a catalog constant"
    );
}

#[test]
fn described_metrics_render_their_help() {
    let m = Metrics::new();
    m.marker_mismatch();
    m.jwks(Some(3.0), 1);
    let text = m.render();
    for name in [MARKER_MISMATCHES, JWKS_AGE, JWKS_FAILURES] {
        assert!(text.contains(&format!("# HELP {name} ")), "{name}: {text}");
    }
}
