//! Rotary position embedding tables, computed on the host exactly as HF transformers does.
//!
//! GGUF stores Q and K rows permuted so that each rotated pair is adjacent, `(2j, 2j+1)`
//! (ggml's normal RoPE), where HF rotates `(j, j + hd/2)`; the pair, its angle and the
//! arithmetic are the same, so the results are too. Pair `j` at position `p` turns by
//! `p · θ_j`, `θ_j = base^(-2j/hd) / rope_freqs[j]` (llama3 scaling lives in the
//! `rope_freqs.weight` tensor, not in metadata).
//!
//! The angle is rounded to f32 before its cosine is taken, as HF does: at position 100 000 one
//! f32 ulp of the angle is 0.008 rad, so computing it more precisely would *not* match.

/// The per-pair inverse frequencies of one model.
#[derive(Debug, Clone, PartialEq)]
pub struct RopeTable {
    inv_freq: Vec<f32>,
}

impl RopeTable {
    /// `head_dim / 2` inverse frequencies for `base` (`rope_theta`), each divided by its llama3
    /// factor when `factors` (the `rope_freqs.weight` values) are given. Computed in f32 in
    /// HF's order: `1 / base^(2j / hd)`, then `/ factor`.
    pub fn new(head_dim: usize, base: f64, factors: Option<&[f32]>) -> Self {
        let base = base as f32;
        let inv_freq = (0..head_dim / 2)
            .map(|j| {
                let exponent = (2 * j) as f32 / head_dim as f32;
                let inv = 1.0f32 / base.powf(exponent);
                match factors {
                    Some(f) => inv / f[j],
                    None => inv,
                }
            })
            .collect();
        Self { inv_freq }
    }

    /// The inverse frequencies, one per rotated pair.
    pub fn inv_freq(&self) -> &[f32] {
        &self.inv_freq
    }

    /// The angles the kernels take for `positions`: `[2, positions.len(), head_dim / 2]`
    /// row-major, the cosines then the sines ([`RopeTable::cos_sin`]).
    pub(crate) fn angles(&self, positions: &[u64]) -> Vec<f32> {
        let (mut angles, sin) = self.cos_sin(positions);
        angles.extend(sin);
        angles
    }

    /// Cosines and sines for `positions`, each `[positions.len(), head_dim / 2]` row-major.
    pub fn cos_sin(&self, positions: &[u64]) -> (Vec<f32>, Vec<f32>) {
        let n = positions.len() * self.inv_freq.len();
        let (mut cos, mut sin) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for &p in positions {
            for &inv in &self.inv_freq {
                let angle = (p as f32 * inv) as f64;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        (cos, sin)
    }
}
