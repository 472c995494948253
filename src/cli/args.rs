//! The command-line contract of DESIGN §8, as clap derive structs. Other tools
//! rely on these names and flags; change them only with the design.
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "coe",
    about = "Chain-of-Edits workbench: teach small language models to repair Python by driving an editor",
    disable_version_flag = true,
    after_help = "With no subcommand, opens the workbench on configs/default.ron."
)]
pub struct Cli {
    /// Print the version, the libtorch version and whether CUDA is available.
    #[arg(short = 'V', long)]
    pub version: bool,
    /// Run configuration (RON); defaults to configs/default.ron.
    #[arg(long, global = true, value_name = "F")]
    pub config: Option<PathBuf>,
    /// Compute device: cpu, cuda or cuda:<i> (overrides the config).
    #[arg(long, global = true, value_name = "DEV")]
    pub device: Option<String>,
    /// CPU threads for libtorch (overrides the config; 0 = all cores).
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Open the workbench (TUI), optionally following runs or showing eval results.
    Tui {
        /// Follow runs/<name>/events.jsonl as it grows; repeat to overlay several runs.
        #[arg(long, value_name = "RUN_DIR")]
        follow: Vec<PathBuf>,
        /// Open the results view on an eval results.json; repeat to compare several.
        #[arg(long, value_name = "RESULTS_JSON")]
        results: Vec<PathBuf>,
        /// Tasks for step mode (default: eval.tasks, else datasets/problems.jsonl with synthetic bugs).
        #[arg(long, value_name = "F")]
        tasks: Option<PathBuf>,
        /// Do not load a model: no proposals, commands are typed by hand.
        #[arg(long)]
        no_model: bool,
    },
    /// Generate, validate and collect task data.
    #[command(subcommand)]
    Data(DataCmd),
    /// Train a LoRA adapter (headless; progress on stderr, events in runs/<name>/).
    #[command(subcommand)]
    Train(TrainCmd),
    /// Evaluate a model or the oracle on a task file; prints a table and writes JSON.
    Eval(EvalArgs),
    /// Line mode for scripts: print an observation, read commands from stdin.
    Step(StepArgs),
    /// Inspect a model.
    #[command(subcommand)]
    Model(ModelCmd),
    /// Run the project's own benchmarks (machine-readable output).
    Bench {
        /// What to measure: sandbox, env, decode, rollout, serve, sft, soak, tui.
        what: String,
        /// Write the JSON result here as well as to stdout.
        #[arg(long, value_name = "F")]
        out: Option<PathBuf>,
        /// Batch sizes for `decode`, comma-separated (default 1,8,32); `serve`: clients (32).
        #[arg(long, value_delimiter = ',', value_name = "N,…")]
        batch: Vec<usize>,
        /// Tasks for `rollout` (default: the config's `rl.tasks`).
        #[arg(long, value_name = "F")]
        tasks: Option<PathBuf>,
        /// Tasks per rollout batch for `rollout` (the file is cycled if shorter).
        #[arg(long, value_name = "N", default_value_t = 64)]
        tasks_n: usize,
        /// Episodes per task for `rollout` (default: the config's `rl.group_size`).
        #[arg(long, value_name = "G")]
        group: Option<usize>,
        /// Optimizer steps timed by `sft` (after one warm-up step).
        #[arg(long, value_name = "N", default_value_t = 20)]
        steps: usize,
        /// Skip the Python baseline (our side only): `decode`, `rollout`, `sft`; `sandbox`
        /// always spawns `python3` (its baseline, ~2 s).
        #[arg(long)]
        no_baseline: bool,
        /// Kill the Python baseline after this many seconds; the result records that (and,
        /// for `rollout`, the lower bound on the ratio it implies).
        #[arg(long, value_name = "SECS")]
        baseline_timeout: Option<f64>,
        /// `rollout`: skip the second timing with whole rounds (tests after all decoding).
        #[arg(long)]
        no_whole_rounds: bool,
    },
    /// Serve the model (and adapter) over the OpenAI-compatible API subset of DESIGN §8.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A HF directory, a .gguf file or `default` (default: the config's model.path).
    #[arg(long, value_name = "M")]
    pub model: Option<String>,
    /// LoRA adapter: an adapter directory, or a run or checkpoint directory holding one.
    #[arg(long, value_name = "A")]
    pub adapter: Option<PathBuf>,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// 0 picks a free port (the chosen one is printed).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// The name clients give as `model` for the configured model and adapter.
    #[arg(long, value_name = "NAME", default_value = "coe")]
    pub served_model_name: String,
    /// How long the first request of a batch waits for others, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5)]
    pub batch_window_ms: u64,
    /// Most completions decoded together.
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_batch: usize,
    /// Largest `max_tokens` a request may ask for.
    #[arg(long, value_name = "N", default_value_t = 2048)]
    pub max_tokens: usize,
    /// Largest prompt plus `max_tokens` (default: the config's env.context_tokens).
    #[arg(long, value_name = "N")]
    pub max_model_len: Option<usize>,
    /// Connections open at once (one thread each); one more is answered 503.
    #[arg(long, value_name = "N", default_value_t = crate::runtime::serve::MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Seconds a kept-alive connection may wait for its next request before it is closed.
    #[arg(long, value_name = "S", default_value_t = crate::runtime::serve::IDLE_TIMEOUT.as_secs())]
    pub idle_timeout_s: u64,
}

