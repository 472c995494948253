//! What `coe bench soak` watches on the host, read from /proc: this process's RSS (and
//! its anonymous part, the one a leak grows: file-backed pages such as libtorch's code
//! come and go with the page cache),
//! the RSS and number of the processes under it (the sandbox workers and their run
//! children), and, once the pool is gone, what is left of it — processes under this
//! process or running as a run uid, and entries in the host's temp dirs that the
//! sandbox or its runs made. Plain /proc reads so the soak needs no extra crates.
use serde_json::json;
use std::collections::{BTreeSet, HashMap};

/// The host's shared temp dirs, where a sandbox without namespaces could leave files.
const TEMP_DIRS: [&str; 3] = ["/tmp", "/var/tmp", "/dev/shm"];

#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub rss_mb: f64,
    pub rss_anon_mb: f64,
    pub workers_rss_mb: f64,
    pub processes: usize,
}

impl Sample {
    pub fn to_json(&self) -> serde_json::Value {
        json!({"rss_mb": self.rss_mb, "rss_anon_mb": self.rss_anon_mb,
               "workers_rss_mb": self.workers_rss_mb, "processes": self.processes})
    }

    pub fn line(&self) -> String {
        format!(
            "RSS {:.1} MiB ({:.1} anonymous), workers {:.1} MiB in {} processes",
            self.rss_mb, self.rss_anon_mb, self.workers_rss_mb, self.processes
        )
    }
}

/// What was left after the pool was dropped.
#[derive(Debug, Default)]
pub struct Leaks {
    pub processes: Vec<String>,
    pub temp_files: Vec<String>,
}

/// Takes the temp-dir baseline at the start.
pub struct Probe {
    temp_before: BTreeSet<String>,
}

impl Probe {
    pub fn start() -> anyhow::Result<Probe> {
        Ok(Probe {
            temp_before: temp_entries(None),
        })
    }

    pub fn sample(&self) -> Sample {
        let me = std::process::id();
        let under = descendants(me);
        Sample {
            rss_mb: rss_kib(me).unwrap_or(0) as f64 / 1024.0,
            rss_anon_mb: status_field(me, "RssAnon:").unwrap_or(0) as f64 / 1024.0,
            workers_rss_mb: under.iter().filter_map(|p| rss_kib(*p)).sum::<u64>() as f64 / 1024.0,
            processes: under.len(),
        }
    }

    /// Processes and temp entries left behind; call after dropping the pool.
    pub fn leaks(&self, run_uids: Option<(u32, u32)>) -> Leaks {
        let me = std::process::id();
        let mut processes: Vec<String> = descendants(me)
            .into_iter()
            .map(|p| format!("pid {p} under coe"))
            .collect();
        if let Some((first, last)) = run_uids {
            for (pid, uid) in uids() {
                if (first..=last).contains(&uid) {
                    processes.push(format!("pid {pid} running as run uid {uid}"));
                }
            }
        }
        let temp_files = temp_entries(run_uids)
            .difference(&self.temp_before)
            .cloned()
            .collect();
        Leaks {
            processes,
            temp_files,
        }
    }
}

fn numeric_dirs() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

/// A field of /proc/<pid>/status, first number.
fn status_field(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn rss_kib(pid: u32) -> Option<u64> {
    status_field(pid, "VmRSS:")
}

fn uids() -> Vec<(u32, u32)> {
    numeric_dirs()
        .into_iter()
        .filter_map(|pid| Some((pid, u32::try_from(status_field(pid, "Uid:")?).ok()?)))
        .collect()
}

/// Every process whose chain of parents leads to `root`.
fn descendants(root: u32) -> Vec<u32> {
    let parents: HashMap<u32, u32> = numeric_dirs()
        .into_iter()
        .filter_map(|pid| Some((pid, u32::try_from(status_field(pid, "PPid:")?).ok()?)))
        .collect();
    parents
        .keys()
        .copied()
        .filter(|&pid| {
            let mut cur = pid;
            for _ in 0..64 {
                match parents.get(&cur) {
                    Some(&p) if p == root => return true,
                    Some(&p) if p > 1 => cur = p,
                    _ => return false,
                }
            }
            false
        })
        .collect()
}

/// Entries of the host's temp dirs the sandbox makes (`coe-sandbox-*`) or that belong
/// to one of the run uids.
fn temp_entries(run_uids: Option<(u32, u32)>) -> BTreeSet<String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = BTreeSet::new();
    for dir in TEMP_DIRS {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let owned = run_uids
                .is_some_and(|(a, b)| e.metadata().is_ok_and(|m| (a..=b).contains(&m.uid())));
            if name.starts_with("coe-sandbox-") || owned {
                out.insert(format!("{dir}/{name}"));
            }
        }
    }
    out
}
