//! The data records of DESIGN §3: Problems (correct programs), Tasks (programs to
//! repair) and Demonstrations (SFT traces). Unknown fields are kept in `extra`
//! so a file rewritten by `coe` loses nothing a newer tool added.
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A correct program with its tests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    pub id: String,
    pub prompt: String,
    pub solution: String,
    pub tests: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_point: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Where a buggy program came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Synthetic,
    Model,
    Human,
}

/// A program to repair: the problem fields plus the buggy code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solution: Option<String>,
    pub tests: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_point: Option<String>,
    pub buggy: String,
    pub origin: Origin,
    pub problem_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corruptions: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Task {
    /// A task from a problem and a buggy version of its solution.
    pub fn from_problem(
        p: &Problem,
        id: String,
        buggy: String,
        origin: Origin,
        corruptions: Option<Vec<String>>,
    ) -> Task {
        Task {
            id,
            prompt: p.prompt.clone(),
            solution: Some(p.solution.clone()),
            tests: p.tests.clone(),
            setup: p.setup.clone(),
            entry_point: p.entry_point.clone(),
            buggy,
            origin,
            problem_id: p.id.clone(),
            corruptions,
            extra: Map::new(),
        }
    }

    /// The setup code, or empty.
    pub fn setup_code(&self) -> &str {
        self.setup.as_deref().unwrap_or("")
    }
}

/// One turn of a demonstration: the command (without `### `), the state it led to, its reward.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DemoTurn {
    pub command: String,
    pub state: String,
    pub reward: f64,
}

/// A Chain-of-Edits demonstration: a task and the turns that repair it, ending in EXIT.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Demonstration {
    pub task: Task,
    pub turns: Vec<DemoTurn>,
}

/// A direct-answer demonstration: the whole fixed program in one turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectDemo {
    pub task: Task,
    pub answer: String,
}

/// A chain-of-thought demonstration: prose reasoning, then the fixed program.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CotDemo {
    pub task: Task,
    pub reasoning: String,
    pub answer: String,
}
