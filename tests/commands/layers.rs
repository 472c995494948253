//! The import graph of `src/` (DESIGN §9, STYLE 16): every import between the layers runs
//! downward, and no files import each other, directly or round a longer cycle.
//!
//! The check reads the sources as text: each `use` tree and each `crate::`/`super::`/
//! `self::` path is resolved to the file of the longest module prefix it names. Inline
//! `#[cfg(test)] mod tests` blocks are left out (they test the file they sit in), and so
//! are comments. A re-export counts as an import of the file it re-exports from.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layers from the bottom; a file may import only from a lower rank or its own module.
const LAYERS: &[(&str, u32)] = &[
    ("util", 0),
    ("task", 1),
    ("protocol", 2),
    ("config", 3),
    ("sandbox", 4),
    ("env", 5),
    ("model", 5),
    ("data", 6),
    ("policy", 7),
    ("eval", 8),
    ("train", 9),
    ("bench", 10),
    ("runtime", 11),
    ("tui", 12),
    ("cli", 13),
];

type Module = Vec<String>;

struct Tree {
    /// Module path (without `crate`) → file.
    modules: BTreeMap<Module, PathBuf>,
    /// File → module path.
    files: BTreeMap<PathBuf, Module>,
}

fn module_of(root: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(root).unwrap().with_extension("");
    let mut m: Module = rel
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    if matches!(m.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        m.pop();
    }
    m
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn load(root: &Path) -> Tree {
    let mut all = Vec::new();
    walk(root, &mut all);
    let mut t = Tree {
        modules: BTreeMap::new(),
        files: BTreeMap::new(),
    };
    for f in all {
        let m = module_of(root, &f);
        t.modules.insert(m.clone(), f.clone());
        t.files.insert(f, m);
    }
    t
}

/// The source without comments and without its inline test module.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let code = match line.find("//") {
            // A `//` inside a string literal (a URL) is rare in paths that matter; quotes
            // before it mean we keep the line whole.
            Some(i) if line[..i].matches('"').count() % 2 == 0 => &line[..i],
            _ => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    if let Some(i) = out.find("#[cfg(test)]\nmod tests") {
        out.truncate(i);
    }
    out
}

/// Expands a `use` tree (`a::{b, c::{d, e}}`) into its paths.
fn expand(tree: &str) -> Vec<Vec<String>> {
    // Drop aliases (`x as y`), then whitespace.
    let mut plain = String::new();
    let mut words = tree.split_whitespace().peekable();
    while let Some(w) = words.next() {
        if w == "as" {
            // The alias itself, and whatever punctuation followed it.
            if let Some(alias) = words.next() {
                plain.extend(
                    alias
                        .chars()
                        .filter(|c| !(c.is_alphanumeric() || *c == '_')),
                );
            }
        } else {
            plain.push_str(w);
        }
    }
    let tree = plain;
    let mut out = Vec::new();
    expand_into(&tree, &mut Vec::new(), &mut out);
    out
}

