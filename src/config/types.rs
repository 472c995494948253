//! The typed sections of a run configuration, each with its defaults. Their checks live
//! in `validate`.
use serde::{Deserialize, Serialize};

/// A whole run: which model, the environment, training and evaluation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The run's name; its directory is `runs/<name>/`.
    pub name: String,
    /// Seed for data order, sampling and initialisation.
    pub seed: u64,
    pub model: ModelSection,
    pub env: EnvSection,
    pub eval: EvalSection,
    pub sft: SftSection,
    pub rl: RlSection,
    pub ui: UiSection,
    /// The Python sandbox: workers, isolation and per-run limits.
    pub sandbox: super::sandbox::SandboxConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: "default".into(),
            seed: 0,
            model: ModelSection::default(),
            env: EnvSection::default(),
            eval: EvalSection::default(),
            sft: SftSection::default(),
            rl: RlSection::default(),
            ui: UiSection::default(),
            sandbox: super::sandbox::SandboxConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    F32,
    Bf16,
    F16,
}

/// Which model and where it runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSection {
    /// A Hugging Face directory, a `.gguf` file, or `default` (the embedded SmolLM2-135M).
    pub path: String,
    /// `cpu`, `cuda` or `cuda:<i>`.
    pub device: String,
    pub dtype: Dtype,
    /// CPU threads for libtorch; 0 = all cores.
    pub threads: usize,
    /// LoRA adapter directory to load, if any.
    pub adapter: Option<String>,
    /// Rows × (prompt + reply) tokens per decode micro-batch when sampling commands or
    /// answers; bounds the KV cache. The default suits a CPU; a GPU wants far more rows.
    pub decode_batch_tokens: usize,
    /// MiB of keys and values kept across an episode's turns, so each turn prefills only
    /// the tokens it appends; past it the least recently used episodes are rebuilt on
    /// demand. 0 turns the cross-turn cache off.
    pub kv_cache_mb: usize,
    /// Sample from OpenAI-compatible servers (vLLM, SGLang, `coe serve`) instead of the
    /// in-process model; `path` still names the model whose tokenizer and chat format build
    /// the prompts (the one the servers run), and training stays local.
    pub remote: Option<RemoteSection>,
}

/// The `remote` policy backend (DESIGN §6, §8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteSection {
    /// Base URLs, e.g. `http://127.0.0.1:8000/v1`; each episode sticks to one.
    pub urls: Vec<String>,
    /// The `model` name the servers know the model (or adapter) by.
    pub served_model: String,
    /// Seconds one request may take, connection included.
    pub timeout_s: f64,
    /// Seconds to establish a connection.
    pub connect_timeout_s: f64,
    /// Further servers tried after a failed request, before the episode is an infra error.
    pub retries: usize,
    /// Requests in flight at once, over all servers.
    pub max_in_flight: usize,
    /// RL: a directory every server can read, where each step's adapter is written before it
    /// is published with `/v1/load_lora_adapter` (default: the run's directory).
    pub adapter_dir: Option<String>,
}

impl Default for RemoteSection {
    fn default() -> Self {
        RemoteSection {
            urls: Vec::new(),
            served_model: "coe".into(),
            timeout_s: 120.0,
            connect_timeout_s: 5.0,
            retries: 2,
            max_in_flight: 64,
            adapter_dir: None,
        }
    }
}

impl Default for ModelSection {
    fn default() -> Self {
        ModelSection {
            path: "default".into(),
            device: "cpu".into(),
            dtype: Dtype::F32,
            threads: 0,
            adapter: None,
            decode_batch_tokens: 16_384,
            kv_cache_mb: 4096,
            remote: None,
        }
    }
}

/// Rewards of DESIGN §2.3.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RewardSection {
    /// The first time in an episode that every test passes.
    pub solved: f64,
    /// A command that does not parse or cannot be applied.
    pub invalid: f64,
    /// The last turn, when the episode ends by the turn cap instead of EXIT.
    pub turn_cap: f64,
}

impl Default for RewardSection {
    fn default() -> Self {
        RewardSection {
            solved: 1.0,
            invalid: -0.5,
            turn_cap: -0.5,
        }
    }
}

/// The editor environment (DESIGN §2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnvSection {
    pub max_turns: u32,
    /// Characters of feedback kept per state.
    pub feedback_cap: usize,
    /// Failing tests shown per state.
    pub max_failures_shown: usize,
    /// Tokens of context; older turns are dropped whole past it.
    pub context_tokens: usize,
    pub rewards: RewardSection,
}

impl Default for EnvSection {
    fn default() -> Self {
        EnvSection {
            max_turns: 10,
            feedback_cap: 1500,
            max_failures_shown: 3,
            context_tokens: 2048,
            rewards: RewardSection::default(),
        }
    }
}

/// How RL advantages are normalised within a group of episodes of one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdvantageMode {
    /// The paper's variant: each turn's return-to-go against the returns of the group's
    /// episodes at the same turn index.
    PerTurn,
    /// Every turn of an episode gets its episode's whole return, normalised across the group.
    Episode,
}

/// The policy the RL KL penalty pulls towards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferencePolicy {
    /// The policy the run started from (`init_adapter`; the base model without one): what
    /// the adapter-disabled model is when the SFT adapter is merged into the base, as in the
    /// paper. The KL starts at zero.
    Start,
    /// The base model with every adapter disabled.
    Base,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Coe,
    Direct,
    Cot,
}

