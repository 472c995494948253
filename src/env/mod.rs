//! The Chain-of-Edits environment (DESIGN §2): commands, the editor buffer,
//! the parser, feedback rendering, rewards and episodes.
pub mod buffer;
pub mod command;
pub mod dsl;
pub mod episode;
pub mod feedback;
pub mod prompt;
pub mod reward;
pub mod runner;

#[cfg(test)]
mod episode_tests;
