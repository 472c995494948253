//! `coe eval`: runs n samples per task with a policy, prints a table and writes
//! `results.json` (DESIGN §8), optionally every trajectory.
//!
//! `--method coe` runs editor episodes; `--method direct|cot` asks for the whole fixed
//! program in one reply (`eval::answer`) and scores those replies as one-turn episodes, so
//! every method shares the summary, the table and the JSON.
//!
//! Progress goes to stderr as one line (in place on a terminal): after every round for
//! editor episodes, as replies come back for one-shot ones. Ctrl-C or SIGTERM during editor
//! episodes stops at the next round boundary; the finished episodes are written as a
//! `results.json` marked `"partial": true` and the command exits 130.
use super::args::EvalArgs;
use super::context::Ctx;
use crate::config::{Method, RemoteSection};
use crate::data::loaders::load_tasks;
use crate::eval::answer::{
    AnswerFormat, Answerer, ModelAnswerConfig, ModelAnswerer, OneShotOptions, OneShotSample,
    OracleAnswerer, RemoteAnswerer, Tally, Verdict, as_episodes, run_one_shot,
};
use crate::eval::progress::RoundProgress;
use crate::eval::results::{EvalSpec, Provenance, build_commit, summarise};
use crate::eval::rollout::{EpisodeResult, RolloutOptions, Watch, run_episodes_watched};
use crate::model::loader::{LoadedModel, load_for_inference};
use crate::policy::{ModelPolicy, ModelPolicyConfig, OraclePolicy, Policy, RemotePolicy};
use crate::sandbox::SandboxPool;
use crate::task::Task;
use crate::util::progress::ProgressLine;
use anyhow::Context as _;
use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

/// What a run produced, whatever the method.
struct Outcome {
    episodes: Vec<EpisodeResult>,
    policy: String,
    /// Direct/CoT replies, for `--save-episodes`.
    replies: Option<Vec<OneShotSample>>,
    /// Stopped early (Ctrl-C): `episodes` holds only the finished ones.
    stopped: bool,
}

pub fn run(ctx: &mut Ctx, args: &EvalArgs) -> anyhow::Result<ExitCode> {
    apply_flags(ctx, args)?;
    let cfg = &ctx.config;
    let oracle = match &args.policy {
        Some(p) if p == "oracle" => true,
        Some(p) => anyhow::bail!("--policy {p:?}: the built-in policies are: oracle"),
        None => false,
    };
    // The remote backend samples on servers: the model named here only gives the tokenizer.
    let remote = match (&cfg.model.remote, oracle) {
        (Some(r), false) => Some((
            r.clone(),
            args.model.clone().unwrap_or_else(|| cfg.model.path.clone()),
        )),
        _ => None,
    };
    let loaded = match (&args.model, oracle) {
        (_, true) => None,
        _ if remote.is_some() => None,
        (Some(m), false) => {
            let (section, adapter) = ctx.model_and_adapter(m, args.adapter.as_deref())?;
            Some(load_for_inference(&section, adapter.as_deref())?)
        }
        (None, false) => anyhow::bail!("give --model M or --policy oracle"),
    };
    // (model file sha256, adapter) for the provenance.
    let model_info = loaded
        .as_ref()
        .map_or((None, None), |l| (l.sha256.clone(), l.adapter.clone()));
    let tasks = load_tasks(&args.tasks)?;
    anyhow::ensure!(
        !tasks.is_empty(),
        "{}: the file holds no tasks",
        args.tasks.display()
    );
    let pool = ctx.sandbox()?;
    let outcome = match cfg.eval.method {
        Method::Coe => run_coe(ctx, &tasks, loaded, remote, &pool)?,
        Method::Direct => run_answers(ctx, &tasks, loaded, remote, &pool, AnswerFormat::Direct)?,
        Method::Cot => run_answers(ctx, &tasks, loaded, remote, &pool, AnswerFormat::Cot)?,
    };
    let cfg = &ctx.config;
    let spec = EvalSpec {
        method: method_name(cfg.eval.method).into(),
        tasks_file: args.tasks.display().to_string(),
        task_ids: tasks.iter().map(|t| t.id.clone()).collect(),
        samples: cfg.eval.samples,
        ks: cfg.eval.k.clone(),
        max_turns: cfg.env.max_turns,
    };
    let provenance = Provenance {
        commit: build_commit().into(),
        model_sha256: model_info.0,
        adapter: model_info.1,
        seed: cfg.seed,
        config: ctx.origin.clone(),
        policy: outcome.policy.clone(),
    };
    let mut results = summarise(&spec, &outcome.episodes, provenance);
    if outcome.stopped {
        results.mark_partial(outcome.episodes.len());
    }
    print!("{}", results.table());
    let out = args.out.clone().unwrap_or_else(|| "results.json".into());
    let json = serde_json::to_string_pretty(&results)?;
    crate::util::write_atomic(&out, json.as_bytes())
        .with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!("eval: wrote {}", out.display());
    if let Some(dir) = &args.save_episodes {
        match &outcome.replies {
            Some(replies) => save_replies(dir, replies)?,
            None => save_episodes(dir, &outcome.episodes)?,
        }
        eprintln!(
            "eval: wrote {} trajectories under {}",
            outcome.episodes.len(),
            dir.display()
        );
    }
    if outcome.stopped {
        eprintln!(
            "eval: stopped early; {} is partial: it covers the {} finished episodes of {}",
            out.display(),
            outcome.episodes.len(),
            tasks.len() * cfg.eval.samples
        );
        // 128 + SIGINT, as a shell reports a command ended by Ctrl-C.
        return Ok(ExitCode::from(130));
    }
    Ok(ExitCode::SUCCESS)
}

