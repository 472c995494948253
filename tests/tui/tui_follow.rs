//! The tail reader on a real file: waits for it to appear, holds back a line
//! until its newline arrives, reports bad lines by number, and starts over when
//! the file is truncated.
use coe::runtime::follow::Follower;
use coe::tui::msg::{FollowMsg, Msg};
use crossbeam_channel::{Receiver, bounded};
use std::io::Write;
use std::time::{Duration, Instant};

fn next(rx: &Receiver<Msg>) -> FollowMsg {
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Msg::Follow(m)) => m.msg,
        other => panic!("expected a follow message, got {other:?}"),
    }
}

/// Collects events until `n` arrived (or fails after 10 s).
fn events(rx: &Receiver<Msg>, n: usize) -> Vec<coe::protocol::Event> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} events",
            out.len()
        );
        match next(rx) {
            FollowMsg::Events(e) => out.extend(e),
            other => panic!("unexpected {other:?}"),
        }
    }
    out
}

const METRIC: &str = r#"{"type":"metric","job":0,"step":1,"phase":"train","loss":1.5}"#;

#[test]
fn follows_a_growing_file_line_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.jsonl");
    let (tx, rx) = bounded(16);
    let _f = Follower::start(dir.path(), 0, tx).unwrap();
    assert!(matches!(next(&rx), FollowMsg::Waiting { .. }));

    let mut file = std::fs::File::create(&path).unwrap();
    assert!(matches!(next(&rx), FollowMsg::Opened { .. }));
    writeln!(file, "{METRIC}").unwrap();
    assert_eq!(events(&rx, 1).len(), 1);

    // Half a line is held back until its newline arrives.
    let (a, b) = METRIC.split_at(20);
    write!(file, "{a}").unwrap();
    file.flush().unwrap();
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "a partial line must not be sent"
    );
    writeln!(file, "{b}").unwrap();
    assert_eq!(events(&rx, 1).len(), 1);

    writeln!(file, "{{\"type\":\"metric\",\"step\":\"x\"}}").unwrap();
    match next(&rx) {
        FollowMsg::BadLine { line, error } => {
            assert_eq!(line, 3);
            assert!(error.starts_with("metric:"), "{error}");
        }
        other => panic!("{other:?}"),
    }

    // Truncation: the reader starts over and reads the new content.
    let mut file = std::fs::File::create(&path).unwrap();
    writeln!(
        file,
        r#"{{"type":"log","job":0,"level":"info","message":"again"}}"#
    )
    .unwrap();
    let mut saw_restart = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no restart seen");
        match next(&rx) {
            FollowMsg::Restarted => saw_restart = true,
            FollowMsg::Opened { .. } => {}
            FollowMsg::Events(e) if saw_restart => {
                assert_eq!(e.len(), 1);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_large_file_arrives_in_bounded_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..2000 {
        text.push_str(&format!(
            "{{\"type\":\"metric\",\"job\":0,\"step\":{i},\"phase\":\"train\"}}\n"
        ));
    }
    std::fs::write(dir.path().join("events.jsonl"), text).unwrap();
    let (tx, rx) = bounded(4);
    let _f = Follower::start(dir.path(), 0, tx).unwrap();
    assert!(matches!(next(&rx), FollowMsg::Opened { .. }));
    let mut total = 0;
    while total < 2000 {
        match next(&rx) {
            FollowMsg::Events(e) => {
                assert!(e.len() <= coe::runtime::follow::BATCH);
                total += e.len();
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(total, 2000);
}
