//! The committed OpenAPI document is the one the routes generate, and the server serves it.

use crate::helpers::*;

#[test]
fn the_committed_document_is_current() {
    let generated = partner_gateway::app::openapi().to_pretty_json().unwrap();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed.trim_end() == generated.trim_end(),
        "openapi/openapi.json is stale; regenerate it with:\n  cargo run -q -- openapi > openapi/openapi.json"
    );
}

#[tokio::test]
async fn the_document_and_the_docs_page_are_served() {
    let app = spawn_app().await;
    let doc = app.get("/openapi.json").await.json();
    assert!(doc["paths"]["/customers/invitations"]["post"]["responses"]["201"].is_object());
    assert!(doc["paths"]["/customers/{uin}/credit"]["post"]["responses"]["200"].is_object());
    let docs = app.get("/docs/").await;
    assert_eq!(docs.status, 200);
    assert!(
        docs.text.contains("swagger"),
        "Swagger UI is vendored and served"
    );
}

fn statuses(doc: &serde_json::Value, path: &str, method: &str) -> std::collections::BTreeSet<u16> {
    doc["paths"][path][method]["responses"]
        .as_object()
        .unwrap_or_else(|| panic!("{method} {path} is documented"))
        .keys()
        .map(|k| k.parse().unwrap())
        .collect()
}

#[test]
fn every_route_lists_every_status_it_can_answer() {
    let doc = serde_json::to_value(partner_gateway::app::openapi()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let forwarding = [400, 413, 415, 422, 429, 500, 502, 503, 504];
    // Both routes need a bearer credential with their scope.
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(
        doc["paths"]["/customers/invitations"]["post"]["security"][0]["bearer"][0],
        "invitations:send"
    );
    assert_eq!(
        doc["paths"]["/customers/{uin}/credit"]["post"]["security"][0]["bearer"][0],
        "credit:allocate"
    );
    for path in ["/customers/{uin}/credit", "/partner/credit"] {
        assert_eq!(
            doc["paths"][path]["get"]["security"][0]["bearer"][0], "customers:read",
            "{path}"
        );
        let reads = statuses(&doc, path, "get");
        assert!(
            [200, 304, 401, 403, 429, 502, 503, 504]
                .iter()
                .all(|s| reads.contains(s)),
            "{path}: {reads:?}"
        );
    }
    let invitations = statuses(&doc, "/customers/invitations", "post");
    let credit = statuses(&doc, "/customers/{uin}/credit", "post");
    assert_eq!(
        invitations,
        forwarding
            .iter()
            .copied()
            .chain([201, 401, 403, 409])
            .collect()
    );
    assert_eq!(
        credit,
        forwarding
            .iter()
            .copied()
            .chain([200, 401, 403, 409])
            .collect()
    );
    assert_eq!(statuses(&doc, "/readyz", "get"), [200, 503].into());
    assert_eq!(statuses(&doc, "/livez", "get"), [200].into());
    assert_eq!(statuses(&doc, "/metrics", "get"), [200].into());
    assert_eq!(statuses(&doc, "/problems/{type}", "get"), [200, 404].into());
    // Every problem a forwarding route can produce has its status documented there
    // (404 and 405 belong to unknown routes and methods, not to these operations).
    for kind in partner_gateway::problem::ProblemType::ALL {
        let status = kind.status().as_u16();
        if ![404, 405].contains(&status) {
            assert!(
                invitations.contains(&status) || credit.contains(&status),
                "{} ({status}) is undocumented",
                kind.slug()
            );
        }
    }
    // Headers: X-Request-Id everywhere, Retry-After and RateLimit on 429.
    let r429 = &doc["paths"]["/customers/{uin}/credit"]["post"]["responses"]["429"]["headers"];
    for h in [
        "Retry-After",
        "RateLimit-Policy",
        "RateLimit",
        "X-Request-Id",
    ] {
        assert!(r429[h].is_object(), "429 documents {h}");
    }
    assert!(
        doc["paths"]["/livez"]["get"]["responses"]["200"]["headers"]["X-Request-Id"].is_object()
    );
}

/// utoipa names a component schema after its type alone, so two types of one name in different
/// modules silently share one schema (the last registered wins, and one route documents the
/// other's body). Every `ToSchema` type's name is unique.
#[test]
fn every_schema_type_has_its_own_name() {
    fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    rust_files(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut seen: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut pending = false;
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with("#[derive(") && line.contains("ToSchema") {
                pending = true;
            } else if pending && (line.starts_with("pub struct ") || line.starts_with("pub enum "))
            {
                let name: String = line
                    .split_whitespace()
                    .nth(2)
                    .unwrap()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                seen.entry(name)
                    .or_default()
                    .push(file.display().to_string());
                pending = false;
            }
        }
    }
    assert!(seen.len() > 10, "found the schema types: {seen:?}");
    let twice: Vec<_> = seen.iter().filter(|(_, files)| files.len() > 1).collect();
    assert!(twice.is_empty(), "schema types named twice: {twice:?}");
}
