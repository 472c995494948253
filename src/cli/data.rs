//! `coe data …`: validate task files (gen and sample-bugs follow).
use super::context::Ctx;
use crate::data::corrupt::{CorruptConfig, Operator};
use crate::data::validate::validate_file;
use crate::model::chat::{ChatFormat, Message, Role, encode_conversation};
use crate::model::tokenizer::CoeTokenizer;
use std::path::Path;
use std::process::ExitCode;

/// Prints one line per finding; exit 1 when there is any.
pub fn validate(ctx: &Ctx, file: &Path) -> anyhow::Result<ExitCode> {
    let pool = ctx.sandbox()?;
    let threads = ctx.step_threads(&pool);
    let (records, findings) = validate_file(file, &pool, &ctx.config.sandbox.limits, threads)?;
    for f in &findings {
        match &f.task {
            Some(id) => eprintln!("{}:{}: task {id:?}: {}", file.display(), f.line, f.message),
            None => eprintln!("{}:{}: {}", file.display(), f.line, f.message),
        }
    }
    let bad: std::collections::BTreeSet<usize> = findings.iter().map(|f| f.line).collect();
    println!(
        "{}: {records} records, {} bad, {} ok",
        file.display(),
        bad.len(),
        records - bad.len().min(records)
    );
    Ok(if findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `coe data gen`: writes `{train,valid,test}.{tasks,demos,direct,cot}.jsonl` and `stats.json`.
/// The corruption settings of `--operators` / `--max-ops`, with unknown names refused.
pub fn corrupt_config(operators: &[String], max_ops: usize) -> anyhow::Result<CorruptConfig> {
    anyhow::ensure!(
        (1..=5).contains(&max_ops),
        "--max-ops {max_ops}: expected 1 to 5"
    );
    let mut cfg = CorruptConfig {
        max_ops,
        ..CorruptConfig::default()
    };
    if !operators.is_empty() {
        cfg.operators = operators
            .iter()
            .map(|name| {
                Operator::from_name(name).ok_or_else(|| {
                    let known: Vec<&str> = Operator::ALL.iter().map(|o| o.name()).collect();
                    anyhow::anyhow!(
                        "--operators: unknown operator {name:?}; known: {}",
                        known.join(", ")
                    )
                })
            })
            .collect::<anyhow::Result<_>>()?;
    }
    Ok(cfg)
}

pub fn generate(
    ctx: &Ctx,
    problems: &Path,
    out: &Path,
    seed: u64,
    per_problem: usize,
    corrupt: CorruptConfig,
) -> anyhow::Result<ExitCode> {
    use crate::data::{jsonl, loaders, split::Split, stats, synth};
    use anyhow::Context as _;
    anyhow::ensure!(per_problem >= 1, "--per-problem must be at least 1");
    let probs = loaders::load_problems(problems)?;
    anyhow::ensure!(
        !probs.is_empty(),
        "{}: the file holds no problems",
        problems.display()
    );
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let pool = ctx.sandbox()?;
    let started = std::time::Instant::now();
    let opts = synth::GenOptions {
        seed,
        per_problem,
        corrupt,
        threads: ctx.step_threads(&pool) + 1,
    };
    eprintln!(
        "data gen: {} problems from {}, {per_problem} per problem, seed {seed}, {} sandbox workers",
        probs.len(),
        problems.display(),
        pool.workers()
    );
    let progress = |done: usize, total: usize, stage: &str| {
        let secs = started.elapsed().as_secs_f64();
        eprint!("\rdata gen: {stage}: {done}/{total} ({secs:.0}s)   ");
        if done == total {
            eprintln!();
        }
    };
    let g = synth::generate(
        &probs,
        &pool,
        &ctx.config.sandbox.limits,
        &ctx.config.env,
        &opts,
        &progress,
    );
    for split in Split::ALL {
        let name = split.name();
        let write = |kind: &str, res: Result<(), jsonl::JsonlError>| {
            res.with_context(|| format!("writing {name}.{kind}.jsonl"))
        };
        write(
            "tasks",
            jsonl::write(
                &out.join(format!("{name}.tasks.jsonl")),
                g.tasks.get(&split).map(Vec::as_slice).unwrap_or(&[]),
            ),
        )?;
        write(
            "demos",
            jsonl::write(
                &out.join(format!("{name}.demos.jsonl")),
                g.demos.get(&split).map(Vec::as_slice).unwrap_or(&[]),
            ),
        )?;
        write(
            "direct",
            jsonl::write(
                &out.join(format!("{name}.direct.jsonl")),
                g.direct.get(&split).map(Vec::as_slice).unwrap_or(&[]),
            ),
        )?;
        write(
            "cot",
            jsonl::write(
                &out.join(format!("{name}.cot.jsonl")),
                g.cot.get(&split).map(Vec::as_slice).unwrap_or(&[]),
            ),
        )?;
    }
    let mut st = stats::stats(&g, started.elapsed().as_secs_f64());
    st.tokens = default_token_stats(&g);
    crate::util::write_atomic(
        &out.join("stats.json"),
        serde_json::to_string_pretty(&st)?.as_bytes(),
    )?;
    eprint!("{}", st.render());
    eprintln!("data gen: wrote {}", out.display());
    if g.failed_replays.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "data gen: {} repairs did not replay to a solved state",
            g.failed_replays.len()
        );
        Ok(ExitCode::from(1))
    }
}

