//! Helpers shared by the test binaries: byte-level fuzzing, the prerequisite guard and the process table.
#![allow(dead_code)] // each binary uses its own part of this module

pub mod fuzz;
pub mod prereq;
pub mod procs;
pub mod smoke;
