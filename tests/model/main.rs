//! The `model` test binary: one binary per area, so CI links five test binaries instead of
//! thirty (each links libtorch and the whole crate).
#[path = "../support/mod.rs"]
mod support;

mod common;

mod cross_turn_cache;
mod fold;
mod fuzz_models;
mod gguf;
mod learns;
mod model_policy;
mod model_tiny;
mod parity;
mod rl_whole_episode;
mod tokenizer_parity;
mod train_resume;
