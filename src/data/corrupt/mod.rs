//! Synthetic bugs (DESIGN §3): seeded corruption of a correct Python program by 1–5
//! random operators, as in the Chain-of-Edits paper.
//!
//! Line operators edit whole lines; token operators edit one token span found by a small
//! per-line Python tokenizer that knows strings (also triple-quoted ones spanning lines) and
//! comments, so no edit ever lands inside a literal or a comment and every edit sits on token
//! boundaries. Each operator first lists the places where it applies ("sites"); an operator
//! with no site is skipped, so the operator is drawn uniformly among the applicable ones and
//! the result depends only on the rng state. Whether a corruption actually breaks a test is
//! not decided here: the generator runs the tests and keeps only failing programs.
//!
//! The tokenizer (`pytok`) and the site finders (`sites`) are submodules with their own
//! imports; each lives in a file of its own.

use std::collections::BTreeSet;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::env::buffer::Buffer;

mod operator;
mod pytok;
mod sites;

pub use operator::Operator;

pub(crate) use pytok::code_tokens;
use pytok::{Program, indent_of};
use sites::token_sites;

/// A buggy program and the operators that made it, in the order applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    /// Normalised like `Buffer::to_code` (LF line ends, final newline).
    pub buggy: String,
    pub operators: Vec<&'static str>,
}

/// How many operators to apply and which ones may be drawn (duplicates count once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorruptConfig {
    pub min_ops: usize,
    pub max_ops: usize,
    pub operators: Vec<Operator>,
}

impl Default for CorruptConfig {
    fn default() -> Self {
        CorruptConfig {
            min_ops: 1,
            max_ops: 5,
            operators: Operator::ALL.to_vec(),
        }
    }
}

/// Applies between `min_ops` and `max_ops` operators (a `min_ops` of 0 counts as 1, a `max_ops`
/// below `min_ops` as `min_ops`). `donors` are lines of other programs, re-indented to where they
/// land. `None` when no operator applies or the edits cancel out.
pub fn corrupt(
    code: &str,
    donors: &[&str],
    cfg: &CorruptConfig,
    rng: &mut impl Rng,
) -> Option<Corruption> {
    let original = Buffer::from_code(code);
    let mut lines = original.lines().to_vec();
    let donors: Vec<&str> = donors
        .iter()
        .map(|d| d.trim())
        .filter(|d| !d.is_empty() && !d.starts_with('#') && !d.contains(['\n', '\r']))
        .collect();
    let mut ops: Vec<Operator> = Vec::new();
    for op in &cfg.operators {
        if !ops.contains(op) {
            ops.push(*op);
        }
    }
    let lo = cfg.min_ops.max(1);
    let count = rng.random_range(lo..=cfg.max_ops.max(lo));
    let mut applied = Vec::new();
    for _ in 0..count {
        let mut pool = ops.clone();
        while !pool.is_empty() {
            let op = pool.remove(rng.random_range(0..pool.len()));
            if let Some(next) = apply(op, &lines, &donors, rng).filter(|next| *next != lines) {
                lines = next;
                applied.push(op.name());
                break;
            }
        }
    }
    let mut buggy = lines.join("\n");
    if !lines.is_empty() {
        buggy.push('\n');
    }
    let buggy_buffer = Buffer::from_code(&buggy);
    (!applied.is_empty() && buggy_buffer != original).then(|| Corruption {
        buggy: buggy_buffer.to_code(),
        operators: applied,
    })
}

fn pick<'a, T, R: Rng + ?Sized>(rng: &mut R, items: &'a [T]) -> Option<&'a T> {
    if items.is_empty() {
        None
    } else {
        items.get(rng.random_range(0..items.len()))
    }
}

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// The indentation a line inserted at `pos` should take: that of the next non-blank line
/// (the block it joins), else of the last one.
fn indent_at(lines: &[String], pos: usize) -> &str {
    let below = lines.iter().skip(pos).find(|l| !is_blank(l));
    let above = || lines.iter().take(pos).rev().find(|l| !is_blank(l));
    below.or_else(above).map_or("", |l| indent_of(l))
}

/// The program after `op`, or `None` when `op` has no site.
fn apply<R: Rng + ?Sized>(
    op: Operator,
    lines: &[String],
    donors: &[&str],
    rng: &mut R,
) -> Option<Vec<String>> {
    let mut out = lines.to_vec();
    let nonblank: Vec<usize> = (0..lines.len()).filter(|&i| !is_blank(&lines[i])).collect();
    match op {
        Operator::DeleteLine => {
            out.remove(*pick(rng, &nonblank)?);
        }
        Operator::DuplicateLine => {
            let i = *pick(rng, &nonblank)?;
            out.insert(i + 1, lines[i].clone());
        }
        Operator::SwapLines => {
            let pairs: Vec<usize> = (1..lines.len())
                .filter(|&i| !is_blank(&lines[i - 1]) && !is_blank(&lines[i]))
                .filter(|&i| lines[i - 1] != lines[i])
                .collect();
            let i = *pick(rng, &pairs)?;
            out.swap(i - 1, i);
        }
        Operator::Reindent => {
            let i = *pick(rng, &nonblank)?;
            let dedent = lines[i]
                .strip_prefix("    ")
                .filter(|_| rng.random_bool(0.5));
            out[i] = dedent.map_or_else(|| format!("    {}", lines[i]), str::to_owned);
        }
        Operator::InsertDonorLine => {
            let donor = *pick(rng, donors)?;
            let pos = rng.random_range(0..=lines.len());
            out.insert(pos, format!("{}{donor}", indent_at(lines, pos)));
        }
        Operator::ReplaceWithDonorLine => {
            let distinct: BTreeSet<&str> = donors.iter().copied().collect();
            let targets: Vec<usize> = nonblank
                .iter()
                .copied()
                .filter(|&i| distinct.iter().any(|d| *d != lines[i].trim()))
                .collect();
            let i = *pick(rng, &targets)?;
            let fitting: Vec<&str> = donors
                .iter()
                .copied()
                .filter(|d| *d != lines[i].trim())
                .collect();
            out[i] = format!("{}{}", indent_of(&lines[i]), pick(rng, &fitting)?);
        }
        _ => {
            let sites = token_sites(op, &Program::new(lines));
            let site = pick(rng, &sites)?;
            let choice = pick(rng, &site.choices)?;
            let line = lines.get(site.line)?;
            out[site.line] = format!(
                "{}{choice}{}",
                line.get(..site.start)?,
                line.get(site.end..)?
            );
        }
    }
    Some(out)
}
