//! The engine's house rules, read from its source (ARCHITECTURE.md,
//! "Engine layers"): every table has one writer, a module uses only
//! modules on lower floors (so there is no circle), the files of a folder
//! form no circle either, and no file grows past ~450 lines.
//!
//! These read the code as text: `use crate::x`, `crate::x::` and `super::x`
//! paths, and the SQL statements that write a table. A new module must be
//! given a floor here, and a new table an owner, or these fail.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Who may use whom: each floor may use only the floors before it. The
/// crate root (`lib.rs`) declares and re-exports, and sits above them all;
/// no module reaches the root's re-exports (`crate::Engine`): it names the
/// module that defines the item.
const FLOORS: &[&[&str]] = &[
    &["error"],
    &["db"],
    &["mask", "dialect"],
    &["util", "webhooks", "lsn", "schema", "chain"],
    &["limits", "stats", "lookup", "native", "native_pg"],
    &["handle"],
    &["levels", "events", "owners"],
    &["containers"],
    &["imports", "snapshots"],
    &["records", "reads", "diff"],
    &["merge"],
    &["operations", "retention"],
    &["deletion"],
    &["staging", "reset"],
    &["merging"],
];

/// Each table and the one module whose code writes it.
const OWNERS: &[(&str, &str)] = &[
    ("branch_levels", "levels"),
    ("collection_stats", "stats"),
    ("containers", "containers"),
    ("events", "events"),
    ("outbox", "events"),
    ("webhook_secrets", "events"),
    ("idempotency", "operations"),
    ("imports", "imports"),
    ("lsns", "lsn"),
    ("operations", "operations"),
    ("owners", "owners"),
    ("prune_passes", "retention"),
    ("rate_windows", "limits"),
    ("records", "records"),
    ("snapshots", "snapshots"),
];

/// The longest a file may grow (lines).
const MAX_LINES: usize = 460;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every source file with its module (the file's stem, or its folder's
/// name for a file inside a folder) and its text.
fn files() -> Vec<(PathBuf, String, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![src()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src()).expect("under src");
            let module = match rel.components().count() {
                1 => rel.file_stem().unwrap().to_string_lossy().into_owned(),
                _ => rel
                    .components()
                    .next()
                    .unwrap()
                    .as_os_str()
                    .to_string_lossy()
                    .into_owned(),
            };
            let text = std::fs::read_to_string(&path).expect("read file");
            out.push((path, module, text));
        }
    }
    out.sort();
    out
}

/// The code of a file, without comments (so prose naming a module or a
/// table is not read as a use of it).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules a file's code names as `crate::x` (in a path or a `use
/// crate::{x, y}` group).
fn crate_uses(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The first name of each item at depth 0 of the group.
            let mut depth = 0;
            let mut item_start = true;
            let mut name = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        if !name.is_empty() {
                            out.insert(std::mem::take(&mut name));
                        }
                        item_start = true;
                    }
                    c if item_start && depth == 0 && (c.is_alphanumeric() || c == '_') => {
                        name.push(c)
                    }
                    _ if item_start && !name.is_empty() => {
                        out.insert(std::mem::take(&mut name));
                        item_start = false;
                    }
                    _ => {}
                }
            }
            if !name.is_empty() {
                out.insert(name);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.insert(name);
        }
    }
    out
}

fn floor_of(module: &str) -> Option<usize> {
    FLOORS.iter().position(|f| f.contains(&module))
}

