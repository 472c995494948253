//! What confinement is actually in force on this host, as reported by the workers
//! after their set-up, so the README and `coe --version` can say it plainly.
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protection {
    /// Each worker lives in its own pid + net + mount + ipc namespaces.
    pub namespaces: bool,
    /// Task code has no network at all (not even loopback).
    pub network_cut: bool,
    /// Task code runs as an unprivileged uid/gid with no supplementary groups.
    pub uid_dropped: bool,
    /// /tmp (and /var/tmp, /dev/shm, /run/lock where present) are worker-private tmpfs.
    pub private_tmp: bool,
    /// A /proc of the worker's own pid namespace, other users' processes hidden.
    pub private_proc: bool,
    /// Every other filesystem is mounted read-only inside the worker.
    pub read_only_root: bool,
    /// Only system directories (/usr, /etc, /bin, /lib…) are visible: home directories,
    /// the repository, /run, /opt, /mnt… are covered by empty read-only mounts.
    pub host_dirs_hidden: bool,
    /// Each run carries a seccomp filter: no new namespaces, mounts, keyrings, ptrace,
    /// bpf, userfaultfd, perf events or io_uring.
    pub syscall_filter: bool,
    /// No SysV IPC objects can be made (they would outlive the run).
    pub sysv_ipc_off: bool,
    /// The uids task code runs as, first..=last, when dropped.
    pub run_uids: Option<(u32, u32)>,
    /// Fallbacks taken and anything that did not work.
    pub notes: Vec<String>,
}

impl Protection {
    /// One line per protection, for `coe --version`-style output and the README.
    pub fn summary(&self) -> String {
        let onoff = |b: bool| if b { "on" } else { "OFF" };
        let uid = match (self.uid_dropped, self.run_uids) {
            (true, Some((a, b))) if a == b => format!("on (uid {a})"),
            (true, Some((a, b))) => format!("on (uids {a}..={b})"),
            (true, None) => "on".to_string(),
            (false, _) => "OFF (task code runs as the invoking user)".to_string(),
        };
        let mut out = vec![
            format!(
                "namespaces (pid, net, mount, ipc): {}",
                onoff(self.namespaces)
            ),
            format!("network cut: {}", onoff(self.network_cut)),
            format!("unprivileged uid: {uid}"),
            format!("private /tmp: {}", onoff(self.private_tmp)),
            format!("private /proc: {}", onoff(self.private_proc)),
            format!("read-only filesystem: {}", onoff(self.read_only_root)),
            format!("host directories hidden: {}", onoff(self.host_dirs_hidden)),
            format!("syscall filter: {}", onoff(self.syscall_filter)),
            format!("SysV IPC off: {}", onoff(self.sysv_ipc_off)),
            "limits: CPU, memory, processes, open files, file size, wall clock, output".to_string(),
        ];
        out.extend(self.notes.iter().map(|n| format!("note: {n}")));
        if !self.namespaces {
            out.push(
                "not a security boundary against a determined attacker without namespaces"
                    .to_string(),
            );
        }
        out.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lists_every_protection() {
        let p = Protection {
            namespaces: true,
            network_cut: true,
            uid_dropped: true,
            private_tmp: true,
            private_proc: false,
            read_only_root: true,
            host_dirs_hidden: true,
            syscall_filter: true,
            sysv_ipc_off: false,
            run_uids: Some((61000, 61001)),
            notes: vec!["host /proc stays visible".into()],
        };
        let want = "namespaces (pid, net, mount, ipc): on\nnetwork cut: on\nunprivileged uid: on (uids 61000..=61001)\n\
                    private /tmp: on\nprivate /proc: OFF\nread-only filesystem: on\n\
                    host directories hidden: on\nsyscall filter: on\nSysV IPC off: OFF\n\
                    limits: CPU, memory, processes, open files, file size, wall clock, output\n\
                    note: host /proc stays visible";
        assert_eq!(p.summary(), want);
    }

    #[test]
    fn summary_warns_without_namespaces() {
        let s = Protection::default().summary();
        assert!(
            s.contains("unprivileged uid: OFF (task code runs as the invoking user)"),
            "{s}"
        );
        assert!(
            s.ends_with("not a security boundary against a determined attacker without namespaces"),
            "{s}"
        );
    }
}
