//! Ctrl-C and SIGTERM as a flag, for commands that stop at their next boundary (a training
//! step, an evaluation round) and keep what is finished instead of dying mid-write.
//!
//! The handler only sets an atomic, writes a fixed notice with `write(2)` and, on a second
//! Ctrl-C, leaves with `_exit(130)`: all async-signal-safe. A second SIGTERM never leaves at
//! once: `timeout(1)` sends it twice (to the command, then to its process group), and that
//! must still end at the boundary.
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// Written to stderr at the first signal; set once, before the handler is installed.
static NOTICE: OnceLock<&'static str> = OnceLock::new();

extern "C" fn on_signal(sig: libc::c_int) {
    if INTERRUPTED.swap(true, Ordering::SeqCst) {
        if sig == libc::SIGINT {
            // Second Ctrl-C: leave now.
            unsafe { libc::_exit(130) };
        }
        return;
    }
    if let Some(notice) = NOTICE.get() {
        // SAFETY: `write(2)` on a static buffer; its result does not matter.
        unsafe { libc::write(2, notice.as_ptr().cast(), notice.len()) };
    }
}

/// Routes SIGINT and SIGTERM to the flag, printing `notice` (ending in a newline) at the
/// first one; returns the flag. Later calls keep the first notice.
pub fn install(notice: &'static str) -> &'static AtomicBool {
    let _ = NOTICE.set(notice);
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler touches only atomics, `write` and `_exit`.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
    &INTERRUPTED
}

/// Whether a signal came since `install`.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