/// Flags override the config; the result must still validate.
fn apply_flags(ctx: &mut Ctx, args: &EvalArgs) -> anyhow::Result<()> {
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
    Ok(())
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Coe => "coe",
        Method::Direct => "direct",
        Method::Cot => "cot",
    }
}

/// Editor episodes with the oracle or a model policy.
fn run_coe(
    ctx: &Ctx,
    tasks: &[Task],
    loaded: Option<LoadedModel>,
    remote: Option<(RemoteSection, String)>,
    pool: &SandboxPool,
) -> anyhow::Result<Outcome> {
    let cfg = &ctx.config;
    let settings = ModelPolicyConfig::for_eval(cfg);
    let mut policy: Box<dyn Policy> = match (loaded, remote) {
        (_, Some((section, spec))) => {
            Box::new(RemotePolicy::from_config(&section, &spec, &settings)?)
        }
        (None, None) => Box::new(OraclePolicy),
        (Some(loaded), None) => Box::new(ModelPolicy::new(loaded, settings)?),
    };
    let opts = RolloutOptions::from_config(cfg, cfg.eval.batch, ctx.step_threads(pool));
    let total = tasks.len() * cfg.eval.samples;
    let cancel = crate::util::interrupt::install(
        "\neval: stopping after this round and writing the finished episodes; Ctrl-C again to quit now\n",
    );
    let mut line = ProgressLine::stderr();
    let mut on_round = |p: &RoundProgress| line.show(&format!("eval: {}", p.line()));
    let watch = Watch {
        on_round: Some(&mut on_round),
        cancel: Some(cancel),
    };
    let episodes = run_episodes_watched(
        tasks,
        cfg.eval.samples,
        policy.as_mut(),
        pool,
        &opts,
        &mut |_| {},
        watch,
    )?;
    line.finish();
    if let Some(report) = policy.report() {
        eprintln!("eval: {report}");
    }
    Ok(Outcome {
        stopped: episodes.len() < total,
        episodes,
        policy: policy.name(),
        replies: None,
    })
}

/// One-shot answers (direct or CoT) with the oracle, a model or remote servers.
fn run_answers(
    ctx: &Ctx,
    tasks: &[Task],
    loaded: Option<LoadedModel>,
    remote: Option<(RemoteSection, String)>,
    pool: &SandboxPool,
    format: AnswerFormat,
) -> anyhow::Result<Outcome> {
    let cfg = &ctx.config;
    let settings = ModelAnswerConfig::from_config(cfg, cfg.eval.temperature, cfg.seed);
    let mut answerer: Box<dyn Answerer> = match (loaded, remote) {
        (_, Some((section, spec))) => {
            Box::new(RemoteAnswerer::from_config(&section, &spec, settings)?)
        }
        (None, None) => Box::new(OracleAnswerer),
        (Some(loaded), None) => Box::new(ModelAnswerer::new(loaded, settings)?),
    };
    let opts = OneShotOptions {
        format,
        samples: cfg.eval.samples,
        limits: cfg.sandbox.limits.clone(),
        threads: ctx.step_threads(pool),
    };
    let started = Instant::now();
    let mut shown = 0usize;
    let mut line = ProgressLine::stderr();
    let mut progress = |t: &Tally| {
        // Every micro-batch and every 16th verdict: enough to see it move, not a flood.
        if t.answered != shown || t.scored.is_multiple_of(16) || t.scored == t.total {
            shown = t.answered;
            line.show(&format!(
                "eval: {}/{} answered, {} scored, {:.1}s",
                t.answered,
                t.total,
                t.scored,
                started.elapsed().as_secs_f64()
            ));
        }
    };
    let samples = run_one_shot(tasks, answerer.as_mut(), pool, &opts, &mut progress)?;
    line.finish();
    if let Some(report) = answerer.report() {
        eprintln!("eval: {report}");
    }
    let over = samples
        .iter()
        .filter(|s| s.scored.reply.over_context)
        .count();
    if over > 0 {
        eprintln!(
            "eval: {over} prompts left no room for a reply in {} tokens of context; scored as unsolved answers without a program",
            cfg.env.context_tokens
        );
    }
    Ok(Outcome {
        episodes: as_episodes(&samples),
        policy: answerer.name(),
        replies: Some(samples),
        stopped: false,
    })
}

fn save_episodes(dir: &std::path::Path, episodes: &[EpisodeResult]) -> anyhow::Result<()> {
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
    write_episodes_file(dir, &buf)
}

/// Direct/CoT trajectories: the reply, the program read from it and the verdict.
fn save_replies(dir: &std::path::Path, replies: &[OneShotSample]) -> anyhow::Result<()> {
    let mut buf = Vec::new();
    for (i, s) in replies.iter().enumerate() {
        let (verdict, detail) = match &s.scored.verdict {
            Verdict::NoProgram => ("no_program", None),
            Verdict::Passed => ("passed", None),
            Verdict::Failed { kind } => ("failed", Some(kind.as_str())),
            Verdict::Infra { message } => ("infra_error", Some(message.as_str())),
        };
        let r = &s.scored.reply;
        let v = serde_json::json!({
            "episode": i, "task_id": s.task_id, "sample": s.sample,
            "solved": s.scored.verdict == Verdict::Passed, "turns": 1,
            "verdict": verdict, "detail": detail, "reply": r.text,
            "program": s.scored.program, "token_ids": r.token_ids,
            "prompt_tokens": r.prompt_tokens, "truncated": r.truncated,
        });
        serde_json::to_writer(&mut buf, &v)?;
        buf.write_all(b"\n")?;
    }
    write_episodes_file(dir, &buf)
}

fn write_episodes_file(dir: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("episodes.jsonl");
    crate::util::write_atomic(&path, bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}
