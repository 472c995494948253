//! Key bindings as data (STYLE 6): layers of `{keys, action, desc}` read from
//! RON over the built-in defaults (`default.ron`, embedded), so the help popup
//! and the dispatcher read the same table and a user file can rebind anything.
//!
//! Lookup goes from the most specific layer to `global`; what an action does
//! depends on the mode (e.g. `left` scrubs turns in monitor mode), which keeps
//! motion keys shared instead of repeated per mode.
mod keys;

pub use keys::{KeyChord, KeyParseError};

use serde::Deserialize;
use std::path::Path;

/// The built-in bindings.
pub const DEFAULT_KEYMAP: &str = include_str!("default.ron");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    Global,
    Monitor,
    Step,
    Config,
    Data,
    Results,
    Popup,
}

impl Layer {
    pub const ALL: [Layer; 7] = [
        Layer::Global,
        Layer::Monitor,
        Layer::Step,
        Layer::Config,
        Layer::Data,
        Layer::Results,
        Layer::Popup,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Layer::Global => "global",
            Layer::Monitor => "monitor",
            Layer::Step => "step",
            Layer::Config => "config",
            Layer::Data => "data",
            Layer::Results => "results",
            Layer::Popup => "popup",
        }
    }
}

/// Everything a key can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Quit,
    Help,
    ModeMonitor,
    ModeStep,
    ModeConfig,
    ModeData,
    NextMode,
    PrevMode,
    Up,
    Down,
    Left,
    Right,
    PageUp,
    PageDown,
    Top,
    Bottom,
    PickEpisode,
    FollowLatest,
    CyclePlot,
    NextRun,
    PrevRun,
    ToggleXAxis,
    PickRuns,
    UseAdapter,
    ExportPlot,
    ModeResults,
    PrevSample,
    NextSample,
    NextResults,
    PickTask,
    PrevTask,
    NextTask,
    TypeCommand,
    AcceptProposal,
    EditProposal,
    Undo,
    RunTests,
    Propose,
    Edit,
    Save,
    StartJob,
    CancelJob,
    Revert,
    PrevFile,
    NextFile,
    Select,
    Close,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    pub keys: Vec<KeyChord>,
    pub action: Action,
    pub desc: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct KeymapFile {
    global: Vec<Binding>,
    monitor: Vec<Binding>,
    step: Vec<Binding>,
    config: Vec<Binding>,
    data: Vec<Binding>,
    results: Vec<Binding>,
    popup: Vec<Binding>,
}

impl KeymapFile {
    fn into_layers(self) -> Vec<(Layer, Vec<Binding>)> {
        vec![
            (Layer::Global, self.global),
            (Layer::Monitor, self.monitor),
            (Layer::Step, self.step),
            (Layer::Config, self.config),
            (Layer::Data, self.data),
            (Layer::Results, self.results),
            (Layer::Popup, self.popup),
        ]
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeymapError {
    #[error("{path}: cannot read the keymap: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}:{line}:{col}: {message}\n{snippet}")]
    Parse {
        origin: String,
        line: usize,
        col: usize,
        message: String,
        snippet: String,
    },
    #[error(
        "{origin}:{line}: key {key:?} is bound twice in layer {layer}: to {first:?} and to {second:?}"
    )]
    Duplicate {
        origin: String,
        line: usize,
        layer: &'static str,
        key: String,
        first: Action,
        second: Action,
    },
}

impl KeymapError {
    /// The line the error points at.
    pub fn line(&self) -> Option<usize> {
        match self {
            KeymapError::Io { .. } => None,
            KeymapError::Parse { line, .. } | KeymapError::Duplicate { line, .. } => Some(*line),
        }
    }
}

/// Bindings by layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Keymap {
    layers: Vec<(Layer, Vec<Binding>)>,
}

impl Keymap {
    /// The built-in bindings.
    pub fn defaults() -> Keymap {
        // The embedded file is checked by a unit test; failing here is a build defect.
        Self::parse(DEFAULT_KEYMAP, "built-in keymap")
            .unwrap_or_else(|e| panic!("the built-in keymap is invalid: {e}"))
    }

