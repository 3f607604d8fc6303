//! Sampling's shortlist, found on the device: a decode step's most likely logits in the host
//! sampler's order, and the softmax normalizer over the whole vocabulary. A sampled step then
//! reads back ~1 KB instead of every logit (513 KB for Llama 3.1's vocabulary), and the host
//! sorts 128 entries instead of 128k; it reads the logits back only when the draw needs more.
//!
//! One cube of 256 units. Each scans a strided share of the logits, keeping its five most likely
//! (larger logit first, then lower id: the host's order) and summing `exp((l − its max) / T)`.
//! The kept entries go to shared memory, and a tree finds the largest logit, the whole sum and
//! the *bound*: the best of the worst kept entries of the units that left some out. A kept
//! entry not after the bound is **certain** — nothing left out comes before it, so the certain
//! entries are exactly the vocabulary's first ones in order. Each certain entry counts the kept
//! entries before it (its rank) and the first [`TOP`](kernels::TOP) write themselves out. With
//! the likely tokens spread over the units, ~250 are certain (the rank where some unit first
//! holds more than five); a unit holding many of the best only makes the shortlist shorter.

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Dispatch, backend_extension};
use burn::tensor::{Int, Tensor};
use burn_cubecl::CubeBackend;
use cubecl::prelude::*;

use super::argmax::one_cube_over_logits;
use super::device::{ComputeDevice, DeviceChoice, read_vec};
use super::error::ModelError;

mod kernels;
#[cfg(test)]
mod tests;

/// The kernel as a Burn backend extension.
#[backend_extension(Cube)]
pub(crate) trait ShortlistOps: burn::backend::Backend {
    /// `[HEADER + 2 · TOP]` words laid out as [`kernels::shortlist_kernel`] writes them.
    fn shortlist(logits: FloatTensor<Self>, inv_temperature: f32) -> IntTensor<Self>;
}

impl ShortlistOps for CubeBackend {
    fn shortlist(logits: FloatTensor<Self>, inv_temperature: f32) -> IntTensor<Self> {
        let words = (kernels::HEADER + 2 * kernels::TOP) as usize;
        let (logits, len, out) = one_cube_over_logits(logits, words);
        kernels::shortlist_kernel::launch(
            &logits.client.clone(),
            CubeCount::Static(1, 1, 1),
            CubeDim::new_1d(kernels::UNITS),
            logits.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            len,
            inv_temperature,
        );
        out
    }
}

/// A step's most likely logits in the host sampler's order (larger logit, then lower id), and
/// what the sampler needs to draw from them exactly.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Shortlist {
    /// `(id, logit)`: exactly the vocabulary's first entries in that order (empty when the
    /// device found none, or a logit was not finite).
    pub top: Vec<(u32, f32)>,
    /// Whether `top` is the whole vocabulary.
    pub whole: bool,
    /// `Σ exp((l − max) / temperature)` over the whole vocabulary, summed in f32 on the device.
    pub total: f64,
    /// A bound on `total`'s relative error: the sampler reads every logit rather than decide
    /// anything closer than this.
    pub margin: f64,
}

impl Shortlist {
    /// What the device gives for `logits` at `temperature`, computed on the host from every
    /// logit (the kernel's reference): the first `len` in the sampler's order, the total in f64
    /// (margin 0); empty if a logit is not finite.
    pub fn from_logits(logits: &[f32], temperature: f32, len: usize) -> Self {
        if logits.iter().any(|l| !l.is_finite()) {
            return Self::default();
        }
        let mut top: Vec<(u32, f32)> = (0..logits.len() as u32)
            .zip(logits.iter().copied())
            .collect();
        top.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let max = top.first().map_or(0.0, |t| t.1 as f64);
        let total = logits
            .iter()
            .map(|&l| ((l as f64 - max) / temperature as f64).exp())
            .sum();
        top.truncate(len);
        Self {
            whole: top.len() == logits.len(),
            top,
            total,
            margin: 0.0,
        }
    }
}

/// A step's [`Shortlist`], with its logits kept on the device for when the sampler needs them
/// all.
#[derive(Debug)]
pub struct TopLogits {
    /// The shortlist.
    pub shortlist: Shortlist,
    logits: Tensor<2>,
}

impl TopLogits {
    /// A shortlist with the logits it was found in.
    pub(crate) fn new(shortlist: Shortlist, logits: Tensor<2>) -> Self {
        Self { shortlist, logits }
    }

    /// Reads every logit back (`[vocab]`).
    pub async fn read_all(self) -> Result<Vec<f32>, ModelError> {
        Ok(read_vec(self.logits).await?)
    }
}

/// The shortlist of `logits` (`[1, vocab]`) for sampling at `temperature` (> 0), found by our
/// kernel on the wgpu device (one launch, `4 · (HEADER + 2 · TOP)` bytes read back); empty on
/// the CPU device, which has no CubeCL runtime (its sampler reads every logit, as before).
pub(crate) async fn shortlist_on_device(
    logits: Tensor<2>,
    device: &ComputeDevice,
    temperature: f32,
) -> Result<TopLogits, ModelError> {
    match device.choice() {
        DeviceChoice::Cpu => Ok(TopLogits {
            shortlist: Shortlist::default(),
            logits,
        }),
        DeviceChoice::Wgpu => {
            let words = shortlist_launch(&logits, temperature);
            read_top(logits, words).await
        }
    }
}

/// Launches the shortlist kernel over `logits` (`[1, vocab]`, wgpu) at `temperature`: its
/// words, for [`read_top`].
pub(crate) fn shortlist_launch(logits: &Tensor<2>, temperature: f32) -> Tensor<1, Int> {
    Tensor::from_dispatch(<Dispatch as ShortlistOps>::shortlist(
        logits.clone().into_dispatch(),
        1.0 / temperature,
    ))
}

/// Reads the shortlist [`shortlist_launch`] wrote for `logits`.
pub(crate) async fn read_top(
    logits: Tensor<2>,
    words: Tensor<1, Int>,
) -> Result<TopLogits, ModelError> {
    let vocab = logits.dims()[1];
    let shortlist = read_shortlist(&read_vec::<u32, 1, Int>(words).await?, vocab);
    Ok(TopLogits { shortlist, logits })
}

/// The [`Shortlist`] in the kernel's words, for a vocabulary of `vocab` logits.
fn read_shortlist(words: &[u32], vocab: usize) -> Shortlist {
    let (header, top_len) = (kernels::HEADER as usize, kernels::TOP as usize);
    let certain = words[0] as usize;
    if words[1] != 0 || certain == 0 {
        return Shortlist::default();
    }
    let len = certain.min(top_len);
    let top = (0..len)
        .map(|r| {
            let value = f32::from_bits(words[header + top_len + r]);
            (words[header + r], value)
        })
        .collect();
    Shortlist {
        top,
        whole: len == vocab,
        total: f32::from_bits(words[3]) as f64,
        margin: total_margin(vocab),
    }
}

/// A bound on the relative error of the kernel's f32 sum over `vocab` logits, with room to
/// spare: each unit adds `⌈vocab / 256⌉` terms in turn (at most that many roundings of the
/// sum, ~`2⁻²⁴` each), `exp` is within a few ulps where a term matters, and the tree rescales
/// eight times.
fn total_margin(vocab: usize) -> f64 {
    let per_unit = vocab.div_ceil(kernels::UNITS as usize) as f64;
    (2.0 * per_unit + 64.0) * f64::powi(2.0, -23)
}
