//! The key/value cache for incremental decoding, passed `&mut` into each forward.
//!
//! Buffers are pre-allocated per layer as `[B, kv_heads, capacity, head_dim]` and
//! written in place, so a decode step copies one column instead of re-concatenating
//! the whole history (growth doubles the capacity when a caller under-reserves).
//! All rows share one time axis: prompts of different lengths are LEFT-padded, and
//! a per-row key-validity mask `[B, capacity]` marks the pad columns that attention
//! must skip. Rows can be dropped or reordered (`select_rows`) so a batch shrinks
//! as episodes finish at different times.

use tch::{Device, Kind, Tensor};

use crate::model::config::LlamaConfig;
use crate::model::error::ModelError;

#[derive(Debug)]
pub struct KvCache {
    keys: Vec<Tensor>,   // per layer [B, kv_heads, capacity, head_dim]
    values: Vec<Tensor>, // per layer [B, kv_heads, capacity, head_dim]
    key_valid: Tensor,   // [B, capacity] bool; true = real token
    padded: bool,
    len: usize,
    capacity: usize,
    batch: usize,
}

impl KvCache {
    /// An empty cache for `batch` rows with room for `capacity` positions.
    pub fn new(
        cfg: &LlamaConfig,
        batch: usize,
        capacity: usize,
        kind: Kind,
        device: Device,
    ) -> Self {
        let capacity = capacity.max(1);
        let shape = [
            batch as i64,
            cfg.kv_heads() as i64,
            capacity as i64,
            cfg.head_dim() as i64,
        ];
        let alloc = || Tensor::zeros(shape, (kind, device));
        KvCache {
            keys: (0..cfg.num_hidden_layers).map(|_| alloc()).collect(),
            values: (0..cfg.num_hidden_layers).map(|_| alloc()).collect(),
            key_valid: Tensor::zeros([batch as i64, capacity as i64], (Kind::Bool, device)),
            padded: false,
            len: 0,
            capacity,
            batch,
        }
    }

    /// Number of positions stored (padding columns included).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn batch_size(&self) -> usize {
        self.batch
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn num_layers(&self) -> usize {
        self.keys.len()
    }

    /// Whether any appended chunk carried a padding mask; if not, attention needs no
    /// key mask at all (the common unpadded decode path skips building one).
    pub fn is_padded(&self) -> bool {
        self.padded
    }

    /// Validity of every stored key column, `[B, len]`.
    pub fn key_valid(&self) -> Tensor {
        self.key_valid.narrow(1, 0, self.len as i64)
    }

    /// Claims `t` new columns (growing the buffers if needed), records their
    /// validity (`mask` `[B, t]`, nonzero = real; `None` = all real) and returns the
    /// first new column. Layers then fill the columns with [`KvCache::store`].
    pub(crate) fn reserve(&mut self, t: usize, mask: Option<&Tensor>) -> Result<usize, ModelError> {
        if self.len + t > self.capacity {
            self.grow((self.len + t).max(self.capacity * 2))?;
        }
        let start = self.len;
        let mut cols = self.key_valid.narrow(1, start as i64, t as i64); // [B, t]
        match mask {
            Some(m) => {
                cols.f_copy_(&m.f_ne(0)?)?;
                self.padded = true;
            }
            None => {
                let _ = cols.fill_(1);
            }
        }
        self.len += t;
        Ok(start)
    }

    /// Writes one layer's new keys/values `[B, kv_heads, t, head_dim]` at `start`
    /// and returns views of everything stored so far, `[B, kv_heads, len, head_dim]`.
    pub(crate) fn store(
        &mut self,
        layer: usize,
        start: usize,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<(Tensor, Tensor), ModelError> {
        let (Some(kbuf), Some(vbuf)) = (self.keys.get(layer), self.values.get(layer)) else {
            return Err(ModelError::BadInput {
                what: "KV cache layer",
                expected: format!("< {}", self.keys.len()),
                found: vec![layer as i64],
            });
        };
        let t = k.size()[2];
        kbuf.narrow(2, start as i64, t).f_copy_(k)?;
        vbuf.narrow(2, start as i64, t).f_copy_(v)?;
        let len = self.len as i64;
        Ok((kbuf.narrow(2, 0, len), vbuf.narrow(2, 0, len)))
    }

    /// Keeps only `rows` (indices into the current batch), in that order: drop the
    /// rows of finished sequences or reorder for beam-like schemes.
    pub fn select_rows(&mut self, rows: &[usize]) -> Result<(), ModelError> {
        if let Some(&bad) = rows.iter().find(|&&r| r >= self.batch) {
            return Err(ModelError::BadInput {
                what: "KV cache row",
                expected: format!("< {}", self.batch),
                found: vec![bad as i64],
            });
        }
        let idx: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
        let idx = Tensor::from_slice(&idx).to_device(self.key_valid.device());
        for t in self.keys.iter_mut().chain(self.values.iter_mut()) {
            *t = t.f_index_select(0, &idx)?;
        }
        self.key_valid = self.key_valid.f_index_select(0, &idx)?;
        self.batch = rows.len();
        Ok(())
    }

    fn grow(&mut self, new_capacity: usize) -> Result<(), ModelError> {
        let len = self.len as i64;
        for t in self.keys.iter_mut().chain(self.values.iter_mut()) {
            let mut shape = t.size();
            shape[2] = new_capacity as i64;
            let bigger = Tensor::f_zeros(&shape, (t.kind(), t.device()))?;
            bigger.narrow(2, 0, len).f_copy_(&t.narrow(2, 0, len))?;
            *t = bigger;
        }
        let bigger = Tensor::f_zeros(
            [self.batch as i64, new_capacity as i64],
            (Kind::Bool, self.key_valid.device()),
        )?;
        bigger
            .narrow(1, 0, len)
            .f_copy_(&self.key_valid.narrow(1, 0, len))?;
        self.key_valid = bigger;
        self.capacity = new_capacity;
        Ok(())
    }
}
