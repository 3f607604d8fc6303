//! The Llama forward pass on Burn tensors, written once for every device.
//!
//! One sequence at a time: activations are `[tokens, width]`, attention `[heads, tokens,
//! head_dim]`. The arithmetic follows HF transformers' `LlamaForCausalLM` (eager attention, f32)
//! step by step, which is what the fixtures' goldens were computed with.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use burn::tensor::{DType, Int, Tensor, TensorData};

use crate::gguf::{ByteSource, GgufHeader};

use super::attention::{StepInputs, attend, causal_mask, step_info};
use super::config::LlamaConfig;
use super::device::ComputeDevice;
use super::error::ModelError;
use super::kv_cache::KvCache;
use super::plan::KvFormat;
use super::project::{Epilogue, RmsNorm, project};
use super::rope::RopeTable;
use super::weights::{HostEmbedding, Linear, LoadProgress, TensorLoader};

mod graph;
mod passes;
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
    /// Set once recording a decode step failed (or the device cannot record): the steps are
    /// launched one by one from then on, by this model and its clones (`graph`).
    recording_failed: Arc<AtomicBool>,
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
            recording_failed: Arc::default(),
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
            let info = step_info(n, past, cache.segment_keys());
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
