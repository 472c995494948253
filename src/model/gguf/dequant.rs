//! ggml tensor element types and their dequantisation to `f32`.
//!
//! GGUF files store weights in ggml's block formats: a block packs a fixed number of elements
//! (32, or 256 for the "K" super-blocks) with one or more `f16` scales. We dequantise once, at
//! load time, because the network runs in f32/bf16 through libtorch and never sees the blocks.
//! Each decoder reproduces ggml's reference arithmetic operation by operation (same products in
//! the same order, no fused multiply-add), so results are bit-identical to ggml's and to the
//! `gguf` Python package that the fixtures come from.
//!
//! The blocks are consumed through `as_chunks::<N>()`, which hands out fixed-size arrays, so no
//! index here can go out of bounds whatever bytes the file holds.

use std::fmt;

/// Elements per "K" super-block.
const QK_K: usize = 256;

/// The element types this loader can dequantise, by name, for error messages.
pub const SUPPORTED_TYPES: &str = "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K";

/// A ggml tensor type as stored in a GGUF tensor info (`ggml_type` enum of ggml.h).
/// Variants keep ggml's spelling (`Q4_K`), which is what users see in file listings.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    BF16,
    Q8_0,
    Q4_0,
    Q4_1,
    Q4_K,
    Q6_K,
    /// Any type we do not decode; kept so a file with such tensors can still be inspected.
    Other(u32),
}

/// Why a byte slice could not be dequantised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DequantError {
    #[error("type {0} is not supported (supported: {SUPPORTED_TYPES})")]
    Unsupported(GgmlType),
    #[error("{len} bytes is not a whole number of {ty} blocks of {block_bytes} bytes")]
    Ragged {
        ty: GgmlType,
        len: usize,
        block_bytes: usize,
    },
}

impl GgmlType {
    pub fn from_id(id: u32) -> Self {
        match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            8 => GgmlType::Q8_0,
            12 => GgmlType::Q4_K,
            14 => GgmlType::Q6_K,
            30 => GgmlType::BF16,
            other => GgmlType::Other(other),
        }
    }

    pub fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q8_0 => 8,
            GgmlType::Q4_K => 12,
            GgmlType::Q6_K => 14,
            GgmlType::BF16 => 30,
            GgmlType::Other(id) => id,
        }
    }

    /// ggml's name for the type; unsupported ids known to ggml keep their names so a user
    /// reading "Q5_K" knows which re-quantisation to ask for.
    pub fn name(self) -> &'static str {
        match self.id() {
            0 => "F32",
            1 => "F16",
            2 => "Q4_0",
            3 => "Q4_1",
            6 => "Q5_0",
            7 => "Q5_1",
            8 => "Q8_0",
            9 => "Q8_1",
            10 => "Q2_K",
            11 => "Q3_K",
            12 => "Q4_K",
            13 => "Q5_K",
            14 => "Q6_K",
            15 => "Q8_K",
            16 => "IQ2_XXS",
            17 => "IQ2_XS",
            18 => "IQ3_XXS",
            19 => "IQ1_S",
            20 => "IQ4_NL",
            21 => "IQ3_S",
            22 => "IQ2_S",
            23 => "IQ4_XS",
            24 => "I8",
            25 => "I16",
            26 => "I32",
            27 => "I64",
            28 => "F64",
            29 => "IQ1_M",
            30 => "BF16",
            34 => "TQ1_0",
            35 => "TQ2_0",
            39 => "MXFP4",
            _ => "unknown",
        }
    }

    /// `(elements, bytes)` of one block, or `None` for a type we cannot decode.
    pub fn block(self) -> Option<(usize, usize)> {
        match self {
            GgmlType::F32 => Some((1, 4)),
            GgmlType::F16 | GgmlType::BF16 => Some((1, 2)),
            GgmlType::Q8_0 => Some((32, 34)),
            GgmlType::Q4_0 => Some((32, 18)),
            GgmlType::Q4_1 => Some((32, 20)),
            GgmlType::Q4_K => Some((QK_K, 144)),
            GgmlType::Q6_K => Some((QK_K, 210)),
            GgmlType::Other(_) => None,
        }
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.id())
    }
}

