//! Parser table tests: accepted forms, spans and rendered diagnostics.
use super::*;
use crate::env::command::Command;

fn ok(input: &str) -> Command {
    parse_command(input).unwrap().command
}

#[test]
fn accepts_each_form() {
    let cases: &[(&str, Command)] = &[
        ("DELL 3", Command::Dell { line: 3 }),
        ("DELL 3 \t ", Command::Dell { line: 3 }),
        ("### DELL 007", Command::Dell { line: 7 }),
        ("EXIT", Command::Exit),
        ("EXIT  \r\n", Command::Exit),
        (
            "ADDL 1 >>>",
            Command::Addl {
                line: 1,
                text: String::new(),
            },
        ),
        (
            "ADDL 2 >>>    x = 1\r",
            Command::Addl {
                line: 2,
                text: "    x = 1".into(),
            },
        ),
        (
            "REPL 4 >>>a >>>b\n",
            Command::Repl {
                line: 4,
                text: "a >>>b".into(),
            },
        ),
        (
            "REPW 5 >>>a >>>",
            Command::Repw {
                line: 5,
                old: "a".into(),
                new: String::new(),
            },
        ),
        (
            "REPW 5 >>>a>>b >>>c >>>d",
            Command::Repw {
                line: 5,
                old: "a>>b".into(),
                new: "c >>>d".into(),
            },
        ),
        (
            "REPW 5 >>>  >>>x",
            Command::Repw {
                line: 5,
                old: " ".into(),
                new: "x".into(),
            },
        ),
        (
            "REPL 1 >>>é٣\r\r",
            Command::Repl {
                line: 1,
                text: "é٣\r".into(),
            },
        ),
    ];
    for (input, want) in cases {
        assert_eq!(&ok(input), want, "{input:?}");
    }
}

#[test]
fn spans_point_at_the_parts() {
    let p = parse_model_turn("### REPW 12 >>>ab >>>c").unwrap();
    assert_eq!(p.span, Span::new(4, 22));
    assert_eq!(p.line_span, Some(Span::new(9, 11)));
    assert_eq!(p.old_span, Some(Span::new(15, 17)));
    assert_eq!(p.text_span, Some(Span::new(21, 22)));
    let p = parse_command("DELL 3  ").unwrap();
    assert_eq!(
        (p.span, p.line_span),
        (Span::new(0, 6), Some(Span::new(5, 6)))
    );
}

#[test]
fn model_turn_needs_prefix_but_typed_command_does_not() {
    assert_eq!(parse_command("EXIT").unwrap().command, Command::Exit);
    let e = parse_model_turn("EXIT").unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::MissingPrefix);
}

#[test]
fn render_draws_carets_under_the_span() {
    let input = "REPL x3 >>>foo";
    let e = parse_command(input).unwrap_err();
    assert_eq!(
        e.render(input),
        "error: line number must be a positive integer, found \"x3\"\n  | REPL x3 >>>foo\n  |      ^^"
    );
}

#[test]
fn render_windows_long_lines_and_survives_foreign_spans() {
    let input = format!("REPW 1 >>>{}", "é".repeat(300));
    let e = parse_command(&input).unwrap_err();
    let out = e.render(&input);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[1], format!("  | …{}", "é".repeat(80)));
    assert_eq!(lines[2], format!("  | {}^", " ".repeat(81)));
    let stray = ParseError {
        kind: ParseErrorKind::Empty,
        span: Span::new(1, 999),
        message: "m".into(),
    };
    assert_eq!(stray.render("é\nx"), "error: m\n  | é\n  | ^");
}