fn expand_into(tree: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let (head, group) = match tree.find('{') {
        Some(i) if tree.ends_with('}') => (&tree[..i], Some(&tree[i + 1..tree.len() - 1])),
        _ => (tree, None),
    };
    let depth = prefix.len();
    prefix.extend(
        head.split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    );
    match group {
        None => out.push(prefix.clone()),
        Some(g) => {
            let mut level = 0;
            let mut start = 0;
            for (i, c) in g.char_indices() {
                match c {
                    '{' => level += 1,
                    '}' => level -= 1,
                    ',' if level == 0 => {
                        expand_into(&g[start..i], prefix, out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            if start < g.len() {
                expand_into(&g[start..], prefix, out);
            }
        }
    }
    prefix.truncate(depth);
}

/// Every path the file's code names, as written.
fn paths_in(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = code;
    // `use` trees (which may be relative to the file's own child modules).
    while let Some(i) = rest.find("use ") {
        let before = rest[..i].chars().next_back();
        let tail = &rest[i + 4..];
        rest = tail;
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let Some(end) = tail.find(';') else { break };
        let tree = &tail[..end];
        if tree.contains('(') || tree.contains('"') {
            continue;
        }
        out.extend(expand(tree));
    }
    // Inline paths anywhere in the code.
    for anchor in ["crate::", "super::", "self::"] {
        let mut rest = code;
        while let Some(i) = rest.find(anchor) {
            let before = rest[..i].chars().next_back();
            let tail = &rest[i..];
            rest = &rest[i + anchor.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let path: String = tail
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            out.push(
                path.split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
            );
        }
    }
    out
}

/// The file a path names, from a file whose module is `me`.
fn resolve(tree: &Tree, me: &Module, path: &[String]) -> Option<PathBuf> {
    let mut segs = path.to_vec();
    let mut base: Module = match segs.first().map(String::as_str) {
        Some("crate") => {
            segs.remove(0);
            Vec::new()
        }
        Some("super") => {
            let mut b = me.clone();
            while segs.first().map(String::as_str) == Some("super") {
                segs.remove(0);
                b.pop();
            }
            b
        }
        Some("self") => {
            segs.remove(0);
            me.clone()
        }
        // A path relative to the file's own child modules (`use child::Item`).
        Some(_) => me.clone(),
        None => return None,
    };
    base.extend(segs);
    (1..=base.len())
        .rev()
        .map(|n| &base[..n])
        .find_map(|m| tree.modules.get(m).cloned())
}

fn edges(root: &Path) -> (Tree, BTreeMap<PathBuf, BTreeSet<PathBuf>>) {
    let tree = load(root);
    let mut g: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for (file, me) in &tree.files {
        let text = std::fs::read_to_string(file).unwrap();
        let targets = g.entry(file.clone()).or_default();
        for p in paths_in(&code_of(&text)) {
            if let Some(t) = resolve(&tree, me, &p)
                && &t != file
                // A module file is the parent of its own children: naming `child` from
                // `mod.rs` is an import of the child, not of itself.
                && !tree.files[&t].is_empty()
            {
                targets.insert(t);
            }
        }
    }
    (tree, g)
}

fn rank(m: &Module) -> Option<u32> {
    let top = m.first()?;
    LAYERS.iter().find(|(n, _)| n == top).map(|&(_, r)| r)
}

/// Cycles among files (strongly connected components of more than one file).
fn cycles(g: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Vec<PathBuf>> {
    // Kosaraju: order by finish time, then walk the reversed graph.
    let nodes: Vec<&PathBuf> = g.keys().collect();
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    for &n in &nodes {
        if seen.contains(n) {
            continue;
        }
        let mut stack = vec![(n, false)];
        while let Some((v, done)) = stack.pop() {
            if done {
                order.push(v);
                continue;
            }
            if !seen.insert(v) {
                continue;
            }
            stack.push((v, true));
            for w in g.get(v).into_iter().flatten() {
                if !seen.contains(w) {
                    stack.push((w, false));
                }
            }
        }
    }
    let mut rev: BTreeMap<&PathBuf, Vec<&PathBuf>> = BTreeMap::new();
    for (a, ts) in g {
        for b in ts {
            rev.entry(b).or_default().push(a);
        }
    }
    let mut assigned = BTreeSet::new();
    let mut out = Vec::new();
    for &v in order.iter().rev() {
        if assigned.contains(v) {
            continue;
        }
        let mut comp = Vec::new();
        let mut stack = vec![v];
        assigned.insert(v);
        while let Some(x) = stack.pop() {
            comp.push(x.clone());
            for &y in rev.get(x).into_iter().flatten() {
                if assigned.insert(y) {
                    stack.push(y);
                }
            }
        }
        if comp.len() > 1 {
            comp.sort();
            out.push(comp);
        }
    }
    out
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn imports_run_down_the_layers() {
    let (tree, g) = edges(&src());
    let mut bad = Vec::new();
    for (a, targets) in &g {
        let ma = &tree.files[a];
        let Some(ra) = rank(ma) else { continue };
        for b in targets {
            let mb = &tree.files[b];
            if ma.first() == mb.first() {
                continue;
            }
            match rank(mb) {
                Some(rb) if rb < ra => {}
                _ => bad.push(format!("{} -> {}", a.display(), b.display())),
            }
        }
    }
    assert!(
        bad.is_empty(),
        "imports that do not run downward:\n{}",
        bad.join("\n")
    );
}

#[test]
fn every_top_level_module_has_a_layer() {
    let tree = load(&src());
    let tops: BTreeSet<&String> = tree.files.values().filter_map(|m| m.first()).collect();
    let missing: Vec<_> = tops
        .into_iter()
        .filter(|t| rank(&vec![(*t).clone()]).is_none())
        .collect();
    assert!(missing.is_empty(), "modules without a layer: {missing:?}");
}

#[test]
fn no_files_import_each_other() {
    let (_, g) = edges(&src());
    let found = cycles(&g);
    let text: Vec<String> = found
        .iter()
        .map(|c| {
            c.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" <-> ")
        })
        .collect();
    assert!(
        found.is_empty(),
        "import cycles among files:\n{}",
        text.join("\n")
    );
}

#[test]
fn the_checker_sees_an_upward_import_and_a_cycle() {
    // The check must be able to fail: a tiny tree with `env` importing `tui` and two
    // files importing each other.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (f, body) in [
        ("lib.rs", "pub mod env;\npub mod tui;\n"),
        ("env/mod.rs", "pub mod a;\npub mod b;\n"),
        (
            "env/a.rs",
            "use super::b::B;\nuse crate::tui::{x::{Y, Z}};\n",
        ),
        (
            "env/b.rs",
            "pub struct B;\nfn f() { let _ = super::a::A; }\n",
        ),
        ("tui/mod.rs", "pub mod x;\n"),
        ("tui/x.rs", "pub struct Y;\n"),
    ] {
        let p = root.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    let (tree, g) = edges(root);
    let a = root.join("env/a.rs");
    assert!(g[&a].contains(&root.join("tui/x.rs")), "{:?}", g[&a]);
    assert!(rank(&tree.files[&root.join("tui/x.rs")]) > rank(&tree.files[&a]));
    assert_eq!(cycles(&g).len(), 1);
}
