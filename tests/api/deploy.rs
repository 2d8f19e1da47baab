//! What ships in `deploy/` names only what the gateway exports: every metric an alert rule or a
//! dashboard panel queries is in `metrics::CATALOG` (a histogram's `_bucket`, `_count`, `_sum`
//! series included), and every label it selects or groups by is in `metrics::LABELS` (plus
//! Prometheus's own `le`, `job`, `instance`). promtool checks that they parse
//! (deploy/prometheus/test.sh); this checks that they mean something.

use std::collections::BTreeSet;
use std::path::Path;

use partner_gateway::metrics::{CATALOG, Kind, LABELS};

const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
];
const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
];
const PROMETHEUS_LABELS: &[&str] = &["le", "job", "instance"];

/// The metric names and label names one PromQL expression uses.
#[derive(Debug, Default, PartialEq)]
struct Uses {
    metrics: BTreeSet<String>,
    labels: BTreeSet<String>,
}

fn scan(expr: &str, uses: &mut Uses) {
    let chars: Vec<char> = expr.chars().collect();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let (mut i, mut braces, mut grouping) = (0, false, false);
    let mut previous_word = String::new();
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' => {
                // A string: skip it, escapes included.
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                continue;
            }
            '[' => {
                // A range or subquery duration.
                while i < chars.len() && chars[i] != ']' {
                    i += 1;
                }
            }
            '{' => braces = true,
            '}' => braces = false,
            ')' if grouping => grouping = false,
            '(' if [
                "by",
                "without",
                "on",
                "ignoring",
                "group_left",
                "group_right",
            ]
            .contains(&previous_word.as_str()) =>
            {
                grouping = true
            }
            c if ident(c) && !c.is_ascii_digit() => {
                let start = i;
                while i < chars.len() && ident(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let next = chars[i..].iter().find(|c| !c.is_whitespace());
                if braces || grouping {
                    uses.labels.insert(word.clone());
                } else if next != Some(&'(')
                    && !AGGREGATIONS.contains(&word.as_str())
                    && !KEYWORDS.contains(&word.as_str())
                {
                    uses.metrics.insert(word.clone());
                }
                previous_word = word;
                continue;
            }
            c if c.is_ascii_digit() => {
                // A number, with any exponent or duration unit glued to it.
                while i < chars.len() && (ident(chars[i]) || chars[i] == '.') {
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        if !c.is_whitespace() {
            previous_word.clear();
        }
        i += 1;
    }
}

/// The `expr:` values of a Prometheus rule file, block scalars included.
fn rule_expressions(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut found = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let Some(value) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let value = value.trim();
        if value != "|" && value != ">" {
            found.push(value.to_owned());
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let block: Vec<&str> = lines[n + 1..]
            .iter()
            .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
            .copied()
            .collect();
        found.push(block.join("\n"));
    }
    found
}

fn dashboard_expressions(json: &str) -> Vec<String> {
    let dashboard: serde_json::Value = serde_json::from_str(json).expect("the dashboard is JSON");
    let mut found = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("every target has an expr");
            found.push(expr.replace("$__rate_interval", "1m").replace("$job", ".*"));
        }
    }
    found
}

fn exported(metric: &str) -> bool {
    CATALOG.iter().any(|m| {
        m.name == metric
            || (m.kind == Kind::Histogram
                && ["_bucket", "_count", "_sum"]
                    .iter()
                    .any(|suffix| metric.strip_suffix(suffix) == Some(m.name)))
    })
}

fn read(path: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn check(file: &str, expressions: &[String]) {
    assert!(!expressions.is_empty(), "{file}: no expressions found");
    for expr in expressions {
        let mut uses = Uses::default();
        scan(expr, &mut uses);
        assert!(!uses.metrics.is_empty(), "{file}: no metric in `{expr}`");
        for metric in &uses.metrics {
            assert!(
                exported(metric) || metric == "up",
                "{file}: `{metric}` is not a metric the gateway exports (in `{expr}`)"
            );
        }
        for label in &uses.labels {
            assert!(
                LABELS.contains(&label.as_str()) || PROMETHEUS_LABELS.contains(&label.as_str()),
                "{file}: label `{label}` is not one the gateway's metrics carry (in `{expr}`)"
            );
        }
    }
}

#[test]
fn the_scanner_tells_metrics_from_labels_functions_and_keywords() {
    let mut uses = Uses::default();
    scan(
        r#"histogram_quantile(0.99, sum by (le, tencent_action) (rate(gateway_quota_wait_seconds_bucket{job=~".*", tencent_code!="x{y}"}[5m])))
           / on (tencent_action) group_left max without (instance) (gateway_quota_effective) > 1e3"#,
        &mut uses,
    );
    assert_eq!(
        uses.metrics,
        BTreeSet::from([
            "gateway_quota_wait_seconds_bucket".to_owned(),
            "gateway_quota_effective".to_owned()
        ])
    );
    assert_eq!(
        uses.labels,
        ["le", "tencent_action", "job", "tencent_code", "instance"]
            .map(str::to_owned)
            .into_iter()
            .collect()
    );
    // And what it finds is checked: an unknown metric or label fails.
    assert!(!exported("gateway_quota_wait_seconds_total"));
    assert!(!exported("gateway_build_info_count"), "not a histogram");
    assert!(exported("http_client_request_duration_seconds_count"));
}

#[test]
fn alert_rules_query_only_exported_metrics_and_labels() {
    let yaml = read("deploy/prometheus/alerts.yaml");
    let expressions = rule_expressions(&yaml);
    assert_eq!(
        expressions.len(),
        yaml.matches("- alert:").count(),
        "one expression per alert"
    );
    check("deploy/prometheus/alerts.yaml", &expressions);
}

#[test]
fn the_dashboard_queries_only_exported_metrics_and_labels() {
    let expressions = dashboard_expressions(&read("deploy/grafana/partner-gateway.json"));
    check("deploy/grafana/partner-gateway.json", &expressions);
}
