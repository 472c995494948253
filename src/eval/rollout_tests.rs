//! Rollout rounds on a fake runner: episodes are stepped while the policy is still
//! producing the round's other proposals, and the outcome does not depend on the order
//! in which proposals arrive; a watch hears every round and its flag stops the rollout at
//! the next round boundary.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::progress::RoundProgress;
use super::rollout::*;
use crate::config::EnvSection;
use crate::env::episode::Runner;
use crate::policy::{Policy, PolicyError, Proposal, Query};
use crate::protocol::run::*;
use crate::task::{Origin, Task};

/// Fails every test and counts the runs.
#[derive(Default)]
struct Counting {
    runs: AtomicUsize,
}

impl Runner for Counting {
    fn run(&self, req: &RunRequest) -> Result<RunReport, String> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let tests = req
            .tests
            .iter()
            .map(|_| TestOutcome::Crashed {
                reason: "never passes".into(),
            })
            .collect();
        Ok(RunReport {
            outcome: RunOutcome::Tests { tests },
            output: String::new(),
            elapsed_ms: 0.0,
        })
    }
}

fn task(id: &str) -> Task {
    Task {
        id: id.into(),
        prompt: "Return x plus one.".into(),
        solution: Some("def f(x):\n    return x + 1\n".into()),
        tests: vec!["assert f(1) == 2".into()],
        setup: None,
        entry_point: Some("f".into()),
        buggy: "def f(x):\n    return x - 1\n".into(),
        origin: Origin::Human,
        problem_id: id.into(),
        corruptions: None,
        extra: Default::default(),
    }
}

/// Episode `i`, turn `t`: an edit, so every step runs the tests.
fn command(q: &Query<'_>) -> Proposal {
    Proposal {
        text: format!(
            "### REPL 2 >>>    return x + {}",
            q.episode * 10 + q.history.len() as u64
        ),
        token_ids: vec![7, 8],
        ..Proposal::default()
    }
}

/// Hands the proposals over in order or last first, may drop the last one, and with
/// `wait_on` waits after the first until its test run has happened before handing over
/// the rest — which only happens when the rollout steps episodes during `propose_each`.
#[derive(Default)]
struct Scripted<'r> {
    reverse: bool,
    drop_last: bool,
    wait_on: Option<&'r Counting>,
    overlapped: Vec<bool>,
}

impl Policy for Scripted<'_> {
    fn name(&self) -> String {
        "scripted".into()
    }
    fn propose(&mut self, queries: &[Query<'_>]) -> Result<Vec<Proposal>, PolicyError> {
        Ok(queries.iter().map(command).collect())
    }
    fn propose_each(
        &mut self,
        queries: &[Query<'_>],
        ready: &mut dyn FnMut(usize, Proposal),
    ) -> Result<(), PolicyError> {
        let mut order: Vec<usize> = (0..queries.len() - usize::from(self.drop_last)).collect();
        if self.reverse {
            order.reverse();
        }
        let runs = || self.wait_on.map_or(0, |r| r.runs.load(Ordering::SeqCst));
        let before = runs();
        for (n, i) in order.into_iter().enumerate() {
            ready(i, command(&queries[i]));
            if n == 0 && self.wait_on.is_some() {
                let deadline = Instant::now() + Duration::from_secs(10);
                while runs() == before && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(1));
                }
                self.overlapped.push(runs() > before);
            }
        }
        Ok(())
    }
}

fn opts() -> RolloutOptions {
    RolloutOptions {
        env: EnvSection {
            max_turns: 3,
            ..EnvSection::default()
        },
        limits: Limits::default(),
        batch: 8,
        threads: 2,
        job: 1,
    }
}

fn tasks() -> Vec<Task> {
    (0..3).map(|i| task(&format!("t{i}"))).collect()
}

