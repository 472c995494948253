//! `coe data sample-bugs`: model-written bugs (see `data::sample_bugs`). Samples solutions
//! from a model, keeps the failing ones as tasks, writes them atomically and prints a
//! summary; progress (sampled, tested and failing so far, elapsed, ETA) goes to stderr as
//! one line, rewritten in place on a terminal and one line per update elsewhere.
use super::context::Ctx;
use crate::config::ModelSection;
use crate::data::{jsonl, loaders};
use crate::eval::answer::sample_bugs::{SampleBugsOptions, sample_bugs};
use crate::eval::answer::{Answerer, ModelAnswerConfig, ModelAnswerer, RemoteAnswerer, Tally};
use crate::model::loader::load_for_inference;
use crate::util::progress::{ProgressLine, clock};
use anyhow::Context as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// The flags of `coe data sample-bugs`.
#[derive(Debug)]
pub struct SampleBugsArgs<'a> {
    pub problems: &'a PathBuf,
    pub model: &'a str,
    pub out: &'a PathBuf,
    pub samples: usize,
    pub temperature: Option<f64>,
    pub seed: Option<u64>,
}

pub fn run(ctx: &Ctx, args: &SampleBugsArgs<'_>) -> anyhow::Result<ExitCode> {
    let cfg = &ctx.config;
    anyhow::ensure!(args.samples >= 1, "--samples 0: must be at least 1");
    let temperature = args.temperature.unwrap_or(cfg.eval.temperature);
    anyhow::ensure!(
        temperature.is_finite() && temperature >= 0.0,
        "--temperature {temperature}: must be a finite number ≥ 0"
    );
    let seed = args.seed.unwrap_or(cfg.seed);
    let problems = loaders::load_problems(args.problems)?;
    anyhow::ensure!(
        !problems.is_empty(),
        "{}: the file holds no problems",
        args.problems.display()
    );
    let section = ModelSection {
        path: args.model.to_string(),
        ..cfg.model.clone()
    };
    let settings = ModelAnswerConfig::from_config(cfg, temperature, seed);
    // With `model.remote` the servers sample; `--model` then only gives the tokenizer.
    let mut answerer: Box<dyn Answerer> = match &cfg.model.remote {
        Some(remote) => Box::new(RemoteAnswerer::from_config(remote, args.model, settings)?),
        None => Box::new(ModelAnswerer::new(
            load_for_inference(&section, None)?,
            settings,
        )?),
    };
    let pool = ctx.sandbox()?;
    let opts = SampleBugsOptions {
        samples: args.samples,
        limits: cfg.sandbox.limits.clone(),
        threads: ctx.step_threads(&pool),
    };
    eprintln!(
        "sample-bugs: {} problems from {}, {} samples each, temperature {temperature}, seed {seed}",
        problems.len(),
        args.problems.display(),
        args.samples
    );
    let started = Instant::now();
    let mut last_answered = 0;
    let mut line = ProgressLine::stderr();
    let mut progress = |t: &Tally| {
        if t.answered == last_answered && !t.scored.is_multiple_of(16) && t.scored != t.total {
            return;
        }
        last_answered = t.answered;
        let secs = started.elapsed().as_secs_f64();
        let eta = if t.answered == 0 {
            "?".to_string()
        } else {
            // Decoding dominates: extrapolate from the replies so far.
            clock(secs / t.answered as f64 * (t.total - t.answered) as f64)
        };
        line.show(&format!(
            "sample-bugs: {}/{} sampled, {} tested, {} failing, elapsed {}, ETA {eta}",
            t.answered,
            t.total,
            t.scored,
            t.failed,
            clock(secs)
        ));
    };
    let (tasks, report) = sample_bugs(&problems, answerer.as_mut(), &pool, &opts, &mut progress)?;
    line.finish();
    if let Some(r) = answerer.report() {
        eprintln!("sample-bugs: {r}");
    }
    jsonl::write(args.out, &tasks).with_context(|| format!("writing {}", args.out.display()))?;
    print!("{}", report.render());
    println!(
        "sample-bugs: wrote {} tasks to {} in {:.1}s",
        tasks.len(),
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
