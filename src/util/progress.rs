//! One progress line for long commands (`coe eval`, `coe data sample-bugs`, `coe bench
//! rollout`, `coe train`): rewritten in place on a terminal (`\r`, the line, clear to the end
//! of the line), and one plain line per update when stderr is not a terminal, so a log read
//! over SSH or from a file shows every update instead of one long line of carriage returns.
use std::io::{IsTerminal, Write};

/// Clears from the cursor to the end of the line (ANSI EL).
const CLEAR_TO_END: &str = "\x1b[K";

/// A progress line on one writer; dropping it ends the line.
pub struct ProgressLine<W: Write> {
    out: W,
    in_place: bool,
    /// A line is shown in place and the cursor still sits at its end.
    open: bool,
}

impl ProgressLine<std::io::Stderr> {
    /// On stderr: in place when stderr is a terminal, plain lines otherwise.
    pub fn stderr() -> Self {
        let out = std::io::stderr();
        let in_place = out.is_terminal();
        ProgressLine::new(out, in_place)
    }
}

impl<W: Write> ProgressLine<W> {
    pub fn new(out: W, in_place: bool) -> Self {
        ProgressLine {
            out,
            in_place,
            open: false,
        }
    }

    /// Shows `line`, replacing the previous one on a terminal. Write errors are ignored:
    /// progress is a courtesy and must never stop the work it reports on.
    pub fn show(&mut self, line: &str) {
        let _ = if self.in_place {
            self.open = true;
            write!(self.out, "\r{line}{CLEAR_TO_END}")
        } else {
            writeln!(self.out, "{line}")
        };
        let _ = self.out.flush();
    }

    /// Erases the line shown in place, so that an ordinary line can take its place.
    pub fn clear(&mut self) {
        if self.open {
            self.open = false;
            let _ = write!(self.out, "\r{CLEAR_TO_END}");
            let _ = self.out.flush();
        }
    }

    /// Ends the line shown in place with a newline, keeping it on screen.
    pub fn finish(&mut self) {
        if self.open {
            self.open = false;
            let _ = writeln!(self.out);
            let _ = self.out.flush();
        }
    }
}

impl<W: Write> Drop for ProgressLine<W> {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A duration for progress lines: `4m07s`, or `1h02m` from an hour on.
pub fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(in_place: bool, f: impl FnOnce(&mut ProgressLine<&mut Vec<u8>>)) -> String {
        let mut buf = Vec::new();
        {
            let mut p = ProgressLine::new(&mut buf, in_place);
            f(&mut p);
        }
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn a_terminal_rewrites_the_line_and_ends_it_once() {
        let text = written(true, |p| {
            p.show("a");
            p.show("b");
            p.finish();
            p.finish();
        });
        assert_eq!(text, "\ra\x1b[K\rb\x1b[K\n");
        // Dropped while open: the newline still comes.
        assert_eq!(written(true, |p| p.show("a")), "\ra\x1b[K\n");
        // Cleared: the line is erased and nothing more is written on drop.
        assert_eq!(
            written(true, |p| {
                p.show("a");
                p.clear();
            }),
            "\ra\x1b[K\r\x1b[K"
        );
    }

    #[test]
    fn elsewhere_every_update_is_a_plain_line() {
        let text = written(false, |p| {
            p.show("a");
            p.clear();
            p.show("b");
            p.finish();
        });
        assert_eq!(text, "a\nb\n");
    }

    #[test]
    fn clock_shows_minutes_then_hours() {
        assert_eq!(clock(0.4), "0m00s");
        assert_eq!(clock(247.0), "4m07s");
        assert_eq!(clock(3725.0), "1h02m");
        assert_eq!(clock(-3.0), "0m00s");
    }
}
