//! What a forward pass ends with on the device, after the blocks: the head's logits, and for
//! generation the kernel that reads them there (the greedy choice, or sampling's shortlist), so
//! that a recorded decode step (`graph`) can include them and nothing is allocated between its
//! replays.

use burn::tensor::{Int, Tensor};

use super::{Llama, LogitsFor};
use crate::model::argmax::{argmax, argmax_launch};
use crate::model::device::{DeviceChoice, read_vec};
use crate::model::error::ModelError;
use crate::model::top::{Shortlist, TopLogits, read_top, shortlist_launch};

/// The end of a forward pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Tail {
    /// The head's logits for the tokens asked for.
    Logits(LogitsFor),
    /// The last token's greedy choice.
    Argmax,
    /// The last token's shortlist for sampling at this temperature (> 0).
    Top(f32),
}

/// A [`Tail`]'s tensors on the device.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one a step, moved once: not worth a box
pub(super) enum TailOut {
    /// `[rows, vocab]` logits (on the CPU device, also for the other tails: it chooses on the
    /// host).
    Logits(Tensor<2>),
    /// `[1]`: the chosen id.
    Argmax(Tensor<1, Int>),
    /// The last token's logits and their shortlist's words.
    Top {
        /// `[1, vocab]`.
        logits: Tensor<2>,
        /// The shortlist kernel's output.
        words: Tensor<1, Int>,
    },
}

impl Llama {
    /// Launches `tail` over the residual stream `x`.
    pub(super) fn tail(&self, x: &Tensor<2>, tail: Tail) -> TailOut {
        let on_gpu = self.device.choice() == DeviceChoice::Wgpu;
        match tail {
            Tail::Logits(which) => TailOut::Logits(self.head(x, which)),
            Tail::Argmax if on_gpu => TailOut::Argmax(argmax_launch(self.head(x, LogitsFor::Last))),
            Tail::Top(temperature) if on_gpu => {
                let logits = self.head(x, LogitsFor::Last);
                let words = shortlist_launch(&logits, temperature);
                TailOut::Top { logits, words }
            }
            Tail::Argmax | Tail::Top(_) => TailOut::Logits(self.head(x, LogitsFor::Last)),
        }
    }
}

impl TailOut {
    /// The logits, read back (`[rows, vocab]` row-major).
    pub(super) async fn read_logits(self) -> Result<Vec<f32>, ModelError> {
        let logits = match self {
            TailOut::Logits(logits) | TailOut::Top { logits, .. } => logits,
            TailOut::Argmax(_) => return Err(no_such_output("logits")),
        };
        Ok(read_vec(logits).await?)
    }

    /// The greedy choice, read back (4 bytes; the CPU device's logits whole).
    pub(super) async fn read_argmax(self) -> Result<u32, ModelError> {
        match self {
            TailOut::Argmax(id) => Ok(read_vec::<u32, 1, Int>(id).await?[0]),
            other => Ok(argmax(&other.read_logits().await?)),
        }
    }

    /// The shortlist, read back, the logits kept on the device (the CPU device: no shortlist).
    pub(super) async fn read_top(self) -> Result<TopLogits, ModelError> {
        match self {
            TailOut::Top { logits, words } => read_top(logits, words).await,
            TailOut::Logits(logits) => Ok(TopLogits::new(Shortlist::default(), logits)),
            TailOut::Argmax(_) => Err(no_such_output("shortlist")),
        }
    }
}

/// The error for reading what a greedy step's tail did not compute (a bug of ours).
fn no_such_output(what: &str) -> ModelError {
    ModelError::BadInput {
        detail: format!("a greedy step computes no {what}"),
    }
}
