//! Property tests for the DSL parser (DESIGN §2.2: "the parser is total").
//!
//! Three input sources: arbitrary strings, arbitrary bytes read lossily (what a
//! tokenizer decode can produce), and near misses, valid commands with a few edits,
//! which reach the deep error paths that random text almost never does. Every result
//! must be well formed: spans inside the input on char boundaries, a three-line
//! diagnostic, and an accepted command that survives its own `Display`. Generated
//! valid commands must round trip through `Display` and the `### ` turn form.

use coe::env::command::Command;
use coe::env::dsl::{ParseError, Span, parse_command, parse_model_turn};
use proptest::prelude::*;

fn check_span(input: &str, span: Span) {
    assert!(
        span.start <= span.end && span.end <= input.len(),
        "{span:?} outside {input:?}"
    );
    assert!(
        input.is_char_boundary(span.start) && input.is_char_boundary(span.end),
        "{span:?} splits a char of {input:?}"
    );
}

fn check_error(input: &str, e: &ParseError) {
    check_span(input, e.span);
    assert!(!e.message.is_empty());
    let rendered = e.render(input);
    assert!(rendered.starts_with("error: "), "{rendered}");
    assert_eq!(rendered.lines().count(), 3, "{rendered}");
}

fn texts_end_in_cr(cmd: &Command) -> bool {
    match cmd {
        Command::Addl { text, .. } | Command::Repl { text, .. } => text.ends_with('\r'),
        Command::Repw { new, .. } => new.ends_with('\r'),
        Command::Dell { .. } | Command::Exit => false,
    }
}

/// Checks both entry points on `input`: no panic, and well-formed results.
fn check_total(input: &str) {
    for result in [parse_command(input), parse_model_turn(input)] {
        match result {
            Ok(parsed) => {
                for span in [
                    Some(parsed.span),
                    parsed.line_span,
                    parsed.old_span,
                    parsed.text_span,
                ]
                .into_iter()
                .flatten()
                {
                    check_span(input, span);
                }
                // A trailing `\r` is dropped once per parse, so such texts cannot round trip.
                if !texts_end_in_cr(&parsed.command) {
                    let again = parse_command(&parsed.command.to_string()).map(|p| p.command);
                    assert_eq!(again, Ok(parsed.command), "{input:?}");
                }
            }
            Err(e) => check_error(input, &e),
        }
    }
}

/// Text that may hold anything but `\n` and does not end in `\r`; biased toward the
/// characters the grammar cares about.
fn text() -> impl Strategy<Value = String> {
    prop_oneof!["[ >a#\r\té٣]{0,12}", "[^\n]{0,40}",]
        .prop_filter("no trailing \\r", |t| !t.ends_with('\r'))
}

fn old_text() -> impl Strategy<Value = String> {
    prop_oneof!["[ >a#\r\té]{1,12}", "[^\n]{1,40}"]
        .prop_filter("old text must split back", |t| !t.contains(" >>>"))
}

fn line_number() -> impl Strategy<Value = usize> {
    prop_oneof![1usize..200, 1usize..=usize::MAX]
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        line_number().prop_map(|line| Command::Dell { line }),
        (line_number(), text()).prop_map(|(line, text)| Command::Addl { line, text }),
        (line_number(), text()).prop_map(|(line, text)| Command::Repl { line, text }),
        (line_number(), old_text(), text()).prop_map(|(line, old, new)| Command::Repw {
            line,
            old,
            new
        }),
        Just(Command::Exit),
    ]
}

const NOISE: [char; 14] = [
    ' ', ' ', '>', '\t', '\n', '\r', '0', '-', 'x', 'é', '٣', '#', '\u{2028}', '日',
];

#[derive(Debug, Clone)]
enum Edit {
    Delete(usize),
    Insert(usize, char),
    FlipCase(usize),
    Duplicate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), proptest::sample::select(NOISE.to_vec()))
            .prop_map(|(i, c)| Edit::Insert(i, c)),
        any::<usize>().prop_map(Edit::FlipCase),
        any::<usize>().prop_map(Edit::Duplicate),
    ]
}

fn apply_edit(text: &str, edit: &Edit) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
    match *edit {
        Edit::Delete(i) if !chars.is_empty() => {
            chars.remove(at(i, chars.len()));
        }
        Edit::Insert(i, c) => chars.insert(at(i, chars.len() + 1), c),
        Edit::FlipCase(i) if !chars.is_empty() => {
            let j = at(i, chars.len());
            let c = chars[j];
            chars[j] = if c.is_ascii_uppercase() {
                c.to_ascii_lowercase()
            } else {
                c.to_ascii_uppercase()
            };
        }
        Edit::Duplicate(i) if !chars.is_empty() => {
            let j = at(i, chars.len());
            chars.insert(j, chars[j]);
        }
        _ => {}
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn arbitrary_strings_do_not_panic(input in any::<String>()) {
        check_total(&input);
    }

    #[test]
    fn dsl_like_strings_do_not_panic(input in "(#{0,4} ?)?(DELL|ADDL|REPL|REPW|EXIT|dell|Exit)?[ \t]{0,2}[0-9٣+-]{0,3}[ >]{0,5}[a >\r\n]{0,8}") {
        check_total(&input);
    }

    #[test]
    fn arbitrary_bytes_do_not_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        check_total(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn near_misses_do_not_panic(cmd in command(), prefix in any::<bool>(), edits in proptest::collection::vec(edit(), 1..4)) {
        let mut input = if prefix { format!("### {cmd}") } else { cmd.to_string() };
        for e in &edits {
            input = apply_edit(&input, e);
        }
        check_total(&input);
    }

    #[test]
    fn valid_commands_round_trip(cmd in command()) {
        let text = cmd.to_string();
        prop_assert_eq!(parse_command(&text).map(|p| p.command), Ok(cmd.clone()));
        prop_assert_eq!(parse_model_turn(&format!("### {cmd}")).map(|p| p.command), Ok(cmd));
    }
}

#[test]
fn edge_inputs_do_not_panic() {
    let long_digits = format!("DELL {}", "9".repeat(100_000));
    let long_text = format!("REPW 1 >>>{}", "é>".repeat(50_000));
    let long_word = "Ä".repeat(100_000);
    let inputs = [
        "",
        "\n",
        "\r",
        "\r\n",
        "\n\n",
        "#",
        "##",
        "###",
        "### ",
        "###\n",
        "####",
        ">>>",
        " >>>",
        "٣",
        "DELL ٣",
        "### >>>",
        "REPW",
        "REPW 1",
        "REPW 1 >>>",
        "REPW 1 >>> >>>",
        "REPW 1 >>>>>>",
        "ADDL 1 >>>\r",
        "EXIT\u{2028}",
        "\u{feff}EXIT",
        "DELL 1\u{a0}",
        "E",
        "EXI",
        "é",
        "DELLé 3",
        &long_digits,
        &long_text,
        &long_word,
    ];
    for input in inputs {
        check_total(input);
    }
}
