//! `coe bench serve`: what sampling through `coe serve` costs against sampling in-process,
//! and what rollouts through one and two servers achieve, in the same run on the same
//! machine.
//!
//! Throughput: N clients (`--batch`, default 32) each send one completion of the same
//! realistic prompt — the CoE first-turn prompt of the first task, as token ids — with
//! [`MAX_TOKENS`] new tokens, all released at once; the server batches them. The baseline is
//! the same N rows decoded in-process with `generate_each_cached` (same model and adapter,
//! same sampling, same per-row seeds, the same micro-batches the server's token budget
//! makes). Both sides run [`ROUNDS`] timed rounds after a warm-up, alternating, and report
//! their medians; the server's rows must equal the in-process ones (checked and recorded).
//! The overhead is server time / in-process time − 1. The servers run with `--max-batch N`
//! and a [`BATCH_WINDOW_MS`] window, so the N clients make one batch: with the defaults
//! (64 rows, 5 ms) the batch closed on its window before a loaded machine had delivered all
//! N requests, and the rest decoded as a second batch.
//!
//! Rollouts: `coe bench rollout`'s episodes (`--tasks-n` tasks × `--group`, up to
//! `env.max_turns` turns, tests included) with the in-process model policy, then with the
//! remote backend over one server and over two. The servers are `coe serve` children
//! ([`serve_child`](super::serve_child)) started from this config.
use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::model::generate::RowSeeds;
use anyhow::Context as _;
use serde_json::{Value, json};

use super::BenchOptions;
use super::python::scratch_dir;
use super::rollout::{line, signature, summary};
use super::serve_child::ServeChild;
use crate::config::{Config, RemoteSection};
use crate::env::episode::Episode;
use crate::eval::progress::RoundProgress;
use crate::eval::rollout::{
    EpisodeResult, RolloutOptions, Watch, run_episodes, run_episodes_watched,
};
use crate::model::generate::{GenParams, generate_each_cached};
use crate::model::llama::Llama;
use crate::model::loader::load_for_inference;
use crate::model::sampling::SamplingParams;
use crate::policy::conversation::prompt_ids;
use crate::policy::model::DEFAULT_MAX_NEW_TOKENS;
use crate::policy::{ModelPolicy, ModelPolicyConfig, Policy, RemotePolicy};
use crate::protocol::openai::{CompletionRequest, CompletionResponse, PromptInput};
use crate::sandbox::SandboxPool;
use crate::task::Task;
use crate::train::setup::resolve_adapter;
use crate::util::batches::micro_batches;
use crate::util::machine::{load_average, machine};
use crate::util::progress::ProgressLine;

/// Concurrent clients unless `--batch` names another count.
pub const DEFAULT_CLIENTS: usize = 32;
/// New tokens per completion (a CoE command is about this long).
pub const MAX_TOKENS: usize = 24;
/// Timed rounds per side, after one warm-up each.
pub const ROUNDS: usize = 5;
/// How long the servers' first request of a batch waits for the others. With `--max-batch`
/// equal to the client count a full batch starts at once, so a long window costs nothing
/// and rows that arrive late (a loaded machine) still join the batch.
pub const BATCH_WINDOW_MS: u64 = 50;