#[test]
fn every_module_uses_only_lower_floors() {
    let mut wrong = Vec::new();
    for (path, module, text) in files() {
        if module == "lib" {
            continue;
        }
        let Some(mine) = floor_of(&module) else {
            wrong.push(format!(
                "{}: module {module} has no floor in FLOORS",
                path.display()
            ));
            continue;
        };
        for used in crate_uses(&code(&text)) {
            if used == module {
                continue;
            }
            match floor_of(&used) {
                Some(f) if f < mine => {}
                Some(_) => wrong.push(format!(
                    "{}: {module} uses {used}, which is not on a lower floor",
                    path.display()
                )),
                None => wrong.push(format!(
                    "{}: {module} uses crate::{used}, which is not a module with a floor \
                     (name the defining module, not the crate root's re-export)",
                    path.display()
                )),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_files_of_a_folder_form_no_circle() {
    // Files of one folder use each other as `super::x`.
    let mut graph: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for (path, module, text) in files() {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        if stem == "mod" || path.parent() == Some(src().as_path()) {
            continue;
        }
        let code = code(&text);
        let mut uses = BTreeSet::new();
        let mut rest = code.as_str();
        while let Some(i) = rest.find("super::") {
            rest = &rest[i + "super::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if name != stem && !name.is_empty() {
                uses.insert(name);
            }
        }
        graph.insert((module, stem), uses);
    }
    // Depth-first search for a back edge.
    fn visit(
        node: &(String, String),
        graph: &BTreeMap<(String, String), BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<(String, String)>,
    ) -> Option<String> {
        if let Some(at) = path.iter().position(|p| *p == node.1) {
            return Some(format!("{} -> {}", path[at..].join(" -> "), node.1));
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.1.clone());
        for next in graph.get(node).into_iter().flatten() {
            let key = (node.0.clone(), next.clone());
            if graph.contains_key(&key) {
                if let Some(c) = visit(&key, graph, path, done) {
                    return Some(c);
                }
            }
        }
        path.pop();
        done.insert(node.clone());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(circle) = visit(node, &graph, &mut Vec::new(), &mut done) {
            panic!("a circle inside {}/: {circle}", node.0);
        }
    }
}

/// The tables the schema's migrations create.
fn tables() -> BTreeSet<String> {
    let schema = std::fs::read_to_string(src().join("schema").join("migrations.rs")).expect("schema");
    let mut out = BTreeSet::new();
    for part in schema.split("CREATE TABLE ").skip(1) {
        let part = part.trim_start_matches("IF NOT EXISTS ");
        let name: String = part
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        out.insert(name);
    }
    out
}

/// Whether `code` has a statement writing `table`.
fn writes(code: &str, table: &str) -> bool {
    let code = code.replace(['\n', '\\'], " ");
    let code: String = code.split_whitespace().collect::<Vec<_>>().join(" ");
    [
        "INSERT INTO ",
        "INSERT OR IGNORE INTO ",
        "INSERT OR REPLACE INTO ",
        "REPLACE INTO ",
        "UPDATE ",
        "DELETE FROM ",
    ]
    .iter()
    .any(|verb| {
        code.match_indices(&format!("{verb}{table}")).any(|(i, m)| {
            code[i + m.len()..]
                .chars()
                .next()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
        })
    })
}

#[test]
fn every_table_is_written_by_its_one_owner() {
    let owners: BTreeMap<&str, &str> = OWNERS.iter().copied().collect();
    let mut wrong = Vec::new();
    for table in tables() {
        // The schema's own bookkeeping and the layout migration's scratch
        // table belong to the schema.
        if table == "spinoff_schema" || table == "records_rowid" {
            continue;
        }
        let Some(owner) = owners.get(table.as_str()) else {
            wrong.push(format!("table {table} has no owner in OWNERS"));
            continue;
        };
        let writers: BTreeSet<String> = files()
            .into_iter()
            .filter(|(_, module, text)| module != "schema" && writes(&code(text), &table))
            .map(|(_, module, _)| module)
            .collect();
        if writers.iter().any(|w| w != owner) || writers.is_empty() {
            wrong.push(format!(
                "table {table}: owner {owner}, written by {writers:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_file_is_longer_than_the_limit() {
    let long: Vec<String> = files()
        .into_iter()
        .filter(|(_, _, text)| text.lines().count() > MAX_LINES)
        .map(|(path, _, text)| format!("{}: {} lines", path.display(), text.lines().count()))
        .collect();
    assert!(long.is_empty(), "longer than {MAX_LINES} lines: {long:?}");
}

#[test]
fn the_rules_read_what_they_claim() {
    // The readers themselves, on known text: a rule that reads nothing
    // would pass everything.
    let uses = crate_uses("use crate::db::{exec, Db};\nuse crate::{levels, stats::{self, Delta}};\nx(crate::lsn::head(db))");
    assert_eq!(
        uses.into_iter().collect::<Vec<_>>(),
        ["db", "levels", "lsn", "stats"]
    );
    assert!(writes("\"UPDATE containers SET x = 1\"", "containers"));
    assert!(writes(
        "\"INSERT OR IGNORE INTO records (a) \\\n  VALUES (1)\"",
        "records"
    ));
    assert!(!writes("\"UPDATE containers_x SET x = 1\"", "containers"));
    assert!(!writes("\"SELECT * FROM containers\"", "containers"));
    assert!(tables().contains("branch_levels") && tables().len() >= 15);
    assert!(files().len() >= 20);
}
