//! The run configuration: RON files deserialised into typed structs (DESIGN §5, §8).
//!
//! Every section has defaults, so a user file may set any subset; unknown fields
//! are errors; `validate()` turns bad values into messages that quote them and
//! point at their line. The shipped `configs/default.ron` is embedded so `coe`
//! works from any directory.
mod error;
mod locate;
pub mod sandbox;
mod types;
mod validate;

pub use error::{ConfigError, Problem};
pub use types::*;

use std::path::Path;

/// The shipped default configuration, embedded at build time.
pub const DEFAULT_RON: &str = include_str!("../../configs/default.ron");

impl Config {
    /// Reads and validates a RON file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_ron(&text, &path.display().to_string())
    }

    /// Parses and validates RON text; `origin` names it in errors.
    pub fn from_ron(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let cfg: Config = ron::Options::default()
            .from_str(text)
            .map_err(|e| ConfigError::parse(origin, text, &e))?;
        let problems = cfg.validate();
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::invalid(origin, text, problems))
        }
    }

    /// The embedded default.
    pub fn embedded_default() -> Config {
        // The embedded file is checked by a unit test; a failure here is a build defect.
        Self::from_ron(DEFAULT_RON, "configs/default.ron")
            .unwrap_or_else(|e| panic!("the embedded default config is invalid: {e}"))
    }

    /// Serialises back to pretty RON (used by the workbench's config editor).
    pub fn to_ron(&self) -> String {
        let pretty = ron::ser::PrettyConfig::new().struct_names(false);
        ron::ser::to_string_pretty(self, pretty).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests;
