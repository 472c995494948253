//! What an attack aims at on the host: a secret environment variable, a secret file
//! and a decoy tree beside the repository, a world-writable directory, TCP, UDP, unix
//! and abstract listeners. `fill` puts their names into attack code; `traces_left`
//! says whether any of them was reached, and `tmp_traces` what a run left in /tmp.
use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::net::{TcpListener, UdpSocket};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::path::PathBuf;

pub const SECRET_ENV: &str = "COE_ATTACK_SECRET";
pub const SECRET_ENV_VALUE: &str = "coe-attack-env-secret-5f1e";

/// Scratch dirs task code may write to without namespaces (the host's, then).
const SCRATCH: [&str; 3] = ["/tmp", "/var/tmp", "/dev/shm"];

pub struct AttackHost {
    pub tag: String,
    pub secret_file_text: String,
    dir: PathBuf,
    tcp: TcpListener,
    udp: UdpSocket,
    unix: UnixListener,
    unix_path: PathBuf,
    abstract_name: String,
    abstract_listener: UnixListener,
    tmp_before: BTreeSet<String>,
}

impl AttackHost {
    pub fn new() -> AttackHost {
        // SAFETY: set before any pool starts; std serialises its own environment access.
        unsafe { std::env::set_var(SECRET_ENV, SECRET_ENV_VALUE) };
        let tag = format!("{}_{}", std::process::id(), nanos());
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("attack-{tag}"));
        std::fs::create_dir_all(dir.join("decoy/sub")).unwrap();
        std::fs::write(dir.join("decoy/sub/keep"), "keep").unwrap();
        let secret_file_text = format!("coe-attack-file-secret-{tag}");
        std::fs::write(dir.join("secret.txt"), &secret_file_text).unwrap();
        set_mode(&dir.join("secret.txt"), 0o644);
        std::fs::create_dir(dir.join("world")).unwrap();
        std::fs::write(dir.join("world/victim"), "victim").unwrap();
        set_mode(&dir.join("world"), 0o777);
        set_mode(&dir.join("world/victim"), 0o666);
        set_mode(&dir, 0o755);
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        tcp.set_nonblocking(true).unwrap();
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.set_nonblocking(true).unwrap();
        let unix_path = dir.join("sock");
        let unix = UnixListener::bind(&unix_path).unwrap();
        unix.set_nonblocking(true).unwrap();
        set_mode(&unix_path, 0o777);
        let abstract_name = format!("coe-attack-{tag}");
        let addr = SocketAddr::from_abstract_name(abstract_name.as_bytes()).unwrap();
        let abstract_listener = UnixListener::bind_addr(&addr).unwrap();
        abstract_listener.set_nonblocking(true).unwrap();
        AttackHost {
            tmp_before: scratch_entries(&tag),
            tag,
            secret_file_text,
            dir,
            tcp,
            udp,
            unix,
            unix_path,
            abstract_name,
            abstract_listener,
        }
    }

    /// Attack code with the host's names filled in.
    pub fn fill(&self, text: &str) -> String {
        let port = self.tcp.local_addr().unwrap().port();
        let udp = self.udp.local_addr().unwrap().port();
        text.replace("{TAG}", &self.tag)
            .replace("{PORT}", &port.to_string())
            .replace("{UDP_PORT}", &udp.to_string())
            .replace("{UNIX}", &self.unix_path.display().to_string())
            .replace("{ABSTRACT}", &self.abstract_name)
            .replace(
                "{SECRET_FILE}",
                &self.dir.join("secret.txt").display().to_string(),
            )
            .replace("{DECOY}", &self.dir.join("decoy").display().to_string())
            .replace("{WORLD}", &self.dir.join("world").display().to_string())
            .replace("{REPO}", env!("CARGO_MANIFEST_DIR"))
    }

    /// What the attacks reached: connections, datagrams, files made, moved or deleted.
    pub fn traces_left(&self, namespaces: bool) -> Vec<String> {
        let mut found = Vec::new();
        if namespaces {
            if self.tcp.accept().is_ok() {
                found.push("a TCP connection reached the host's loopback".into());
            }
            let mut buf = [0u8; 16];
            if self.udp.recv(&mut buf).is_ok() {
                found.push("a datagram reached the host's loopback".into());
            }
            if self.unix.accept().is_ok() {
                found.push("a connection reached the host's unix socket".into());
            }
            if self.abstract_listener.accept().is_ok() {
                found.push("a connection reached the host's abstract socket".into());
            }
            if std::fs::read_to_string(self.dir.join("world/victim"))
                .ok()
                .as_deref()
                != Some("victim")
            {
                found.push("the world-writable victim file was changed or removed".into());
            }
        }
        if std::fs::read_to_string(self.dir.join("decoy/sub/keep"))
            .ok()
            .as_deref()
            != Some("keep")
        {
            found.push("the decoy tree beside the repository was damaged".into());
        }
        let made = [
            format!("/etc/coe_attack_{}", self.tag),
            format!("/etc/coe_attack_link_{}", self.tag),
            format!("/usr/coe_attack_{}", self.tag),
            format!("/coe_attack_{}", self.tag),
            self.dir
                .join(format!("decoy/coe_attack_{}", self.tag))
                .display()
                .to_string(),
        ];
        for p in made {
            if std::fs::symlink_metadata(&p).is_ok() {
                found.push(format!("{p} was created on the host"));
            }
        }
        found
    }

    /// Entries of the host's scratch dirs that runs left (compared with before).
    pub fn tmp_traces(&self) -> Vec<String> {
        scratch_entries(&self.tag)
            .difference(&self.tmp_before)
            .map(|p| format!("left on the host: {p}"))
            .collect()
    }
}

impl Drop for AttackHost {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Entries an attack or the sandbox could leave in the host's scratch dirs.
fn scratch_entries(tag: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for dir in SCRATCH {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let ours = name.contains(tag)
                || name.starts_with("coe-sandbox-")
                || name.starts_with("coe_attack")
                || name.starts_with("fill");
            if ours {
                out.insert(format!("{dir}/{name}"));
            }
        }
    }
    out
}

fn set_mode(path: &std::path::Path, mode: u32) {
    match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => panic!("{}: missing", path.display()),
        Err(e) => panic!("{}: {e}", path.display()),
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}
