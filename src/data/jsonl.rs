//! JSON Lines reading and writing (DESIGN §3): UTF-8, one object per line, plain
//! or gzip (detected by the magic bytes, not the name). A bad line is an error
//! naming the file, the line number and the field; nothing is skipped silently.
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum JsonlError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {}{message}", field_prefix(.field))]
    Line {
        path: PathBuf,
        line: usize,
        /// The JSON path of the offending field (`tests[2]`), when known.
        field: Option<String>,
        message: String,
    },
}

fn field_prefix(field: &Option<String>) -> String {
    match field {
        Some(f) => format!("field `{f}`: "),
        None => String::new(),
    }
}

/// Opens a file, transparently gunzipping it when it starts with the gzip magic.
pub fn open_text(path: &Path) -> Result<Box<dyn BufRead>, JsonlError> {
    let io = |source| JsonlError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut magic = [0u8; 2];
    let n = f.read(&mut magic).map_err(io)?;
    let f = std::fs::File::open(path).map_err(io)?;
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(
            f,
        ))))
    } else {
        Ok(Box::new(BufReader::new(f)))
    }
}

/// One line of a file: its 1-based number and the object, or why it is not one.
pub type Line = (usize, Result<serde_json::Value, JsonlError>);

/// Every non-blank line parsed on its own: a bad line is an `Err` in its slot, so
/// a checker can report all of them. Only an unreadable file fails as a whole.
pub fn read_lines(path: &Path) -> Result<Vec<Line>, JsonlError> {
    let reader = open_text(path)?;
    let mut out = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let lineno = i + 1;
        let bad = |message: String| JsonlError::Line {
            path: path.to_path_buf(),
            line: lineno,
            field: None,
            message,
        };
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                out.push((lineno, Err(bad(format!("cannot read the line: {e}")))));
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let parsed = match serde_json::from_str::<serde_json::Value>(&line) {
            Err(e) => Err(bad(format!("not valid JSON: {e}"))),
            Ok(v) if !v.is_object() => Err(bad("expected a JSON object".into())),
            Ok(v) => Ok(v),
        };
        out.push((lineno, parsed));
    }
    Ok(out)
}

/// Raw objects with their 1-based line numbers; blank lines are skipped; the first
/// line that is not a JSON object is an error.
pub fn read_values(path: &Path) -> Result<Vec<(usize, serde_json::Value)>, JsonlError> {
    read_lines(path)?
        .into_iter()
        .map(|(line, v)| v.map(|v| (line, v)))
        .collect()
}

/// Converts one object to `T`, naming the failing field.
pub fn from_value<T: DeserializeOwned>(
    path: &Path,
    line: usize,
    v: serde_json::Value,
) -> Result<T, JsonlError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde names a missing field in the message itself; lift it into `field`.
        let (field, message) = match inner.strip_prefix("missing field `") {
            Some(rest) => {
                let name = rest.split('`').next().unwrap_or("").to_string();
                (Some(name), "missing".to_string())
            }
            None => (if field == "." { None } else { Some(field) }, inner),
        };
        JsonlError::Line {
            path: path.to_path_buf(),
            line,
            field,
            message,
        }
    })
}

/// Reads every line of a JSONL file as `T`.
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, JsonlError> {
    read_values(path)?
        .into_iter()
        .map(|(line, v)| from_value(path, line, v))
        .collect()
}

/// Writes records atomically (temporary file, fsync, rename).
pub fn write<T: Serialize>(path: &Path, records: &[T]) -> Result<(), JsonlError> {
    let io = |source| JsonlError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut buf = Vec::new();
    for r in records {
        serde_json::to_writer(&mut buf, r).map_err(|e| io(std::io::Error::other(e)))?;
        buf.push(b'\n');
    }
    crate::util::write_atomic(path, &buf).map_err(io)
}
