//! Shared by the isolation binary's tests: the host-side targets of the attacks and the
//! lock that keeps one pool alive at a time (the process tables are in `support::procs`).
#![allow(dead_code)] // each test binary uses its own part of this module

pub mod host;

/// Held by every test of this binary: each one checks that no other pool is alive.
pub static ONE_POOL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes [`ONE_POOL`], whatever an earlier test that panicked left it in.
pub fn one_pool() -> std::sync::MutexGuard<'static, ()> {
    ONE_POOL.lock().unwrap_or_else(|e| e.into_inner())
}
