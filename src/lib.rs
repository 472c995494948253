//! chain-of-edits: teach small language models to repair Python by driving an editor.
//!
//! Module map (DESIGN §6): `env` is the editor, DSL and episodes; `sandbox` runs
//! untrusted Python; `data` reads and synthesises tasks; `policy` is the one
//! interface that produces commands; `eval` runs episodes in bulk and scores
//! them; `model` is the Llama policy on libtorch; `protocol` the events that
//! cross threads and go to disk; `config` the RON configuration; `cli` the
//! `coe` command; `tui` the terminal workbench.
pub mod bench;
pub mod cli;
pub mod config;
pub mod data;
pub mod env;
pub mod eval;
pub mod model;
pub mod policy;
pub mod protocol;
pub mod runtime;
pub mod sandbox;
pub mod task;
pub mod train;
pub mod tui;
pub mod util;
