//! A reader for GGUF files (llama.cpp's single-file model format, versions 2 and 3).
//!
//! A file is a little-endian header, a table of typed metadata, a table of tensor infos and an
//! aligned data section. The whole file is read into memory with `std::fs::read` and parsed with
//! bounds-checked slicing (no `mmap`, no `unsafe`): the models this project loads are small, and
//! every tensor is dequantised to f32 at load time anyway. A file is untrusted input, so every
//! count and length is checked against the bytes that remain before anything is allocated, and
//! every failure is a [`GgufError`] naming the file and the key or tensor at fault.
//!
//! The Llama-specific view (Hugging Face names, un-permuted Q/K, the config) lives in
//! `names`; this module only knows the container.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

pub use super::dequant::GgmlType;
use super::dequant::{self, DequantError};

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml tensors have at most four dimensions.
const MAX_DIMS: u32 = 4;
/// Arrays of arrays are legal; real files nest at most once. The cap stops a crafted file from
/// recursing the parser off the stack.
const MAX_NESTING: usize = 4;

/// Everything that can be wrong with a GGUF file or its contents.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("{}: cannot read: {source}", file.display())]
    Io {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not a GGUF file (starts with {found:?}, expected \"GGUF\")", file.display())]
    BadMagic { file: PathBuf, found: String },
    #[error("{}: GGUF version {version} is not supported (supported: 2, 3)", file.display())]
    UnsupportedVersion { file: PathBuf, version: u32 },
    #[error("{}: file ends at byte {len} while reading {what} at byte {offset}", file.display())]
    Truncated {
        file: PathBuf,
        what: String,
        offset: usize,
        len: usize,
    },
    #[error("{}: {what} claims a length of {count}, more than the {remaining} bytes left could hold", file.display())]
    ImplausibleCount {
        file: PathBuf,
        what: String,
        count: u64,
        remaining: usize,
    },
    #[error("{}: metadata key {key:?}: {problem}", file.display())]
    BadMetadata {
        file: PathBuf,
        key: String,
        problem: String,
    },
    #[error("{}: {what} at byte {offset} is not valid UTF-8", file.display())]
    BadString {
        file: PathBuf,
        what: String,
        offset: usize,
    },
    #[error("{}: metadata key {key:?} is missing", file.display())]
    MissingKey { file: PathBuf, key: String },
    #[error("{}: tensor {tensor:?}: {problem}", file.display())]
    BadTensorInfo {
        file: PathBuf,
        tensor: String,
        problem: String,
    },
    #[error("{}: tensor {tensor:?}: type {ty} is not supported (supported: {})", file.display(), dequant::SUPPORTED_TYPES)]
    UnsupportedType {
        file: PathBuf,
        tensor: String,
        ty: GgmlType,
    },
    #[error("{}: tensor {tensor:?}: data at bytes {start}..{end} lies outside the file ({len} bytes)", file.display())]
    TensorOutOfBounds {
        file: PathBuf,
        tensor: String,
        start: u64,
        end: u64,
        len: usize,
    },
    #[error("{}: tensor {tensor:?} is missing", file.display())]
    MissingTensor { file: PathBuf, tensor: String },
    #[error("{}: tensor {tensor:?} has shape {found:?}, the config implies {expected:?}", file.display())]
    ShapeMismatch {
        file: PathBuf,
        tensor: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{}: architecture {found:?} is not supported (supported: llama)", file.display())]
    UnsupportedArchitecture { file: PathBuf, found: String },
    #[error("{}: tokenizer: {problem}", file.display())]
    Tokenizer { file: PathBuf, problem: String },
}

/// One metadata value, typed as in the file.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(Vec<GgufValue>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl GgufValue {
    /// Any integer that is non-negative, widened; llama.cpp is not consistent about widths.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            GgufValue::U8(v) => Some(v.into()),
            GgufValue::U16(v) => Some(v.into()),
            GgufValue::U32(v) => Some(v.into()),
            GgufValue::U64(v) => Some(v),
            GgufValue::I8(v) => u64::try_from(v).ok(),
            GgufValue::I16(v) => u64::try_from(v).ok(),
            GgufValue::I32(v) => u64::try_from(v).ok(),
            GgufValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            GgufValue::F32(v) => Some(v.into()),
            GgufValue::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            GgufValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[GgufValue]> {
        match self {
            GgufValue::Array(items) => Some(items),
            _ => None,
        }
    }
}

