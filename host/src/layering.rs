//! The direction of dependencies between the crate's top-level modules, checked by a test.
//!
//! Each module sits in a layer and may use (`crate::name`) only modules of lower layers, so
//! the modules form no cycle and a runtime module never reaches for the configuration or the
//! admin endpoint. The data path reads bottom-up: leaves (events, checkpoints, units,
//! supervision), the sink queue and the counters, then the four runtime parts that know
//! nothing of each other (sources, transforms, route, sinks), the stream that composes a source
//! with its transforms and router, and on top the admin endpoint, the configuration (which
//! builds plans for all of them) and the application. A new module must be given a layer here;
//! an import against the direction fails `layers_point_down`. Comment lines are not read: a doc
//! link may point anywhere.

/// Lowest first. A module may use the modules of the layers below its own.
const LAYERS: &[&[&str]] = &[
    &["checkpoint", "event", "shutdown", "supervise", "units"],
    &["queue"],
    &["stats"],
    &["route", "sinks", "sources", "transforms"],
    &["stream"],
    &["admin"],
    &["config", "inject"],
    &["app"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// What is wrong with `edges` (from, to): uses of a module of the same or a higher layer, and
/// modules without a layer.
fn violations(edges: &[(String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (from, to) in edges {
        match (layer_of(from), layer_of(to)) {
            (Some(f), Some(t)) if t < f => {}
            (Some(_), Some(_)) => out.push(format!(
                "`{from}` uses `{to}`, which is not in a layer below it"
            )),
            (None, _) => out.push(format!("`{from}` has no layer in layering.rs")),
            (_, None) => out.push(format!("`{to}` has no layer in layering.rs")),
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    use super::*;

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// Every (module, module it names with `crate::`) of the source tree.
    fn edges(src: &Path) -> Vec<(String, String)> {
        let re = regex::Regex::new(r"\bcrate::([a-z_][a-z0-9_]*)").unwrap();
        let mut files = Vec::new();
        rust_files(src, &mut files);
        let mut edges = BTreeSet::new();
        for file in files {
            let rel = file.strip_prefix(src).unwrap();
            let first = rel.components().next().unwrap().as_os_str();
            let module = first.to_str().unwrap().trim_end_matches(".rs").to_string();
            if module == "main" || module == "lib" {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            for line in text.lines() {
                if line.trim_start().starts_with("//") {
                    continue;
                }
                for c in re.captures_iter(line) {
                    let to = &c[1];
                    if to != module {
                        edges.insert((module.clone(), to.to_string()));
                    }
                }
            }
        }
        edges.into_iter().collect()
    }

    #[test]
    fn layers_point_down() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let edges = edges(&src);
        assert!(
            edges.iter().any(|(f, t)| f == "app" && t == "config"),
            "the scan finds the imports ({edges:?})"
        );
        let wrong = violations(&edges);
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        // Every top-level module has a layer, even one that imports nothing.
        let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
        for line in lib.lines() {
            if let Some(m) = line.strip_prefix("pub mod ") {
                let m = m.trim_end_matches(';');
                assert!(layer_of(m).is_some(), "`{m}` has no layer in layering.rs");
            }
        }
    }

    #[test]
    fn a_cycle_or_an_upward_use_is_named() {
        let e = |f: &str, t: &str| (f.to_string(), t.to_string());
        assert!(violations(&[e("stream", "route"), e("app", "config")]).is_empty());
        assert_eq!(
            violations(&[e("sinks", "route"), e("route", "sinks")]),
            [
                "`route` uses `sinks`, which is not in a layer below it",
                "`sinks` uses `route`, which is not in a layer below it"
            ]
        );
        assert_eq!(
            violations(&[e("transforms", "admin")]),
            ["`transforms` uses `admin`, which is not in a layer below it"]
        );
        assert_eq!(
            violations(&[e("tap", "stats")]),
            ["`tap` has no layer in layering.rs"]
        );
    }
}