/// Runs the benchmark; returns the JSON report.
pub fn run(cfg: &Config, opts: &BenchOptions) -> anyhow::Result<Value> {
    let clients = opts.batches.first().copied().unwrap_or(DEFAULT_CLIENTS);
    anyhow::ensure!(clients > 0, "--batch must be at least 1");
    let (tasks_path, tasks, group) = super::rollout_tasks(cfg, opts, "serve")?;
    let adapter = cfg
        .model
        .adapter
        .as_deref()
        .map(resolve_adapter)
        .transpose()?;
    let load_before = load_average();
    let machine = machine();

    // The servers get this very config, so they batch and cache as the in-process side does.
    let scratch = scratch_dir("serve")?;
    let config_file = scratch.join("serve.ron");
    std::fs::write(&config_file, cfg.to_ron())
        .with_context(|| format!("cannot write {}", config_file.display()))?;
    let mut extra = vec![
        "--max-batch".to_string(),
        clients.to_string(),
        "--batch-window-ms".into(),
        BATCH_WINDOW_MS.to_string(),
    ];
    if let Some(a) = &adapter {
        extra.extend(["--adapter".into(), a.display().to_string()]);
    }
    let servers = [
        ServeChild::start(&config_file, &extra)?,
        ServeChild::start(&config_file, &extra)?,
    ];
    eprintln!(
        "bench serve: servers at {}, {}",
        servers[0].url, servers[1].url
    );

    let pool = SandboxPool::new(&cfg.sandbox).context("cannot start the Python sandbox")?;
    let mut loaded = load_for_inference(&cfg.model, adapter.as_deref())?;
    let model_path = loaded.path.clone();
    let (_, first) = Episode::reset(
        tasks[0].clone(),
        &pool,
        &cfg.env,
        &cfg.sandbox.limits,
        (0, 0),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let budget = cfg
        .env
        .context_tokens
        .saturating_sub(DEFAULT_MAX_NEW_TOKENS);
    let prompt = prompt_ids(&loaded.tokenizer, &loaded.chat, &[], &first.text, budget)?.ids;
    let seeds: Vec<u64> = (0..clients as u64)
        .map(|i| cfg.seed.wrapping_add(i))
        .collect();
    let params = GenParams {
        max_new_tokens: MAX_TOKENS,
        sampling: SamplingParams {
            temperature: cfg.rl.temperature,
            top_k: 0,
            top_p: 1.0,
        },
        stop_ids: loaded.tokenizer.eot_ids.clone(),
        stop_rule: None,
    };
    let bodies: Vec<String> = seeds
        .iter()
        .map(|&seed| serde_json::to_string(&completion(&prompt, seed, &params)))
        .collect::<Result<_, _>>()?;
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(300))
        .build();
    eprintln!(
        "bench serve: {clients} clients x {MAX_TOKENS} tokens of a {}-token prompt, {ROUNDS} rounds",
        prompt.len()
    );
    let rows = vec![prompt.clone(); clients];
    let max_batch_tokens = cfg.model.decode_batch_tokens;
    let mut local_round = || {
        let started = Instant::now();
        let ids = loaded
            .model
            .with_folded_lora(|m| decode_local(m, &rows, &seeds, &params, max_batch_tokens))
            .map_err(|e| anyhow::anyhow!("{e}"))??;
        Ok::<_, anyhow::Error>((started.elapsed().as_secs_f64(), ids))
    };
    let server_round = || clients_round(&agent, &servers[0].url, &bodies);
    let (_, local_ids) = local_round()?;
    let (_, served_ids) = server_round()?;
    let (mut local_s, mut served_s) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        local_s.push(local_round()?.0);
        served_s.push(server_round()?.0);
    }
    let tokens: usize = local_ids.iter().map(Vec::len).sum();
    let served_tokens: usize = served_ids.iter().map(Vec::len).sum();
    let local = rates(clients, tokens, &local_s);
    let served = rates(clients, served_tokens, &served_s);
    let overhead = median(&served_s) / median(&local_s).max(1e-9) - 1.0;
    eprintln!("bench serve: in-process {}", rate_line(&local));
    eprintln!("bench serve: coe serve  {}", rate_line(&served));
    eprintln!("bench serve: overhead {:+.1}%", 100.0 * overhead);

    // Rollouts: in-process, then one server, then two.
    let settings = ModelPolicyConfig::from_config(cfg, cfg.rl.temperature, 1.0);
    let (tok, chat) = (loaded.tokenizer.clone(), loaded.chat.clone());
    let rollout = RolloutOptions::from_config(cfg, tasks.len() * group, pool.workers().max(1));
    let mut model_policy = ModelPolicy::new(loaded, settings.clone())?;
    let (local_eps, local_roll) = timed_rollout(
        &tasks,
        group,
        &mut model_policy,
        &pool,
        &rollout,
        cfg.seed,
        "in-process",
    )?;
    drop(model_policy);
    let mut remote = Vec::new();
    for n in [1, 2] {
        let section = RemoteSection {
            urls: servers[..n].iter().map(|s| s.url.clone()).collect(),
            served_model: "coe".into(),
            timeout_s: 300.0,
            ..RemoteSection::default()
        };
        let mut policy = RemotePolicy::new(&section, tok.clone(), chat.clone(), &settings)?;
        let label = format!("{n} server{}", if n == 1 { "" } else { "s" });
        let (eps, mut summary) = timed_rollout(
            &tasks,
            group,
            &mut policy,
            &pool,
            &rollout,
            cfg.seed,
            &label,
        )?;
        summary["servers"] = json!(n);
        summary["lost_requests"] = json!(policy.stats().lost);
        summary["same_episodes_as_in_process"] = json!(signature(&eps) == signature(&local_eps));
        remote.push(summary);
    }
    let ratio = |r: &Value| {
        Some(r["episodes_per_min"].as_f64()? / local_roll["episodes_per_min"].as_f64()?)
    };
    Ok(json!({
        "bench": "serve",
        "machine": machine,
        "device": cfg.model.device,
        "threads": cfg.model.threads,
        "model": model_path,
        "adapter": adapter.map(|a| a.display().to_string()),
        "load_average_before": load_before,
        "load_average_after": load_average(),
        "throughput": {
            "clients": clients,
            "prompt_tokens": prompt.len(),
            "max_tokens": MAX_TOKENS,
            "temperature": cfg.rl.temperature,
            "rounds": ROUNDS,
            "server_max_batch": clients,
            "server_batch_window_ms": BATCH_WINDOW_MS,
            "in_process": local,
            "served": served,
            "same_tokens": served_ids == local_ids,
            "overhead": overhead,
        },
        "rollout": {
            "tasks_file": tasks_path.display().to_string(),
            "tasks": tasks.len(),
            "group": group,
            "max_turns": cfg.env.max_turns,
            "sandbox_workers": pool.workers(),
            "in_process": local_roll,
            "one_server": remote[0],
            "two_servers": remote[1],
            "ratio_one_server": ratio(&remote[0]),
            "ratio_two_servers": ratio(&remote[1]),
        },
    }))
}

