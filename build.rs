//! Build wiring for libtorch (see ../shared/GPU.md):
//! - an rpath to libtorch's `lib/` so `cargo run/test` and the built binary find it
//!   without `LD_LIBRARY_PATH`;
//! - `--no-as-needed` for `libtorch_cuda.so`: rustc links with `--as-needed`, which drops it
//!   (nothing references it by symbol) and CUDA then reads as unavailable even on a GPU;
//! - the libtorch version, read from the torch package next to `lib/`, for `coe --version`.
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB").ok();
    let mut version = String::from("unknown");
    if let Some(lib) = lib.as_deref() {
        let lib = Path::new(lib);
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
        if lib.join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
            println!("cargo:rustc-link-arg=-ltorch_cuda");
            println!("cargo:rustc-link-arg=-ltorch");
            println!("cargo:rustc-link-arg=-Wl,--as-needed");
        }
        if let Some(v) = lib.parent().and_then(read_version) {
            version = v;
        }
    }
    println!("cargo:rustc-env=COE_LIBTORCH_VERSION={version}");
    println!("cargo:rustc-env=COE_GIT_COMMIT={}", git_commit());
}

/// The commit being built, with `-dirty` when the tree has changes; `unknown` outside git.
fn git_commit() -> String {
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/index");
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match run(&["rev-parse", "HEAD"]) {
        Some(c) if !c.is_empty() => {
            let dirty = run(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty { format!("{c}-dirty") } else { c }
        }
        _ => "unknown".into(),
    }
}

/// `torch/version.py` (pip) holds `__version__ = '2.11.0+cu130'`; a plain libtorch
/// download holds `build-version`.
fn read_version(torch_dir: &Path) -> Option<String> {
    if let Ok(text) = std::fs::read_to_string(torch_dir.join("version.py")) {
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("__version__ = ") {
                return Some(rest.trim_matches(|c| c == '\'' || c == '"').to_string());
            }
        }
    }
    std::fs::read_to_string(torch_dir.join("build-version"))
        .ok()
        .map(|s| s.trim().to_string())
}
