//! The host's process table and SysV IPC tables, read from /proc, for the checks
//! that nothing of a run outlives it (sandbox, isolation and workbench tests).
use std::collections::HashMap;

/// pid -> (parent pid, start of the command line) for every process on the host.
pub fn process_table() -> HashMap<u32, (u32, String)> {
    let mut table = HashMap::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // The command name sits in parentheses and may hold spaces; the ppid follows it.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let Some(ppid) = after.split_whitespace().nth(1).and_then(|p| p.parse().ok()) else {
            continue;
        };
        let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmd: String = String::from_utf8_lossy(&cmd)
            .replace('\0', " ")
            .chars()
            .take(80)
            .collect();
        table.insert(pid, (ppid, cmd));
    }
    table
}

/// Every live process whose chain of parents leads to this test process.
pub fn descendants() -> Vec<(u32, String)> {
    descendants_of(std::process::id())
}

/// Every live process whose chain of parents leads to `me`: (pid, start of its command line).
pub fn descendants_of(me: u32) -> Vec<(u32, String)> {
    let table = process_table();
    let mut found = Vec::new();
    for (&pid, (_, cmd)) in &table {
        let mut cur = pid;
        for _ in 0..64 {
            let Some(&(ppid, _)) = table.get(&cur) else {
                break;
            };
            if ppid == me {
                found.push((pid, cmd.clone()));
                break;
            }
            cur = ppid;
        }
    }
    found
}

/// The direct children of `parent`.
pub fn children_of(parent: u32) -> Vec<u32> {
    process_table()
        .into_iter()
        .filter(|(_, (ppid, _))| *ppid == parent)
        .map(|(pid, _)| pid)
        .collect()
}

/// Processes on the host running as one of the uids in `range` (their status line).
pub fn processes_with_uid_in(range: std::ops::Range<u32>) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|u| u.parse().ok());
        if uid.is_some_and(|u| range.contains(&u)) {
            let name = status.lines().next().unwrap_or("").to_string();
            found.push(format!("{} ({name})", entry.file_name().to_string_lossy()));
        }
    }
    found
}

/// SysV shared memory segments, message queues and semaphore sets in the host's IPC
/// namespace owned by a uid in `range`, one line each.
pub fn sysv_objects_of(range: std::ops::Range<u32>) -> Vec<String> {
    let mut found = Vec::new();
    for kind in ["shm", "msg", "sem"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/sysvipc/{kind}")) else {
            continue;
        };
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
        let Some(col) = header.iter().position(|h| *h == "uid") else {
            continue;
        };
        for line in lines {
            let uid = line
                .split_whitespace()
                .nth(col)
                .and_then(|u| u.parse().ok());
            if uid.is_some_and(|u| range.contains(&u)) {
                found.push(format!("{kind}: {}", line.trim()));
            }
        }
    }
    found
}
