//! `coe step`: one episode in line mode, for scripts and people. Prints each
//! observation followed by `---`, reads one command per line from stdin, prints
//! `reward <r> solved <bool> done <bool>` after each, exits 0 when the episode ends.
use super::args::StepArgs;
use super::context::Ctx;
use crate::data::loaders::load_tasks;
use crate::env::episode::{Episode, Source};
use anyhow::Context as _;
use std::io::{BufRead, Write};
use std::process::ExitCode;

pub fn run(ctx: &Ctx, args: &StepArgs) -> anyhow::Result<ExitCode> {
    if args.model.is_some() {
        return Ok(super::not_built("coe step --model (model proposals)"));
    }
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
    let pool = ctx.sandbox()?;
    let limits = ctx.config.sandbox.limits.clone();
    let (mut ep, obs) = Episode::reset(task, &pool, &ctx.config.env, &limits, (0, 0))?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "{}\n---", obs.text)?;
    out.flush()?;
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line.context("cannot read stdin")?;
        let line = line.trim_end_matches('\r');
        let s = ep.step(line, Source::Person)?;
        writeln!(
            out,
            "reward {} solved {} done {}",
            s.reward, s.solved, s.done
        )?;
        if s.done {
            out.flush()?;
            return Ok(ExitCode::SUCCESS);
        }
        writeln!(out, "{}\n---", s.observation.text)?;
        out.flush()?;
    }
    anyhow::bail!("stdin closed before the episode ended (send EXIT to end it)")
}
