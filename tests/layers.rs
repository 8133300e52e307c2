//! The layering judge: every `crate::…` (or `super::super::…`) reference in
//! `src/` must point down the stack drawn in ARCHITECTURE.md, or along one
//! of the few same-layer edges listed here. Test code (from `#[cfg(test)]`
//! on) and comments are not read.
//!
//! `cargo test --test layers -- --nocapture` prints the module graph's
//! counts: references read, upward imports, circles.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules of `src/` and their layer; lower layers know nothing
/// of higher ones.
const LAYERS: &[(&str, u8)] = &[
    // L0 foundations
    ("units", 0),
    ("stats", 0),
    ("fsutil", 0),
    ("redact", 0),
    ("telemetry", 0),
    // L1 config
    ("config", 1),
    // L2 transport
    ("net", 2),
    // L3 components
    ("probes", 3),
    ("load", 3),
    ("resources", 3),
    ("otlp", 3),
    ("push", 3),
    // L4 check domain
    ("check", 4),
    // L5 presentation
    ("report", 5),
    // L6 runtime
    ("plan", 6),
    ("scheduler", 6),
    ("server", 6),
    ("app", 6),
    // L7 front-ends (the demo is a subcommand: cli/demo)
    ("cli", 7),
    // Entry points for the fuzz targets and the corpus replay test: they
    // call config, load, otlp and plan, like a front-end.
    ("fuzzing", 7),
];

/// Same-layer imports that are allowed, each with its reason.
const SIDEWAYS: &[(&str, &str)] = &[
    // A load mix entry is an HTTP probe config compiled by the probe's build.
    ("load", "probes"),
    // The runtime: plan compiles, scheduler runs probes, server shows them,
    // app wires the three together.
    ("scheduler", "plan"),
    ("server", "scheduler"),
    ("server", "plan"),
    ("app", "plan"),
    ("app", "scheduler"),
    ("app", "server"),
];

/// Inside the check domain, the same rule one level down: the stored schema
/// at the bottom, the runner on top.
const CHECK_LAYERS: &[(&str, u8)] = &[
    ("result", 0),
    ("timeline", 1),
    ("watch", 1),
    ("leak", 2),
    ("memory", 3),
    ("metrics", 3),
    ("scenario", 4),
    ("baseline", 4),
    ("execute", 5),
    ("runner", 6),
];

/// One reference from a file to a module.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Import {
    file: String,
    line: usize,
    from: Vec<String>,
    to: Vec<String>,
}

/// The module path of a file under `src/`: `check/scenario/soak.rs` →
/// `[check, scenario, soak]`; `check/mod.rs` → `[check]`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts
        .last()
        .is_some_and(|l| l == "mod" || l == "lib" || l == "main")
    {
        parts.pop();
    }
    parts
}

/// The code of a file before its tests, without comments.
fn code_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        let code = match line.find("//") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        };
        out.push((i + 1, code.to_string()));
    }
    out
}

/// Every `crate::a::b` and `super::…` path that leaves the file's own module.
fn imports(file: &str, rel: &Path, text: &str) -> Vec<Import> {
    let from = module_path(rel);
    let mut out = Vec::new();
    for (line, code) in code_lines(text) {
        let bytes = code.as_bytes();
        let mut at = 0;
        while let Some(pos) = find_path_start(&code, at) {
            let end = code[pos..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .map_or(code.len(), |e| pos + e);
            let segs: Vec<&str> = code[pos..end]
                .split("::")
                .filter(|s| !s.is_empty())
                .collect();
            at = end.max(pos + 1);
            let preceded = pos > 0
                && (bytes[pos - 1].is_ascii_alphanumeric()
                    || bytes[pos - 1] == b'_'
                    || bytes[pos - 1] == b':');
            if preceded {
                continue;
            }
            if let Some(to) = resolve(&from, &segs) {
                out.push(Import {
                    file: file.to_string(),
                    line,
                    from: from.clone(),
                    to,
                });
            }
        }
    }
    out
}

fn find_path_start(code: &str, from: usize) -> Option<usize> {
    let c = code[from..].find("crate::").map(|p| p + from);
    let s = code[from..].find("super::").map(|p| p + from);
    match (c, s) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The absolute module path a reference names (module segments only: names
/// that start with a capital or are the last segment are items).
fn resolve(from: &[String], segs: &[&str]) -> Option<Vec<String>> {
    let mut path: Vec<String>;
    let mut rest = segs;
    if rest.first() == Some(&"crate") {
        path = Vec::new();
        rest = &rest[1..];
    } else {
        // `super` is relative to the file's module; a `mod.rs` file's module
        // is its folder.
        path = from.to_vec();
        while rest.first() == Some(&"super") {
            path.pop()?;
            rest = &rest[1..];
        }
    }
    for s in rest {
        if s.starts_with(|c: char| c.is_uppercase()) || *s == "self" || *s == "*" {
            break;
        }
        path.push(s.to_string());
    }
    (!path.is_empty()).then_some(path)
}

fn layer_of(table: &[(&str, u8)], name: &str) -> Option<u8> {
    table.iter().find(|(n, _)| *n == name).map(|(_, l)| *l)
}

/// Why an import breaks the rules, if it does.
fn violation(imp: &Import) -> Option<String> {
    let (from, to) = (imp.from.first()?, imp.to.first()?);
    if from == to {
        if from == "check" && imp.from.len() > 1 && imp.to.len() > 1 {
            return check_violation(&imp.from[1], &imp.to[1]);
        }
        return None;
    }
    let Some(lf) = layer_of(LAYERS, from) else {
        return Some(format!("module `{from}` is not in the layer table"));
    };
    let Some(lt) = layer_of(LAYERS, to) else {
        return Some(format!("module `{to}` is not in the layer table"));
    };
    if lt < lf || SIDEWAYS.contains(&(from.as_str(), to.as_str())) {
        return None;
    }
    Some(format!("{from} (L{lf}) imports {to} (L{lt})"))
}

fn check_violation(from: &str, to: &str) -> Option<String> {
    if from == to {
        return None;
    }
    let lf = layer_of(CHECK_LAYERS, from);
    let lt = layer_of(CHECK_LAYERS, to);
    match (lf, lt) {
        (Some(a), Some(b)) if b < a => None,
        (Some(a), Some(b)) => Some(format!("check::{from} ({a}) imports check::{to} ({b})")),
        // check/mod.rs itself re-exports and may name any part.
        _ => None,
    }
}

fn source_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).expect("read src") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut out);
    out.sort();
    out
}

