//! The Llama forward pass on Burn tensors, written once for every device.
//!
//! One sequence at a time: activations are `[tokens, width]`, attention `[heads, tokens,
//! head_dim]`. The arithmetic follows HF transformers' `LlamaForCausalLM` (eager attention, f32)
//! step by step, which is what the fixtures' goldens were computed with.

use burn::tensor::{DType, Int, Tensor, TensorData};

use crate::gguf::{ByteSource, GgufHeader};

use super::attention::{StepInputs, attend, causal_mask, step_info};
use super::config::LlamaConfig;
use super::device::{ComputeDevice, read_vec};
use super::error::ModelError;
use super::kv_cache::KvCache;
use super::plan::{KvFormat, PREFILL_CHUNK, SEGMENT_KEYS};
use super::project::{Epilogue, RmsNorm, project};
use super::rope::RopeTable;
use super::top::{TopLogits, shortlist_on_device};
use super::weights::{HostEmbedding, Linear, LoadProgress, TensorLoader};
use tail::{Tail, TailOut};

mod graph;
mod stages;
mod tail;
pub(crate) use graph::GraphSlot;
pub use stages::StageTime;

/// Which positions' logits a forward pass returns (and which tokens a projection runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogitsFor {
    /// Every input token's (`[tokens, vocab]`), as `llama-web logits` prints them.
    All,
    /// Only the last token's (`[1, vocab]`), all that generation needs.
    Last,
}

/// One transformer block's weights.
#[derive(Debug, Clone)]
struct Block {
    attn_norm: RmsNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    ffn_norm: RmsNorm,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// Per-call inputs every block shares.
struct Step<'a> {
    /// `[2, tokens, head_dim/2]`: the cosines, then the sines, of each token's angles.
    angles: Tensor<3>,
    /// `[1, tokens, cached + tokens]` additive causal mask, for the CPU path's attention
    /// (`None` for a single token, and on the wgpu device whose kernels need none).
    mask: Option<Tensor<3>>,
    /// The attention kernels' step parameters on the device (the preallocated cache's).
    info: Option<Tensor<1, Int>>,
    config: &'a LlamaConfig,
}

impl Step<'_> {
    /// What attention takes besides the cache.
    fn attention_inputs(&self) -> StepInputs<'_> {
        StepInputs {
            mask: self.mask.as_ref(),
            info: self.info.as_ref(),
        }
    }
}

/// A loaded Llama model on one device.
#[derive(Debug, Clone)]
pub struct Llama {
    config: LlamaConfig,
    device: ComputeDevice,
    rope: RopeTable,
    embedding: HostEmbedding,
    blocks: Vec<Block>,
    output_norm: RmsNorm,
    /// The head (the embedding table again, on the device, when they are tied).
    output: Linear,
    /// A number no other model loaded in this process has (its clones share it): a recorded
    /// decode step replays only with the weights it was recorded with.
    identity: u64,
}

