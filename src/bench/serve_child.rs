//! The `coe serve` processes `coe bench serve` measures: children of this binary on
//! 127.0.0.1 with port 0, started from the bench's own config (written to a scratch file so
//! the server decodes with the same batch budget, cache and context), killed on drop.
//!
//! A child process rather than an in-process `runtime::serve::Server` because the server sits above
//! the benchmarks (`runtime`), and because a real deployment is a separate process: its
//! libtorch thread pool and its HTTP handlers compete with the client as they would.
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;

/// How long a child may take to load the model and print its address.
const START_TIMEOUT: Duration = Duration::from_secs(180);

/// A running `coe serve` child.
pub struct ServeChild {
    child: Child,
    /// Its base URL, `http://127.0.0.1:<port>/v1`.
    pub url: String,
}

impl ServeChild {
    /// Starts `coe --config <config> serve --port 0` with `extra` arguments and waits for
    /// its `listening <url>` line.
    pub fn start(config: &Path, extra: &[String]) -> anyhow::Result<ServeChild> {
        let exe =
            std::env::current_exe().context("cannot find this program to start `coe serve`")?;
        let mut child = Command::new(exe)
            .arg("--config")
            .arg(config)
            .args(["serve", "--host", "127.0.0.1", "--port", "0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start `coe serve`")?;
        let stdout = child.stdout.take().context("no stdout from `coe serve`")?;
        let (tx, rx) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = tx.send(reader.read_line(&mut line).map(|_| line));
            // Keep the pipe open (and drained) for the child's lifetime.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let mut served = ServeChild {
            child,
            url: String::new(),
        };
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => anyhow::bail!("`coe serve` printed nothing readable: {e}"),
            Err(_) => anyhow::bail!(
                "`coe serve` did not start within {} s",
                START_TIMEOUT.as_secs()
            ),
        };
        served.url = line
            .strip_prefix("listening ")
            .with_context(|| format!("`coe serve` started with {line:?}, not `listening <url>`"))?
            .trim()
            .to_string();
        Ok(served)
    }
}

impl Drop for ServeChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
