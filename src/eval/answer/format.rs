//! The one-shot conversations: the user turn of each format, the exact assistant text SFT
//! trains on, and the reply budgets.
use super::extract::fence_for;
use crate::model::chat::{Message, Role};
use crate::task::{Problem, Task};

/// Reply budget of a direct answer, in tokens: a program of ~60 lines.
pub const DIRECT_MAX_NEW_TOKENS: usize = 512;
/// Reply budget of a CoT answer: the program plus a few sentences of reasoning.
pub const COT_MAX_NEW_TOKENS: usize = 768;

pub(super) const DIRECT_ASK: &str = "Fix the bug in this Python program so that it passes the tests. \
Reply with the whole fixed program in one ```python block and nothing else.";
pub(super) const COT_ASK: &str = "Fix the bug in this Python program so that it passes the tests. \
First explain briefly what is wrong, then give the whole fixed program in one ```python block.";
pub(super) const WRITE_ASK: &str = "Write a Python program for this task so that it passes the tests. \
Reply with the whole program in one ```python block and nothing else.";

/// Which one-shot format a conversation uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerFormat {
    /// Repair: the fixed program only.
    Direct,
    /// Repair: reasoning, then the fixed program.
    Cot,
    /// Write a program from the task alone (model-written bugs).
    Write,
}

impl AnswerFormat {
    /// The reply budget in tokens.
    pub fn max_new_tokens(self) -> usize {
        match self {
            AnswerFormat::Direct | AnswerFormat::Write => DIRECT_MAX_NEW_TOKENS,
            AnswerFormat::Cot => COT_MAX_NEW_TOKENS,
        }
    }

    /// `direct`, `cot` or `write`, as results and logs name it.
    pub fn name(self) -> &'static str {
        match self {
            AnswerFormat::Direct => "direct",
            AnswerFormat::Cot => "cot",
            AnswerFormat::Write => "write",
        }
    }
}

/// The conversation asking for the whole fixed program.
pub fn direct_messages(task: &Task) -> Vec<Message> {
    vec![Message::new(Role::User, repair_prompt(DIRECT_ASK, task))]
}

/// The conversation asking for reasoning, then the whole fixed program.
pub fn cot_messages(task: &Task) -> Vec<Message> {
    vec![Message::new(Role::User, repair_prompt(COT_ASK, task))]
}

/// The conversation asking a model to write the program of a problem from its description
/// and tests (the reference solution is not shown).
pub fn write_messages(problem: &Problem) -> Vec<Message> {
    vec![Message::new(
        Role::User,
        write_prompt(&problem.prompt, &problem.tests),
    )]
}

/// The conversation of a task in the given format (`Write` uses the task's problem fields).
pub fn messages(format: AnswerFormat, task: &Task) -> Vec<Message> {
    match format {
        AnswerFormat::Direct => direct_messages(task),
        AnswerFormat::Cot => cot_messages(task),
        AnswerFormat::Write => vec![Message::new(
            Role::User,
            write_prompt(&task.prompt, &task.tests),
        )],
    }
}

/// The assistant text of a direct answer: the program in a python fence.
pub fn direct_reply(answer: &str) -> String {
    fenced(answer)
}

/// The assistant text of a CoT answer: the reasoning, a blank line, the program in a fence.
pub fn cot_reply(reasoning: &str, answer: &str) -> String {
    let reasoning = reasoning.trim();
    if reasoning.is_empty() {
        return fenced(answer);
    }
    format!("{reasoning}\n\n{}", fenced(answer))
}

fn repair_prompt(ask: &str, task: &Task) -> String {
    let mut text = String::with_capacity(task.prompt.len() + task.buggy.len() + 512);
    text.push_str(ask);
    push_task(&mut text, &task.prompt, &task.tests);
    text.push_str("\nProgram:\n");
    text.push_str(&fenced(&task.buggy));
    text
}

fn write_prompt(prompt: &str, tests: &[String]) -> String {
    let mut text = String::with_capacity(prompt.len() + 512);
    text.push_str(WRITE_ASK);
    push_task(&mut text, prompt, tests);
    text
}

/// Appends the task description and the tests, one per line.
fn push_task(text: &mut String, prompt: &str, tests: &[String]) {
    text.push_str("\n\nTask:\n");
    text.push_str(prompt.trim_end());
    text.push_str("\n\nTests:\n");
    for t in tests {
        text.push_str(t.trim_end());
        text.push('\n');
    }
}

/// `code` in a python fence, without its trailing blank lines.
fn fenced(code: &str) -> String {
    let code = code.replace("\r\n", "\n");
    let body = code.trim_end();
    let fence = fence_for(body);
    format!("{fence}python\n{body}\n{fence}")
}