/// The request one client sends: token-id prompt, the row's seed, the sampled ids back.
fn completion(prompt: &[u32], seed: u64, params: &GenParams) -> CompletionRequest {
    CompletionRequest {
        model: Some("coe".into()),
        prompt: Some(PromptInput::Ids(prompt.to_vec())),
        max_tokens: Some(params.max_new_tokens),
        temperature: Some(params.sampling.temperature),
        top_p: Some(params.sampling.top_p),
        n: Some(1),
        seed: Some(crate::model::generate::row_seed(seed) as i64),
        stop: None,
        stop_token_ids: Some(params.stop_ids.clone()),
        logprobs: Some(0),
        return_token_ids: Some(true),
        return_tokens_as_token_ids: Some(true),
    }
}

/// One client per body, released together; (seconds until the last answer, each row's ids).
fn clients_round(
    agent: &ureq::Agent,
    url: &str,
    bodies: &[String],
) -> anyhow::Result<(f64, Vec<Vec<u32>>)> {
    let start = Barrier::new(bodies.len() + 1);
    let endpoint = format!("{url}/completions");
    std::thread::scope(|s| {
        let handles: Vec<_> = bodies
            .iter()
            .map(|body| {
                let (start, endpoint) = (&start, &endpoint);
                s.spawn(move || -> anyhow::Result<(Instant, Vec<u32>)> {
                    start.wait();
                    let text = agent
                        .post(endpoint)
                        .set("Content-Type", "application/json")
                        .send_string(body)?
                        .into_string()?;
                    let done = Instant::now();
                    let resp: CompletionResponse = serde_json::from_str(&text)?;
                    let ids = resp
                        .choices
                        .into_iter()
                        .next()
                        .and_then(|c| c.token_ids)
                        .context("a completion without token_ids")?;
                    Ok((done, ids))
                })
            })
            .collect();
        start.wait();
        let began = Instant::now();
        let mut last = began;
        let mut rows = Vec::with_capacity(handles.len());
        for h in handles {
            let (done, ids) = h
                .join()
                .map_err(|_| anyhow::anyhow!("a client panicked"))??;
            last = last.max(done);
            rows.push(ids);
        }
        Ok(((last - began).as_secs_f64(), rows))
    })
}

