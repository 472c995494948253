//! Colours as written in theme files, and their reduction to what the terminal
//! can show: truecolour terminals get the RGB value, others the nearest entry of
//! the xterm 256-colour palette (the 6×6×6 cube or the grey ramp).
//!
//! Truecolour is assumed only when `COLORTERM` says `truecolor` or `24bit`, the
//! convention terminals and SSH sessions (with `SendEnv`) actually follow.
use ratatui::style::Color;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorMode {
    TrueColor,
    Ansi256,
}

impl ColorMode {
    /// From the environment (`COLORTERM`).
    pub fn detect() -> ColorMode {
        match std::env::var("COLORTERM") {
            Ok(v) if v == "truecolor" || v == "24bit" => ColorMode::TrueColor,
            _ => ColorMode::Ansi256,
        }
    }

    /// An RGB colour as this terminal shows it.
    pub fn rgb(self, r: u8, g: u8, b: u8) -> Color {
        match self {
            ColorMode::TrueColor => Color::Rgb(r, g, b),
            ColorMode::Ansi256 => Color::Indexed(nearest_256(r, g, b)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "colour {0:?}: expected \"#rrggbb\", a palette index 0-255, \"reset\" or a name (black, red, green, yellow, blue, magenta, cyan, gray, darkgray, lightred, lightgreen, lightyellow, lightblue, lightmagenta, lightcyan, white)"
)]
pub struct ColorError(pub String);

const NAMES: &[(&str, Color)] = &[
    ("reset", Color::Reset),
    ("black", Color::Black),
    ("red", Color::Red),
    ("green", Color::Green),
    ("yellow", Color::Yellow),
    ("blue", Color::Blue),
    ("magenta", Color::Magenta),
    ("cyan", Color::Cyan),
    ("gray", Color::Gray),
    ("darkgray", Color::DarkGray),
    ("lightred", Color::LightRed),
    ("lightgreen", Color::LightGreen),
    ("lightyellow", Color::LightYellow),
    ("lightblue", Color::LightBlue),
    ("lightmagenta", Color::LightMagenta),
    ("lightcyan", Color::LightCyan),
    ("white", Color::White),
];

/// Parses a theme colour for a terminal in `mode`.
pub fn parse_color(text: &str, mode: ColorMode) -> Result<Color, ColorError> {
    let bad = || ColorError(text.to_string());
    if let Some(hex) = text.strip_prefix('#') {
        if hex.len() != 6 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let byte = |i: usize| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(bad)
        };
        return Ok(mode.rgb(byte(0)?, byte(2)?, byte(4)?));
    }
    if let Ok(i) = text.parse::<u8>() {
        return Ok(Color::Indexed(i));
    }
    NAMES
        .iter()
        .find(|(n, _)| *n == text)
        .map(|&(_, c)| c)
        .ok_or_else(bad)
}

const CUBE: [u8; 6] = [0, 95, 135, 175, 215, 255];

fn sq(a: u8, b: u8) -> u32 {
    let d = i32::from(a) - i32::from(b);
    d.unsigned_abs().pow(2)
}

/// The xterm-256 index closest to an RGB colour (squared distance in RGB).
pub fn nearest_256(r: u8, g: u8, b: u8) -> u8 {
    let level = |v: u8| {
        (0..6usize)
            .min_by_key(|&i| sq(v, CUBE.get(i).copied().unwrap_or(0)))
            .unwrap_or(0)
    };
    let (ri, gi, bi) = (level(r), level(g), level(b));
    let at = |i: usize| CUBE.get(i).copied().unwrap_or(0);
    let cube_dist = sq(r, at(ri)) + sq(g, at(gi)) + sq(b, at(bi));
    let cube_index = 16 + 36 * ri + 6 * gi + bi;
    // Grey ramp: 232..=255 are 8, 18, …, 238.
    let mean = (u32::from(r) + u32::from(g) + u32::from(b)) / 3;
    let gi_ramp = ((mean.saturating_sub(3)) / 10).min(23);
    let grey = (8 + 10 * gi_ramp) as u8;
    let grey_dist = sq(r, grey) + sq(g, grey) + sq(b, grey);
    let index = if grey_dist < cube_dist {
        232 + gi_ramp as usize
    } else {
        cube_index
    };
    u8::try_from(index).unwrap_or(15)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_parse_in_both_modes() {
        assert_eq!(
            parse_color("#ff0000", ColorMode::TrueColor),
            Ok(Color::Rgb(255, 0, 0))
        );
        assert_eq!(
            parse_color("#ff0000", ColorMode::Ansi256),
            Ok(Color::Indexed(196))
        );
        assert_eq!(
            parse_color("42", ColorMode::Ansi256),
            Ok(Color::Indexed(42))
        );
        assert_eq!(parse_color("reset", ColorMode::Ansi256), Ok(Color::Reset));
        for bad in ["#12345", "#gg0000", "256", "purple", ""] {
            assert_eq!(
                parse_color(bad, ColorMode::TrueColor),
                Err(ColorError(bad.into()))
            );
        }
    }

    #[test]
    fn greys_go_to_the_ramp_and_colours_to_the_cube() {
        assert_eq!(nearest_256(128, 128, 128), 244);
        assert_eq!(nearest_256(0, 0, 255), 21);
        assert_eq!(nearest_256(255, 255, 255), 231);
        assert_eq!(nearest_256(0, 0, 0), 16);
    }
}
