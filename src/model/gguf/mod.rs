//! GGUF, llama.cpp's single-file model format: the container reader (`reader`), the
//! block dequantisers (`dequant`) and the Llama view of a file — Hugging Face tensor
//! names, un-permuted Q/K rows and the model config (`names`). Imports run
//! `names` → `reader` → `dequant`.
pub mod dequant;
pub mod names;
pub mod reader;

pub use dequant::GgmlType;
pub use names::{LoadedGguf, RawTensor, load_llama_gguf};
pub use reader::{GgufError, GgufFile, GgufTensorInfo, GgufValue};
