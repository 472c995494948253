//! Helpers shared by the test binaries: byte-level fuzzing and the prerequisite guard.
#![allow(dead_code)] // each binary uses its own part of this module

pub mod fuzz;
pub mod prereq;
