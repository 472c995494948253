//! `coe eval`: runs n samples per task with a policy, prints a table and writes
//! `results.json` (DESIGN §8), optionally every trajectory.
use super::args::EvalArgs;
use super::context::Ctx;
use crate::config::{Method, ModelSection};
use crate::data::loaders::load_tasks;
use crate::eval::results::{EvalSpec, Provenance, build_commit, summarise};
use crate::eval::rollout::{EpisodeResult, RolloutOptions, run_episodes};
use crate::model::loader::load_for_inference;
use crate::policy::{ModelPolicy, ModelPolicyConfig, OraclePolicy, Policy};
use anyhow::Context as _;
use std::io::Write;
use std::process::ExitCode;

pub fn run(ctx: &mut Ctx, args: &EvalArgs) -> anyhow::Result<ExitCode> {
    let cfg = &mut ctx.config;
    if let Some(m) = &args.method {
        cfg.eval.method = match m.as_str() {
            "coe" => Method::Coe,
            "direct" => Method::Direct,
            "cot" => Method::Cot,
            other => anyhow::bail!("--method {other:?}: expected coe, direct or cot"),
        };
    }
    if let Some(n) = args.samples {
        cfg.eval.samples = n;
    }
    if let Some(k) = &args.k {
        cfg.eval.k = k.clone();
    }
    if let Some(t) = args.temperature {
        cfg.eval.temperature = t;
    }
    if let Some(t) = args.max_turns {
        cfg.env.max_turns = t;
    }
    if let Some(p) = cfg.validate().first() {
        anyhow::bail!("{} = {}: {}", p.field, p.value, p.message);
    }
    // (model file sha256, adapter) for the provenance.
    let mut model_info = (None, None);
    let mut policy: Box<dyn Policy> = match (&args.policy, &args.model) {
        (Some(p), _) if p == "oracle" => Box::new(OraclePolicy),
        (Some(p), _) => anyhow::bail!("--policy {p:?}: the built-in policies are: oracle"),
        (None, Some(_)) if cfg.eval.method != Method::Coe => {
            return Ok(super::not_built("coe eval --model --method direct|cot"));
        }
        (None, Some(m)) => {
            let section = ModelSection {
                path: m.clone(),
                ..cfg.model.clone()
            };
            let loaded = load_for_inference(&section, args.adapter.as_deref())?;
            model_info = (loaded.sha256.clone(), loaded.adapter.clone());
            let settings = ModelPolicyConfig::new(
                cfg.eval.temperature,
                cfg.eval.top_p,
                cfg.env.context_tokens,
                cfg.seed,
            );
            Box::new(ModelPolicy::new(loaded, settings)?)
        }
        (None, None) => anyhow::bail!("give --model M or --policy oracle"),
    };
    if cfg.eval.method != Method::Coe {
        return Ok(super::not_built("coe eval --method direct|cot"));
    }
    let tasks = load_tasks(&args.tasks)?;
    anyhow::ensure!(
        !tasks.is_empty(),
        "{}: the file holds no tasks",
        args.tasks.display()
    );
    let pool = ctx.sandbox()?;
    let cfg = &ctx.config;
    let opts = RolloutOptions {
        env: cfg.env.clone(),
        limits: cfg.sandbox.limits.clone(),
        batch: 64,
        threads: ctx.step_threads(&pool),
        job: 0,
    };
    let total = tasks.len() * cfg.eval.samples;
    let started = std::time::Instant::now();
    let mut finished = 0usize;
    let mut on_event = |e: crate::protocol::EpisodeEvent| {
        if let crate::protocol::EpisodeEvent::EpisodeFinished { .. } = e {
            finished += 1;
            if finished.is_multiple_of(16) || finished == total {
                eprint!(
                    "\reval: {finished}/{total} episodes, {:.1}s",
                    started.elapsed().as_secs_f64()
                );
            }
        }
    };
    let episodes = run_episodes(
        &tasks,
        cfg.eval.samples,
        policy.as_mut(),
        &pool,
        &opts,
        &mut on_event,
    )?;
    eprintln!();
    let ids: Vec<String> = tasks.iter().map(|t| t.id.clone()).collect();
    let spec = EvalSpec {
        method: "coe".into(),
        tasks_file: args.tasks.display().to_string(),
        task_ids: ids,
        samples: cfg.eval.samples,
        ks: cfg.eval.k.clone(),
        max_turns: cfg.env.max_turns,
    };
    let results = summarise(
        &spec,
        &episodes,
        Provenance {
            commit: build_commit().into(),
            model_sha256: model_info.0,
            adapter: model_info.1,
            seed: cfg.seed,
            config: ctx.origin.clone(),
            policy: policy.name(),
        },
    );
    print!("{}", results.table());
    let out = args.out.clone().unwrap_or_else(|| "results.json".into());
    let json = serde_json::to_string_pretty(&results)?;
    crate::util::write_atomic(&out, json.as_bytes())
        .with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!("eval: wrote {}", out.display());
    if let Some(dir) = &args.save_episodes {
        save_episodes(dir, &episodes)?;
        eprintln!(
            "eval: wrote {} trajectories under {}",
            episodes.len(),
            dir.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn save_episodes(dir: &std::path::Path, episodes: &[EpisodeResult]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("episodes.jsonl");
    let mut buf = Vec::new();
    for e in episodes {
        let v = serde_json::json!({
            "episode": e.episode, "task_id": e.task_id, "sample": e.sample,
            "solved": e.solved, "turns": e.turns, "infra_error": e.infra_error,
            "rewards": e.rewards, "records": e.records,
        });
        serde_json::to_writer(&mut buf, &v)?;
        buf.write_all(b"\n")?;
    }
    crate::util::write_atomic(&path, &buf)
        .with_context(|| format!("cannot write {}", path.display()))
}
