//! The one-shot baselines below the command line: scoring replies as one-turn episodes,
//! sampling model-written bugs (with a scripted answerer, so every keep/drop rule is hit on
//! purpose, checked by `data validate`), and the model answerer on the tiny random GGUF
//! fixture (reproducible under a seed, independent of micro-batching).

use std::path::Path;
use std::sync::OnceLock;

use coe::data::jsonl;
use coe::data::validate::validate_file;
use coe::eval::answer::sample_bugs::{SampleBugsOptions, sample_bugs};
use coe::eval::answer::{
    AnswerError, AnswerFormat, AnswerRequest, Answerer, ModelAnswerConfig, ModelAnswerer,
    OneShotOptions, Reply, Verdict, as_episodes, direct_reply, run_one_shot,
};
use coe::eval::results::{EvalSpec, Provenance, summarise};
use coe::model::loader::load_model;
use coe::protocol::run::Limits;
use coe::sandbox::{SandboxConfig, SandboxPool};
use coe::task::{Origin, Problem, Task};
use tch::{Device, Kind};

fn pool() -> &'static SandboxPool {
    static POOL: OnceLock<SandboxPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let cfg = SandboxConfig {
            workers: 2,
            ..Default::default()
        };
        SandboxPool::new(&cfg).unwrap()
    })
}

const ADD: &str = "def add(a, b):\n    return a + b\n";

fn problem(id: &str) -> Problem {
    Problem {
        id: id.into(),
        prompt: "Return a plus b.".into(),
        solution: ADD.into(),
        tests: vec![
            "assert add(1, 2) == 3".into(),
            "assert add(2, 2) == 4".into(),
        ],
        setup: None,
        entry_point: Some("add".into()),
        extra: Default::default(),
    }
}

/// Replies from a list, in request order, handed over two at a time.
struct Scripted {
    replies: Vec<String>,
    seen: Vec<(String, AnswerFormat)>,
}

impl Answerer for Scripted {
    fn name(&self) -> String {
        "scripted".into()
    }

    fn answer(
        &mut self,
        requests: &[AnswerRequest<'_>],
        sink: &mut dyn FnMut(usize, Vec<Reply>),
    ) -> Result<(), AnswerError> {
        assert_eq!(requests.len(), self.replies.len());
        for r in requests {
            self.seen.push((r.task.id.clone(), r.format));
        }
        for (c, chunk) in self.replies.chunks(2).enumerate() {
            let replies = chunk
                .iter()
                .map(|t| Reply {
                    text: t.clone(),
                    ..Reply::default()
                })
                .collect();
            sink(2 * c, replies);
        }
        Ok(())
    }
}

fn scripted(replies: &[&str]) -> Scripted {
    Scripted {
        replies: replies.iter().map(|s| s.to_string()).collect(),
        seen: Vec::new(),
    }
}

#[test]
fn sample_bugs_keeps_failing_programs_once_and_nothing_else() {
    let wrong = "def add(a, b):\n    return a - b\n";
    let problems = vec![problem("p1"), problem("p2"), {
        let mut broken = problem("broken");
        broken.solution = "def add(a, b):\n    return 0\n".into();
        broken
    }];
    let replies = [
        // p1
        direct_reply(wrong),
        "Sure! Here it is:\n```python\ndef add(a, b):\n    return a - b  \n\n```".into(),
        direct_reply("def add(a, b)\n    return a + b\n"),
        direct_reply(ADD),
        // p2
        "I cannot help with that.".into(),
        String::new(),
        direct_reply("def add(a, b):\n    while True:\n        pass\n"),
        direct_reply("def add(a, b):\n    return a * b\n"),
    ];
    let mut answerer = Scripted {
        replies: replies.to_vec(),
        seen: Vec::new(),
    };
    let opts = SampleBugsOptions {
        samples: 4,
        limits: Limits {
            test_timeout_s: 0.5,
            run_timeout_s: 1.0,
            ..Limits::default()
        },
        threads: 2,
    };
    let mut calls = 0;
    let (tasks, report) = sample_bugs(&problems, &mut answerer, pool(), &opts, &mut |t| {
        calls += 1;
        assert!(t.scored <= t.answered && t.answered <= t.total);
    })
    .unwrap();
    assert!(calls > 0);
    // The problem whose reference fails is never asked about.
    assert!(
        answerer
            .seen
            .iter()
            .all(|(id, f)| id != "broken" && *f == AnswerFormat::Write)
    );
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].0, "broken");
    let ids: Vec<&str> = tasks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["p1#m0", "p1#m1", "p2#m0", "p2#m1"]);
    assert_eq!(tasks[0].buggy, "def add(a, b):\n    return a - b\n");
    assert_eq!(tasks[1].buggy, "def add(a, b)\n    return a + b\n");
    assert!(tasks[2].buggy.contains("while True"));
    for t in &tasks {
        assert_eq!(t.origin, Origin::Model);
        assert_eq!(t.solution.as_deref(), Some(ADD));
        assert_eq!(t.problem_id, t.id.split('#').next().unwrap());
        assert_eq!(t.corruptions, None);
    }
    assert_eq!(
        (
            report.samples,
            report.kept,
            report.failing,
            report.duplicates
        ),
        (8, 4, 5, 1)
    );
    assert_eq!((report.passed, report.no_program, report.infra), (1, 2, 0));
    let kinds: Vec<(&str, usize)> = report
        .failures_by_kind
        .iter()
        .map(|(k, n)| (k.as_str(), *n))
        .collect();
    assert_eq!(
        kinds,
        [("AssertionError", 3), ("SyntaxError", 1), ("timeout", 1)]
    );
    assert!(
        report
            .render()
            .contains("kept 4  (failing 5, duplicates 1)")
    );
    // The file validates: every reference passes, every buggy program fails.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bugs.jsonl");
    jsonl::write(&out, &tasks).unwrap();
    let (records, findings) = validate_file(&out, pool(), &opts.limits, 2).unwrap();
    assert_eq!((records, findings), (4, vec![]));
    assert_eq!(jsonl::read::<Task>(&out).unwrap(), tasks);
}