#[derive(Debug, Subcommand)]
pub enum DataCmd {
    /// Corrupt correct programs into repair tasks and demonstrations, split by problem.
    Gen {
        #[arg(long, value_name = "F")]
        problems: PathBuf,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Tasks generated per problem.
        #[arg(long, value_name = "K", default_value_t = 4)]
        per_problem: usize,
        /// Corruption operators that may be drawn, comma-separated (default: all), e.g.
        /// `swap_comparison,swap_arithmetic` for a narrow bug family.
        #[arg(long, value_delimiter = ',', value_name = "OP,…")]
        operators: Vec<String>,
        /// Most operators applied to one program (1–5).
        #[arg(long, value_name = "N", default_value_t = 5)]
        max_ops: usize,
    },
    /// Check a task file: schema ok, reference passes, buggy code fails; exit 1 on any bad line.
    Validate {
        #[arg(value_name = "F")]
        file: PathBuf,
    },
    /// Sample solutions from a model and keep the failing ones as tasks.
    SampleBugs {
        #[arg(long, value_name = "F")]
        problems: PathBuf,
        /// A HF directory, a .gguf file or `default`.
        #[arg(long, value_name = "M")]
        model: String,
        #[arg(long, value_name = "F")]
        out: PathBuf,
        /// Solutions sampled per problem.
        #[arg(long, value_name = "N", default_value_t = 4)]
        samples: usize,
        /// Sampling temperature (default: the config's eval.temperature).
        #[arg(long, value_name = "T")]
        temperature: Option<f64>,
        /// Sampling seed (default: the config's seed).
        #[arg(long, value_name = "S")]
        seed: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TrainCmd {
    /// LoRA supervised fine-tuning on demonstrations.
    Sft {
        /// Continue the run from its last checkpoint.
        #[arg(long)]
        resume: bool,
    },
    /// Multi-turn GRPO with rewards from the tests.
    Rl {
        #[arg(long)]
        resume: bool,
    },
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    #[arg(long, value_name = "F")]
    pub tasks: PathBuf,
    /// A HF directory, a .gguf file or `default`.
    #[arg(long, value_name = "M", conflicts_with = "policy")]
    pub model: Option<String>,
    /// LoRA adapter: an adapter directory, or a run (its final adapter, else its latest checkpoint) or checkpoint directory.
    #[arg(long, value_name = "A", requires = "model")]
    pub adapter: Option<PathBuf>,
    /// A built-in policy instead of a model: `oracle`.
    #[arg(long, value_name = "P")]
    pub policy: Option<String>,
    /// coe, direct or cot.
    #[arg(long, value_name = "M")]
    pub method: Option<String>,
    #[arg(long, value_name = "N")]
    pub samples: Option<usize>,
    /// Comma-separated k values of pass@k, e.g. 1,4.
    #[arg(long, value_name = "K", value_delimiter = ',')]
    pub k: Option<Vec<usize>>,
    #[arg(long, value_name = "T")]
    pub temperature: Option<f64>,
    #[arg(long, value_name = "T")]
    pub max_turns: Option<u32>,
    #[arg(long, value_name = "F")]
    pub out: Option<PathBuf>,
    /// Write every trajectory under this directory.
    #[arg(long, value_name = "DIR")]
    pub save_episodes: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StepArgs {
    #[arg(long, value_name = "F")]
    pub tasks: PathBuf,
    /// Task id (default: the first task).
    #[arg(long, value_name = "ID")]
    pub task: Option<String>,
    /// Propose each command with a model (a HF directory, a .gguf file or `default`): after
    /// each `---` a line `proposal <command>` is printed; an empty line accepts it, any other
    /// line is applied instead.
    #[arg(long, value_name = "M")]
    pub model: Option<String>,
    /// A LoRA adapter for `--model` (a PEFT directory, or a run or checkpoint holding one).
    #[arg(long, value_name = "A", requires = "model")]
    pub adapter: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ModelCmd {
    /// Write a small random Llama (HF directory) with another model's tokenizer and template,
    /// for smoke runs and tests on the CPU.
    Tiny {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The model whose tokenizer and chat template to use (a GGUF file, `default`, or a
        /// Hugging Face directory).
        #[arg(long, value_name = "M", default_value = "default")]
        tokenizer_from: String,
        #[arg(long, default_value_t = 4)]
        layers: usize,
        #[arg(long, default_value_t = 128)]
        hidden: usize,
        #[arg(long, default_value_t = 4)]
        heads: usize,
        #[arg(long, default_value_t = 2)]
        kv_heads: usize,
        #[arg(long, default_value_t = 384)]
        intermediate: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Prompt token ids and the top-K next tokens.
    Inspect {
        #[arg(long, value_name = "M")]
        model: String,
        #[arg(long, value_name = "TEXT")]
        prompt: String,
        #[arg(long, value_name = "K", default_value_t = 5)]
        top: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Wrap the prompt in the model's chat template as a user turn.
        #[arg(long)]
        chat: bool,
    },
}