impl Llama {
    /// Reads the hyper-parameters and uploads every weight to `device`, one tensor at a time
    /// (each fetched through [`ByteSource::fetch`]: in the browser, one HTTP Range request, so
    /// the whole file is never in memory), calling `on_progress` after each.
    pub async fn load(
        header: &GgufHeader,
        source: &impl ByteSource,
        device: &ComputeDevice,
        on_progress: &mut dyn FnMut(LoadProgress),
    ) -> Result<Self, ModelError> {
        let config = LlamaConfig::from_gguf(header)?;
        let mut loader = TensorLoader::new(header, source, &config, device, on_progress);
        let eps = config.rms_eps;

        let factors = match config.rope_freqs {
            true => Some(loader.host_vector("rope_freqs.weight").await?),
            false => None,
        };
        let rope = RopeTable::new(config.head_dim, config.rope_theta, factors.as_deref());
        let (embd_info, embd_bytes) = loader.read_bytes("token_embd.weight").await?;
        let tied_head = match config.tied_embeddings {
            true => Some(loader.linear_from(embd_info, &embd_bytes)?),
            false => None,
        };
        let embedding = HostEmbedding::new(embd_info, embd_bytes);
        // The head first: it is the largest matrix, and the GPU allocator sizes its pages by
        // the largest allocation so far, so the blocks' matrices then fill those pages.
        let output_norm = RmsNorm {
            weight: loader.vector("output_norm.weight").await?,
            eps,
        };
        let output = match tied_head {
            Some(head) => head,
            None => loader.linear("output.weight").await?,
        };
        let mut blocks = Vec::with_capacity(config.n_layers);
        for i in 0..config.n_layers {
            blocks.push(Block::load(&mut loader, i, eps).await?);
        }
        Ok(Self {
            config,
            device: device.clone(),
            rope,
            embedding,
            blocks,
            output_norm,
            output,
            identity: graph::next_model_identity(),
        })
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// The device the weights live on.
    pub fn device(&self) -> &ComputeDevice {
        &self.device
    }

    /// Bytes the weights take on the device: the file's bytes (and the last superblock's padding)
    /// for block-quantized matrices (wgpu), 4 per element for dense ones and the norms. The
    /// embedding table is on the host.
    pub fn weight_bytes(&self) -> u64 {
        let norms = |n: &RmsNorm| n.weight.shape().num_elements() as u64 * 4;
        let blocks: u64 = self
            .blocks
            .iter()
            .map(|b| {
                [&b.q, &b.k, &b.v, &b.o, &b.gate, &b.up, &b.down]
                    .iter()
                    .map(|l| l.device_bytes())
                    .sum::<u64>()
                    + norms(&b.attn_norm)
                    + norms(&b.ffn_norm)
            })
            .sum();
        blocks + self.output.device_bytes() + norms(&self.output_norm)
    }

    /// Bytes of weights kept on the host (the token-embedding table, in the file's format).
    pub fn host_weight_bytes(&self) -> u64 {
        self.embedding.host_bytes()
    }

    /// A fresh cache for this model holding up to `context_size` tokens in `format` (the
    /// CPU device holds f32 only; on the wgpu device every row is allocated now).
    pub fn new_cache(&self, context_size: usize, format: KvFormat) -> Result<KvCache, ModelError> {
        KvCache::new(&self.config, context_size, format, &self.device)
    }

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
        if ids.len() == 1 && self.device.decode_graphs() && cache.is_preallocated() {
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
    /// their merge are other kernels, which a first decode past 256 tokens would otherwise
    /// compile mid-answer (1.4 s with the q8 cache, 3.5 s with f16, SmolLM2 on lavapipe:
    /// BENCHMARKS.md, session 20).
    pub async fn warm_up(&self, context_size: usize, format: KvFormat) -> Result<(), ModelError> {
        let mut cache = self.new_cache(context_size.max(4), format)?;
        self.prefill(&[0, 0], &mut cache).await?;
        self.forward_argmax(&[0], &[2], &mut cache).await?;
        self.forward_top(&[0], &[3], &mut cache, 1.0).await?;
        let past = (2 * SEGMENT_KEYS).min(cache.capacity().saturating_sub(3));
        if cache.is_preallocated() && past >= SEGMENT_KEYS {
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

    /// The forward pass up to the final norm (the residual stream after the last block);
    /// `trace` collects the residual stream before each block.
    fn run(
        &self,
        ids: &[u32],
        positions: &[u64],
        cache: &mut KvCache,
        mut trace: Option<&mut Vec<Tensor<2>>>,
    ) -> Result<Tensor<2>, ModelError> {
        self.check_input(ids, positions, cache)?;
        let n = ids.len();
        // A recording keeps the pages it touched from other allocations: let this run's
        // activations have them (the next decode step records again, for the cost of its launches).
        cache.decode_graph.release();
        let x = self.embedding.lookup(ids, &self.device)?;
        let step = self.step(positions, cache);
        let x = self.blocks(x, &step, cache, trace.as_deref_mut());
        cache.advance(n);
        if let Some(t) = trace {
            t.push(x.clone());
        }
        Ok(x)
    }

    /// Every block over the residual stream `x` (`trace` collects it before each block); the
    /// cache's length is not advanced.
    fn blocks(
        &self,
        mut x: Tensor<2>,
        step: &Step,
        cache: &mut KvCache,
        mut trace: Option<&mut Vec<Tensor<2>>>,
    ) -> Tensor<2> {
        for (layer, block) in self.blocks.iter().enumerate() {
            if let Some(t) = trace.as_deref_mut() {
                t.push(x.clone());
            }
            x = block.attention(&x, layer, cache, step);
            x = block.mlp(&x);
        }
        x
    }

    /// The inputs every block shares for tokens at `positions` after those in `cache`: their
    /// RoPE angles, and the CPU path's causal mask or the wgpu path's step parameters.
    fn step(&self, positions: &[u64], cache: &KvCache) -> Step<'_> {
        let device = self.device.burn();
        let (n, past) = (positions.len(), cache.len());
        let half = self.config.head_dim / 2;
        let angles = self.rope.angles(positions);
        let info = cache.is_preallocated().then(|| {
            let info = step_info(n, past);
            let len = info.len();
            Tensor::<1, Int>::from_data(TensorData::new(info, [len]), (device, DType::U32))
        });
        Step {
            angles: Tensor::from_data(TensorData::new(angles, [2, n, half]), device),
            mask: (n > 1 && cache.needs_mask()).then(|| causal_mask(n, past, device)),
            info,
            config: &self.config,
        }
    }

    /// The final norm and the output head over the residual stream `x`: `[tokens, vocab]`.
    fn head(&self, x: &Tensor<2>, tokens: LogitsFor) -> Tensor<2> {
        project(
            x,
            Some(&self.output_norm),
            &[&self.output],
            Epilogue::Store,
            tokens,
        )
    }

    fn check_input(
        &self,
        ids: &[u32],
        positions: &[u64],
        cache: &KvCache,
    ) -> Result<(), ModelError> {
        let bad = |detail: String| Err(ModelError::BadInput { detail });
        if ids.is_empty() {
            return bad("no tokens".into());
        }
        if ids.len() != positions.len() {
            return bad(format!(
                "{} tokens but {} positions",
                ids.len(),
                positions.len()
            ));
        }
        if let Some(&id) = ids
            .iter()
            .find(|&&id| id as usize >= self.config.vocab_size)
        {
            return bad(format!(
                "token id {id} is outside the vocabulary ({})",
                self.config.vocab_size
            ));
        }
        // Positions beyond 2^24 lose integer precision in f32 (HF computes angles in f32 too).
        if let Some(&p) = positions.iter().find(|&&p| p >= 1 << 24) {
            return bad(format!("position {p} is beyond 2^24"));
        }
        let needed = cache.len() + ids.len();
        if needed > cache.capacity() {
            return Err(ModelError::ContextOverflow {
                needed,
                context_size: cache.capacity(),
            });
        }
        Ok(())
    }
}

impl Block {
    /// Block `i`'s weights.
    async fn load<S: ByteSource>(
        loader: &mut TensorLoader<'_, S>,
        i: usize,
        eps: f64,
    ) -> Result<Self, ModelError> {
        let name = |n: &str| format!("blk.{i}.{n}.weight");
        Ok(Block {
            attn_norm: RmsNorm {
                weight: loader.vector(&name("attn_norm")).await?,
                eps,
            },
            q: loader.linear(&name("attn_q")).await?,
            k: loader.linear(&name("attn_k")).await?,
            v: loader.linear(&name("attn_v")).await?,
            o: loader.linear(&name("attn_output")).await?,
            ffn_norm: RmsNorm {
                weight: loader.vector(&name("ffn_norm")).await?,
                eps,
            },
            gate: loader.linear(&name("ffn_gate")).await?,
            up: loader.linear(&name("ffn_up")).await?,
            down: loader.linear(&name("ffn_down")).await?,
        })
    }

    /// The attention half of the block: `x + o(attention(rope(qkv(norm(x)))))`.
    fn attention(
        &self,
        x: &Tensor<2>,
        layer: usize,
        cache: &mut KvCache,
        step: &Step,
    ) -> Tensor<2> {
        let qkv = project(
            x,
            Some(&self.attn_norm),
            &[&self.q, &self.k, &self.v],
            Epilogue::Store,
            LogitsFor::All,
        );
        let heads = step.config.n_heads;
        let out = attend(
            qkv,
            &step.angles,
            heads,
            layer,
            cache,
            step.attention_inputs(),
        );
        project(&out, None, &[&self.o], Epilogue::AddTo(x), LogitsFor::All)
    }

    /// The MLP half of the block: `x + down(silu(gate(norm(x))) · up(norm(x)))`.
    fn mlp(&self, x: &Tensor<2>) -> Tensor<2> {
        let gated = project(
            x,
            Some(&self.ffn_norm),
            &[&self.gate, &self.up],
            Epilogue::SwiGlu,
            LogitsFor::All,
        );
        project(
            &gated,
            None,
            &[&self.down],
            Epilogue::AddTo(x),
            LogitsFor::All,
        )
    }
}