/// Where a tensor lives and how it is stored. `dims` are ggml's, innermost first.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufTensorInfo {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Relative to the start of the data section.
    pub offset: u64,
}

impl GgufTensorInfo {
    /// Checked at parse time not to overflow.
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Row-major shape, outermost first (Hugging Face / PyTorch order).
    pub fn hf_shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }

    /// Bytes the data occupies, or `None` for a type we cannot size (or a size past
    /// u64, which parsing rejects).
    fn byte_len(&self) -> Option<u64> {
        let (elems, bytes) = self.ggml_type.block()?;
        (self.n_elements() / elems as u64).checked_mul(bytes as u64)
    }
}

/// A parsed GGUF file, holding its bytes so tensors can be dequantised on demand.
#[derive(Debug)]
pub struct GgufFile {
    pub version: u32,
    pub metadata: BTreeMap<String, GgufValue>,
    pub tensors: Vec<GgufTensorInfo>,
    path: PathBuf,
    bytes: Vec<u8>,
    data_offset: usize,
}

impl GgufFile {
    pub fn read(path: &Path) -> Result<Self, GgufError> {
        let bytes = std::fs::read(path).map_err(|source| GgufError::Io {
            file: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, bytes)
    }

    /// Parses bytes already in memory; `path` is only used in messages.
    pub fn parse(path: &Path, bytes: Vec<u8>) -> Result<Self, GgufError> {
        let mut cur = Cursor {
            bytes: &bytes,
            pos: 0,
            file: path,
        };
        let magic = cur.take(4, "the magic number")?;
        if magic != MAGIC {
            return Err(GgufError::BadMagic {
                file: path.to_path_buf(),
                found: String::from_utf8_lossy(magic).into_owned(),
            });
        }
        let version = cur.u32("the version")?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::UnsupportedVersion {
                file: path.to_path_buf(),
                version,
            });
        }
        let n_tensors = cur.u64("the tensor count")?;
        let n_kv = cur.u64("the metadata count")?;
        // A key-value pair needs at least a length, a type and a one-byte value.
        let n_kv = cur.count(n_kv, 13, "the metadata table")?;
        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = cur.string("a metadata key")?;
            let ty = cur.u32(&format!("the type of metadata key {key:?}"))?;
            let value = cur.value(ty, &key, 0)?;
            if metadata.insert(key.clone(), value).is_some() {
                return Err(cur.bad_key(&key, "appears twice"));
            }
        }
        // A tensor info needs a name length, a dim count, a type and an offset.
        let n_tensors = cur.count(n_tensors, 24, "the tensor table")?;
        let mut tensors: Vec<GgufTensorInfo> = Vec::with_capacity(n_tensors);
        let mut names = HashSet::with_capacity(n_tensors);
        for _ in 0..n_tensors {
            let info = cur.tensor_info()?;
            if !names.insert(info.name.clone()) {
                return Err(cur.bad_tensor(&info.name, "appears twice".into()));
            }
            tensors.push(info);
        }
        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => v.as_u64().filter(|a| a.is_power_of_two()).ok_or_else(|| {
                cur.bad_key("general.alignment", &format!("{v:?} is not a power of two"))
            })?,
        };
        let data_offset = (cur.pos as u64).div_ceil(alignment) * alignment;
        let file = GgufFile {
            version,
            metadata,
            tensors,
            path: path.to_path_buf(),
            data_offset: usize::try_from(data_offset).unwrap_or(usize::MAX),
            bytes,
        };
        for info in &file.tensors {
            if info.offset % alignment != 0 {
                let problem = format!(
                    "offset {} is not a multiple of the alignment {alignment}",
                    info.offset
                );
                return Err(file.tensor_error(&info.name, problem));
            }
            file.data_range(info)?;
        }
        Ok(file)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.get(key)
    }

    pub fn tensor_info(&self, name: &str) -> Option<&GgufTensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The value of a required key, converted by `convert`; `expected` describes the type.
    pub fn require<'a, T>(
        &'a self,
        key: &str,
        expected: &str,
        convert: impl FnOnce(&'a GgufValue) -> Option<T>,
    ) -> Result<T, GgufError> {
        let value = self.get(key).ok_or_else(|| GgufError::MissingKey {
            file: self.path.clone(),
            key: key.to_string(),
        })?;
        convert(value).ok_or_else(|| GgufError::BadMetadata {
            file: self.path.clone(),
            key: key.to_string(),
            problem: format!("expected {expected}, found {}", describe(value)),
        })
    }

    /// The tensor's values as f32, in ggml order (innermost dimension fastest).
    pub fn tensor_f32(&self, info: &GgufTensorInfo) -> Result<Vec<f32>, GgufError> {
        let range = self
            .data_range(info)?
            .ok_or_else(|| GgufError::UnsupportedType {
                file: self.path.clone(),
                tensor: info.name.clone(),
                ty: info.ggml_type,
            })?;
        let bytes = self.bytes.get(range).unwrap_or_default();
        dequant::dequantize(info.ggml_type, bytes).map_err(|e| match e {
            DequantError::Unsupported(ty) => GgufError::UnsupportedType {
                file: self.path.clone(),
                tensor: info.name.clone(),
                ty,
            },
            ragged => self.tensor_error(&info.name, ragged.to_string()),
        })
    }

    /// The byte range of a tensor's data, checked against the file; `None` when its type
    /// cannot be sized (only an error once someone asks for the values).
    fn data_range(
        &self,
        info: &GgufTensorInfo,
    ) -> Result<Option<std::ops::Range<usize>>, GgufError> {
        let Some(len) = info.byte_len() else {
            return Ok(None);
        };
        let start = (self.data_offset as u64).saturating_add(info.offset);
        let end = start.saturating_add(len);
        if end > self.bytes.len() as u64 {
            return Err(GgufError::TensorOutOfBounds {
                file: self.path.clone(),
                tensor: info.name.clone(),
                start,
                end,
                len: self.bytes.len(),
            });
        }
        Ok(Some(start as usize..end as usize))
    }

    pub(crate) fn tensor_error(&self, tensor: &str, problem: String) -> GgufError {
        GgufError::BadTensorInfo {
            file: self.path.clone(),
            tensor: tensor.to_string(),
            problem,
        }
    }
}