/// IEEE half to single precision; exact (every f16 is representable in f32).
pub fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits >> 15) << 31;
    let exp = u32::from((bits >> 10) & 0x1f);
    let mant = u32::from(bits & 0x3ff);
    match (exp, mant) {
        (0, 0) => f32::from_bits(sign),
        // Subnormal: mant * 2^-24, exact in f32.
        (0, _) => {
            let magnitude = mant as f32 * f32::from_bits(0x3380_0000);
            if sign == 0 { magnitude } else { -magnitude }
        }
        (0x1f, _) => f32::from_bits(sign | 0x7f80_0000 | (mant << 13)),
        _ => f32::from_bits(sign | ((exp + 112) << 23) | (mant << 13)),
    }
}

fn f16_at(lo: u8, hi: u8) -> f32 {
    f16_to_f32(u16::from_le_bytes([lo, hi]))
}

/// Dequantises `bytes` (a whole number of blocks of `ty`) into f32 values.
pub fn dequantize(ty: GgmlType, bytes: &[u8]) -> Result<Vec<f32>, DequantError> {
    let (elems, block_bytes) = ty.block().ok_or(DequantError::Unsupported(ty))?;
    if !bytes.len().is_multiple_of(block_bytes) {
        return Err(DequantError::Ragged {
            ty,
            len: bytes.len(),
            block_bytes,
        });
    }
    let mut out = Vec::with_capacity(bytes.len() / block_bytes * elems);
    match ty {
        GgmlType::F32 => {
            let (words, _) = bytes.as_chunks::<4>();
            out.extend(words.iter().map(|w| f32::from_le_bytes(*w)));
        }
        GgmlType::F16 => {
            let (halves, _) = bytes.as_chunks::<2>();
            out.extend(halves.iter().map(|h| f16_at(h[0], h[1])));
        }
        GgmlType::BF16 => {
            let (halves, _) = bytes.as_chunks::<2>();
            out.extend(
                halves
                    .iter()
                    .map(|h| f32::from_bits(u32::from(u16::from_le_bytes(*h)) << 16)),
            );
        }
        GgmlType::Q8_0 => bytes
            .as_chunks::<34>()
            .0
            .iter()
            .for_each(|b| q8_0(b, &mut out)),
        GgmlType::Q4_0 => bytes
            .as_chunks::<18>()
            .0
            .iter()
            .for_each(|b| q4_0(b, &mut out)),
        GgmlType::Q4_1 => bytes
            .as_chunks::<20>()
            .0
            .iter()
            .for_each(|b| q4_1(b, &mut out)),
        GgmlType::Q4_K => bytes
            .as_chunks::<144>()
            .0
            .iter()
            .for_each(|b| q4_k(b, &mut out)),
        GgmlType::Q6_K => bytes
            .as_chunks::<210>()
            .0
            .iter()
            .for_each(|b| q6_k(b, &mut out)),
        GgmlType::Other(_) => return Err(DequantError::Unsupported(ty)),
    }
    Ok(out)
}

/// `d: f16, qs: [i8; 32]`; value `q * d`.
fn q8_0(block: &[u8; 34], out: &mut Vec<f32>) {
    let d = f16_at(block[0], block[1]);
    out.extend(block[2..].iter().map(|&q| f32::from(q as i8) * d));
}

/// `d: f16, qs: [u8; 16]`; element `i < 16` is the low nibble of `qs[i]`, element `16 + i` the
/// high nibble; value `(q - 8) * d`.
fn q4_0(block: &[u8; 18], out: &mut Vec<f32>) {
    let d = f16_at(block[0], block[1]);
    let qs = &block[2..];
    out.extend(qs.iter().map(|&q| f32::from((q & 0x0f) as i8 - 8) * d));
    out.extend(qs.iter().map(|&q| f32::from((q >> 4) as i8 - 8) * d));
}

/// `d: f16, m: f16, qs: [u8; 16]`, nibbles ordered as in Q4_0; value `q * d + m`.
fn q4_1(block: &[u8; 20], out: &mut Vec<f32>) {
    let d = f16_at(block[0], block[1]);
    let m = f16_at(block[2], block[3]);
    let qs = &block[4..];
    out.extend(qs.iter().map(|&q| f32::from(q & 0x0f) * d + m));
    out.extend(qs.iter().map(|&q| f32::from(q >> 4) * d + m));
}