#[test]
fn episodes_are_stepped_while_the_policy_is_still_proposing() {
    let runner = Counting::default();
    let mut policy = Scripted {
        wait_on: Some(&runner),
        ..Scripted::default()
    };
    let results = run_episodes(&tasks(), 2, &mut policy, &runner, &opts(), &mut |_| {}).unwrap();
    assert_eq!(policy.overlapped, vec![true; 3], "one entry per round");
    assert_eq!(results.len(), 6);
    for r in &results {
        assert_eq!(
            (r.turns, r.rewards.len(), r.history.len()),
            (3, 3, 3),
            "{r:?}"
        );
    }
    // One run at reset, then one per turn.
    assert_eq!(runner.runs.load(Ordering::SeqCst), 6 * 4);
}

#[test]
fn the_order_proposals_arrive_in_changes_nothing() {
    let run = |policy: &mut dyn Policy| {
        let runner = Counting::default();
        let mut events = Vec::new();
        let results = run_episodes(&tasks(), 2, policy, &runner, &opts(), &mut |e| {
            events.push(e)
        })
        .unwrap();
        let turns: Vec<_> = results
            .iter()
            .map(|r| (r.episode, r.history.clone(), r.rewards.clone()))
            .collect();
        (turns, serde_json::to_string(&events).unwrap())
    };
    let in_order = run(&mut Scripted::default());
    let reversed = run(&mut Scripted {
        reverse: true,
        ..Scripted::default()
    });
    assert_eq!(in_order, reversed);
    // Each episode's own commands were applied to it.
    let (turns, _) = in_order;
    for (episode, history, _) in &turns {
        assert!(
            history[0]
                .1
                .text
                .ends_with(&format!("x + {}", episode * 10))
        );
    }
}

#[test]
fn a_missing_proposal_is_an_error() {
    let runner = Counting::default();
    let err = run_episodes(
        &tasks(),
        1,
        &mut Scripted {
            drop_last: true,
            ..Scripted::default()
        },
        &runner,
        &opts(),
        &mut |_| {},
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the policy returned 2 proposals for 3 episodes"
    );
}

/// (wave, turn, live, finished, tokens) of a round.
type Round = (usize, u32, usize, usize, usize);

/// Every round's numbers and the episodes returned, with `cancel` set after `stop_after`
/// rounds.
fn watched(stop_after: usize) -> (Vec<Round>, usize) {
    let runner = Counting::default();
    let cancel = AtomicBool::new(false);
    let mut rounds = Vec::new();
    let mut on_round = |p: &RoundProgress| {
        assert_eq!((p.max_turns, p.waves, p.total, p.solved), (3, 2, 6, 0));
        rounds.push((p.wave, p.turn, p.live, p.finished, p.tokens));
        if rounds.len() == stop_after {
            cancel.store(true, Ordering::SeqCst);
        }
    };
    let watch = Watch {
        on_round: Some(&mut on_round),
        cancel: Some(&cancel),
    };
    let opts = RolloutOptions { batch: 4, ..opts() };
    let results = run_episodes_watched(
        &tasks(),
        2,
        &mut Scripted::default(),
        &runner,
        &opts,
        &mut |_| {},
        watch,
    )
    .unwrap();
    (rounds, results.len())
}

#[test]
fn every_round_is_reported() {
    // Six episodes in waves of four then two, each running to the 3-turn cap; two token
    // ids per command.
    let (rounds, finished) = watched(usize::MAX);
    assert_eq!(
        rounds,
        vec![
            (1, 1, 4, 0, 8),
            (1, 2, 4, 0, 8),
            (1, 3, 0, 4, 8),
            (2, 1, 2, 4, 4),
            (2, 2, 2, 4, 4),
            (2, 3, 0, 6, 4),
        ]
    );
    assert_eq!(finished, 6);
}

#[test]
fn a_cancel_stops_at_the_next_round_boundary_with_the_finished_episodes() {
    // Mid-wave: the live episodes are dropped, nothing has finished.
    assert_eq!(watched(2), (vec![(1, 1, 4, 0, 8), (1, 2, 4, 0, 8)], 0));
    // At the end of the first wave: the second never starts.
    let (rounds, finished) = watched(3);
    assert_eq!((rounds.len(), finished), (3, 4));
}
