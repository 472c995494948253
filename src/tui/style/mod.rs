//! How the workbench looks: theme files, their colours reduced to what the terminal shows,
//! and Python syntax highlighting.
pub mod color;
pub mod highlight;
pub mod theme;