/// The rows decoded in-process in the micro-batches the server makes of them (rows ×
/// (prompt + new tokens) within `max_batch_tokens`), each row seeded as the server seeds it.
fn decode_local(
    model: &Llama,
    rows: &[Vec<u32>],
    seeds: &[u64],
    params: &GenParams,
    max_batch_tokens: usize,
) -> anyhow::Result<Vec<Vec<u32>>> {
    let mut out = vec![Vec::new(); rows.len()];
    let lens: Vec<usize> = rows
        .iter()
        .map(|r| r.len() + params.max_new_tokens)
        .collect();
    for range in micro_batches(&lens, usize::MAX, max_batch_tokens) {
        let (first, chunk) = (range.start, &rows[range]);
        let mut rng = RowSeeds(seeds[first..first + chunk.len()].iter());
        let prefixes = vec![None; chunk.len()];
        generate_each_cached(
            model,
            chunk,
            &prefixes,
            params,
            &mut rng,
            false,
            &mut |i, g, _| {
                out[first + i] = g.ids;
            },
        )?;
    }
    Ok(out)
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Completions and tokens per second at the median round.
fn rates(completions: usize, tokens: usize, seconds: &[f64]) -> Value {
    let s = median(seconds).max(1e-9);
    json!({
        "completions": completions,
        "generated_tokens": tokens,
        "round_seconds": seconds,
        "median_seconds": s,
        "completions_per_s": completions as f64 / s,
        "tokens_per_s": tokens as f64 / s,
    })
}

fn rate_line(v: &Value) -> String {
    format!(
        "{:.1} completions/s, {:.0} tokens/s, {:.3} s per round",
        v["completions_per_s"].as_f64().unwrap_or(0.0),
        v["tokens_per_s"].as_f64().unwrap_or(0.0),
        v["median_seconds"].as_f64().unwrap_or(0.0)
    )
}

/// A warm-up episode, then the timed episodes from `seed`; (episodes, summary).
fn timed_rollout(
    tasks: &[Task],
    group: usize,
    policy: &mut dyn Reseed,
    pool: &SandboxPool,
    rollout: &RolloutOptions,
    seed: u64,
    label: &str,
) -> anyhow::Result<(Vec<EpisodeResult>, Value)> {
    let mut warm = rollout.clone();
    warm.env.max_turns = 1;
    run_episodes(&tasks[..1], 1, policy.as_policy(), pool, &warm, &mut |_| {})?;
    policy.reseed_to(seed);
    let mut progress = ProgressLine::stderr();
    let mut on_round =
        |p: &RoundProgress| progress.show(&format!("bench serve: {label}: {}", p.line()));
    let watch = Watch {
        on_round: Some(&mut on_round),
        cancel: None,
    };
    let started = Instant::now();
    let results = run_episodes_watched(
        tasks,
        group,
        policy.as_policy(),
        pool,
        rollout,
        &mut |_| {},
        watch,
    )?;
    let secs = started.elapsed().as_secs_f64();
    progress.clear();
    let s = summary(&results, secs);
    eprintln!("bench serve: rollout {label:<10} {}", line(&s));
    Ok((results, s))
}

/// The two policies the rollouts compare, restartable from a seed.
trait Reseed {
    fn reseed_to(&mut self, seed: u64);
    fn as_policy(&mut self) -> &mut dyn Policy;
}

impl Reseed for ModelPolicy {
    fn reseed_to(&mut self, seed: u64) {
        self.reseed(seed);
    }
    fn as_policy(&mut self) -> &mut dyn Policy {
        self
    }
}

impl Reseed for RemotePolicy {
    fn reseed_to(&mut self, seed: u64) {
        self.reseed(seed);
    }
    fn as_policy(&mut self) -> &mut dyn Policy {
        self
    }
}