/// The 6-bit scale and min of sub-block `j` (0..8) from Q4_K's 12 packed bytes: sub-blocks 0..4
/// sit in the low 6 bits of bytes 0..4 (scales) and 4..8 (mins); sub-blocks 4..8 take their low
/// 4 bits from bytes 8..12 and their top 2 bits from the spare high bits of bytes 0..8.
fn q4_k_scale_min(j: usize, s: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

/// `d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128]`: eight sub-blocks of 32; each pair of
/// sub-blocks shares 32 bytes of `qs` (low nibbles first); value `d*sc * q - dmin*m`.
fn q4_k(block: &[u8; 144], out: &mut Vec<f32>) {
    let d = f16_at(block[0], block[1]);
    let dmin = f16_at(block[2], block[3]);
    let mut scales = [0u8; 12];
    scales.copy_from_slice(&block[4..16]);
    let (pairs, _) = block[16..].as_chunks::<32>();
    for (p, qs) in pairs.iter().enumerate() {
        for (half, shift) in [(0, 0u8), (1, 4u8)] {
            let (sc, m) = q4_k_scale_min(2 * p + half, &scales);
            let d1 = d * f32::from(sc);
            let m1 = dmin * f32::from(m);
            out.extend(qs.iter().map(|&q| d1 * f32::from((q >> shift) & 0x0f) - m1));
        }
    }
}

/// `ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16`. Each half of 128 elements uses 64
/// bytes of `ql` and 32 of `qh`: four groups of 32 take (low nibble of ql[l], bits 0-1 of qh[l]),
/// (low nibble of ql[l+32], bits 2-3), (high nibble of ql[l], bits 4-5), (high nibble of
/// ql[l+32], bits 6-7); the 6-bit value minus 32, times `d * scales[element / 16]`.
fn q6_k(block: &[u8; 210], out: &mut Vec<f32>) {
    let d = f16_at(block[208], block[209]);
    let (ql_all, rest) = block.split_at(128);
    let (qh_all, scales) = rest.split_at(64);
    let halves = ql_all.chunks_exact(64).zip(qh_all.chunks_exact(32));
    for (half, (ql, qh)) in halves.enumerate() {
        for group in 0..4 {
            let ql_group = &ql[32 * (group % 2)..];
            let nibble_shift = 4 * (group / 2);
            // Element index in the block is 128*half + 32*group + l; its scale is that / 16.
            let scale_base = 8 * half + 2 * group;
            for (l, (&lo, &h)) in ql_group.iter().zip(qh).enumerate() {
                let q = ((lo >> nibble_shift) & 0x0f) | (((h >> (2 * group)) & 3) << 4);
                let sc = scales.get(scale_base + l / 16).map_or(0, |&s| s as i8);
                out.push(d * f32::from(sc) * f32::from(q as i8 - 32));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_conversion_covers_every_class() {
        let cases: [(u16, f32); 8] = [
            (0x0000, 0.0),
            (0x3c00, 1.0),
            (0xc000, -2.0),
            (0x7bff, 65504.0),
            (0x0001, 5.960_464_5e-8),
            (0x03ff, 6.097_555e-5),
            (0x7c00, f32::INFINITY),
            (0xfc00, f32::NEG_INFINITY),
        ];
        for (bits, want) in cases {
            assert_eq!(f16_to_f32(bits), want, "bits {bits:#06x}");
        }
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x8000).to_bits(), 0x8000_0000);
    }

    #[test]
    fn q4_0_nibble_order_and_offset() {
        // d = 0.5; qs[0] = 0x1f: element 0 = (0xf - 8) * 0.5, element 16 = (1 - 8) * 0.5.
        let mut block = vec![0x00, 0x38, 0x1f];
        block.extend([0x88; 15]);
        let v = dequantize(GgmlType::Q4_0, &block).unwrap();
        assert_eq!(v.len(), 32);
        assert_eq!(v[0], 3.5);
        assert_eq!(v[16], -3.5);
        assert_eq!(v[1], 0.0);
    }

    #[test]
    fn q4_k_scales_unpack_high_bits() {
        let mut s = [0u8; 12];
        s[0] = 0b11_000101; // sc0 = 5, top bits of sc4 = 3
        s[4] = 0b10_000111; // m0 = 7, top bits of m4 = 2
        s[8] = 0x9a; // sc4 low = 0xa, m4 low = 0x9
        assert_eq!(q4_k_scale_min(0, &s), (5, 7));
        assert_eq!(q4_k_scale_min(4, &s), (0x3a, 0x29));
    }

    #[test]
    fn ragged_and_unsupported_are_errors() {
        assert_eq!(
            dequantize(GgmlType::Q8_0, &[0; 35]),
            Err(DequantError::Ragged {
                ty: GgmlType::Q8_0,
                len: 35,
                block_bytes: 34
            })
        );
        let err = dequantize(GgmlType::from_id(13), &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "type Q5_K (13) is not supported (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K)"
        );
    }
}
