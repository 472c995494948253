//! Keymap files: a user file overrides the defaults, and each failure mode
//! gives a message that names the file, the line and the offending value.
use coe::tui::keymap::{Action, KeyChord, Keymap, Layer};
use std::io::Write;

fn load(text: &str) -> Result<Keymap, String> {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    Keymap::load(f.path()).map_err(|e| {
        // Drop the temp path so messages compare equal.
        let s = e.to_string();
        let path = f.path().display().to_string();
        s.replace(&path, "user.ron")
    })
}

#[test]
fn a_user_file_rebinds_over_the_defaults() {
    let map =
        load("(\n  step: [\n    (keys: [\"ctrl-z\"], action: undo, desc: \"Undo\"),\n  ],\n)")
            .unwrap();
    let chord = |s| KeyChord::parse(s).unwrap();
    assert_eq!(
        map.lookup(Layer::Step, &chord("ctrl-z")),
        Some(Action::Undo)
    );
    assert_eq!(map.lookup(Layer::Step, &chord("u")), None);
    assert_eq!(map.lookup(Layer::Global, &chord("q")), Some(Action::Quit));
}

#[test]
fn bad_keymaps_name_the_line_and_the_value() {
    let cases = [
        (
            "(\n  global: [\n    (keys: [\"hyper-x\"], action: quit, desc: \"x\"),\n  ],\n)",
            "user.ron:3:",
            "key \"hyper-x\": unknown modifier \"hyper\"",
        ),
        (
            "(\n  global: [\n    (keys: [\"x\"], action: fly, desc: \"x\"),\n  ],\n)",
            "user.ron:3:",
            "fly",
        ),
        ("(\n  globl: [],\n)", "user.ron:2:", "globl"),
        (
            "(\n  step: [\n    (keys: [\"x\"], action: undo, desc: \"a\"),\n    (keys: [\"x\"], action: propose, desc: \"b\"),\n  ],\n)",
            "user.ron:4: key \"x\" is bound twice in layer step: to Undo and to Propose",
            "",
        ),
    ];
    for (text, at, what) in cases {
        let err = load(text).unwrap_err();
        assert!(err.starts_with(at), "{err}");
        assert!(err.contains(what), "{err}");
    }
    let err = Keymap::load(std::path::Path::new("no/such/keymap.ron")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("no/such/keymap.ron: cannot read the keymap"),
        "{err}"
    );
}
