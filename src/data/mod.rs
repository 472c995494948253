//! Data (DESIGN §3): record types, JSONL I/O, problem-set loaders, validation,
//! and the synthesis of repair tasks and demonstrations.
pub mod corrupt;
pub mod jsonl;
pub mod loaders;
pub mod rationale;
pub mod split;
pub mod stats;
pub mod synth;
pub mod trace;
pub mod validate;
