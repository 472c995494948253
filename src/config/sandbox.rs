//! Sandbox settings (the `sandbox` section of the RON config, read by the sandbox pool) and the checks that
//! turn bad values into messages quoting them, before any process is started.
use serde::{Deserialize, Serialize};

use thiserror::Error;

use crate::protocol::run::Limits;

/// A sandbox setting or run limit that would make the sandbox misbehave.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SandboxSettingError {
    #[error("invalid sandbox setting `{field}` = {value}: {reason}")]
    Config {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error("invalid run limit `{field}` = {value}: {reason}")]
    Limits {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
}

/// Run uids a machine's pools are spread over, above `unprivileged_uid_base`.
pub const UID_SPAN: u32 = 16384;

/// How hard to confine task code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// Namespaces when the host allows them, otherwise the documented fallback.
    #[default]
    Auto,
    /// Namespaces or nothing: starting the pool fails when they cannot be set up.
    Namespaces,
    /// No namespaces (rlimits, uid drop when root, process-group cleanup only).
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// Resident workers; 0 means one per CPU.
    pub workers: usize,
    /// The Python 3 interpreter (a name looked up on PATH, or a path).
    pub python: String,
    pub isolation: Isolation,
    /// Limits a run gets unless its request says otherwise.
    pub limits: Limits,
    /// When running as root, worker i runs task code as uid/gid `base + i`.
    pub unprivileged_uid_base: u32,
}

/// More workers than this is a typo, not a plan.
const MAX_WORKERS: usize = 512;

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            workers: 0,
            python: "python3".to_string(),
            isolation: Isolation::Auto,
            limits: Limits::default(),
            unprivileged_uid_base: 61000,
        }
    }
}

impl SandboxConfig {
    /// The number of workers this config asks for, with 0 resolved to the CPU count.
    pub fn resolved_workers(&self) -> usize {
        if self.workers > 0 {
            return self.workers;
        }
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    pub fn validate(&self) -> Result<(), SandboxSettingError> {
        let bad = |field, value: String, reason| {
            Err(SandboxSettingError::Config {
                field,
                value,
                reason,
            })
        };
        if self.python.trim().is_empty() {
            return bad(
                "python",
                format!("{:?}", self.python),
                "name a Python 3 interpreter, e.g. \"python3\"",
            );
        }
        if self.workers > MAX_WORKERS {
            return bad("workers", self.workers.to_string(), "at most 512 workers");
        }
        if self.unprivileged_uid_base < 1000 {
            return bad(
                "unprivileged_uid_base",
                self.unprivileged_uid_base.to_string(),
                "must be at least 1000, away from system and root uids",
            );
        }
        let last = u64::from(self.unprivileged_uid_base)
            + u64::from(UID_SPAN)
            + self.resolved_workers() as u64;
        if last >= u64::from(u32::MAX) {
            return bad(
                "unprivileged_uid_base",
                self.unprivileged_uid_base.to_string(),
                "base + 16384 + workers must stay below 4294967295 (pools take uids from that span)",
            );
        }
        validate_limits(&self.limits)
    }
}

/// Checks run limits; a run with these would misbehave rather than fail cleanly.
pub fn validate_limits(l: &Limits) -> Result<(), SandboxSettingError> {
    let bad = |field, value: String, reason| {
        Err(SandboxSettingError::Limits {
            field,
            value,
            reason,
        })
    };
    if !(l.test_timeout_s.is_finite() && l.test_timeout_s > 0.0) {
        return bad(
            "test_timeout_s",
            l.test_timeout_s.to_string(),
            "must be a positive number of seconds",
        );
    }
    if !(l.run_timeout_s.is_finite() && l.run_timeout_s > 0.0 && l.run_timeout_s <= 3600.0) {
        return bad(
            "run_timeout_s",
            l.run_timeout_s.to_string(),
            "must be between 0 and 3600 seconds",
        );
    }
    if l.cpu_s == 0 {
        return bad("cpu_s", "0".into(), "must be at least 1 second");
    }
    // Below this a forked interpreter cannot even allocate its first frame.
    if l.memory_mb < 64 {
        return bad(
            "memory_mb",
            l.memory_mb.to_string(),
            "must be at least 64 MiB",
        );
    }
    if l.max_procs == 0 {
        return bad(
            "max_procs",
            "0".into(),
            "must be at least 1 (the run itself)",
        );
    }
    if l.max_open_files < 8 {
        return bad(
            "max_open_files",
            l.max_open_files.to_string(),
            "must be at least 8",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(SandboxConfig::default().validate().ok(), Some(()));
    }

    #[test]
    fn bad_values_are_quoted() {
        let cases: Vec<(SandboxConfig, &str)> = vec![
            (
                SandboxConfig {
                    python: " ".into(),
                    ..Default::default()
                },
                "invalid sandbox setting `python` = \" \": name a Python 3 interpreter, e.g. \"python3\"",
            ),
            (
                SandboxConfig {
                    workers: 513,
                    ..Default::default()
                },
                "invalid sandbox setting `workers` = 513: at most 512 workers",
            ),
            (
                SandboxConfig {
                    unprivileged_uid_base: 0,
                    ..Default::default()
                },
                "invalid sandbox setting `unprivileged_uid_base` = 0: must be at least 1000, away from system and root uids",
            ),
            (
                SandboxConfig {
                    workers: 2,
                    unprivileged_uid_base: u32::MAX - 1,
                    ..Default::default()
                },
                "invalid sandbox setting `unprivileged_uid_base` = 4294967294: base + 16384 + workers must stay below 4294967295 (pools take uids from that span)",
            ),
            (
                SandboxConfig {
                    limits: Limits {
                        test_timeout_s: f64::NAN,
                        ..Default::default()
                    },
                    ..Default::default()
                },
                "invalid run limit `test_timeout_s` = NaN: must be a positive number of seconds",
            ),
            (
                SandboxConfig {
                    limits: Limits {
                        run_timeout_s: 0.0,
                        ..Default::default()
                    },
                    ..Default::default()
                },
                "invalid run limit `run_timeout_s` = 0: must be between 0 and 3600 seconds",
            ),
            (
                SandboxConfig {
                    limits: Limits {
                        memory_mb: 16,
                        ..Default::default()
                    },
                    ..Default::default()
                },
                "invalid run limit `memory_mb` = 16: must be at least 64 MiB",
            ),
            (
                SandboxConfig {
                    limits: Limits {
                        max_open_files: 3,
                        ..Default::default()
                    },
                    ..Default::default()
                },
                "invalid run limit `max_open_files` = 3: must be at least 8",
            ),
        ];
        for (cfg, want) in cases {
            let got = cfg.validate().map_err(|e| e.to_string());
            assert_eq!(got, Err(want.to_string()));
        }
    }

    #[test]
    fn isolation_reads_lowercase_and_unknown_fields_fail() {
        let cfg: SandboxConfig =
            serde_json::from_str(r#"{"isolation":"none","workers":3}"#).unwrap();
        assert_eq!(
            (cfg.isolation, cfg.workers, cfg.python.as_str()),
            (Isolation::None, 3, "python3")
        );
        assert!(serde_json::from_str::<SandboxConfig>(r#"{"isolation":"None"}"#).is_err());
        assert!(serde_json::from_str::<SandboxConfig>(r#"{"wokers":3}"#).is_err());
    }
}
