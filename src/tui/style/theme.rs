//! Themes from `themes/<name>.ron` (dark, light, high-contrast), chosen by
//! `ui.theme`. The shipped files are embedded so the workbench looks right from
//! any directory; a `themes/<name>.ron` found in the working directory or the
//! checkout the binary was built in wins, so a theme can be tuned without a
//! rebuild. Colours are resolved once, for the terminal's colour depth.
use crate::tui::style::color::{ColorError, ColorMode, parse_color};
use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;
use std::path::Path;

const EMBEDDED: &[(&str, &str)] = &[
    ("dark", include_str!("../../../themes/dark.ron")),
    ("light", include_str!("../../../themes/light.ron")),
    (
        "high-contrast",
        include_str!("../../../themes/high-contrast.ron"),
    ),
];

/// The theme names that ship.
pub fn names() -> Vec<&'static str> {
    EMBEDDED.iter().map(|(n, _)| *n).collect()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    syntax: String,
    fg: String,
    bg: String,
    muted: String,
    accent: String,
    border: String,
    focus: String,
    ok: String,
    bad: String,
    warn: String,
    selection_fg: String,
    selection_bg: String,
    edited_bg: String,
    plot_train: String,
    plot_eval: String,
    /// One colour per followed run or results file, in order (cycled); optional.
    #[serde(default)]
    series: Vec<String>,
}

/// Resolved colours.
#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub name: String,
    /// The syntect theme for code.
    pub syntax: String,
    pub mode: ColorMode,
    pub fg: Color,
    pub bg: Color,
    pub muted: Color,
    pub accent: Color,
    pub border: Color,
    pub focus: Color,
    pub ok: Color,
    pub bad: Color,
    pub warn: Color,
    pub selection_fg: Color,
    pub selection_bg: Color,
    pub edited_bg: Color,
    pub plot_train: Color,
    pub plot_eval: Color,
    /// Colours of overlaid runs, never empty.
    pub series: Vec<Color>,
}

#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    #[error("theme {0:?}: no such theme (shipped: dark, light, high-contrast)")]
    Unknown(String),
    #[error("{origin}: cannot read the theme: {source}")]
    Io {
        origin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}:{line}: {message}")]
    Parse {
        origin: String,
        line: usize,
        message: String,
    },
    #[error("{origin}: field {field}: {source}")]
    Color {
        origin: String,
        field: &'static str,
        #[source]
        source: ColorError,
    },
}

impl Theme {
    /// The named theme: a `themes/<name>.ron` on disk if there is one, else the embedded copy.
    pub fn load(name: &str, mode: ColorMode) -> Result<Theme, ThemeError> {
        let embedded = EMBEDDED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .ok_or_else(|| ThemeError::Unknown(name.to_string()))?;
        let rel = format!("themes/{name}.ron");
        match crate::util::find_in_checkout(Path::new(&rel)) {
            Ok(path) => {
                let origin = path.display().to_string();
                let text = std::fs::read_to_string(&path).map_err(|source| ThemeError::Io {
                    origin: origin.clone(),
                    source,
                })?;
                Self::parse(name, &text, &origin, mode)
            }
            Err(_) => Self::parse(name, embedded, &rel, mode),
        }
    }

    /// The embedded copy only (tests and snapshots must not depend on the disk).
    pub fn embedded(name: &str, mode: ColorMode) -> Result<Theme, ThemeError> {
        let text = EMBEDDED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .ok_or_else(|| ThemeError::Unknown(name.to_string()))?;
        Self::parse(name, text, &format!("themes/{name}.ron"), mode)
    }

    pub fn parse(
        name: &str,
        text: &str,
        origin: &str,
        mode: ColorMode,
    ) -> Result<Theme, ThemeError> {
        let f: ThemeFile =
            ron::Options::default()
                .from_str(text)
                .map_err(|e| ThemeError::Parse {
                    origin: origin.to_string(),
                    line: e.span.start.line,
                    message: e.code.to_string(),
                })?;
        let c = |field: &'static str, v: &str| {
            parse_color(v, mode).map_err(|source| ThemeError::Color {
                origin: origin.to_string(),
                field,
                source,
            })
        };
        let mut theme = Theme {
            name: name.to_string(),
            syntax: f.syntax.clone(),
            mode,
            fg: c("fg", &f.fg)?,
            bg: c("bg", &f.bg)?,
            muted: c("muted", &f.muted)?,
            accent: c("accent", &f.accent)?,
            border: c("border", &f.border)?,
            focus: c("focus", &f.focus)?,
            ok: c("ok", &f.ok)?,
            bad: c("bad", &f.bad)?,
            warn: c("warn", &f.warn)?,
            selection_fg: c("selection_fg", &f.selection_fg)?,
            selection_bg: c("selection_bg", &f.selection_bg)?,
            edited_bg: c("edited_bg", &f.edited_bg)?,
            plot_train: c("plot_train", &f.plot_train)?,
            plot_eval: c("plot_eval", &f.plot_eval)?,
            series: Vec::new(),
        };
        for v in &f.series {
            theme.series.push(c("series", v)?);
        }
        if theme.series.is_empty() {
            for (field, v) in [
                ("plot_train", &f.plot_train),
                ("plot_eval", &f.plot_eval),
                ("ok", &f.ok),
                ("warn", &f.warn),
                ("accent", &f.accent),
                ("bad", &f.bad),
            ] {
                theme.series.push(c(field, v)?);
            }
        }
        Ok(theme)
    }

    /// The colour of the `i`-th overlaid series.
    pub fn series_color(&self, i: usize) -> Color {
        self.series
            .get(i % self.series.len().max(1))
            .copied()
            .unwrap_or(self.fg)
    }

    pub fn base(&self) -> Style {
        Style::new().fg(self.fg).bg(self.bg)
    }
    pub fn muted(&self) -> Style {
        Style::new().fg(self.muted)
    }
    pub fn border(&self, focused: bool) -> Style {
        Style::new().fg(if focused { self.focus } else { self.border })
    }
    pub fn title(&self) -> Style {
        Style::new().fg(self.accent).add_modifier(Modifier::BOLD)
    }
    pub fn selected(&self) -> Style {
        Style::new().fg(self.selection_fg).bg(self.selection_bg)
    }
    pub fn ok(&self) -> Style {
        Style::new().fg(self.ok)
    }
    pub fn bad(&self) -> Style {
        Style::new().fg(self.bad)
    }
    pub fn warn(&self) -> Style {
        Style::new().fg(self.warn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_theme_loads_in_both_modes() {
        for name in names() {
            for mode in [ColorMode::TrueColor, ColorMode::Ansi256] {
                Theme::embedded(name, mode).unwrap_or_else(|e| panic!("{e}"));
            }
        }
        assert!(matches!(
            Theme::embedded("neon", ColorMode::TrueColor),
            Err(ThemeError::Unknown(_))
        ));
    }

    #[test]
    fn bad_colours_name_the_field_and_value() {
        let text = include_str!("../../../themes/dark.ron").replace("\"#a3be8c\"", "\"mint\"");
        let err = Theme::parse("dark", &text, "t.ron", ColorMode::TrueColor).unwrap_err();
        assert_eq!(
            err.to_string()
                .split(':')
                .take(3)
                .collect::<Vec<_>>()
                .join(":"),
            "t.ron: field ok: colour \"mint\""
        );
    }
}
