//! Key chords as written in keymap files: `j`, `G`, `?`, `ctrl-d`, `alt-x`,
//! `shift-tab`, `pagedown`, `f5`. A chord parses from and displays as the same
//! text, so the help popup shows bindings exactly as a user would write them.
//!
//! Shift is not part of a character chord: the character already carries it
//! (`G`, `?`), and terminals differ in whether they also report the modifier.
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyChord {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyParseError {
    #[error("key {0:?}: empty key name")]
    Empty(String),
    #[error("key {text:?}: unknown modifier {modifier:?} (use ctrl-, alt- or shift-)")]
    Modifier { text: String, modifier: String },
    #[error(
        "key {0:?}: unknown key name (a single character, or up, down, left, right, enter, esc, tab, backtab, backspace, delete, insert, home, end, pageup, pagedown, space, f1…f12)"
    )]
    Name(String),
    #[error(
        "key {0:?}: shift- applies to named keys only; write the character itself (e.g. \"G\")"
    )]
    ShiftChar(String),
}

const NAMED: &[(&str, KeyCode)] = &[
    ("up", KeyCode::Up),
    ("down", KeyCode::Down),
    ("left", KeyCode::Left),
    ("right", KeyCode::Right),
    ("enter", KeyCode::Enter),
    ("esc", KeyCode::Esc),
    ("tab", KeyCode::Tab),
    ("backtab", KeyCode::BackTab),
    ("backspace", KeyCode::Backspace),
    ("delete", KeyCode::Delete),
    ("insert", KeyCode::Insert),
    ("home", KeyCode::Home),
    ("end", KeyCode::End),
    ("pageup", KeyCode::PageUp),
    ("pagedown", KeyCode::PageDown),
    ("space", KeyCode::Char(' ')),
];

impl KeyChord {
    pub fn parse(text: &str) -> Result<KeyChord, KeyParseError> {
        let mut mods = KeyModifiers::NONE;
        let mut rest = text;
        // A trailing "-" is the minus key itself, so only split while a name follows.
        while let Some((m, tail)) = rest.split_once('-').filter(|(_, t)| !t.is_empty()) {
            let flag = match m {
                "ctrl" => KeyModifiers::CONTROL,
                "alt" => KeyModifiers::ALT,
                "shift" => KeyModifiers::SHIFT,
                _ => {
                    return Err(KeyParseError::Modifier {
                        text: text.into(),
                        modifier: m.into(),
                    });
                }
            };
            mods |= flag;
            rest = tail;
        }
        if rest.is_empty() {
            return Err(KeyParseError::Empty(text.into()));
        }
        let mut chars = rest.chars();
        let code = match (chars.next(), chars.next()) {
            (Some(c), None) => {
                if mods.contains(KeyModifiers::SHIFT) {
                    return Err(KeyParseError::ShiftChar(text.into()));
                }
                KeyCode::Char(c)
            }
            _ => named(rest).ok_or_else(|| KeyParseError::Name(text.into()))?,
        };
        let (code, mods) = if code == KeyCode::Tab && mods.contains(KeyModifiers::SHIFT) {
            (KeyCode::BackTab, mods - KeyModifiers::SHIFT)
        } else {
            (code, mods)
        };
        Ok(KeyChord { code, mods })
    }

    /// The chord of a key press, normalised the way [`KeyChord::parse`] writes it.
    pub fn from_event(ev: &KeyEvent) -> KeyChord {
        let mut mods =
            ev.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT | KeyModifiers::SHIFT);
        if matches!(ev.code, KeyCode::Char(_) | KeyCode::BackTab) {
            mods -= KeyModifiers::SHIFT;
        }
        KeyChord {
            code: ev.code,
            mods,
        }
    }
}

fn named(name: &str) -> Option<KeyCode> {
    if let Some(n) = name.strip_prefix('f').and_then(|n| n.parse::<u8>().ok())
        && (1..=12).contains(&n)
    {
        return Some(KeyCode::F(n));
    }
    NAMED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, code)| code)
}

impl fmt::Display for KeyChord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mods.contains(KeyModifiers::CONTROL) {
            f.write_str("ctrl-")?;
        }
        if self.mods.contains(KeyModifiers::ALT) {
            f.write_str("alt-")?;
        }
        if self.mods.contains(KeyModifiers::SHIFT) {
            f.write_str("shift-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::F(n) => write!(f, "f{n}"),
            code => {
                let name = NAMED
                    .iter()
                    .find(|(_, c)| *c == code)
                    .map_or("?", |&(n, _)| n);
                f.write_str(name)
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for KeyChord {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        KeyChord::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chords_round_trip() {
        for text in [
            "j",
            "G",
            "?",
            "-",
            "ctrl-d",
            "alt-x",
            "ctrl-alt-delete",
            "backtab",
            "pagedown",
            "space",
            "f5",
            "enter",
            "[",
        ] {
            let chord = KeyChord::parse(text).unwrap();
            assert_eq!(chord.to_string(), text);
        }
        assert_eq!(KeyChord::parse("shift-tab").unwrap().to_string(), "backtab");
    }

    #[test]
    fn bad_chords_say_why() {
        assert!(matches!(KeyChord::parse(""), Err(KeyParseError::Empty(_))));
        assert!(matches!(
            KeyChord::parse("hyper-x"),
            Err(KeyParseError::Modifier { .. })
        ));
        assert!(matches!(
            KeyChord::parse("pgdn"),
            Err(KeyParseError::Name(_))
        ));
        assert!(matches!(
            KeyChord::parse("shift-g"),
            Err(KeyParseError::ShiftChar(_))
        ));
        assert!(matches!(
            KeyChord::parse("f13"),
            Err(KeyParseError::Name(_))
        ));
    }

    #[test]
    fn events_drop_shift_from_characters() {
        let ev = KeyEvent::new(KeyCode::Char('G'), KeyModifiers::SHIFT);
        assert_eq!(KeyChord::from_event(&ev), KeyChord::parse("G").unwrap());
        let ev = KeyEvent::new(KeyCode::Char('d'), KeyModifiers::CONTROL);
        assert_eq!(
            KeyChord::from_event(&ev),
            KeyChord::parse("ctrl-d").unwrap()
        );
    }
}
