use super::format::{COT_ASK, DIRECT_ASK};
use super::*;
use crate::model::chat::Role;
use crate::task::Origin;
use crate::task::{Problem, Task};

fn task(buggy: &str) -> Task {
    Task {
        id: "t".into(),
        prompt: "Return a plus b.\n".into(),
        solution: Some("def add(a, b):\n    return a + b\n".into()),
        tests: vec![
            "assert add(1, 2) == 3".into(),
            "assert add(0, 0) == 0 ".into(),
        ],
        setup: None,
        entry_point: Some("add".into()),
        buggy: buggy.into(),
        origin: Origin::Synthetic,
        problem_id: "p".into(),
        corruptions: None,
        extra: Default::default(),
    }
}

#[test]
fn direct_prompt_shows_task_tests_and_the_fenced_program() {
    let msgs = direct_messages(&task("def add(a, b):\n    return a - b\n"));
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].role, Role::User);
    let want = "Fix the bug in this Python program so that it passes the tests. \
Reply with the whole fixed program in one ```python block and nothing else.

Task:
Return a plus b.

Tests:
assert add(1, 2) == 3
assert add(0, 0) == 0

Program:
```python
def add(a, b):
    return a - b
```";
    assert_eq!(msgs[0].content, want);
}

#[test]
fn cot_and_write_prompts_differ_only_in_what_they_ask() {
    let t = task("def add(a, b):\n    return a - b\n");
    let cot = &cot_messages(&t)[0].content;
    assert!(cot.starts_with(COT_ASK));
    assert_eq!(
        cot.strip_prefix(COT_ASK),
        direct_messages(&t)[0].content.strip_prefix(DIRECT_ASK)
    );
    let problem = Problem {
        id: "p".into(),
        prompt: t.prompt.clone(),
        solution: "unused".into(),
        tests: t.tests.clone(),
        setup: None,
        entry_point: None,
        extra: Default::default(),
    };
    let write = &write_messages(&problem)[0].content;
    assert!(!write.contains("Program:") && !write.contains("unused"));
    assert!(write.ends_with("Tests:\nassert add(1, 2) == 3\nassert add(0, 0) == 0\n"));
    assert_eq!(write, &messages(AnswerFormat::Write, &t)[0].content);
}

#[test]
fn replies_are_fenced_programs_and_round_trip() {
    let program = "def add(a, b):\n    return a + b\n";
    assert_eq!(
        direct_reply(program),
        "```python\ndef add(a, b):\n    return a + b\n```"
    );
    assert_eq!(
        cot_reply("  The sign is wrong. ", program),
        "The sign is wrong.\n\n```python\ndef add(a, b):\n    return a + b\n```"
    );
    assert_eq!(cot_reply("", program), direct_reply(program));
    for p in [
        program,
        "x = 1\n\n\n",
        "def f():\n    return '```'\n",
        "s = '````'\n",
        "def f():\r\n    return 1\r\n",
    ] {
        let want = p.replace("\r\n", "\n").trim_end().to_string() + "\n";
        assert_eq!(extract_program(&direct_reply(p)).as_deref(), Some(&*want));
        let cot = cot_reply("Line 2 uses ```python``` wrongly.\n```python\nno\n```", p);
        assert_eq!(extract_program(&cot).as_deref(), Some(&*want), "{cot}");
    }
}

#[test]
fn fences_are_longer_than_any_backtick_run_inside() {
    assert_eq!(fence_for("x = 1"), "```");
    assert_eq!(fence_for("s = '``'"), "```");
    assert_eq!(fence_for("s = '```'"), "````");
    assert_eq!(fence_for("a = '`````' + '```'"), "``````");
}

#[test]
fn extraction_table() {
    let f = "def f():\n    return 1\n";
    let cases: &[(&str, &str, Option<&str>)] = &[
        (
            "plain fence",
            "```python\ndef f():\n    return 1\n```",
            Some(f),
        ),
        ("py tag", "```py\ndef f():\n    return 1\n```", Some(f)),
        (
            "capital tag",
            "```Python3\ndef f():\n    return 1\n```",
            Some(f),
        ),
        (
            "untagged",
            "Here:\n```\ndef f():\n    return 1\n```\nDone.",
            Some(f),
        ),
        (
            "last python block wins",
            "```python\nx = 0\n```\nBetter:\n```python\ndef f():\n    return 1\n```",
            Some(f),
        ),
        (
            "later non-python block ignored",
            "```python\ndef f():\n    return 1\n```\n```text\noutput\n```",
            Some(f),
        ),
        (
            "empty last block ignored",
            "```python\ndef f():\n    return 1\n```\n```python\n\n```",
            Some(f),
        ),
        ("unterminated", "```python\ndef f():\n    return 1", Some(f)),
        (
            "glued close",
            "```python\ndef f():\n    return 1```",
            Some(f),
        ),
        (
            "indented fence dedented",
            "1. Fix:\n   ```python\n   def f():\n       return 1\n   ```",
            Some(f),
        ),
        (
            "crlf",
            "```python\r\ndef f():\r\n    return 1\r\n```",
            Some(f),
        ),
        (
            "blank lines trimmed, inner kept",
            "```python\n\n\ndef f():\n\n    return 1\n\n```",
            Some("def f():\n\n    return 1\n"),
        ),
        ("bare program", "def f():\n    return 1", Some(f)),
        (
            "bare after prose",
            "The fix:\nimport os\ndef f():\n    return 1\n",
            Some("import os\ndef f():\n    return 1\n"),
        ),
        (
            "from-import starts code",
            "from math import sqrt\nx = sqrt(4)",
            Some("from math import sqrt\nx = sqrt(4)\n"),
        ),
        (
            "prose starting with from",
            "from the tests, f is wrong",
            None,
        ),
        ("prose only", "The bug is on line 2.", None),
        ("empty", "", None),
        ("whitespace", "  \n\t\n", None),
        ("empty fence", "```python\n```", None),
        ("only other language", "```text\ndef f():\n```", None),
        ("inline triple ticks", "use ```x``` here", None),
        ("inline ticks at line start", "```x``` is not a fence", None),
        (
            "no bare fallback once fences are used",
            "```text\nout\n```\ndef f():\n    return 1",
            None,
        ),
        ("garbage bytes", "\u{fffd}\u{0}ab`` c", None),
    ];
    for (name, reply, want) in cases {
        assert_eq!(
            extract_program(reply).as_deref(),
            *want,
            "{name}: {reply:?}"
        );
    }
}

#[test]
fn formats_name_their_budgets() {
    assert_eq!(AnswerFormat::Direct.max_new_tokens(), DIRECT_MAX_NEW_TOKENS);
    assert_eq!(AnswerFormat::Cot.max_new_tokens(), COT_MAX_NEW_TOKENS);
    assert_eq!(AnswerFormat::Write.name(), "write");
}
