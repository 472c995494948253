//! A `coe serve` child process on 127.0.0.1 with a free port, killed when dropped.
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub struct Served {
    child: Child,
    /// `http://127.0.0.1:PORT/v1`, as the server printed it.
    pub url: String,
}

impl Served {
    /// `coe serve --model model --threads 1 --port 0`, run in `dir`.
    pub fn start_in(dir: &Path, model: &str) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_coe"))
            .current_dir(dir)
            .args(["serve", "--model", model, "--threads", "1", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .strip_prefix("listening ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .trim()
            .to_string();
        Served { child, url }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.kill();
    }
}