#[test]
fn one_shot_replies_score_as_one_turn_episodes() {
    let tasks: Vec<Task> = ["t1", "t2"]
        .iter()
        .map(|id| {
            let buggy = "def add(a, b):\n    return a - b\n".to_string();
            Task::from_problem(
                &problem("p"),
                id.to_string(),
                buggy,
                Origin::Synthetic,
                None,
            )
        })
        .collect();
    // t1: solved, no program, wrong; t2: wrong twice, then solved after prose.
    let mut answerer = scripted(&[
        &direct_reply(ADD),
        "no code here",
        &direct_reply("def add(a, b):\n    return b\n"),
        &direct_reply("def add(a, b):\n    return a\n"),
        "```python\ndef add(a, b):\n    return None\n```",
        &format!("It subtracts instead of adding.\n\n{}", direct_reply(ADD)),
    ]);
    let opts = OneShotOptions {
        format: AnswerFormat::Cot,
        samples: 3,
        limits: Limits::default(),
        threads: 2,
    };
    let samples = run_one_shot(&tasks, &mut answerer, pool(), &opts, &mut |_| {}).unwrap();
    assert!(answerer.seen.iter().all(|(_, f)| *f == AnswerFormat::Cot));
    let verdicts: Vec<(&str, usize, bool)> = samples
        .iter()
        .map(|s| {
            (
                s.task_id.as_str(),
                s.sample,
                s.scored.verdict == Verdict::Passed,
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            ("t1", 0, true),
            ("t1", 1, false),
            ("t1", 2, false),
            ("t2", 0, false),
            ("t2", 1, false),
            ("t2", 2, true)
        ]
    );
    assert_eq!(samples[1].scored.verdict, Verdict::NoProgram);
    let spec = EvalSpec {
        method: "cot".into(),
        tasks_file: "x".into(),
        task_ids: vec!["t1".into(), "t2".into()],
        samples: 3,
        ks: vec![1, 2, 3],
        max_turns: 10,
    };
    let prov = Provenance {
        commit: "c".into(),
        model_sha256: None,
        adapter: None,
        seed: 0,
        config: "x".into(),
        policy: "scripted".into(),
    };
    let r = summarise(&spec, &as_episodes(&samples), prov);
    assert!((r.pass_at["1"] - 1.0 / 3.0).abs() < 1e-12);
    // 1 - C(2,2)/C(3,2) = 2/3 per task.
    assert!((r.pass_at["2"] - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(r.pass_at["3"], 1.0);
    assert_eq!(r.mean_turns, 1.0);
    assert!((r.invalid_rate - 1.0 / 6.0).abs() < 1e-12);
    assert!(r.turn_curve.is_empty());
    assert_eq!(r.per_task[0].solved, [true, false, false]);
    assert_eq!(r.per_task[1].turns, [1, 1, 1]);
}

fn tiny_answerer(seed: u64, context: usize, max_batch_tokens: usize) -> ModelAnswerer {
    // Ops this small gain nothing from more threads, and lose much under a parallel run.
    tch::set_num_threads(1);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf/tiny_llama.gguf");
    let loaded = load_model(path.to_str().unwrap(), Device::Cpu, Kind::Float, None).unwrap();
    let mut cfg = ModelAnswerConfig::new(1.0, 1.0, context, seed);
    cfg.max_new_tokens = Some(24);
    cfg.max_batch_tokens = max_batch_tokens;
    ModelAnswerer::new(loaded, cfg).unwrap()
}

fn collect(a: &mut ModelAnswerer, requests: &[AnswerRequest<'_>]) -> Vec<Reply> {
    let mut out: Vec<Option<Reply>> = vec![None; requests.len()];
    a.answer(requests, &mut |first, replies| {
        for (k, r) in replies.into_iter().enumerate() {
            assert!(out[first + k].replace(r).is_none());
        }
    })
    .unwrap();
    out.into_iter().map(Option::unwrap).collect()
}

#[test]
fn model_answers_are_seeded_and_independent_of_micro_batching() {
    let tasks: Vec<Task> = ["a", "bb", "ccc"]
        .iter()
        .map(|id| {
            let mut p = problem(id);
            p.prompt = format!("Return a plus b ({id}).");
            Task::from_problem(&p, id.to_string(), p.solution.clone(), Origin::Human, None)
        })
        .collect();
    let requests: Vec<AnswerRequest<'_>> = tasks
        .iter()
        .flat_map(|task| {
            [AnswerFormat::Direct, AnswerFormat::Cot].map(|format| AnswerRequest { task, format })
        })
        .collect();
    let one_batch = collect(&mut tiny_answerer(7, 2048, 1 << 20), &requests);
    let row_by_row = collect(&mut tiny_answerer(7, 2048, 1), &requests);
    assert_eq!(one_batch, row_by_row);
    let other_seed = collect(&mut tiny_answerer(8, 2048, 1 << 20), &requests);
    assert_ne!(one_batch, other_seed);
    let probe = tiny_answerer(7, 2048, 1);
    for (r, q) in one_batch.iter().zip(&requests) {
        assert!(!r.token_ids.is_empty() && r.token_ids.len() <= 24);
        assert_eq!(
            r.truncated,
            r.token_ids.len() == 24
                && !probe
                    .loaded()
                    .tokenizer
                    .is_end_of_turn(*r.token_ids.last().unwrap())
        );
        let want = probe
            .prompt_ids(&coe::eval::answer::messages(q.format, q.task))
            .unwrap();
        assert_eq!(r.prompt_tokens, want.len());
        assert!(!r.over_context);
    }
    // A context too small for the longest prompt: that row is not sampled, the others are
    // unchanged because the generator stays in step.
    let longest = one_batch.iter().map(|r| r.prompt_tokens).max().unwrap();
    let shortest = one_batch.iter().map(|r| r.prompt_tokens).min().unwrap();
    assert!(longest > shortest, "the prompts must differ in length");
    let tight = collect(&mut tiny_answerer(7, longest + 20, 1 << 20), &requests);
    for (full, cut) in one_batch.iter().zip(&tight) {
        if full.prompt_tokens + 24 <= longest + 20 {
            assert_eq!(full, cut);
        } else {
            assert!(cut.over_context && cut.text.is_empty() && cut.token_ids.is_empty());
        }
    }
    assert!(tight.iter().any(|r| r.over_context));
}