/// How a value reads in a message: its type and, for scalars, the value.
fn describe(value: &GgufValue) -> String {
    match value {
        GgufValue::String(s) => format!("string {s:?}"),
        GgufValue::Array(items) => format!("an array of {} items", items.len()),
        other => format!("{other:?}"),
    }
}

/// A bounds-checked position in the file's bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    file: &'a Path,
}

impl Cursor<'_> {
    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&[u8], GgufError> {
        let slice = self
            .pos
            .checked_add(n)
            .and_then(|end| self.bytes.get(self.pos..end))
            .ok_or_else(|| GgufError::Truncated {
                file: self.file.to_path_buf(),
                what: what.to_string(),
                offset: self.pos,
                len: self.bytes.len(),
            })?;
        self.pos += n;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], GgufError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// Rejects a count of items that could not fit in the rest of the file.
    fn count(&self, count: u64, min_item_bytes: usize, what: &str) -> Result<usize, GgufError> {
        let max = self.remaining() / min_item_bytes.max(1);
        usize::try_from(count)
            .ok()
            .filter(|&c| c <= max)
            .ok_or_else(|| GgufError::ImplausibleCount {
                file: self.file.to_path_buf(),
                what: what.to_string(),
                count,
                remaining: self.remaining(),
            })
    }

    fn string(&mut self, what: &str) -> Result<String, GgufError> {
        let len = self.u64(what)?;
        let len = self.count(len, 1, what)?;
        let start = self.pos;
        let raw = self.take(len, what)?;
        String::from_utf8(raw.to_vec()).map_err(|_| GgufError::BadString {
            file: self.file.to_path_buf(),
            what: what.to_string(),
            offset: start,
        })
    }

    fn value(&mut self, ty: u32, key: &str, depth: usize) -> Result<GgufValue, GgufError> {
        Ok(match ty {
            0 => GgufValue::U8(u8::from_le_bytes(self.array(key)?)),
            1 => GgufValue::I8(i8::from_le_bytes(self.array(key)?)),
            2 => GgufValue::U16(u16::from_le_bytes(self.array(key)?)),
            3 => GgufValue::I16(i16::from_le_bytes(self.array(key)?)),
            4 => GgufValue::U32(self.u32(key)?),
            5 => GgufValue::I32(i32::from_le_bytes(self.array(key)?)),
            6 => GgufValue::F32(f32::from_le_bytes(self.array(key)?)),
            7 => match self.array::<1>(key)? {
                [0] => GgufValue::Bool(false),
                [1] => GgufValue::Bool(true),
                [b] => {
                    return Err(self.bad_key(key, &format!("boolean byte {b} is neither 0 nor 1")));
                }
            },
            8 => GgufValue::String(self.string(&format!("the value of {key:?}"))?),
            9 => {
                if depth >= MAX_NESTING {
                    return Err(self.bad_key(key, "arrays nest too deeply"));
                }
                let item_ty = self.u32(key)?;
                let len = self.u64(key)?;
                let min_bytes = match item_ty {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    _ => 8,
                };
                let len = self.count(len, min_bytes, &format!("array {key:?}"))?;
                let mut items = Vec::with_capacity(len);
                for _ in 0..len {
                    items.push(self.value(item_ty, key, depth + 1)?);
                }
                GgufValue::Array(items)
            }
            10 => GgufValue::U64(self.u64(key)?),
            11 => GgufValue::I64(i64::from_le_bytes(self.array(key)?)),
            12 => GgufValue::F64(f64::from_le_bytes(self.array(key)?)),
            other => return Err(self.bad_key(key, &format!("unknown value type {other}"))),
        })
    }

    fn tensor_info(&mut self) -> Result<GgufTensorInfo, GgufError> {
        let name = self.string("a tensor name")?;
        let n_dims = self.u32(&format!("the dimension count of tensor {name:?}"))?;
        if n_dims == 0 || n_dims > MAX_DIMS {
            return Err(self.bad_tensor(
                &name,
                format!("{n_dims} dimensions (expected 1 to {MAX_DIMS})"),
            ));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(self.u64(&format!("the dimensions of tensor {name:?}"))?);
        }
        let ggml_type = GgmlType::from_id(self.u32(&format!("the type of tensor {name:?}"))?);
        let offset = self.u64(&format!("the offset of tensor {name:?}"))?;
        let elements = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
        if elements.is_none_or(|n| n > i64::MAX as u64) {
            return Err(self.bad_tensor(&name, format!("dimensions {dims:?} overflow")));
        }
        if let (Some((block, _)), Some(&inner)) = (ggml_type.block(), dims.first())
            && inner % block as u64 != 0
        {
            let problem = format!(
                "innermost dimension {inner} is not a multiple of the {ggml_type} block size {block}"
            );
            return Err(self.bad_tensor(&name, problem));
        }
        let info = GgufTensorInfo {
            name,
            dims,
            ggml_type,
            offset,
        };
        // Found by fuzzing: elements fit in i64, but four bytes each did not fit in u64.
        if ggml_type.block().is_some() && info.byte_len().is_none() {
            let problem = format!("dimensions {:?} need more than 2^64 bytes", info.dims);
            return Err(self.bad_tensor(&info.name, problem));
        }
        Ok(info)
    }

    fn bad_key(&self, key: &str, problem: &str) -> GgufError {
        GgufError::BadMetadata {
            file: self.file.to_path_buf(),
            key: key.to_string(),
            problem: problem.to_string(),
        }
    }

    fn bad_tensor(&self, tensor: &str, problem: String) -> GgufError {
        GgufError::BadTensorInfo {
            file: self.file.to_path_buf(),
            tensor: tensor.to_string(),
            problem,
        }
    }
}
