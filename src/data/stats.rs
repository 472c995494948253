//! Statistics printed by `coe data gen`: counts per split, the operator mix,
//! edits per task and line edit distance, so a user sees what was made.
use super::split::Split;
use super::synth::Generated;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Default)]
pub struct GenStats {
    pub problems: BTreeMap<String, usize>,
    pub tasks: BTreeMap<String, usize>,
    pub operators: BTreeMap<String, usize>,
    /// Number of tasks by edits in the repair (commands before EXIT).
    pub edits_per_task: BTreeMap<usize, usize>,
    pub mean_edits: f64,
    /// Mean characters changed (buggy vs fixed, by line) — a rough edit distance.
    pub mean_changed_chars: f64,
    pub broken_problems: Vec<String>,
    pub failed_replays: Vec<String>,
    pub too_long: usize,
    pub seconds: f64,
    /// Tokens per demonstration with the default model's tokenizer, when it is installed.
    pub tokens: Option<TokenStats>,
}

pub fn stats(g: &Generated, seconds: f64) -> GenStats {
    let mut s = GenStats {
        broken_problems: g.broken_problems.clone(),
        failed_replays: g.failed_replays.clone(),
        too_long: g.too_long,
        seconds,
        ..GenStats::default()
    };
    let mut edits_total = 0usize;
    let mut chars_total = 0usize;
    let mut n = 0usize;
    for split in Split::ALL {
        let tasks = g.tasks.get(&split).map(Vec::as_slice).unwrap_or(&[]);
        let problems: std::collections::HashSet<&str> =
            tasks.iter().map(|t| t.problem_id.as_str()).collect();
        s.problems.insert(split.name().into(), problems.len());
        s.tasks.insert(split.name().into(), tasks.len());
        for t in tasks {
            for op in t.corruptions.iter().flatten() {
                *s.operators.entry(op.clone()).or_default() += 1;
            }
        }
        for d in g.demos.get(&split).map(Vec::as_slice).unwrap_or(&[]) {
            let edits = d.turns.len().saturating_sub(1);
            *s.edits_per_task.entry(edits).or_default() += 1;
            edits_total += edits;
            chars_total += changed_chars(&d.task.buggy, d.task.solution.as_deref().unwrap_or(""));
            n += 1;
        }
    }
    if n > 0 {
        s.mean_edits = edits_total as f64 / n as f64;
        s.mean_changed_chars = chars_total as f64 / n as f64;
    }
    s
}

/// Characters outside the common prefix and suffix of the two texts.
fn changed_chars(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let pre = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suf = a[pre..]
        .iter()
        .rev()
        .zip(b[pre..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    (a.len() - pre - suf).max(b.len() - pre - suf)
}

impl GenStats {
    /// Human-readable summary for stderr.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for split in Split::ALL {
            let k = split.name();
            out.push_str(&format!(
                "  {k:<5}  {:>5} problems  {:>6} tasks\n",
                self.problems.get(k).copied().unwrap_or(0),
                self.tasks.get(k).copied().unwrap_or(0)
            ));
        }
        out.push_str(&format!(
            "  edits per task: mean {:.2}  {:?}\n  changed characters per task: mean {:.1}\n  operators:",
            self.mean_edits, self.edits_per_task, self.mean_changed_chars
        ));
        for (op, n) in &self.operators {
            out.push_str(&format!(" {op}={n}"));
        }
        out.push('\n');
        if !self.broken_problems.is_empty() {
            out.push_str(&format!(
                "  skipped (reference fails): {:?}\n",
                self.broken_problems
            ));
        }
        if self.too_long > 0 {
            out.push_str(&format!(
                "  dropped (repair longer than the turn budget): {}\n",
                self.too_long
            ));
        }
        if !self.failed_replays.is_empty() {
            out.push_str(&format!("  REPLAY FAILURES: {:?}\n", self.failed_replays));
        }
        if let Some(t) = &self.tokens {
            out.push_str(&format!(
                "  tokens per demo ({}): mean {:.0}, max {}, of which commands mean {:.1}\n",
                t.tokenizer, t.mean_tokens, t.max_tokens, t.mean_command_tokens
            ));
        }
        out.push_str(&format!("  took {:.1}s\n", self.seconds));
        out
    }
}

/// Tokens per demonstration under a model's tokenizer and chat format: the whole
/// conversation, and the assistant (command) tokens that training sees.
#[derive(Debug, Clone, Serialize, Default)]
pub struct TokenStats {
    pub tokenizer: String,
    pub mean_tokens: f64,
    pub max_tokens: usize,
    pub mean_command_tokens: f64,
}