fn all_imports() -> Vec<Import> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    for p in source_files() {
        let rel = p.strip_prefix(&src).expect("under src");
        let text = std::fs::read_to_string(&p).expect("read");
        out.extend(imports(&format!("src/{}", rel.display()), rel, &text));
    }
    out
}

/// Circles among top-level modules (strongly connected components of more
/// than one module).
fn circles(imports: &[Import]) -> Vec<BTreeSet<String>> {
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for i in imports {
        let (f, t) = (i.from[0].as_str(), i.to[0].as_str());
        if f != t {
            graph.entry(f).or_default().insert(t);
        }
    }
    let reach = |start: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![start];
        while let Some(n) = todo.pop() {
            for &m in graph.get(n).into_iter().flatten() {
                if seen.insert(m) {
                    todo.push(m);
                }
            }
        }
        seen
    };
    let mut found: Vec<BTreeSet<String>> = Vec::new();
    for &n in graph.keys() {
        let from_n = reach(n);
        if !from_n.contains(n) {
            continue;
        }
        let scc: BTreeSet<String> = from_n
            .iter()
            .filter(|m| reach(m).contains(n))
            .map(|m| m.to_string())
            .collect();
        if !found.contains(&scc) {
            found.push(scc);
        }
    }
    found
}

#[test]
fn every_import_points_down() {
    let imports = all_imports();
    assert!(
        imports.len() > 100,
        "read only {} references: is the parser broken?",
        imports.len()
    );
    let bad: Vec<String> = imports
        .iter()
        .filter_map(|i| violation(i).map(|why| format!("{}:{}: {why}", i.file, i.line)))
        .collect();
    let circles = circles(&imports);
    println!(
        "{} references read; {} upward imports; {} circles",
        imports.len(),
        bad.len(),
        circles.len()
    );
    assert!(
        bad.is_empty(),
        "imports that point up the layers:\n{}",
        bad.join("\n")
    );
    assert!(circles.is_empty(), "import circles: {circles:?}");
}

#[test]
fn every_module_has_a_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for p in source_files() {
        let rel = p.strip_prefix(&src).unwrap();
        let m = module_path(rel);
        let Some(top) = m.first() else { continue };
        assert!(
            layer_of(LAYERS, top).is_some(),
            "src/{} is in no layer",
            rel.display()
        );
        if top == "check" && m.len() > 1 {
            assert!(
                layer_of(CHECK_LAYERS, &m[1]).is_some(),
                "src/{} is in no check layer",
                rel.display()
            );
        }
    }
}

/// The judge must be able to fail: a planted upward import, a `super::super`
/// climb and a sideways circle are each caught.
#[test]
fn planted_violations_are_caught() {
    let up = imports(
        "src/config/x.rs",
        Path::new("config/x.rs"),
        "use crate::app::Sidecar;\n",
    );
    assert_eq!(
        violation(&up[0]).as_deref(),
        Some("config (L1) imports app (L6)")
    );

    let climb = imports(
        "src/check/scenario/soak.rs",
        Path::new("check/scenario/soak.rs"),
        "fn f() { super::super::super::report::check::text(); }\n",
    );
    assert_eq!(
        climb[0].to,
        ["report", "check", "text"].map(String::from).to_vec()
    );
    assert!(violation(&climb[0]).is_some());

    let inner = imports(
        "src/check/result.rs",
        Path::new("check/result.rs"),
        "use super::runner::Runner;\n",
    );
    assert!(violation(&inner[0]).is_some(), "{inner:?}");

    let tests_ignored = imports(
        "src/net/mod.rs",
        Path::new("net/mod.rs"),
        "use crate::units::x;\n#[cfg(test)]\nmod tests { use crate::app::y; }\n",
    );
    assert_eq!(tests_ignored.len(), 1);

    let comment = imports(
        "src/net/mod.rs",
        Path::new("net/mod.rs"),
        "// see crate::app::run\n",
    );
    assert!(comment.is_empty());

    let a = Import {
        file: "a".into(),
        line: 1,
        from: vec!["load".into()],
        to: vec!["probes".into()],
    };
    let b = Import {
        file: "b".into(),
        line: 1,
        from: vec!["probes".into()],
        to: vec!["load".into()],
    };
    assert_eq!(circles(&[a, b]).len(), 1);
}
