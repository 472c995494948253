//! Episode rules on a fake runner: rewards, termination, invalid turns, undo, events.
use super::episode::*;
use crate::config::EnvSection;
use crate::protocol::EpisodeEvent;
use crate::protocol::run::*;
use crate::task::{Origin, Task};

/// Passes every test exactly when the code equals `solution`; `fail_infra` makes every run fail.
struct Fake {
    solution: String,
    fail_infra: bool,
}

impl Runner for Fake {
    fn run(&self, req: &RunRequest) -> Result<RunReport, String> {
        if self.fail_infra {
            return Err("worker died twice".into());
        }
        let ok = req.code == self.solution;
        let tests = req
            .tests
            .iter()
            .map(|_| {
                if ok {
                    TestOutcome::Passed
                } else {
                    TestOutcome::Failed {
                        error: TestError {
                            exc_type: "AssertionError".into(),
                            message: String::new(),
                            line: None,
                        },
                    }
                }
            })
            .collect();
        Ok(RunReport {
            outcome: RunOutcome::Tests { tests },
            output: String::new(),
            elapsed_ms: 0.0,
        })
    }
}

fn task() -> Task {
    Task {
        id: "t1".into(),
        prompt: "Add two numbers.".into(),
        solution: Some("def add(a, b):\n    return a + b\n".into()),
        tests: vec!["assert add(1, 2) == 3".into()],
        setup: None,
        entry_point: Some("add".into()),
        buggy: "def add(a, b):\n    return a - b\n".into(),
        origin: Origin::Synthetic,
        problem_id: "p1".into(),
        corruptions: None,
        extra: Default::default(),
    }
}

fn fake() -> Fake {
    Fake {
        solution: "def add(a, b):\n    return a + b\n".into(),
        fail_infra: false,
    }
}

fn env(max_turns: u32) -> EnvSection {
    EnvSection {
        max_turns,
        ..EnvSection::default()
    }
}

#[test]
fn first_observation_holds_instructions_task_tests_and_state() {
    let f = fake();
    let (_, obs) = Episode::reset(task(), &f, &env(10), &Limits::default(), (0, 1)).unwrap();
    assert_eq!(obs.turn, 0);
    assert_eq!(
        obs.state,
        "L1 def add(a, b):\nL2     return a - b\n***\nTest 1 failed: assert add(1, 2) == 3\nAssertionError"
    );
    assert!(obs.text.starts_with(super::prompt::INSTRUCTIONS));
    assert!(
        obs.text
            .contains("Task:\nAdd two numbers.\n\nTests:\nassert add(1, 2) == 3\n")
    );
    assert!(obs.text.ends_with(&obs.state));
}

#[test]
fn solving_then_exit_rewards_once() {
    let f = fake();
    let (mut ep, _) = Episode::reset(task(), &f, &env(10), &Limits::default(), (0, 1)).unwrap();
    let s = ep.step("### REPW 2 >>>- >>>+", Source::Model).unwrap();
    assert_eq!(
        (s.reward, s.solved, s.done, s.invalid),
        (1.0, true, false, false)
    );
    assert!(s.observation.state.ends_with("***\nAll tests passed."));
    assert_eq!(s.record.edited_line, Some(2));
    // Breaking and re-fixing is not rewarded again.
    ep.step("### REPW 2 >>>+ >>>*", Source::Model).unwrap();
    let again = ep.step("### REPW 2 >>>* >>>+", Source::Model).unwrap();
    assert_eq!(again.reward, 0.0);
    let exit = ep.step("### EXIT", Source::Model).unwrap();
    assert_eq!((exit.reward, exit.solved, exit.done), (0.0, true, true));
    assert_eq!(
        ep.step("### EXIT", Source::Model),
        Err(EpisodeError::Finished)
    );
    let events = ep.take_events();
    assert!(matches!(
        events.first(),
        Some(EpisodeEvent::EpisodeStarted { .. })
    ));
    match events.last() {
        Some(EpisodeEvent::EpisodeFinished {
            solved,
            turns,
            ret,
            infra_error,
            ..
        }) => {
            assert_eq!((*solved, *turns, *ret, *infra_error), (true, 4, 1.0, false));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn invalid_turns_leave_code_unchanged_and_cost_half() {
    let f = fake();
    let (mut ep, _) = Episode::reset(task(), &f, &env(10), &Limits::default(), (0, 1)).unwrap();
    let before = ep.buffer().clone();
    for text in [
        "REPW 2 >>>- >>>+",
        "### DELL 9",
        "### FROB 1",
        "### REPW 2 >>>x >>>y",
    ] {
        let s = ep.step(text, Source::Model).unwrap();
        assert!(s.invalid, "{text}");
        assert_eq!(s.reward, -0.5, "{text}");
        assert!(
            s.observation.state.contains("***\nInvalid command: "),
            "{text}"
        );
        assert_eq!(ep.buffer(), &before);
    }
    // A person may omit the prefix.
    let s = ep.step("REPW 2 >>>- >>>+", Source::Person).unwrap();
    assert!(s.solved && !s.invalid);
}

#[test]
fn turn_cap_penalises_the_last_turn_unless_it_exits() {
    let f = fake();
    let (mut ep, _) = Episode::reset(task(), &f, &env(2), &Limits::default(), (0, 1)).unwrap();
    assert_eq!(
        ep.step("### REPL 1 >>>def add(a, b):", Source::Model)
            .unwrap()
            .reward,
        0.0
    );
    let last = ep
        .step("### REPL 1 >>>def add(a, b):", Source::Model)
        .unwrap();
    assert_eq!((last.reward, last.done), (-0.5, true));

    let (mut ep, _) = Episode::reset(task(), &f, &env(2), &Limits::default(), (0, 1)).unwrap();
    ep.step("### REPL 1 >>>def add(a, b):", Source::Model)
        .unwrap();
    let exit = ep.step("### EXIT", Source::Model).unwrap();
    assert_eq!((exit.reward, exit.done, exit.solved), (0.0, true, false));

    // Solving on the capped turn: +1 and -0.5.
    let (mut ep, _) = Episode::reset(task(), &f, &env(1), &Limits::default(), (0, 1)).unwrap();
    let s = ep.step("### REPW 2 >>>- >>>+", Source::Model).unwrap();
    assert_eq!((s.reward, s.done), (0.5, true));
}

#[test]
fn undo_restores_the_previous_state() {
    let f = fake();
    let (mut ep, obs) = Episode::reset(task(), &f, &env(10), &Limits::default(), (0, 1)).unwrap();
    ep.step("### DELL 1", Source::Model).unwrap();
    ep.step("### EXIT", Source::Model).unwrap();
    assert!(ep.undo());
    assert!(ep.undo());
    assert_eq!(ep.state(), obs.state);
    assert_eq!((ep.turn(), ep.done(), ep.rewards().len()), (0, false, 0));
    assert!(!ep.undo());
}

#[test]
fn infra_failures_end_the_episode_unscored() {
    let ok = fake();
    let (mut ep, _) = Episode::reset(task(), &ok, &env(10), &Limits::default(), (0, 1)).unwrap();
    let broken = Fake {
        fail_infra: true,
        ..fake()
    };
    ep.runner_for_tests(&broken);
    let s = ep.step("### REPW 2 >>>- >>>+", Source::Model).unwrap();
    assert!(s.infra_error && s.done);
    assert_eq!(s.reward, 0.0);
    let err = Episode::reset(task(), &broken, &env(10), &Limits::default(), (0, 1)).err();
    assert!(matches!(err, Some(EpisodeError::Infra { .. })));
}
