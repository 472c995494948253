//! The `sandbox` test binary: the pool's behaviour, sharing one pool across tests (one
//! binary per area, so CI links a few test binaries instead of thirty).
#[path = "../support/mod.rs"]
mod support;

mod sandbox;
