//! The `tui` test binary: one binary per area, so CI links five test binaries instead of
//! thirty (each links libtorch and the whole crate).
#[path = "../support/mod.rs"]
mod support;
mod tui_support;

mod tui_e2e;
mod tui_e2e_compare;
mod tui_export;
mod tui_follow;
mod tui_keymap;
mod tui_snapshots;
mod tui_step_workers;
mod tui_update;
