//! `Config::validate`: every bad value of a parsed configuration at once, each quoted with
//! its field path, so a user fixes a file in one pass.
use super::error::Problem;
use super::types::*;

fn positive(p: &mut Vec<Problem>, field: &str, v: f64) {
    if !(v.is_finite() && v > 0.0) {
        p.push(Problem::new(field, v, "must be a number greater than 0"));
    }
}

fn in_unit(p: &mut Vec<Problem>, field: &str, v: f64, open_top: bool) {
    let ok = v.is_finite() && v >= 0.0 && if open_top { v < 1.0 } else { v <= 1.0 };
    if !ok {
        let range = if open_top { "[0, 1)" } else { "[0, 1]" };
        p.push(Problem::new(field, v, format!("must lie in {range}")));
    }
}

fn at_least_one(p: &mut Vec<Problem>, field: &str, v: usize) {
    if v == 0 {
        p.push(Problem::new(field, v, "must be at least 1"));
    }
}

impl Config {
    /// Every bad value, each quoted with its field path.
    pub fn validate(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            || self.name.starts_with('.')
        {
            p.push(Problem::new(
                "name",
                format!("{:?}", self.name),
                "must be a non-empty directory name of letters, digits, '-', '_' or '.'",
            ));
        }
        let dev = self.model.device.as_str();
        let cuda_ok = dev == "cuda"
            || dev
                .strip_prefix("cuda:")
                .is_some_and(|i| !i.is_empty() && i.chars().all(|c| c.is_ascii_digit()));
        if dev != "cpu" && !cuda_ok {
            p.push(Problem::new(
                "model.device",
                format!("{dev:?}"),
                "must be \"cpu\", \"cuda\" or \"cuda:<index>\"",
            ));
        }
        if self.model.path.trim().is_empty() {
            p.push(Problem::new(
                "model.path",
                "\"\"",
                "must name a model (or \"default\")",
            ));
        }
        let e = &self.env;
        if e.max_turns == 0 || e.max_turns > 100 {
            p.push(Problem::new(
                "env.max_turns",
                e.max_turns,
                "must lie in 1..=100",
            ));
        }
        if e.feedback_cap < 80 {
            p.push(Problem::new(
                "env.feedback_cap",
                e.feedback_cap,
                "must be at least 80 characters",
            ));
        }
        at_least_one(&mut p, "env.max_failures_shown", e.max_failures_shown);
        if e.context_tokens < 256 {
            p.push(Problem::new(
                "env.context_tokens",
                e.context_tokens,
                "must be at least 256",
            ));
        }
        for (f, v) in [
            ("env.rewards.solved", e.rewards.solved),
            ("env.rewards.invalid", e.rewards.invalid),
            ("env.rewards.turn_cap", e.rewards.turn_cap),
        ] {
            if !v.is_finite() {
                p.push(Problem::new(f, v, "must be a finite number"));
            }
        }
        let ev = &self.eval;
        at_least_one(&mut p, "eval.samples", ev.samples);
        at_least_one(&mut p, "eval.batch", ev.batch);
        at_least_one(
            &mut p,
            "model.decode_batch_tokens",
            self.model.decode_batch_tokens,
        );
        if let Some(r) = &self.model.remote {
            if r.urls.is_empty() {
                p.push(Problem::new(
                    "model.remote.urls",
                    "[]",
                    "must list at least one server URL",
                ));
            }
            for (i, u) in r.urls.iter().enumerate() {
                if !u.starts_with("http://") {
                    p.push(Problem::new(
                        &format!("model.remote.urls[{i}]"),
                        format!("{u:?}"),
                        "must start with http:// (e.g. \"http://127.0.0.1:8000/v1\")",
                    ));
                }
            }
            if r.served_model.trim().is_empty() {
                p.push(Problem::new(
                    "model.remote.served_model",
                    "\"\"",
                    "must name the model the servers serve",
                ));
            }
            for (f, v) in [
                ("model.remote.timeout_s", r.timeout_s),
                ("model.remote.connect_timeout_s", r.connect_timeout_s),
            ] {
                if !(v.is_finite() && v > 0.0) {
                    p.push(Problem::new(f, v, "must be a positive number of seconds"));
                }
            }
            at_least_one(&mut p, "model.remote.max_in_flight", r.max_in_flight);
        }
        if ev.answer_tokens == Some(0) {
            p.push(Problem::new(
                "eval.answer_tokens",
                0,
                "must be at least 1 (or None for the default)",
            ));
        }
        if ev.k.is_empty() {
            p.push(Problem::new("eval.k", "[]", "must list at least one k"));
        }
        for (i, &k) in ev.k.iter().enumerate() {
            if k == 0 || k > ev.samples {
                p.push(Problem::new(
                    &format!("eval.k[{i}]"),
                    k,
                    format!("must lie in 1..=eval.samples ({})", ev.samples),
                ));
            }
        }
        if !(ev.temperature.is_finite() && ev.temperature >= 0.0) {
            p.push(Problem::new(
                "eval.temperature",
                ev.temperature,
                "must be ≥ 0 (0 = greedy)",
            ));
        }
        if !(ev.top_p > 0.0 && ev.top_p <= 1.0) {
            p.push(Problem::new("eval.top_p", ev.top_p, "must lie in (0, 1]"));
        }
        let s = &self.sft;
        at_least_one(&mut p, "sft.lora.rank", s.lora.rank);
        positive(&mut p, "sft.lora.alpha", s.lora.alpha);
        in_unit(&mut p, "sft.lora.dropout", s.lora.dropout, true);
        if s.lora.targets.is_empty() {
            p.push(Problem::new(
                "sft.lora.targets",
                "[]",
                "must name at least one module or \"all-linear\"",
            ));
        }
        positive(&mut p, "sft.lr", s.lr);
        at_least_one(&mut p, "sft.steps", s.steps);
        at_least_one(&mut p, "sft.batch_size", s.batch_size);
        at_least_one(&mut p, "sft.grad_accum", s.grad_accum);
        positive(&mut p, "sft.clip_norm", s.clip_norm);
        if !(s.weight_decay.is_finite() && s.weight_decay >= 0.0) {
            p.push(Problem::new(
                "sft.weight_decay",
                s.weight_decay,
                "must be ≥ 0",
            ));
        }
        at_least_one(&mut p, "sft.checkpoint_every", s.checkpoint_every);
        at_least_one(&mut p, "sft.keep_last", s.keep_last);
        at_least_one(&mut p, "sft.eval_every", s.eval_every);
        at_least_one(&mut p, "sft.max_batch_tokens", s.max_batch_tokens);
        if s.token_budget == Some(0) {
            p.push(Problem::new(
                "sft.token_budget",
                0,
                "must be at least 1 (or None for no budget)",
            ));
        }
        let r = &self.rl;
        if r.group_size < 2 {
            p.push(Problem::new(
                "rl.group_size",
                r.group_size,
                "must be at least 2 (advantages compare episodes of a group)",
            ));
        }
        at_least_one(&mut p, "rl.tasks_per_step", r.tasks_per_step);
        in_unit(&mut p, "rl.clip_eps", r.clip_eps, true);
        if !(r.kl_beta.is_finite() && r.kl_beta >= 0.0) {
            p.push(Problem::new("rl.kl_beta", r.kl_beta, "must be ≥ 0"));
        }
        positive(&mut p, "rl.lr", r.lr);
        at_least_one(&mut p, "rl.steps", r.steps);
        positive(&mut p, "rl.temperature", r.temperature);
        at_least_one(&mut p, "rl.checkpoint_every", r.checkpoint_every);
        at_least_one(&mut p, "rl.keep_last", r.keep_last);
        at_least_one(&mut p, "rl.eval_every", r.eval_every);
        at_least_one(&mut p, "rl.ppo_epochs", r.ppo_epochs);
        positive(&mut p, "rl.clip_norm", r.clip_norm);
        at_least_one(&mut p, "rl.max_batch_tokens", r.max_batch_tokens);
        if !["dark", "light", "high-contrast"].contains(&self.ui.theme.as_str()) {
            p.push(Problem::new(
                "ui.theme",
                format!("{:?}", self.ui.theme),
                "must be one of \"dark\", \"light\", \"high-contrast\"",
            ));
        }
        if self.ui.max_fps == 0 || self.ui.max_fps > 120 {
            p.push(Problem::new(
                "ui.max_fps",
                self.ui.max_fps,
                "must lie in 1..=120",
            ));
        }
        p
    }
}
