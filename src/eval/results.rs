//! `results.json` (DESIGN §8): the evaluation summary with provenance, built
//! from episode results.
use super::metrics::{mean_pass_at_k, turn_curve};
use super::rollout::EpisodeResult;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize)]
pub struct Provenance {
    pub commit: String,
    pub model_sha256: Option<String>,
    pub adapter: Option<String>,
    pub seed: u64,
    pub config: String,
    pub policy: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PerTask {
    pub id: String,
    pub solved: Vec<bool>,
    pub turns: Vec<u32>,
}

/// Marks results of a run stopped early (Ctrl-C): they cover only `episodes` finished
/// episodes, not `tasks × samples`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Partial {
    /// Always true: one field for readers to test.
    pub partial: bool,
    pub episodes: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalResults {
    pub schema: u32,
    pub method: String,
    pub tasks: usize,
    pub tasks_file: String,
    pub samples: usize,
    /// `"partial": true, "episodes": N` at the top level, only for a run stopped early.
    #[serde(flatten)]
    pub partial: Option<Partial>,
    pub pass_at: BTreeMap<String, f64>,
    pub turn_curve: BTreeMap<String, f64>,
    pub mean_turns: f64,
    /// Mean episode return (the sum of the turn rewards) over scored episodes.
    pub mean_return: f64,
    pub invalid_rate: f64,
    /// Episodes excluded because the sandbox failed twice (not scored).
    pub infra_errors: usize,
    pub provenance: Provenance,
    pub per_task: Vec<PerTask>,
}

/// The commit this binary was built from (`unknown` outside a git checkout).
pub fn build_commit() -> &'static str {
    env!("COE_GIT_COMMIT")
}

/// What was evaluated: the method, the task file and ids, and the metric settings.
#[derive(Debug, Clone)]
pub struct EvalSpec {
    pub method: String,
    pub tasks_file: String,
    pub task_ids: Vec<String>,
    pub samples: usize,
    pub ks: Vec<usize>,
    pub max_turns: u32,
}

/// Summarises episodes (in task, sample order).
pub fn summarise(
    spec: &EvalSpec,
    episodes: &[EpisodeResult],
    provenance: Provenance,
) -> EvalResults {
    let EvalSpec {
        method,
        tasks_file,
        task_ids,
        samples,
        ks,
        max_turns,
    } = spec;
    let (samples, max_turns) = (*samples, *max_turns);
    let scored: Vec<&EpisodeResult> = episodes.iter().filter(|e| !e.infra_error).collect();
    let per_task: Vec<PerTask> = task_ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let eps: Vec<&&EpisodeResult> = scored.iter().filter(|e| e.task_index == i).collect();
            PerTask {
                id: id.clone(),
                solved: eps.iter().map(|e| e.solved).collect(),
                turns: eps.iter().map(|e| e.turns).collect(),
            }
        })
        .collect();
    let counts: Vec<(usize, usize)> = per_task
        .iter()
        .filter(|t| !t.solved.is_empty())
        .map(|t| (t.solved.len(), t.solved.iter().filter(|&&s| s).count()))
        .collect();
    let pass_at = ks
        .iter()
        .filter(|&&k| k <= samples)
        .map(|&k| (k.to_string(), mean_pass_at_k(&counts, k)))
        .collect();
    let curve = if method == "coe" {
        let sa: Vec<Vec<bool>> = scored.iter().map(|e| e.solved_after.clone()).collect();
        turn_curve(&sa, max_turns)
            .into_iter()
            .enumerate()
            .map(|(t, v)| ((t + 1).to_string(), v))
            .collect()
    } else {
        BTreeMap::new()
    };
    let commands: u32 = scored.iter().map(|e| e.turns).sum();
    let invalid: u32 = scored.iter().map(|e| e.invalid).sum();
    EvalResults {
        schema: 1,
        method: method.clone(),
        tasks: task_ids.len(),
        tasks_file: tasks_file.clone(),
        samples,
        partial: None,
        pass_at,
        turn_curve: curve,
        mean_turns: if scored.is_empty() {
            0.0
        } else {
            f64::from(commands) / scored.len() as f64
        },
        mean_return: if scored.is_empty() {
            0.0
        } else {
            scored
                .iter()
                .map(|e| e.rewards.iter().sum::<f64>())
                .sum::<f64>()
                / scored.len() as f64
                + 0.0 // a -0.0 (all rewards zero) prints as 0.000
        },
        invalid_rate: if commands == 0 {
            0.0
        } else {
            f64::from(invalid) / f64::from(commands)
        },
        infra_errors: episodes.len() - scored.len(),
        provenance,
        per_task,
    }
}

impl EvalResults {
    /// Marks the results as covering only the `episodes` that finished before a stop.
    pub fn mark_partial(&mut self, episodes: usize) {
        self.partial = Some(Partial {
            partial: true,
            episodes,
        });
    }

    /// The table printed by `coe eval`.
    pub fn table(&self) -> String {
        let mut out = format!(
            "method {}  tasks {}  samples {}  policy {}\n",
            self.method, self.tasks, self.samples, self.provenance.policy
        );
        if let Some(p) = self.partial {
            out.push_str(&format!(
                "  partial: stopped early, covers {} of {} episodes\n",
                p.episodes,
                self.tasks * self.samples
            ));
        }
        for (k, v) in &self.pass_at {
            out.push_str(&format!("  pass@{k:<3} {:6.2}%\n", v * 100.0));
        }
        out.push_str(&format!(
            "  mean turns {:.2}   mean return {:.3}   invalid-command rate {:.2}%   infra errors {}\n",
            self.mean_turns,
            self.mean_return,
            self.invalid_rate * 100.0,
            self.infra_errors
        ));
        if !self.turn_curve.is_empty() {
            out.push_str("  solve rate within t turns:");
            let mut keys: Vec<(usize, f64)> = self
                .turn_curve
                .iter()
                .filter_map(|(k, v)| k.parse().ok().map(|k: usize| (k, *v)))
                .collect();
            keys.sort_by_key(|&(k, _)| k);
            for (k, v) in keys {
                out.push_str(&format!(" {k}:{:.0}%", v * 100.0));
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty() -> EvalResults {
        let spec = EvalSpec {
            method: "coe".into(),
            tasks_file: "t.jsonl".into(),
            task_ids: vec!["a".into(), "b".into()],
            samples: 2,
            ks: vec![1],
            max_turns: 3,
        };
        let provenance = Provenance {
            commit: "c".into(),
            model_sha256: None,
            adapter: None,
            seed: 0,
            config: "()".into(),
            policy: "p".into(),
        };
        summarise(&spec, &[], provenance)
    }

    #[test]
    fn only_a_stopped_run_says_it_is_partial() {
        let mut r = empty();
        let json = serde_json::to_value(&r).unwrap();
        assert!(json.get("partial").is_none() && json.get("episodes").is_none());
        assert!(!r.table().contains("partial"));
        r.mark_partial(3);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            (&json["partial"], &json["episodes"]),
            (&true.into(), &3.into())
        );
        assert!(
            r.table()
                .contains("  partial: stopped early, covers 3 of 4 episodes\n")
        );
    }
}
