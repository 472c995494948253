//! The `sandbox` test binary: the pool's behaviour and the soak test, sharing one process
//! (one binary per area, so CI links a few test binaries instead of thirty).
#[path = "../support/mod.rs"]
mod support;

mod sandbox;
mod sandbox_soak;
