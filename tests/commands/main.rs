//! The `commands` test binary (the command line, data, the DSL, configs and the import
//! graph): one binary per area, so CI links five test binaries instead of
//! thirty (each links libtorch and the whole crate).
#[path = "../support/mod.rs"]
mod support;

mod answer_cli;
mod answer_oneshot;
mod cli;
mod data_corrupt;
mod datasets;
mod dsl_fuzz;
mod dsl_golden;
mod eval_progress;
mod fuzz_inputs;
mod layers;
mod serve;
mod shipped_configs;
