//! What the model reads (DESIGN §2.1): the DSL reference, then the task, the
//! tests and the first state in the first user turn; later turns hold only the
//! new state.
use crate::task::Task;

/// The DSL reference given to the model at the start of every episode.
pub const INSTRUCTIONS: &str = "\
You repair a Python program with a line editor. Reply with exactly one command per turn, \
on one line, starting with \"### \":
### DELL <n>  delete line n
### ADDL <n> >>><text>  insert <text> so that it becomes line n
### REPL <n> >>><text>  replace line n with <text>
### REPW <n> >>><old> >>><new>  replace every <old> in line n with <new>
### EXIT  the code is fixed; stop
<text> is taken verbatim, indentation included. After each command you see the code, \
one line per source line as L<n> <content>, then *** and the test results.";

/// The first user turn: instructions, task description, tests, state.
pub fn first_user_message(task: &Task, state: &str) -> String {
    let mut out = String::with_capacity(INSTRUCTIONS.len() + task.prompt.len() + state.len() + 256);
    out.push_str(INSTRUCTIONS);
    out.push_str("\n\nTask:\n");
    out.push_str(task.prompt.trim_end());
    out.push_str("\n\nTests:\n");
    for t in &task.tests {
        out.push_str(t.trim_end());
        out.push('\n');
    }
    out.push('\n');
    out.push_str(state);
    out
}
