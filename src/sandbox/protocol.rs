//! The JSON-lines protocol between the pool and a worker process (`worker/*.py`): one
//! greeting after set-up, then strictly one reply per request, matched by id.
use serde::{Deserialize, Serialize};

use crate::config::sandbox::Isolation;
use crate::protocol::run::{Limits, RunOutcome};

/// The worker's command-line configuration (argv[1]).
#[derive(Debug, Serialize)]
pub(crate) struct WorkerArgs {
    pub isolation: Isolation,
    /// The uid/gid task code drops to when the worker runs as root.
    pub uid: u32,
    /// Instead of serving: kill these uids' processes, remove their files and IPC
    /// objects, then exit (the last clean-up of a pool without namespaces).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sweep: Vec<u32>,
}

/// The first line a worker writes: what it set up, or why it could not.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Greeting {
    Hello(Hello),
    Fatal(String),
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Hello {
    pub namespaces: bool,
    pub network_cut: bool,
    pub uid_dropped: bool,
    pub private_tmp: bool,
    pub private_proc: bool,
    pub read_only_root: bool,
    #[serde(default)]
    pub host_dirs_hidden: bool,
    #[serde(default)]
    pub syscall_filter: bool,
    #[serde(default)]
    pub sysv_ipc_off: bool,
    pub run_uid: Option<u32>,
    pub notes: Vec<String>,
    /// The fork-server's pid as the host sees it (a grandchild when namespaced).
    pub server_pid: i32,
    /// Without a private /tmp: the host directory holding the run directories.
    #[serde(default)]
    pub scratch_base: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct WireRequest<'a> {
    pub id: u64,
    pub setup: &'a str,
    pub code: &'a str,
    pub tests: &'a [String],
    pub limits: &'a Limits,
}

/// A reply: `outcome` + `output` on success, `error` when the worker failed.
#[derive(Debug, Deserialize)]
pub(crate) struct WireReply {
    pub id: Option<u64>,
    pub outcome: Option<RunOutcome>,
    #[serde(default)]
    pub output: String,
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::run::{TestError, TestOutcome};

    #[test]
    fn reply_in_the_worker_format_parses() {
        let line = r#"{"outcome": {"kind": "tests", "tests": [{"status": "passed"},
            {"status": "failed", "error": {"exc_type": "RecursionError", "message": "m", "line": 5}},
            {"status": "timed_out", "seconds": 0.5}, {"status": "crashed", "reason": "r"}]},
            "output": "hi", "id": 7}"#;
        let r: WireReply = serde_json::from_str(line).unwrap();
        let want = RunOutcome::Tests {
            tests: vec![
                TestOutcome::Passed,
                TestOutcome::Failed {
                    error: TestError {
                        exc_type: "RecursionError".into(),
                        message: "m".into(),
                        line: Some(5),
                    },
                },
                TestOutcome::TimedOut { seconds: 0.5 },
                TestOutcome::Crashed { reason: "r".into() },
            ],
        };
        assert_eq!(
            (r.id, r.outcome, r.output.as_str(), r.error),
            (Some(7), Some(want), "hi", None)
        );
        let s: WireReply = serde_json::from_str(
            r#"{"outcome": {"kind": "syntax_error", "line": 2, "message": "x"}, "id": 1}"#,
        )
        .unwrap();
        assert_eq!(
            s.outcome,
            Some(RunOutcome::SyntaxError {
                line: 2,
                message: "x".into()
            })
        );
    }

    #[test]
    fn greeting_forms() {
        let g: Greeting = serde_json::from_str(r#"{"fatal": "no"}"#).unwrap();
        assert!(matches!(g, Greeting::Fatal(m) if m == "no"));
        let h = r#"{"hello": {"namespaces": true, "network_cut": true, "uid_dropped": false, "private_tmp": true,
            "private_proc": true, "read_only_root": false, "run_uid": null, "notes": [], "server_pid": 42}}"#;
        assert!(matches!(
            serde_json::from_str(h).unwrap(),
            Greeting::Hello(Hello { server_pid: 42, .. })
        ));
        let args = WorkerArgs {
            isolation: Isolation::Namespaces,
            uid: 61003,
            sweep: Vec::new(),
        };
        assert_eq!(
            serde_json::to_string(&args).unwrap(),
            r#"{"isolation":"namespaces","uid":61003}"#
        );
    }
}
