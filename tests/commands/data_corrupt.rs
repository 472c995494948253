//! Synthetic bugs and repair traces: every operator's reachable outputs on a small program,
//! worked out by hand; fuzzing of `corrupt` on arbitrary text and on real-looking programs; and
//! the round trip corrupt → trace → replay.

use std::collections::BTreeSet;

use coe::data::corrupt::{CorruptConfig, Operator, corrupt};
use coe::data::trace::{repair_trace, replay};
use coe::env::buffer::Buffer;
use coe::env::command::Command;
use coe::env::dsl::parse_model_turn;
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn only(op: Operator) -> CorruptConfig {
    CorruptConfig {
        min_ops: 1,
        max_ops: 1,
        operators: vec![op],
    }
}

/// Every output of one operator over many seeds, checking that each run reports that operator.
fn outputs(op: Operator, code: &str, donors: &[&str]) -> BTreeSet<String> {
    (0..300)
        .filter_map(|seed| {
            let c = corrupt(
                code,
                donors,
                &only(op),
                &mut ChaCha8Rng::seed_from_u64(seed),
            )?;
            assert_eq!(c.operators, [op.name()]);
            Some(c.buggy)
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn each_operator_reaches_exactly_the_hand_computed_outputs() {
    let def = "def f():\n    return 1\n";
    let cases: Vec<(Operator, &str, Vec<&str>, Vec<&str>)> = vec![
        (
            Operator::DeleteLine,
            "a = 1\n\nb = 2\n",
            vec![],
            vec!["\nb = 2\n", "a = 1\n\n"],
        ),
        (
            Operator::DuplicateLine,
            "a = 1\nb = 2\n",
            vec![],
            vec!["a = 1\na = 1\nb = 2\n", "a = 1\nb = 2\nb = 2\n"],
        ),
        (
            Operator::SwapLines,
            "a = 1\nb = 2\n\nc = 3\n",
            vec![],
            vec!["b = 2\na = 1\n\nc = 3\n"],
        ),
        (
            Operator::Reindent,
            "if x:\n    y = 1\n",
            vec![],
            vec![
                "    if x:\n    y = 1\n",
                "if x:\n        y = 1\n",
                "if x:\ny = 1\n",
            ],
        ),
        (
            Operator::InsertDonorLine,
            def,
            vec!["  z = 9  ", "", "# a comment", "two\nlines"],
            vec![
                "z = 9\ndef f():\n    return 1\n",
                "def f():\n    z = 9\n    return 1\n",
                "def f():\n    return 1\n    z = 9\n",
            ],
        ),
        (
            Operator::ReplaceWithDonorLine,
            def,
            vec!["return 1", "z = 9"],
            vec![
                "return 1\n    return 1\n",
                "z = 9\n    return 1\n",
                "def f():\n    z = 9\n",
            ],
        ),
        (
            Operator::SwapComparison,
            "if a < b:\n    s = 'a < b'  # a < b\n",
            vec![],
            vec![
                "if a <= b:\n    s = 'a < b'  # a < b\n",
                "if a > b:\n    s = 'a < b'  # a < b\n",
            ],
        ),
        (
            Operator::SwapArithmetic,
            "y = a + b * c\nz = -a\n",
            vec![],
            vec![
                "y = a - b * c\nz = -a\n",
                "y = a + b // c\nz = -a\n",
                "y = a + b / c\nz = -a\n",
            ],
        ),
        (
            Operator::SwapBoolean,
            "ok = a and not b or True\n",
            vec![],
            vec![
                "ok = a or not b or True\n",
                "ok = a and not b and True\n",
                "ok = a and not b or False\n",
            ],
        ),
        (
            Operator::OffByOne,
            "x = f(0, 7, 1.5, 0x1F, 'a1', 1e5)\n",
            vec![],
            vec![
                "x = f(1, 7, 1.5, 0x1F, 'a1', 1e5)\n",
                "x = f(0, 8, 1.5, 0x1F, 'a1', 1e5)\n",
                "x = f(0, 6, 1.5, 0x1F, 'a1', 1e5)\n",
            ],
        ),
        (
            Operator::WrongVariable,
            "def f(a, b):\n    c = a + b\n    return g(c, key=a).b\n",
            vec![],
            vec![
                "def f(a, b):\n    a = a + b\n    return g(c, key=a).b\n",
                "def f(a, b):\n    b = a + b\n    return g(c, key=a).b\n",
                "def f(a, b):\n    c = b + b\n    return g(c, key=a).b\n",
                "def f(a, b):\n    c = c + b\n    return g(c, key=a).b\n",
                "def f(a, b):\n    c = a + a\n    return g(c, key=a).b\n",
                "def f(a, b):\n    c = a + c\n    return g(c, key=a).b\n",
                "def f(a, b):\n    c = a + b\n    return g(a, key=a).b\n",
                "def f(a, b):\n    c = a + b\n    return g(b, key=a).b\n",
                "def f(a, b):\n    c = a + b\n    return g(c, key=b).b\n",
                "def f(a, b):\n    c = a + b\n    return g(c, key=c).b\n",
            ],
        ),
        (
            Operator::DropReturn,
            "def f(x):\n    return x + 1\n    return\n",
            vec![],
            vec!["def f(x):\n    x + 1\n    return\n"],
        ),
        (
            Operator::NegateCondition,
            "if a:\n    pass\nwhile x < 3:\n    pass\nelif not y:\nif f(x)[0]: pass\n",
            vec![],
            vec![
                "if not a:\n    pass\nwhile x < 3:\n    pass\nelif not y:\nif f(x)[0]: pass\n",
                "if a:\n    pass\nwhile not (x < 3):\n    pass\nelif not y:\nif f(x)[0]: pass\n",
                "if a:\n    pass\nwhile x < 3:\n    pass\nelif y:\nif f(x)[0]: pass\n",
                "if a:\n    pass\nwhile x < 3:\n    pass\nelif not y:\nif not f(x)[0]: pass\n",
            ],
        ),
        (
            Operator::WrongIndex,
            "y = a[i] + b[0] + c[1:] + d[k - 1] + [5][0]\n",
            vec![],
            vec![
                "y = a[i + 1] + b[0] + c[1:] + d[k - 1] + [5][0]\n",
                "y = a[i - 1] + b[0] + c[1:] + d[k - 1] + [5][0]\n",
                "y = a[i] + b[1] + c[1:] + d[k - 1] + [5][0]\n",
                "y = a[i] + b[-1] + c[1:] + d[k - 1] + [5][0]\n",
                "y = a[i] + b[0] + c[2:] + d[k - 1] + [5][0]\n",
                "y = a[i] + b[0] + c[0:] + d[k - 1] + [5][0]\n",
                "y = a[i] + b[0] + c[1:-1] + d[k - 1] + [5][0]\n",
                "y = a[i] + b[0] + c[1:] + d[k] + [5][0]\n",
                "y = a[i] + b[0] + c[1:] + d[k - 1] + [5][1]\n",
                "y = a[i] + b[0] + c[1:] + d[k - 1] + [5][-1]\n",
            ],
        ),
    ];
    assert_eq!(cases.len(), Operator::ALL.len());
    for (op, code, donors, want) in cases {
        assert_eq!(outputs(op, code, &donors), set(&want), "{}", op.name());
    }
}

#[test]
fn operators_without_a_site_give_none() {
    let code = "x = 'a < b and c[0]'  # if y: return z + 1\n";
    for op in [
        Operator::SwapComparison,
        Operator::SwapArithmetic,
        Operator::SwapBoolean,
        Operator::OffByOne,
        Operator::WrongVariable,
        Operator::DropReturn,
        Operator::NegateCondition,
        Operator::WrongIndex,
        Operator::SwapLines,
        Operator::InsertDonorLine,
    ] {
        assert_eq!(outputs(op, code, &[]), BTreeSet::new(), "{}", op.name());
    }
    let docstring = "def f(a, b):\n    \"\"\"a < b\n    return a + 1\n    \"\"\"\n    return 0\n";
    assert_eq!(
        outputs(Operator::SwapComparison, docstring, &[]),
        BTreeSet::new()
    );
    assert_eq!(
        outputs(Operator::DropReturn, docstring, &[]),
        set(&["def f(a, b):\n    \"\"\"a < b\n    return a + 1\n    \"\"\"\n    0\n"])
    );
    let empty = CorruptConfig {
        operators: vec![],
        ..CorruptConfig::default()
    };
    assert_eq!(
        corrupt("x = 1\n", &[], &empty, &mut ChaCha8Rng::seed_from_u64(0)),
        None
    );
}

#[test]
fn names_round_trip() {
    for op in Operator::ALL {
        assert_eq!(Operator::from_name(op.name()), Some(op));
    }
    assert_eq!(Operator::from_name("swap_everything"), None);
}

const PROGRAM: &str = "\
def count_below(xs, limit):
    \"\"\"Count items below limit; x[0] + 1 and True < 2.
    s = 'not code' - 1
    \"\"\"
    total = 0
    for i in range(len(xs)):
        if xs[i] < limit and i % 2 == 0:
            total += xs[i] * 2
        elif not xs:
            return -1
    label = \"a < b\"  # keep: i < n
    return total
";

fn program_line() -> impl Strategy<Value = String> {
    let stmts = [
        "x = y + 1",
        "if a < b and c:",
        "return xs[i - 1]",
        "for k in range(n):",
        "total += k * 2",
        "while not done:",
        "s = 'a < b'  # c > d",
        "y = f(x, key=z)[0]",
        "pass",
        "",
        "def g(p, q):",
    ];
    (prop::sample::select(stmts.to_vec()), 0usize..3).prop_map(|(s, depth)| {
        if s.is_empty() {
            String::new()
        } else {
            format!("{}{s}", "    ".repeat(depth))
        }
    })
}

fn program() -> impl Strategy<Value = String> {
    prop::collection::vec(program_line(), 0..14).prop_map(|lines| {
        let mut code = lines.join("\n");
        code.push('\n');
        code
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn corrupt_never_panics_on_any_text(code in "(?s).{0,200}", donors in prop::collection::vec(".{0,30}", 0..4), seed: u64) {
        let donors: Vec<&str> = donors.iter().map(String::as_str).collect();
        let cfg = CorruptConfig::default();
        let first = corrupt(&code, &donors, &cfg, &mut ChaCha8Rng::seed_from_u64(seed));
        let again = corrupt(&code, &donors, &cfg, &mut ChaCha8Rng::seed_from_u64(seed));
        prop_assert_eq!(&first, &again);
        if let Some(c) = first {
            prop_assert!((1..=5).contains(&c.operators.len()));
            prop_assert_ne!(Buffer::from_code(&c.buggy), Buffer::from_code(&code));
        }
    }

    #[test]
    fn corrupt_keeps_programs_plausible(code in program(), seed: u64) {
        let donors = ["    print(x)", "z = 0", "\tcount -= 1"];
        let line_ops = [Operator::DeleteLine, Operator::InsertDonorLine, Operator::ReplaceWithDonorLine,
                        Operator::DuplicateLine, Operator::SwapLines];
        let no_reindent = CorruptConfig {
            operators: Operator::ALL.into_iter().filter(|op| *op != Operator::Reindent).collect(),
            ..CorruptConfig::default()
        };
        for source in [code.as_str(), PROGRAM] {
            if let Some(c) = corrupt(source, &donors, &no_reindent, &mut ChaCha8Rng::seed_from_u64(seed)) {
                for line in c.buggy.lines() {
                    let indent = line.len() - line.trim_start_matches(' ').len();
                    prop_assert_eq!(indent % 4, 0, "{:?}", c.buggy);
                }
                prop_assert!(!c.operators.contains(&"reindent"));
            }
        }
        let tokens_only = CorruptConfig {
            operators: Operator::ALL.into_iter().filter(|op| !line_ops.contains(op) && *op != Operator::Reindent).collect(),
            ..CorruptConfig::default()
        };
        if let Some(c) = corrupt(PROGRAM, &donors, &tokens_only, &mut ChaCha8Rng::seed_from_u64(seed)) {
            for kept in ["    \"\"\"Count items below limit; x[0] + 1 and True < 2.\n",
                         "    s = 'not code' - 1\n", "\"a < b\"  # keep: i < n\n", "def count_below(xs, limit):\n"] {
                prop_assert!(c.buggy.contains(kept), "{kept:?} lost in {}", c.buggy);
            }
            prop_assert_eq!(c.buggy.lines().count(), PROGRAM.lines().count());
        }
    }

    #[test]
    fn trace_replays_corruptions(seed: u64) {
        let c = corrupt(PROGRAM, &["z = 0"], &CorruptConfig::default(), &mut ChaCha8Rng::seed_from_u64(seed));
        prop_assume!(c.is_some());
        let c = c.unwrap();
        let trace = repair_trace(&c.buggy, PROGRAM);
        prop_assert_eq!(replay(&c.buggy, &trace).unwrap(), PROGRAM);
        for command in &trace {
            let parsed = parse_model_turn(&format!("### {command}")).map(|p| p.command);
            prop_assert_eq!(parsed.as_ref(), Ok(command), "{}", command);
        }
        // Each operator changes at most two lines (a swap); the trace cannot need more.
        prop_assert!(trace.len() <= 2 * c.operators.len() + 1);
    }

    #[test]
    fn trace_is_short_and_replays(code in program(), edits in prop::collection::vec((0usize..3, any::<prop::sample::Index>(), program_line()), 0..6)) {
        let mut lines = Buffer::from_code(&code).lines().to_vec();
        for (kind, at, text) in &edits {
            match kind {
                0 => lines.insert(at.index(lines.len() + 1), text.clone()),
                1 if !lines.is_empty() => { lines.remove(at.index(lines.len())); }
                _ if !lines.is_empty() => { let i = at.index(lines.len()); lines[i] = text.clone(); }
                _ => {}
            }
        }
        let mut buggy = lines.join("\n");
        if !lines.is_empty() {
            buggy.push('\n');
        }
        let trace = repair_trace(&buggy, &code);
        prop_assert_eq!(replay(&buggy, &trace).unwrap(), Buffer::from_code(&code).to_code());
        prop_assert!(trace.len() <= edits.len() + 1, "{:?}", trace);
        prop_assert_eq!(trace.last(), Some(&Command::Exit));
        for command in &trace[..trace.len() - 1] {
            prop_assert_ne!(command, &Command::Exit);
            let parsed = parse_model_turn(&format!("### {command}")).map(|p| p.command);
            prop_assert_eq!(parsed.as_ref(), Ok(command), "{}", command);
            if let Command::Repw { old, new, .. } = command {
                prop_assert!(!old.is_empty() && !old.contains(" >>>") && !old.contains('\n') && !new.contains('\n'));
            }
        }
    }

    #[test]
    fn trace_replays_any_text(buggy in "[^\r]{0,120}", fixed in "[^\r]{0,120}") {
        let trace = repair_trace(&buggy, &fixed);
        prop_assert_eq!(replay(&buggy, &trace).unwrap(), Buffer::from_code(&fixed).to_code());
        for command in &trace {
            let parsed = parse_model_turn(&format!("### {command}")).map(|p| p.command);
            prop_assert_eq!(parsed.as_ref(), Ok(command), "{}", command);
        }
    }
}
