//! Shared by the attack and fault test binaries: the host-side targets of the attacks
//! and the process and IPC tables the checks read.
#![allow(dead_code)] // each test binary uses its own part of this module

pub mod host;
pub mod procs;