/// Token counts with the embedded default model's tokenizer, if set-up installed it.
fn default_token_stats(
    g: &crate::data::synth::Generated,
) -> Option<crate::data::stats::TokenStats> {
    use crate::model::gguf::GgufFile;
    let path = Path::new(DEFAULT_GGUF);
    if !path.exists() {
        eprintln!(
            "data gen: {DEFAULT_GGUF} not found; skipping token counts (run scripts/setup.sh)"
        );
        return None;
    }
    let counted = (|| -> anyhow::Result<_> {
        let file = GgufFile::read(path)?;
        let tok = CoeTokenizer::from_gguf(&file)?;
        let template = file.get("tokenizer.chat_template").and_then(|v| v.as_str());
        let fmt = ChatFormat::detect(template);
        Ok(token_stats(g, &tok, &fmt, "SmolLM2-135M-Instruct")?)
    })();
    counted
        .map_err(|e| eprintln!("data gen: token counts skipped: {e:#}"))
        .ok()
}

/// Where set-up puts the embedded default model.
pub const DEFAULT_GGUF: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

/// Token statistics for `coe data gen`'s summary (here, at the command that prints them,
/// so `data` needs no model): renders every demonstration as the conversation the model trains on and counts tokens.
fn token_stats(
    g: &crate::data::synth::Generated,
    tok: &CoeTokenizer,
    fmt: &ChatFormat,
    name: &str,
) -> Result<crate::data::stats::TokenStats, crate::model::tokenizer::TokenizerError> {
    let (mut total, mut commands, mut max, mut n) = (0usize, 0usize, 0usize, 0usize);
    for split in crate::data::split::Split::ALL {
        let demos = g.demos.get(&split).map(Vec::as_slice).unwrap_or(&[]);
        let firsts = g.first_user.get(&split).map(Vec::as_slice).unwrap_or(&[]);
        for (d, first) in demos.iter().zip(firsts) {
            let mut msgs = vec![Message::new(Role::User, first.clone())];
            for (i, t) in d.turns.iter().enumerate() {
                msgs.push(Message::new(Role::Assistant, format!("### {}", t.command)));
                if i + 1 < d.turns.len() {
                    msgs.push(Message::new(Role::User, t.state.clone()));
                }
            }
            let (ids, mask) = encode_conversation(tok, fmt, &msgs)?;
            total += ids.len();
            max = max.max(ids.len());
            commands += mask.iter().filter(|&&m| m).count();
            n += 1;
        }
    }
    let n = n.max(1) as f64;
    Ok(crate::data::stats::TokenStats {
        tokenizer: name.to_string(),
        mean_tokens: total as f64 / n,
        max_tokens: max,
        mean_command_tokens: commands as f64 / n,
    })
}