/// Evaluation (DESIGN §5, §8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalSection {
    /// Task file to evaluate on (JSONL).
    pub tasks: Option<String>,
    pub method: Method,
    /// Samples per task (n of pass@k).
    pub samples: usize,
    /// The k of pass@k; each must be ≤ samples.
    pub k: Vec<usize>,
    pub temperature: f64,
    pub top_p: f64,
    /// Longest one-shot answer (methods `direct` and `cot`, and `data sample-bugs`), in
    /// tokens; `None`: 512 for a program, 768 for a rationale and program.
    pub answer_tokens: Option<usize>,
    /// Episodes live at once in an editor evaluation (their commands decode together).
    pub batch: usize,
}

impl Default for EvalSection {
    fn default() -> Self {
        EvalSection {
            tasks: None,
            method: Method::Coe,
            samples: 4,
            k: vec![1, 4],
            temperature: 0.8,
            top_p: 0.95,
            answer_tokens: None,
            batch: 64,
        }
    }
}

/// LoRA adapter shape (DESIGN §4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoraSection {
    pub rank: usize,
    pub alpha: f64,
    pub dropout: f64,
    /// Module names (`q_proj`, …) or `all-linear`.
    pub targets: Vec<String>,
}

impl Default for LoraSection {
    fn default() -> Self {
        LoraSection {
            rank: 16,
            alpha: 32.0,
            dropout: 0.05,
            targets: vec!["all-linear".into()],
        }
    }
}

/// Supervised fine-tuning (DESIGN §5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SftSection {
    /// Demonstration file(s) (JSONL).
    pub train: Vec<String>,
    /// Held-out tasks for periodic evaluation episodes.
    pub valid: Option<String>,
    pub lora: LoraSection,
    pub lr: f64,
    pub warmup_steps: usize,
    pub steps: usize,
    pub batch_size: usize,
    pub grad_accum: usize,
    pub clip_norm: f64,
    pub weight_decay: f64,
    pub eval_every: usize,
    pub checkpoint_every: usize,
    /// Checkpoints kept; older ones are deleted.
    pub keep_last: usize,
    /// Held-out tasks used per periodic evaluation (the first ones of `valid`).
    pub eval_tasks: usize,
    /// Rows × longest sequence per forward pass (a micro-batch; the step's gradient is
    /// accumulated over them, token-weighted, so it does not change the loss). Bounds the
    /// activation memory: about 3 MB per token for the default model in f32, checked against
    /// the available memory before the first step.
    pub max_batch_tokens: usize,
    /// Stop once this many tokens have been trained on (the run still ends at `steps` at the
    /// latest), so methods whose examples differ in length get the same budget.
    pub token_budget: Option<u64>,
}

impl Default for SftSection {
    fn default() -> Self {
        SftSection {
            train: Vec::new(),
            valid: None,
            lora: LoraSection::default(),
            lr: 2e-4,
            warmup_steps: 20,
            steps: 500,
            batch_size: 8,
            grad_accum: 1,
            clip_norm: 1.0,
            weight_decay: 0.0,
            eval_every: 100,
            checkpoint_every: 100,
            keep_last: 3,
            eval_tasks: 32,
            max_batch_tokens: 4096,
            token_budget: None,
        }
    }
}

/// Reinforcement learning, the paper's modified GRPO (DESIGN §5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RlSection {
    /// Task file (JSONL) to roll out on.
    pub tasks: Option<String>,
    /// Adapter to start from (an SFT checkpoint).
    pub init_adapter: Option<String>,
    /// Episodes per task (G).
    pub group_size: usize,
    pub tasks_per_step: usize,
    pub clip_eps: f64,
    pub kl_beta: f64,
    pub lr: f64,
    pub steps: usize,
    pub temperature: f64,
    pub checkpoint_every: usize,
    pub keep_last: usize,
    /// Held-out tasks for periodic greedy evaluation.
    pub valid: Option<String>,
    pub eval_every: usize,
    pub eval_tasks: usize,
    /// Gradient steps on each batch of episodes (1: the ratio is 1 and the clip inactive).
    pub ppo_epochs: usize,
    pub clip_norm: f64,
    pub max_batch_tokens: usize,
    /// `per_turn` (the paper's) or `episode`.
    pub advantage: AdvantageMode,
    /// `start` (the policy at the run's first step) or `base` (adapters off).
    pub reference: ReferencePolicy,
    /// Train each episode's turns in one pass over its whole conversation (each turn's
    /// advantage on its own command tokens) instead of one pass per turn; turns whose
    /// prompt was truncated still get their own pass. Same loss and gradients.
    pub whole_episode: bool,
}

impl Default for RlSection {
    fn default() -> Self {
        RlSection {
            tasks: None,
            init_adapter: None,
            group_size: 4,
            tasks_per_step: 8,
            clip_eps: 0.2,
            kl_beta: 0.01,
            lr: 1e-5,
            steps: 200,
            temperature: 1.0,
            checkpoint_every: 20,
            keep_last: 3,
            valid: None,
            eval_every: 20,
            eval_tasks: 32,
            ppo_epochs: 1,
            clip_norm: 1.0,
            max_batch_tokens: 16_384,
            advantage: AdvantageMode::PerTurn,
            reference: ReferencePolicy::Start,
            whole_episode: true,
        }
    }
}

/// The workbench.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UiSection {
    /// A theme name from `themes/` (`dark`, `light`, `high-contrast`).
    pub theme: String,
    /// A RON keymap file overriding the built-in bindings.
    pub keymap: Option<String>,
    /// Upper bound on redraws per second.
    pub max_fps: u32,
}

impl Default for UiSection {
    fn default() -> Self {
        UiSection {
            theme: "dark".into(),
            keymap: None,
            max_fps: 30,
        }
    }
}
