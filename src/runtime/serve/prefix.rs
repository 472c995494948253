//! The server's prefix cache: keys and values of finished rows (prompt and reply), per
//! served model, so a request whose prompt extends one of them prefills only the rest.
//! Multi-turn episodes send exactly such prompts (each turn appends the reply and the next
//! observation), and the remote backend sends each episode to the same server for this.
//!
//! A hit takes the entry out (the row's longer sequence replaces it); past the byte budget
//! the least recently stored entries go. A budget of 0 turns the cache off.
use crate::model::kv_cache::SeqKv;

pub struct PrefixCache {
    entries: Vec<Entry>,
    bytes: usize,
    budget: usize,
    clock: u64,
}

struct Entry {
    model: String,
    seq: SeqKv,
    stored: u64,
}

impl PrefixCache {
    pub fn new(budget: usize) -> Self {
        PrefixCache {
            entries: Vec::new(),
            bytes: 0,
            budget,
            clock: 0,
        }
    }

    pub fn enabled(&self) -> bool {
        self.budget > 0
    }

    /// The longest cached sequence of `model` that `prompt` extends, taken out.
    pub fn take(&mut self, model: &str, prompt: &[u32]) -> Option<SeqKv> {
        let best = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.model == model && e.seq.extends_to(prompt))
            .max_by_key(|(_, e)| e.seq.len())
            .map(|(i, _)| i)?;
        let e = self.entries.swap_remove(best);
        self.bytes -= e.seq.bytes();
        Some(e.seq)
    }

    pub fn insert(&mut self, model: &str, seq: SeqKv) {
        if !self.enabled() || seq.is_empty() {
            return;
        }
        self.clock += 1;
        self.bytes += seq.bytes();
        self.entries.push(Entry {
            model: model.to_string(),
            seq,
            stored: self.clock,
        });
        while self.bytes > self.budget {
            let Some(oldest) = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.stored)
                .map(|(i, _)| i)
            else {
                break;
            };
            let e = self.entries.swap_remove(oldest);
            self.bytes -= e.seq.bytes();
        }
    }

    /// Drops every entry of an unloaded model.
    pub fn forget_model(&mut self, model: &str) {
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.entries)
            .into_iter()
            .partition(|e| e.model == model);
        self.bytes -= gone.iter().map(|e| e.seq.bytes()).sum::<usize>();
        self.entries = kept;
    }
}
