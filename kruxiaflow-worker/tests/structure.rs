//! The structure the README describes, checked: no two modules of the runtime import
//! each other (directly or through others), at the top of the crate and inside
//! `worker/`; the README's layout lists every module after those it uses, and names
//! every module of `worker/`; no function of the runtime (outside its tests) runs past
//! 60 lines; and every test the README's reliability tables name exists.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The code of a file without its tests and comments.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines().map(|line| line.split("//").next().unwrap_or_default()).collect::<Vec<_>>().join("\n")
}

/// The module names following each occurrence of `prefix` in `code`.
fn uses(code: &str, prefix: &str) -> BTreeSet<String> {
    code.match_indices(prefix)
        .map(|(at, _)| {
            let rest = &code[at + prefix.len()..];
            rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

/// The modules of a module graph that lie on a cycle.
fn on_cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<String> {
    let reaches = |from: &str, to: &str| {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&str> = edges.get(from).map(|e| e.iter().map(String::as_str).collect()).unwrap_or_default();
        while let Some(next) = todo.pop() {
            if next == to {
                return true;
            }
            if seen.insert(next) {
                todo.extend(edges.get(next).into_iter().flatten().map(String::as_str));
            }
        }
        false
    };
    edges.keys().filter(|module| reaches(module, module)).cloned().collect()
}

/// The first path component under `root` of `path` (`worker` for `worker/attempt.rs`).
fn module_of(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap();
    let first = relative.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_owned()
}

/// What each top-level module of the crate imports from the others.
fn top_level_imports() -> BTreeMap<String, BTreeSet<String>> {
    let root = src();
    let mut top: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(&root) {
        let module = module_of(&root, &file);
        if module == "lib" {
            continue;
        }
        let mut used = uses(&code(&file), "crate::");
        used.remove(&module);
        top.entry(module).or_default().extend(used);
    }
    let modules: BTreeSet<String> = top.keys().cloned().collect();
    for used in top.values_mut() {
        used.retain(|name| modules.contains(name));
    }
    top
}

/// What each module inside `worker/` imports from the others.
fn worker_imports() -> BTreeMap<String, BTreeSet<String>> {
    let worker_dir = src().join("worker");
    let mut worker: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(&worker_dir) {
        let module = module_of(&worker_dir, &file);
        let code = code(&file);
        let mut used = uses(&code, "super::");
        used.extend(uses(&code, "crate::worker::"));
        used.retain(|used| *used != module && worker_dir.join(format!("{used}.rs")).exists());
        worker.entry(module).or_default().extend(used);
    }
    worker
}

#[test]
fn no_module_of_the_runtime_imports_one_that_imports_it() {
    let top = top_level_imports();
    assert!(top.contains_key("worker") && top.contains_key("client"), "{top:?}");
    assert_eq!(on_cycles(&top), BTreeSet::new(), "import cycles among the crate's modules: {top:#?}");
    let worker = worker_imports();
    assert!(worker.len() > 10, "{worker:?}");
    assert_eq!(on_cycles(&worker), BTreeSet::new(), "import cycles inside worker/: {worker:#?}");
}

/// The README's workspace layout: the crate's modules in the order it lists them, and
/// the text of its `worker/` entry.
fn readme_layout() -> (Vec<String>, String) {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    let layout = &readme[readme.find("## Workspace layout").expect("the README has a Workspace layout section")..];
    let block = layout.split("```").nth(1).expect("the layout is a code block");
    let (mut order, mut worker_entry, mut in_worker) = (Vec::new(), String::new(), false);
    for line in block.lines() {
        let indent = line.len() - line.trim_start().len();
        if indent == 4 {
            // A module row: its names, up to the gap before the description.
            let names = line.trim_start().split("  ").next().unwrap_or_default();
            in_worker = names.starts_with("worker/");
            let names = names.split(',').map(|name| name.trim().trim_end_matches('/'));
            order.extend(names.filter(|name| !name.is_empty()).map(str::to_owned));
        } else if indent < 4 {
            in_worker = false;
        }
        if in_worker {
            worker_entry.push_str(line);
            worker_entry.push('\n');
        }
    }
    (order, worker_entry)
}

#[test]
fn the_readmes_layout_lists_every_module_after_those_it_uses() {
    let (order, worker_entry) = readme_layout();
    let top = top_level_imports();
    let listed: BTreeSet<&String> = order.iter().collect();
    assert_eq!(listed, top.keys().collect(), "the README's layout lists other modules than the crate has");
    for (at, module) in order.iter().enumerate() {
        for used in &top[module] {
            let used_at = order.iter().position(|listed| listed == used).unwrap();
            assert!(used_at < at, "the README lists `{module}` before `{used}`, which it uses");
        }
    }
    let words: BTreeSet<&str> = worker_entry.split(|c: char| !(c.is_ascii_lowercase() || c == '_')).collect();
    for module in worker_imports().keys() {
        assert!(words.contains(module.as_str()), "the README's worker/ entry does not name `{module}`");
    }
}

/// The longest functions of `code` (without its tests), as (lines, name), longest first.
fn function_lengths(code: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut lengths = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let Some(at) = trimmed.find("fn ") else { continue };
        let before = &trimmed[..at];
        let is_item = before
            .split_whitespace()
            .all(|word| matches!(word, "pub" | "async" | "const" | "unsafe" | "extern") || word.starts_with("pub("));
        if !is_item {
            continue;
        }
        let name: String = trimmed[at + 3..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        // rustfmt puts a body's closing brace at the indentation of its `fn`; a
        // declaration without a body ends with `;` before any `{`.
        let Some(opens) =
            lines[start..].iter().position(|l| l.trim_end().ends_with('{') || l.trim_end().ends_with(';'))
        else {
            continue;
        };
        if lines[start + opens].trim_end().ends_with(';') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        let close = format!("{}}}", " ".repeat(indent));
        if let Some(end) = lines[start..].iter().position(|l| l.starts_with(&close)) {
            lengths.push((end + 1, name));
        }
    }
    lengths.sort_by(|a, b| b.cmp(a));
    lengths
}

#[test]
fn no_function_of_the_runtime_runs_past_60_lines() {
    let mut longest = Vec::new();
    for file in rust_files(&src()) {
        if file.file_name().is_some_and(|name| name == "tests.rs") {
            continue;
        }
        let lengths = function_lengths(&code(&file));
        let name = file.strip_prefix(src()).unwrap().display().to_string();
        longest.extend(lengths.into_iter().map(|(lines, function)| (lines, format!("{name}: {function}"))));
    }
    longest.sort_by(|a, b| b.cmp(a));
    assert!(longest.len() > 500, "only {} functions found", longest.len());
    let over: Vec<_> = longest.iter().filter(|(lines, _)| *lines > 60).collect();
    assert!(over.is_empty(), "functions over 60 lines: {over:?}");
}

#[test]
fn every_test_the_readme_names_exists() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let readme = std::fs::read_to_string(workspace.join("README.md")).unwrap();
    let start = readme.find("## Reliability").expect("the README has a Reliability section");
    let end = readme[start..].find("\n## ").map_or(readme.len(), |e| start + e);
    let mut sources = String::new();
    for crate_dir in ["kruxiaflow-worker", "kruxiaflow-worker-testing", "examples"] {
        for file in rust_files(&workspace.join(crate_dir)) {
            sources.push_str(&std::fs::read_to_string(file).unwrap());
        }
    }
    let mut named = 0;
    for cell in readme[start..end].split('`').skip(1).step_by(2) {
        let name = cell.rsplit("::").next().unwrap();
        // `…suffix` names a test by the end of its name, after one named in full.
        let (name, whole) = match name.strip_prefix('…') {
            Some(suffix) => (suffix, false),
            None => (name, true),
        };
        let is_test_name = name.len() > 20
            && name.contains('_')
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && !name.starts_with("kruxiaflow_");
        if is_test_name {
            named += 1;
            let found = if whole { format!("fn {name}(") } else { format!("{name}(") };
            assert!(sources.contains(&found), "the README names a test that does not exist: {name}");
        }
    }
    assert!(named > 40, "only {named} test names found in the README's Reliability section");
}

#[test]
fn the_config_error_the_readme_quotes_is_the_one_the_worker_prints() {
    let error = kruxiaflow_worker::WorkerConfig::from_lookup(|name| {
        (name == "KRUXIAFLOW_WORKER_MAX_ACTIVITIES").then(|| "abc".to_owned())
    })
    .unwrap_err();
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    assert!(readme.contains(&format!("`{error}`")), "the README does not quote `{error}`");
}
