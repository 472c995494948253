//! Helpers shared by the test binaries: byte-level fuzzing, the prerequisite guard, the process table, the smoke data and a `coe serve` child.
#![allow(dead_code)] // each binary uses its own part of this module

pub mod fuzz;
pub mod prereq;
pub mod procs;
pub mod served;
pub mod smoke;
