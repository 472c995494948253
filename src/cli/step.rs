//! `coe step`: one episode in line mode, for scripts and people. Prints each
//! observation followed by `---`, reads one command per line from stdin, prints
//! `reward <r> solved <bool> done <bool>` after each, exits 0 when the episode ends.
//!
//! With `--model`, the model proposes each command first: after the `---` comes a line
//! `proposal <text>` (the model's reply as sampled, `### ` prefix included); an empty line
//! applies it as a model turn, any other line is applied as a typed command instead. Either
//! way the applied turn joins the model's history, so its next proposal reads the episode as
//! it really went.
use super::args::StepArgs;
use super::context::Ctx;
use crate::data::loaders::load_tasks;
use crate::env::episode::Episode;
use crate::model::loader::load_for_inference;
use crate::policy::{ModelPolicy, ModelPolicyConfig, Policy, Proposal, Query};
use anyhow::Context as _;
use std::io::{BufRead, Write};
use std::process::ExitCode;

pub fn run(ctx: &Ctx, args: &StepArgs) -> anyhow::Result<ExitCode> {
    let tasks = load_tasks(&args.tasks)?;
    let task = match &args.task {
        Some(id) => tasks
            .into_iter()
            .find(|t| &t.id == id)
            .with_context(|| format!("{}: no task with id {id:?}", args.tasks.display()))?,
        None => tasks
            .into_iter()
            .next()
            .with_context(|| format!("{}: the file holds no tasks", args.tasks.display()))?,
    };
    let mut policy = match &args.model {
        Some(m) => Some(load_policy(ctx, m, args.adapter.as_deref())?),
        None => None,
    };
    let pool = ctx.sandbox()?;
    let limits = ctx.config.sandbox.limits.clone();
    let (mut ep, obs) = Episode::reset(task, &pool, &ctx.config.env, &limits, (0, 0))?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut observation = obs.text;
    let mut history: Vec<(String, Proposal)> = Vec::new();
    writeln!(out, "{observation}\n---")?;
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        let proposal = match policy.as_mut() {
            Some(p) => Some(propose(p, &ep, &history, &observation)?),
            None => None,
        };
        if let Some(p) = &proposal {
            writeln!(out, "proposal {}", p.text)?;
        }
        out.flush()?;
        let Some(line) = lines.next() else {
            anyhow::bail!("stdin closed before the episode ended (send EXIT to end it)")
        };
        let line = line.context("cannot read stdin")?;
        let line = line.trim_end_matches('\r');
        let reply = match proposal {
            Some(p) if line.trim().is_empty() => p,
            _ => Proposal {
                // The model reads its own turns as `### <command>`; a typed one joins its
                // history the same way.
                text: if line.starts_with("### ") {
                    line.to_string()
                } else {
                    format!("### {}", line.trim_start())
                },
                person: true,
                failed: None,
                ..Proposal::default()
            },
        };
        let source = reply.source();
        let text = if reply.person { line } else { &reply.text };
        let s = ep.step(text, source)?;
        writeln!(
            out,
            "reward {} solved {} done {}",
            s.reward, s.solved, s.done
        )?;
        if s.done {
            out.flush()?;
            return Ok(ExitCode::SUCCESS);
        }
        history.push((
            std::mem::replace(&mut observation, s.observation.text),
            reply,
        ));
        writeln!(out, "{observation}\n---")?;
    }
}

fn load_policy(
    ctx: &Ctx,
    model: &str,
    adapter: Option<&std::path::Path>,
) -> anyhow::Result<ModelPolicy> {
    let (section, adapter) = ctx.model_and_adapter(model, adapter)?;
    let loaded = load_for_inference(&section, adapter.as_deref())?;
    Ok(ModelPolicy::new(
        loaded,
        ModelPolicyConfig::for_eval(&ctx.config),
    )?)
}

fn propose(
    policy: &mut ModelPolicy,
    ep: &Episode<'_>,
    history: &[(String, Proposal)],
    observation: &str,
) -> anyhow::Result<Proposal> {
    let buffer = ep.buffer().clone();
    let query = Query {
        episode: 0,
        task: ep.task(),
        buffer: &buffer,
        history,
        observation,
    };
    policy
        .propose(&[query])?
        .pop()
        .context("the model returned no proposal")
}