    /// The defaults with a user file laid over them.
    pub fn load(path: &Path) -> Result<Keymap, KeymapError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeymapError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::defaults().overlay(&text, &path.display().to_string())
    }

    /// Parses a keymap file on its own (no defaults).
    pub fn parse(text: &str, origin: &str) -> Result<Keymap, KeymapError> {
        let file: KeymapFile = ron::Options::default()
            .from_str(text)
            .map_err(|e| parse_error(origin, text, &e))?;
        let map = Keymap {
            layers: file.into_layers(),
        };
        map.check_duplicates(text, origin)?;
        Ok(map)
    }

    /// Lays `text`'s bindings over these: a user binding replaces the binding of the
    /// same action in its layer and takes its keys from the others.
    pub fn overlay(mut self, text: &str, origin: &str) -> Result<Keymap, KeymapError> {
        let user = Self::parse(text, origin)?;
        for (layer, bindings) in user.layers {
            let Some((_, base)) = self.layers.iter_mut().find(|(l, _)| *l == layer) else {
                continue;
            };
            for b in bindings {
                base.retain(|d| d.action != b.action);
                for d in base.iter_mut() {
                    d.keys.retain(|k| !b.keys.contains(k));
                }
                base.retain(|d| !d.keys.is_empty());
                base.push(b);
            }
        }
        Ok(self)
    }

    fn check_duplicates(&self, text: &str, origin: &str) -> Result<(), KeymapError> {
        for (layer, bindings) in &self.layers {
            let mut seen: Vec<(KeyChord, Action)> = Vec::new();
            for b in bindings {
                for k in &b.keys {
                    if let Some(&(_, first)) = seen.iter().find(|(s, _)| s == k) {
                        let key = k.to_string();
                        return Err(KeymapError::Duplicate {
                            origin: origin.into(),
                            line: last_line_of(text, &format!("{key:?}")),
                            layer: layer.name(),
                            key,
                            first,
                            second: b.action,
                        });
                    }
                    seen.push((*k, b.action));
                }
            }
        }
        Ok(())
    }

    /// The action a chord triggers in `layer` (that layer only).
    pub fn lookup(&self, layer: Layer, chord: &KeyChord) -> Option<Action> {
        self.bindings(layer)
            .iter()
            .find(|b| b.keys.contains(chord))
            .map(|b| b.action)
    }

    pub fn bindings(&self, layer: Layer) -> &[Binding] {
        self.layers
            .iter()
            .find(|(l, _)| *l == layer)
            .map_or(&[], |(_, b)| b.as_slice())
    }

    /// The keys of an action, as text (`"j/down"`), for hints in pane titles.
    pub fn keys_of(&self, layer: Layer, action: Action) -> String {
        self.bindings(layer)
            .iter()
            .find(|b| b.action == action)
            .map(|b| {
                b.keys
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .unwrap_or_default()
    }
}

fn parse_error(origin: &str, text: &str, e: &ron::error::SpannedError) -> KeymapError {
    let line = e.span.start.line.max(1);
    let col = e.span.start.col.max(1);
    let src = text.lines().nth(line - 1).unwrap_or("");
    let gutter = line.to_string();
    let caret = " ".repeat(col.saturating_sub(1).min(src.chars().count()));
    KeymapError::Parse {
        origin: origin.into(),
        line,
        col,
        message: e.code.to_string(),
        snippet: format!("{gutter} | {src}\n{} | {caret}^", " ".repeat(gutter.len())),
    }
}

/// 1-based line of the last occurrence of `needle` (the second binding of a duplicate
/// key is the one to fix), or 1 when it is not found verbatim.
fn last_line_of(text: &str, needle: &str) -> usize {
    text.rfind(needle)
        .map_or(1, |at| text[..at].matches('\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_resolve_keys() {
        let map = Keymap::defaults();
        let q = KeyChord::parse("q").unwrap();
        assert_eq!(map.lookup(Layer::Global, &q), Some(Action::Quit));
        assert_eq!(map.keys_of(Layer::Global, Action::Down), "j/down");
    }

    #[test]
    fn an_overlay_replaces_an_action_and_steals_its_keys() {
        let user = "(global: [(keys: [\"x\", \"j\"], action: quit, desc: \"bye\")])";
        let map = Keymap::defaults().overlay(user, "user.ron").unwrap();
        let chord = |s| KeyChord::parse(s).unwrap();
        assert_eq!(map.lookup(Layer::Global, &chord("x")), Some(Action::Quit));
        assert_eq!(map.lookup(Layer::Global, &chord("q")), None);
        assert_eq!(map.lookup(Layer::Global, &chord("j")), Some(Action::Quit));
        assert_eq!(
            map.lookup(Layer::Global, &chord("down")),
            Some(Action::Down)
        );
    }
}
