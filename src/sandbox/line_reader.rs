//! Reads a worker's reply lines with a deadline, straight from its stdout pipe.
//!
//! Polling the pipe in the calling thread (rather than a reader thread feeding a
//! channel) saves a thread wake-up per run, which is a visible share of a run's
//! latency on a busy machine.
use std::io::Read;
use std::os::fd::AsRawFd;
use std::process::ChildStdout;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) enum LineError {
    Timeout,
    Closed,
    Io(std::io::Error),
}

pub(crate) struct LineReader {
    out: ChildStdout,
    buf: Vec<u8>,
}

impl LineReader {
    pub(crate) fn new(out: ChildStdout) -> Self {
        LineReader {
            out,
            buf: Vec::new(),
        }
    }

    /// The next complete line (newline stripped), waiting at most `timeout`.
    pub(crate) fn next_line(&mut self, timeout: Duration) -> Result<String, LineError> {
        let deadline = Instant::now() + timeout;
        let mut scanned = 0;
        loop {
            if let Some(pos) = self.buf[scanned..].iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=scanned + pos).collect();
                return Ok(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
            }
            scanned = self.buf.len();
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(LineError::Timeout);
            }
            let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX).max(1);
            let mut pfd = libc::pollfd {
                fd: self.out.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call.
            let ready = unsafe { libc::poll(&mut pfd, 1, ms) };
            if ready < 0 {
                let err = std::io::Error::last_os_error();
                if err.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(LineError::Io(err));
            }
            if ready == 0 {
                continue;
            }
            let mut chunk = [0u8; 64 * 1024];
            match self.out.read(&mut chunk) {
                Ok(0) => return Err(LineError::Closed),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(LineError::Io(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    fn reader_for(script: &str) -> (std::process::Child, LineReader) {
        let mut child = Command::new("sh")
            .args(["-c", script])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        (child, LineReader::new(out))
    }

    #[test]
    fn splits_lines_across_reads_and_reports_close() {
        let (mut child, mut r) = reader_for("printf 'one\\ntw'; sleep 0.05; printf 'o\\nthree\\n'");
        let t = Duration::from_secs(5);
        assert_eq!(r.next_line(t).unwrap(), "one");
        assert_eq!(r.next_line(t).unwrap(), "two");
        assert_eq!(r.next_line(t).unwrap(), "three");
        assert!(matches!(r.next_line(t), Err(LineError::Closed)));
        child.wait().unwrap();
    }

    #[test]
    fn times_out_on_silence() {
        let (mut child, mut r) = reader_for("sleep 2");
        let started = Instant::now();
        assert!(matches!(
            r.next_line(Duration::from_millis(100)),
            Err(LineError::Timeout)
        ));
        assert!(started.elapsed() < Duration::from_secs(1));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
