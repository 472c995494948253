//! Where the workbench's tasks and data files come from.
//!
//! Step mode takes its tasks from, in order: `coe tui --tasks F`, the config's
//! `eval.tasks`, else the shipped problem set `datasets/problems.jsonl` (found
//! in the working directory or the checkout the binary was built in). A file of
//! problems rather than tasks (no `buggy` field: the shipped set, HumanEval,
//! MBPP) is turned into tasks on the spot: each problem's solution gets one or
//! two synthetic bugs from the same corruption operators `coe data gen` uses,
//! seeded by the problem id so the same bug comes back every time. Whether a
//! bug actually fails a test shows when the task is opened; no sandbox is
//! needed to list them, so the workbench opens at once.
use crate::config::Config;
use crate::data::corrupt::{CorruptConfig, corrupt};
use crate::data::loaders::{load_problems, load_tasks};
use crate::task::{Origin, Task};
use crate::util::find_in_checkout;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};

/// The shipped problem set, the fallback task source.
pub const SHIPPED_PROBLEMS: &str = "datasets/problems.jsonl";

/// Tasks for step mode and a description of where they came from.
#[derive(Debug, Clone)]
pub struct TaskSource {
    pub tasks: Vec<Task>,
    pub origin: String,
    pub path: Option<PathBuf>,
}

/// The file step mode reads: `--tasks`, else `eval.tasks`, else the shipped problems.
pub fn task_file(explicit: Option<&Path>, cfg: &Config) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Some(t) = &cfg.eval.tasks {
        return Some(PathBuf::from(t));
    }
    find_in_checkout(Path::new(SHIPPED_PROBLEMS)).ok()
}

/// Loads step mode's tasks; `Err` says what is wrong with the file.
pub fn load_step_tasks(explicit: Option<&Path>, cfg: &Config) -> Result<TaskSource, String> {
    let Some(path) = task_file(explicit, cfg) else {
        return Err(format!(
            "no tasks: give --tasks F, set eval.tasks, or run from the checkout ({SHIPPED_PROBLEMS} not found)"
        ));
    };
    match load_tasks(&path) {
        Ok(tasks) => Ok(TaskSource {
            origin: format!("{} ({} tasks)", path.display(), tasks.len()),
            tasks,
            path: Some(path),
        }),
        Err(task_err) => match load_problems(&path) {
            Ok(problems) => {
                let tasks = tasks_from_problems(&problems);
                Ok(TaskSource {
                    origin: format!(
                        "{} ({} problems, synthetic bugs)",
                        path.display(),
                        tasks.len()
                    ),
                    tasks,
                    path: Some(path),
                })
            }
            Err(_) => Err(task_err.to_string()),
        },
    }
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// One seeded synthetic bug per problem (problems where no operator applies are skipped).
pub fn tasks_from_problems(problems: &[crate::task::Problem]) -> Vec<Task> {
    let cfg = CorruptConfig {
        min_ops: 1,
        max_ops: 2,
        ..CorruptConfig::default()
    };
    let mut out = Vec::with_capacity(problems.len());
    for (i, p) in problems.iter().enumerate() {
        // Donor lines come from the next problem, as in `coe data gen`'s spirit: plausible code.
        let donor_src = problems
            .get((i + 1) % problems.len().max(1))
            .map_or("", |d| d.solution.as_str());
        let donors: Vec<&str> = donor_src.lines().collect();
        let mut rng = ChaCha8Rng::seed_from_u64(fnv(&p.id));
        if let Some(c) = corrupt(&p.solution, &donors, &cfg, &mut rng) {
            let ops = c.operators.iter().map(|o| o.to_string()).collect();
            out.push(Task::from_problem(
                p,
                format!("{}#wb", p.id),
                c.buggy,
                Origin::Synthetic,
                Some(ops),
            ));
        }
    }
    out
}

/// Files for data mode: the step task file, the config's data files, and the
/// `.jsonl` files under `datasets/` (existing files only, no repeats).
pub fn data_files(step_tasks: Option<&Path>, cfg: &Config) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let mut add = |p: PathBuf| {
        if p.is_file() && !out.contains(&p) {
            out.push(p);
        }
    };
    if let Some(p) = step_tasks {
        add(p.to_path_buf());
    }
    for p in cfg
        .eval
        .tasks
        .iter()
        .chain(&cfg.sft.train)
        .chain(&cfg.sft.valid)
        .chain(&cfg.rl.tasks)
    {
        add(PathBuf::from(p));
    }
    if let Ok(dir) = find_in_checkout(Path::new("datasets")) {
        let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let name = p.to_string_lossy();
                name.ends_with(".jsonl") || name.ends_with(".jsonl.gz")
            })
            .collect();
        found.sort();
        for p in found {
            add(p);
        }
    }
    out
}

/// Records past this many are not loaded (the browser is for looking, not for bulk).
pub const MAX_RECORDS: usize = 20_000;

/// Reads a data file for the browser: tasks, demonstrations, or other records by id.
pub fn load_records(path: &Path) -> Result<Vec<crate::tui::msg::DataRecord>, String> {
    use crate::tui::msg::DataRecord;
    let values = crate::data::jsonl::read_values(path).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(values.len().min(MAX_RECORDS));
    for (line, v) in values.into_iter().take(MAX_RECORDS) {
        let rec = if v.get("turns").is_some() && v.get("task").is_some() {
            serde_json::from_value(v.clone())
                .ok()
                .map(|d| DataRecord::Demo(Box::new(d)))
        } else if v.get("buggy").is_some() {
            serde_json::from_value(v.clone())
                .ok()
                .map(|t| DataRecord::Task(Box::new(t)))
        } else {
            None
        };
        out.push(rec.unwrap_or_else(|| {
            let id = v
                .get("id")
                .or_else(|| v.get("task_id"))
                .or_else(|| v.get("task").and_then(|t| t.get("id")))
                .and_then(|x| x.as_str())
                .map_or_else(|| format!("line {line}"), str::to_string);
            let json = serde_json::to_string_pretty(&v).unwrap_or_default();
            DataRecord::Other { id, json }
        }));
    }
    Ok(out)
}
