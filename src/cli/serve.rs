//! `coe serve`: loads the config's model (or `--model`) with its adapter and answers the
//! OpenAI-compatible API subset of DESIGN §8 until the process is ended. The first line on
//! stdout is `listening <base URL>`, so a script (or a test) that asked for `--port 0`
//! learns the port.
use super::args::ServeArgs;
use super::context::Ctx;
use crate::model::loader::load_for_inference;
use crate::runtime::serve::{EngineConfig, Limits, ServeOptions, Server};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

pub fn run(ctx: &Ctx, args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let cfg = &ctx.config;
    let model = args.model.as_deref().unwrap_or(&cfg.model.path);
    let (section, adapter) = ctx.model_and_adapter(model, args.adapter.as_deref())?;
    anyhow::ensure!(args.max_batch > 0, "--max-batch must be at least 1");
    let opts = ServeOptions {
        addr: format!("{}:{}", args.host, args.port),
        engine: EngineConfig {
            served_model: args.served_model_name.clone(),
            batch_window: Duration::from_millis(args.batch_window_ms),
            max_batch_rows: args.max_batch,
            max_batch_tokens: cfg.model.decode_batch_tokens,
            kv_cache_bytes: cfg.model.kv_cache_mb << 20,
            fold_adapter: true,
        },
        limits: Limits {
            max_tokens: args.max_tokens,
            max_model_len: args.max_model_len.unwrap_or(cfg.env.context_tokens),
            ..Limits::default()
        },
        max_connections: args.max_connections,
        idle_timeout: Duration::from_secs(args.idle_timeout_s.max(1)),
    };
    let server = Server::start(
        move || load_for_inference(&section, adapter.as_deref()).map_err(|e| e.to_string()),
        opts,
    )?;
    let mut out = std::io::stdout();
    writeln!(out, "listening {}", server.url())?;
    out.flush()?;
    eprintln!(
        "coe serve: model `{}` at {} (Ctrl-C to stop)",
        args.served_model_name,
        server.url()
    );
    server.wait();
    Ok(ExitCode::SUCCESS)
}
