//! `coe` with no subcommand: the workbench on configs/default.ron (or
//! `--config F`) with the config's model loading in the background, when stdout
//! is a terminal. When it is not (a pipe, a script, a test), it prints a
//! summary of the validated configuration instead, so scripts keep a stable,
//! line-oriented output and never get a full-screen UI they cannot drive.
use crate::config::Config;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

/// Opens the workbench on a terminal; otherwise validates the config and prints a summary.
pub fn run(
    config: Option<&Path>,
    device: &Option<String>,
    threads: Option<usize>,
) -> anyhow::Result<ExitCode> {
    if std::io::stdout().is_terminal() && std::io::stdin().is_terminal() {
        return crate::tui::run(crate::tui::TuiOptions {
            config: config.map(Path::to_path_buf),
            device: device.clone(),
            threads,
            ..crate::tui::TuiOptions::default()
        });
    }
    let (mut cfg, origin) = load_config(config)?;
    if let Some(d) = device {
        cfg.model.device = d.clone();
    }
    if let Some(t) = threads {
        cfg.model.threads = t;
    }
    let problems = cfg.validate();
    if !problems.is_empty() {
        for p in problems {
            eprintln!(
                "coe: error: {}: {} = {}: {}",
                origin, p.field, p.value, p.message
            );
        }
        return Ok(ExitCode::from(2));
    }
    println!("{}", summary(&cfg, &origin));
    eprintln!(
        "coe: stdout is not a terminal, so this is the configuration the workbench would use"
    );
    Ok(ExitCode::SUCCESS)
}

/// `--config F`, else `configs/default.ron` in the working directory, else the embedded copy.
pub fn load_config(config: Option<&Path>) -> anyhow::Result<(Config, String)> {
    if let Some(p) = config {
        return Ok((Config::load(p)?, p.display().to_string()));
    }
    let local = Path::new("configs/default.ron");
    if local.exists() {
        return Ok((Config::load(local)?, local.display().to_string()));
    }
    Ok((
        Config::embedded_default(),
        "embedded configs/default.ron".into(),
    ))
}

fn summary(cfg: &Config, origin: &str) -> String {
    format!(
        "config {origin} (valid)\n  run       runs/{name}/ seed {seed}\n  model     {path} on {dev} ({dtype:?}, threads {threads})\n  \
         env       {turns} turns, feedback cap {cap} chars, rewards solved {rs:+} invalid {ri:+} turn-cap {rc:+}\n  \
         eval      method {method:?}, {samples} samples, pass@{k:?}, temperature {temp}\n  \
         sft       LoRA r{rank} alpha {alpha} on {targets:?}, lr {lr}, {steps} steps\n  \
         rl        G={g}, clip {eps}, KL beta {beta}, {rlsteps} steps\n  ui        theme {theme}",
        name = cfg.name,
        seed = cfg.seed,
        path = cfg.model.path,
        dev = cfg.model.device,
        dtype = cfg.model.dtype,
        threads = cfg.model.threads,
        turns = cfg.env.max_turns,
        cap = cfg.env.feedback_cap,
        rs = cfg.env.rewards.solved,
        ri = cfg.env.rewards.invalid,
        rc = cfg.env.rewards.turn_cap,
        method = cfg.eval.method,
        samples = cfg.eval.samples,
        k = cfg.eval.k,
        temp = cfg.eval.temperature,
        rank = cfg.sft.lora.rank,
        alpha = cfg.sft.lora.alpha,
        targets = cfg.sft.lora.targets,
        lr = cfg.sft.lr,
        steps = cfg.sft.steps,
        g = cfg.rl.group_size,
        eps = cfg.rl.clip_eps,
        beta = cfg.rl.kl_beta,
        rlsteps = cfg.rl.steps,
        theme = cfg.ui.theme,
    )
}
