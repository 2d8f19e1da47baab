//! The house is one-way: a module may use what sits in its own layer or below, never above.
//!
//! The layers, bottom up, are listed once, here. The test reads every `src/**/*.rs`, finds every
//! `crate::…` path outside comments (in `use` items and in code), and fails naming each import
//! that points up. It also fails when a module is in no layer, so a new module has to be placed.
//! It runs in its own test binary: it reads files, it does not link the gateway.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Bottom first. A module is named by its path under `src/` without `.rs` (`quota`,
/// `tencent::client` falls under `tencent`); only the first segment counts.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "values: parsed input, time, names",
        &["domain", "clock", "env"],
    ),
    (
        "settings and cross-cutting records",
        &[
            "config",
            "telemetry",
            "metrics",
            "readiness",
            "context",
            "audit",
        ],
    ),
    ("the Redis connection", &["redis_link"]),
    ("the credentials", &["credentials"]),
    ("shared state: records and quotas", &["store", "quota"]),
    ("the upstream", &["tencent"]),
    ("the HTTP error type", &["problem"]),
    (
        "the gateway's own rules",
        &["idempotency", "credit", "auth", "reads"],
    ),
    ("the API surface", &["openapi", "state", "routes"]),
    ("the server", &["middleware", "app", "serve"]),
    ("the simulator and the commands", &["sandbox", "cli"]),
];

/// Modules every layer may use: the crate root's re-exports and nothing else.
const ANYWHERE: &[&str] = &[];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/quota/shared.rs` → `quota`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.trim_end_matches(".rs");
    (!matches!(name, "lib" | "main")).then(|| name.to_owned())
}

/// Every `crate::NAME` in `text` outside comments and string literals, with its line.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut in_group = false;
    for (number, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let trimmed = code.trim_start();
        // `use crate::{a, b::c}`: each name in the group.
        if let Some(rest) = trimmed
            .strip_prefix("use crate::{")
            .or_else(|| trimmed.strip_prefix("pub use crate::{"))
            .or_else(|| trimmed.strip_prefix("pub(crate) use crate::{"))
        {
            in_group = !rest.contains('}');
            for name in group_names(rest) {
                found.push((number + 1, name));
            }
            continue;
        }
        if in_group {
            in_group = !code.contains('}');
            for name in group_names(code) {
                found.push((number + 1, name));
            }
            continue;
        }
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let before = rest[..at].chars().last();
            let after = &rest[at + "crate::".len()..];
            // `$crate::`, `partner_gateway_crate::` and the like are not this crate's paths.
            if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
                let name: String = after
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && !in_string(code, at) {
                    found.push((number + 1, name));
                }
            }
            rest = after;
        }
    }
    found
}

fn group_names(text: &str) -> Vec<String> {
    text.split(',')
        .filter_map(|item| {
            let name: String = item
                .trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty() && name != "self").then_some(name)
        })
        .collect()
}

/// Whether byte `at` of `line` is inside a string literal (an odd number of quotes before it).
fn in_string(line: &str, at: usize) -> bool {
    line[..at].matches('"').count() % 2 == 1
}

/// Every import that points up, as `file:line: from (layer) uses to (layer)`.
fn violations(src: &Path) -> (Vec<String>, Vec<String>) {
    let mut files = Vec::new();
    sources(src, &mut files);
    files.sort();
    let mut upward = Vec::new();
    let mut unplaced = BTreeMap::new();
    for file in &files {
        let Some(from) = module_of(src, file) else {
            continue;
        };
        let Some(from_layer) = layer_of(&from) else {
            unplaced.insert(from.clone(), file.display().to_string());
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (line, to) in crate_paths(&text) {
            if ANYWHERE.contains(&to.as_str()) || to == from {
                continue;
            }
            match layer_of(&to) {
                Some(to_layer) if to_layer > from_layer => upward.push(format!(
                    "{}:{line}: {from} ({}) uses {to} ({})",
                    file.strip_prefix(src.parent().unwrap()).unwrap().display(),
                    LAYERS[from_layer].0,
                    LAYERS[to_layer].0
                )),
                Some(_) => {}
                None => {
                    unplaced.insert(to, file.display().to_string());
                }
            }
        }
    }
    (
        upward,
        unplaced
            .into_iter()
            .map(|(module, seen_in)| format!("{module} (seen in {seen_in})"))
            .collect(),
    )
}

/// The modules each module uses (top-level modules, code paths only).
fn graph(src: &Path) -> BTreeMap<String, std::collections::BTreeSet<String>> {
    let mut files = Vec::new();
    sources(src, &mut files);
    let mut edges: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some(from) = module_of(src, file) else {
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (_, to) in crate_paths(&text) {
            if to != from {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    edges
}

/// A cycle among the modules, if there is one.
fn cycle(edges: &BTreeMap<String, std::collections::BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, std::collections::BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_owned());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, edges, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = std::collections::BTreeSet::new();
    edges
        .keys()
        .find_map(|start| visit(start, edges, &mut Vec::new(), &mut done))
}

/// Within a layer too, modules use each other one way: no circle.
#[test]
fn no_circle_of_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    if let Some(found) = cycle(&graph(&src)) {
        panic!("a circle of modules: {}", found.join(" → "));
    }
}

#[test]
fn no_module_imports_from_a_layer_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (upward, unplaced) = violations(&src);
    assert!(
        unplaced.is_empty(),
        "modules in no layer (add them to LAYERS in tests/architecture.rs):\n{}",
        unplaced.join("\n")
    );
    assert!(
        upward.is_empty(),
        "{} imports point up a layer:\n{}",
        upward.len(),
        upward.join("\n")
    );
}

/// The checker itself: it sees plain, grouped and inline paths, and ignores comments and strings.
#[test]
fn the_checker_sees_every_kind_of_path() {
    let text = r#"
use crate::domain::Email;
use crate::{clock, metrics::Metrics};
use crate::{
    config::Settings,
    store,
};
let x = crate::quota::Quotas::local();
// use crate::app;
/// [`crate::cli`]
let s = "crate::routes";
"#;
    let names: Vec<String> = crate_paths(text).into_iter().map(|(_, n)| n).collect();
    assert_eq!(
        names,
        ["domain", "clock", "metrics", "config", "store", "quota"]
    );
}
