//! The `isolation` test binary: the attack suite, fault injection, worker lifecycle and the
//! short soak.
//! Each of these inspects or kills every descendant of this process, so no other pool may
//! be alive meanwhile: they live in a binary of their own and take
//! [`attacks_support::ONE_POOL`] to run one at a time.
#[path = "../support/mod.rs"]
mod support;

mod attacks_support;

mod attacks;
mod sandbox_faults;
mod sandbox_lifecycle;
mod sandbox_soak;
