//! The `coe` command line (DESIGN §8): argument parsing, dispatch, and the exit
//! status contract — 0 success, 1 an error or a failed check (e.g. `data validate`),
//! 2 usage errors (clap's).
mod args;
mod context;
mod data;
mod eval;
mod model;
mod sample_bugs;
mod serve;
mod step;
mod train;
mod version;
mod workbench;

pub use args::{Cli, Cmd, DataCmd, ModelCmd, TrainCmd};
pub use context::Ctx;

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.version {
        println!("{}", version::long_version());
        return ExitCode::SUCCESS;
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("coe: error: {}", error_text(&e));
            ExitCode::from(1)
        }
    }
}

/// An error and its causes joined by ": ", leaving out a cause whose text the message
/// before it already ends with (many errors quote their source, e.g. "F: No such file").
pub fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.is_empty() {
            text = part;
        } else if !text.ends_with(&part) {
            text = format!("{text}: {part}");
        }
    }
    text
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let cmd = match cli.command {
        None => return workbench::run(cli.config.as_deref(), &cli.device, cli.threads),
        Some(cmd) => cmd,
    };
    let tui = |follow: &[PathBuf], results: &[PathBuf], tasks: &Option<PathBuf>, no_model: bool| {
        crate::tui::run(crate::tui::TuiOptions {
            config: cli.config.clone(),
            device: cli.device.clone(),
            threads: cli.threads,
            follow: follow.to_vec(),
            results: results.to_vec(),
            tasks: tasks.clone(),
            no_model,
        })
    };
    // The workbench opens even on an invalid config (it shows the error in config mode),
    // so it starts before the config is loaded; every other command needs the config.
    let mut ctx = match &cmd {
        Cmd::Tui {
            follow,
            results,
            tasks,
            no_model,
        } => return tui(follow, results, tasks, *no_model),
        _ => context::Ctx::load(cli.config.as_deref(), &cli.device, cli.threads)?,
    };
    match &cmd {
        Cmd::Tui {
            follow,
            results,
            tasks,
            no_model,
        } => tui(follow, results, tasks, *no_model),

        Cmd::Model(ModelCmd::Inspect {
            model,
            prompt,
            top,
            json,
            chat,
        }) => {
            let args = model::InspectArgs {
                model,
                prompt,
                top: *top,
                json: *json,
                chat: *chat,
            };
            model::inspect(&ctx.config.model, &args)
        }
        Cmd::Model(ModelCmd::Tiny {
            out,
            tokenizer_from,
            layers,
            hidden,
            heads,
            kv_heads,
            intermediate,
            seed,
        }) => {
            let shape = crate::model::tiny::TinyShape {
                layers: *layers,
                hidden: *hidden,
                heads: *heads,
                kv_heads: *kv_heads,
                intermediate: *intermediate,
            };
            let n = crate::model::tiny::create(out, tokenizer_from, shape, *seed)?;
            eprintln!("wrote a {n}-parameter model to {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Data(DataCmd::Validate { file }) => data::validate(&ctx, file),
        Cmd::Data(DataCmd::Gen {
            problems,
            out,
            seed,
            per_problem,
            operators,
            max_ops,
        }) => {
            let corrupt = data::corrupt_config(operators, *max_ops)?;
            data::generate(&ctx, problems, out, *seed, *per_problem, corrupt)
        }
        Cmd::Data(DataCmd::SampleBugs {
            problems,
            model,
            out,
            samples,
            temperature,
            seed,
        }) => {
            let args = sample_bugs::SampleBugsArgs {
                problems,
                model,
                out,
                samples: *samples,
                temperature: *temperature,
                seed: *seed,
            };
            sample_bugs::run(&ctx, &args)
        }
        Cmd::Step(args) => step::run(&ctx, args),
        Cmd::Train(TrainCmd::Sft { resume }) => {
            train::run(&ctx, crate::protocol::JobKind::Sft, *resume)
        }
        Cmd::Train(TrainCmd::Rl { resume }) => {
            train::run(&ctx, crate::protocol::JobKind::Rl, *resume)
        }
        Cmd::Eval(args) => eval::run(&mut ctx, args),
        Cmd::Serve(args) => serve::run(&ctx, args),
        Cmd::Bench {
            what,
            out,
            batch,
            tasks,
            tasks_n,
            group,
            steps,
            no_baseline,
            baseline_timeout,
            no_whole_rounds,
        } => {
            let baseline_timeout = match baseline_timeout {
                Some(s) if !(s.is_finite() && *s > 0.0) => {
                    anyhow::bail!("--baseline-timeout {s}: must be a positive number of seconds")
                }
                s => s.map(std::time::Duration::from_secs_f64),
            };
            let opts = crate::bench::BenchOptions {
                batches: batch.clone(),
                tasks: tasks.clone(),
                tasks_n: *tasks_n,
                group: *group,
                steps: *steps,
                baseline: !no_baseline,
                baseline_timeout,
                whole_rounds: !no_whole_rounds,
            };
            // The workbench's own benchmark lives with the workbench (bench sits below tui).
            let value = if what == "tui" {
                crate::tui::bench::run()?
            } else {
                crate::bench::run(what, &ctx.config, &opts)?
            };
            crate::bench::emit(&value, out.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::error_text;
    use anyhow::Context as _;

    #[test]
    fn a_cause_the_message_already_quotes_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let quoting = anyhow::Error::new(crate::data::jsonl::JsonlError::Io {
            path: "t.jsonl".into(),
            source: io,
        });
        assert_eq!(error_text(&quoting), "t.jsonl: No such file");
        let wrapped: anyhow::Result<()> =
            Err(std::io::Error::other("disk full")).context("writing F");
        assert_eq!(error_text(&wrapped.unwrap_err()), "writing F: disk full");
    }
}
