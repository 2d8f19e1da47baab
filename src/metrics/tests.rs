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
