//! The forward passes callers run: a prefill, a decode step ending in the logits, the greedy
//! choice or a sampling shortlist, the residual stream for the fidelity tests, and the warm-up
//! that compiles every kernel they launch.

use burn::tensor::Tensor;

use super::tail::{Tail, TailOut};
use super::{GraphSlot, Llama, LogitsFor};
use crate::model::device::read_vec;
use crate::model::error::ModelError;
use crate::model::kv_cache::KvCache;
use crate::model::plan::{KvFormat, PREFILL_CHUNK, SEGMENT_KEYS};
use crate::model::top::{TopLogits, shortlist_on_device};

impl Llama {
    /// Runs `ids` (at `positions`, one each) after the tokens already in `cache`, appends
    /// their keys and values to it, and returns the logits `which` asks for, row-major
    /// `[rows, vocab]`.
    pub async fn forward(
        &self,
        ids: &[u32],
        positions: &[u64],
        cache: &mut KvCache,
        which: LogitsFor,
    ) -> Result<Vec<f32>, ModelError> {
        let out = self.forward_to(ids, positions, cache, Tail::Logits(which))?;
        out.read_logits().await
    }

    /// Like [`Llama::forward`] with [`LogitsFor::Last`], but returns only the id of the largest
    /// logit (the first on ties), found on the device: greedy decoding reads back 4 bytes a
    /// step instead of the vocabulary's logits.
    pub async fn forward_argmax(
        &self,
        ids: &[u32],
        positions: &[u64],
        cache: &mut KvCache,
    ) -> Result<u32, ModelError> {
        let out = self.forward_to(ids, positions, cache, Tail::Argmax)?;
        out.read_argmax().await
    }

    /// Like [`Llama::forward`] with [`LogitsFor::Last`], for sampling at `temperature` (> 0):
    /// the step's shortlist — its most likely logits and the normalizer, found on the device, ~1
    /// KB read back — with every logit kept on the device in case the sampler needs them.
    pub async fn forward_top(
        &self,
        ids: &[u32],
        positions: &[u64],
        cache: &mut KvCache,
        temperature: f32,
    ) -> Result<TopLogits, ModelError> {
        let out = self.forward_to(ids, positions, cache, Tail::Top(temperature))?;
        out.read_top().await
    }

    /// The forward pass and `tail` on the device: one token on the wgpu device through the
    /// cache's recorded decode step (`graph`), anything else launch by launch.
    fn forward_to(
        &self,
        ids: &[u32],
        positions: &[u64],
        cache: &mut KvCache,
        tail: Tail,
    ) -> Result<TailOut, ModelError> {
        self.check_input(ids, positions, cache)?;
        if ids.len() == 1 && self.records_steps_on(cache) {
            return self.decode_step(ids[0], positions[0], cache, tail);
        }
        let x = self.run(ids, positions, cache, None)?;
        Ok(self.tail(&x, tail))
    }

    /// Compiles every kernel variant generation runs — the first run of a kernel compiles it,
    /// seconds each on a software GPU — with a two-token prefill (the prefill tiles, the head
    /// for one token, the logits read back), one greedy step (the decode tiles and the choice
    /// on the device) and one sampled step (the shortlist), in a throwaway cache of
    /// `context_size` tokens in `format` (the attention kernels are chosen by the cache's
    /// format and size). Where the context reaches past one segment of keys, a prefill and a
    /// greedy step again after up to 512 of the cache's (zero) rows: attention in segments and
    /// their merge are other kernels, which a first decode past one segment (256 tokens on a
    /// software GPU, `KvCache::segment_keys`) would otherwise
    /// compile mid-answer (1.4 s with the q8 cache, 3.5 s with f16, SmolLM2 on lavapipe:
    /// BENCHMARKS.md, session 20). Its steps are launched, never recorded (a recording compiles
    /// nothing and costs a step).
    pub async fn warm_up(&self, context_size: usize, format: KvFormat) -> Result<(), ModelError> {
        let mut cache = self.new_cache(context_size.max(4), format)?;
        cache.decode_graph = GraphSlot::Never;
        self.prefill(&[0, 0], &mut cache).await?;
        self.forward_argmax(&[0], &[2], &mut cache).await?;
        self.forward_top(&[0], &[3], &mut cache, 1.0).await?;
        let past = (2 * SEGMENT_KEYS).min(cache.capacity().saturating_sub(3));
        if cache.is_preallocated() && past >= cache.segment_keys() {
            cache.advance(past - cache.len());
            self.prefill(&[0, 0], &mut cache).await?;
            let position = cache.len() as u64;
            self.forward_argmax(&[0], &[position], &mut cache).await?;
        }
        Ok(())
    }

    /// Runs a prompt after the tokens already in `cache` (positions continuing from
    /// `cache.len()`), in chunks of [`PREFILL_CHUNK`] tokens so a chunk's attention scores stay
    /// `[heads, chunk, context]`, and returns the last token's logits.
    pub async fn prefill(
        &self,
        prompt: &[u32],
        cache: &mut KvCache,
    ) -> Result<Vec<f32>, ModelError> {
        Ok(read_vec(self.prefill_to_head(prompt, cache).await?).await?)
    }

    /// Like [`Llama::prefill`], for sampling at `temperature` (> 0): the last token's shortlist,
    /// as [`Llama::forward_top`] gives it.
    pub async fn prefill_top(
        &self,
        prompt: &[u32],
        cache: &mut KvCache,
        temperature: f32,
    ) -> Result<TopLogits, ModelError> {
        let logits = self.prefill_to_head(prompt, cache).await?;
        shortlist_on_device(logits, &self.device, temperature).await
    }

    /// [`Llama::prefill`] up to the last token's logits, left on the device (`[1, vocab]`). The
    /// chunks before the last only fill the cache: no head, nothing read back, so the device runs
    /// them back to back (the queue stays in order; their activations are reused as they go).
    async fn prefill_to_head(
        &self,
        prompt: &[u32],
        cache: &mut KvCache,
    ) -> Result<Tensor<2>, ModelError> {
        let chunks: Vec<&[u32]> = prompt.chunks(PREFILL_CHUNK).collect();
        let Some((last, before)) = chunks.split_last() else {
            return Err(ModelError::BadInput {
                detail: "an empty prompt has no logits".into(),
            });
        };
        let positions = |cache: &KvCache, n: usize| {
            let first = cache.len() as u64;
            (first..first + n as u64).collect::<Vec<u64>>()
        };
        for chunk in before {
            let at = positions(cache, chunk.len());
            self.run(chunk, &at, cache, None)?;
        }
        let at = positions(cache, last.len());
        let x = self.run(last, &at, cache, None)?;
        Ok(self.head(&x, LogitsFor::Last))
    }

    /// Like [`Llama::forward`] with [`LogitsFor::All`], but returns the residual stream instead:
    /// `[layers + 2][tokens × width]` — the embeddings, the output of every block, and the final
    /// norm's output (the head's input). The fidelity tests compare these with HF's.
    pub async fn hidden_states(
        &self,
        ids: &[u32],
        positions: &[u64],
        cache: &mut KvCache,
    ) -> Result<Vec<Vec<f32>>, ModelError> {
        let mut trace = Vec::new();
        let last = self.run(ids, positions, cache, Some(&mut trace))?;
        trace.push(self.output_norm.forward(last));
        let mut out = Vec::with_capacity(trace.len());
        for t in trace {
            out.push(read_vec(t).await?);
        }
        Ok(out)
    }
}
