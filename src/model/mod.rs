//! The policy network (DESIGN §4): Llama on libtorch, GGUF and safetensors
//! loaders, the tokenizer, chat formats, KV cache, sampling and LoRA.
pub mod blocks;
pub mod chat;
pub mod config;
pub mod error;
pub mod fused;
pub mod generate;
pub mod gguf;
pub mod kv_cache;
pub mod llama;
pub mod loader;
pub mod lora;
pub mod rope;
pub mod safetensors_io;
pub mod sampling;
pub mod tiny;
pub mod tokenizer;
pub mod weights;
