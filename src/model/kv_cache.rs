//! The key/value cache for incremental decoding, passed `&mut` into each forward.
//!
//! Buffers are pre-allocated per layer as `[B, kv_heads, capacity, head_dim]` and
//! written in place, so a decode step copies one column instead of re-concatenating
//! the whole history (growth doubles the capacity when a caller under-reserves).
//! All rows share one time axis: prompts of different lengths are LEFT-padded, and
//! a per-row key-validity mask `[B, capacity]` marks the pad columns that attention
//! must skip. Rows can be dropped or reordered (`select_rows`) so a batch shrinks
//! as episodes finish at different times.
//!
//! Across turns of a multi-turn episode, a finished row's keys and values leave the batch
//! as a compact [`SeqKv`] (its real columns only, with the token ids they encode), and the
//! next turn's batch starts from those prefixes ([`KvCache::with_prefixes`]): each row's
//! prefix sits left-aligned, the columns between it and the longest prefix are marked
//! invalid, and only the tokens appended since are prefilled.

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

/// One sequence's keys and values, compact (real tokens only): what a finished episode turn
/// leaves for the next, with the ids they encode so a caller can check a prompt extends it.
#[derive(Debug)]
pub struct SeqKv {
    /// The tokens whose keys and values are stored, in order.
    pub ids: Vec<u32>,
    keys: Vec<Tensor>,   // per layer [1, kv_heads, n, head_dim]
    values: Vec<Tensor>, // per layer [1, kv_heads, n, head_dim]
}

impl SeqKv {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Bytes held on the device.
    pub fn bytes(&self) -> usize {
        self.keys
            .iter()
            .chain(&self.values)
            .map(|t| t.numel() * t.kind().elt_size_in_bytes())
            .sum()
    }

    /// Whether `prompt` starts with these ids and is longer (one token at least is left to
    /// run, so its logits come out of the prefill).
    pub fn extends_to(&self, prompt: &[u32]) -> bool {
        prompt.len() > self.ids.len() && prompt.starts_with(&self.ids)
    }
}

impl KvCache {
    /// A cache for one row per entry of `prefixes`, each row's prefix (if any) copied into
    /// its first columns, room for `extra` columns after the longest. Columns between a
    /// row's prefix and the longest prefix are invalid (never attended to).
    pub fn with_prefixes(
        cfg: &LlamaConfig,
        prefixes: &[Option<&SeqKv>],
        extra: usize,
        kind: Kind,
        device: Device,
    ) -> Result<Self, ModelError> {
        let longest = prefixes
            .iter()
            .flatten()
            .map(|p| p.len())
            .max()
            .unwrap_or(0);
        let mut cache = KvCache::new(cfg, prefixes.len(), longest + extra, kind, device);
        if longest == 0 {
            return Ok(cache);
        }
        for (row, prefix) in prefixes.iter().enumerate() {
            let Some(p) = prefix.filter(|p| !p.is_empty()) else {
                continue;
            };
            if p.keys.len() != cache.keys.len() {
                return Err(ModelError::BadInput {
                    what: "cached prefix layers",
                    expected: cache.keys.len().to_string(),
                    found: vec![p.keys.len() as i64],
                });
            }
            let (r, n) = (row as i64, p.len() as i64);
            for (buf, src) in cache.keys.iter().zip(&p.keys) {
                buf.narrow(0, r, 1).narrow(2, 0, n).f_copy_(src)?;
            }
            for (buf, src) in cache.values.iter().zip(&p.values) {
                buf.narrow(0, r, 1).narrow(2, 0, n).f_copy_(src)?;
            }
            let _ = cache.key_valid.narrow(0, r, 1).narrow(1, 0, n).fill_(1);
        }
        cache.len = longest;
        cache.padded = prefixes.iter().any(|p| p.map_or(0, |p| p.len()) != longest);
        Ok(cache)
    }

    /// Row `row`'s real columns as a compact [`SeqKv`] encoding `ids` (their count must be
    /// the row's number of valid columns).
    pub fn row_seq(&self, row: usize, ids: Vec<u32>) -> Result<SeqKv, ModelError> {
        let r = row as i64;
        let valid = self.key_valid().narrow(0, r, 1).squeeze_dim(0); // [len]
        let cols = valid.f_nonzero()?.squeeze_dim(1); // [n]
        let n = cols.size()[0];
        if n != ids.len() as i64 {
            return Err(ModelError::BadInput {
                what: "cached row length",
                expected: ids.len().to_string(),
                found: vec![n],
            });
        }
        let take = |bufs: &[Tensor]| -> Result<Vec<Tensor>, ModelError> {
            bufs.iter()
                .map(|b| Ok(b.narrow(0, r, 1).f_index_select(2, &cols)?))
                .collect()
        };
        Ok(SeqKv {
            keys: take(&self.keys)?,
            values: take(&self.values)?,
            ids,
        })
    }
}
