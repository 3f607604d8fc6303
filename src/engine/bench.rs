//! The benchmark behind `llama-web bench` and the browser bench page: prefill and decode speed,
//! the weight bytes each decoded token reads, effective bandwidth and peak GPU memory.
//!
//! Token ids are pseudo-random (the numbers are not the point). The prompt's last logits are
//! read back, and each decode step's greedy id (chosen on the device), so each timing covers
//! the GPU work. Nothing here asserts a speed; the launch and readback counts are exact.

use serde::Serialize;

use crate::model::Arithmetic;
use crate::model::device::{DeviceChoice, DeviceCounters, TASKS_PER_SUBMIT};
use crate::model::error::ModelError;
use crate::model::llama::{Llama, LogitsFor, StageTime};
use crate::model::plan::KvFormat;
use crate::model::quant::{f32_matmul_seconds, streaming_read_gb_s};

use super::generation::{Next, shortlist_step};
use super::sampling::{Sampler, SamplingParams, argmax};
use crate::rng::SplitMix64;

/// What one benchmark run measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    /// The device, as it names itself.
    pub device: String,
    /// Whether it is a software GPU (lavapipe, SwiftShader), which picks the one-unit-per-row
    /// decode kernel instead of the cooperative GEMV.
    pub software_gpu: bool,
    /// Prompt tokens prefilled.
    pub prompt_len: usize,
    /// Tokens decoded.
    #[serde(rename = "gen")]
    pub gen_tokens: usize,
    /// Tokens the KV cache was allocated for.
    pub context: usize,
    /// How the KV cache stored keys and values.
    pub kv_format: KvFormat,
    /// Whether decode steps were recorded once and replayed (`ComputeDevice::with_decode_graphs`;
    /// wgpu only).
    pub decode_graphs: bool,
    /// The type the projections' dot products were taken in (`ComputeDevice::with_arithmetic`).
    pub arithmetic: Arithmetic,
    /// Seconds of the warm-up before the timed runs (a short prefill and one decode step):
    /// mostly compiling the kernels, which a page pays once per load.
    pub warmup_s: f64,
    /// Prefill speed, tokens per second.
    pub prefill_tok_s: f64,
    /// Decode speed, tokens per second.
    pub decode_tok_s: f64,
    /// Weight bytes each decoded token reads (every matrix on the device, once).
    pub weight_bytes_per_token: u64,
    /// `weight_bytes_per_token × decode_tok_s`, in GB/s (10^9 bytes).
    pub effective_gb_s: f64,
    /// The most the device's allocator held during the run (None where it does not say).
    pub peak_gpu_bytes: Option<u64>,
    /// The most bytes live tensors took at once (the allocator's pages hold more).
    pub peak_gpu_bytes_in_use: Option<u64>,
    /// Kernel launches of one decode step after the first (ours and Burn's, replayed or not;
    /// `None` on the CPU device).
    pub dispatches_per_token: Option<f64>,
    /// Command submissions of one decode step: the launches gathered `TASKS_PER_SUBMIT` at a
    /// time, the readback's submit included (derived from the launch count and that rule:
    /// wgpu offers no count of submissions; `None` on the CPU device).
    pub submits_per_token: Option<f64>,
    /// Bytes one decode step after the first reads back to the host (greedy choice on the
    /// device: the id).
    pub readback_bytes_per_token: f64,
    /// CPU milliseconds per decode step after the first of the thread that drives it: our code,
    /// Burn's and CubeCL's graph and launch work, wgpu's encoding and submission (the kernels themselves
    /// run elsewhere: on the GPU, or on lavapipe's own threads). `None` where no per-thread CPU
    /// clock is available (the browser).
    pub host_ms_per_token: Option<f64>,
    /// A plain streaming read of a 120 MiB buffer on the same device, GB/s: the roofline
    /// (`None` on the CPU device, which has no kernels of ours).
    pub read_bandwidth_gb_s: Option<f64>,
    /// `effective_gb_s / read_bandwidth_gb_s`.
    pub roofline_fraction: Option<f64>,
    /// With [`BenchParams::compare_f32`]: the prefill speed Burn's own f32 matmul would allow on
    /// the same device — `prompt_len` tokens over `prompt_len` divided by the seconds its matmul
    /// takes for the same products on dense f32 weights (every block's seven matrices for the
    /// prompt's tokens, the head for the last token), everything else free.
    pub burn_f32_matmul_tok_s: Option<f64>,
    /// With [`BenchParams::sampled`]: sampled decoding timed both ways.
    pub sampled: Option<SampledReport>,
    /// With [`BenchParams::stages`], on the wgpu device: a decode step's device time stage by
    /// stage, each stage launched [`STAGE_REPEATS`] times on its own after the decoded tokens
    /// (`Llama::stage_times`).
    pub stages: Option<Vec<StageTime>>,
}

/// Sampled decoding (the chat page's temperature 0.7, no other filter, a fixed seed) of `gen`
/// tokens after the same prompt, drawn from the device's shortlist and drawn from every logit
/// read back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SampledReport {
    /// Decode speed drawing from the shortlist (every logit read only when it cannot decide),
    /// tokens per second.
    pub shortlist_tok_s: f64,
    /// Bytes a step read back that way.
    pub shortlist_readback_bytes_per_token: f64,
    /// The share of steps the shortlist decided.
    pub shortlist_decided: f64,
    /// Decode speed reading every logit back and drawing from them all, tokens per second.
    pub logits_tok_s: f64,
    /// Bytes a step read back that way.
    pub logits_readback_bytes_per_token: f64,
}

/// The bandwidth probe's buffer: larger than CPU and GPU last-level caches (a 32 MiB probe
/// read from cache at 70 GB/s here), under every adapter's binding limit (lavapipe: 128 MiB).
const PROBE_BYTES: usize = 120 << 20;

/// Launches of each stage per timing with [`BenchParams::stages`].
pub const STAGE_REPEATS: usize = 8;

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchParams {
    /// Prompt tokens to prefill (at least 1).
    pub prompt_len: usize,
    /// Tokens to decode.
    pub gen_tokens: usize,
    /// Tokens to allocate the KV cache for, as the engine would for its context (at least
    /// `prompt_len + gen_tokens`; `None`: exactly that).
    pub context: Option<usize>,
    /// How the KV cache stores keys and values.
    pub kv_format: KvFormat,
    /// Also time Burn's f32 matmul on the prefill's shapes (`burn_f32_matmul_tok_s`).
    pub compare_f32: bool,
    /// Also time sampled decoding both ways (`sampled`).
    pub sampled: bool,
    /// Also time a decode step stage by stage (`stages`; wgpu device only).
    pub stages: bool,
}

/// Prefills `params.prompt_len` tokens (as the engine does) and decodes `params.gen_tokens`
/// more with greedy choice, timing both with `now` (seconds); `thread_cpu` (seconds of CPU
/// time of the calling thread), where there is one, gives `host_ms_per_token`.
pub async fn run(
    model: &Llama,
    device_name: String,
    params: BenchParams,
    now: &dyn Fn() -> f64,
    thread_cpu: Option<&dyn Fn() -> f64>,
) -> Result<BenchReport, ModelError> {
    let gen_tokens = params.gen_tokens;
    let vocab = model.config().vocab_size as u64;
    let mut rng = SplitMix64::new(0x1234_5678);
    let prompt: Vec<u32> = (0..params.prompt_len.max(1))
        .map(|_| (rng.next_u64() % vocab) as u32)
        .collect();
    // The stage timing writes one row past the decoded tokens.
    let needed = prompt.len() + gen_tokens + usize::from(params.stages);
    let context = params.context.unwrap_or(needed).max(needed);
    // Warm-up: compiles every kernel variant the timed runs use.
    let start = now();
    model.warm_up(context, params.kv_format).await?;
    let warmup_s = now() - start;

    let mut cache = model.new_cache(context, params.kv_format)?;
    let mut peak = Peak::new(model);

    let start = now();
    let logits = model.prefill(&prompt, &mut cache).await?;
    peak.sample();
    let prefill_s = now() - start;

    // The counters and the host's clock measure one step as every step after the first runs it:
    // the first also records the step the others replay (twice its launches).
    let steady_from = usize::from(gen_tokens > 1);
    let start = now();
    let mut cpu_start = thread_cpu.map(|cpu| cpu());
    let mut counters = DeviceCounters::start();
    let mut id = argmax(&logits);
    for step in 0..gen_tokens {
        if step == steady_from {
            cpu_start = thread_cpu.map(|cpu| cpu());
            counters = DeviceCounters::start();
        }
        let position = (prompt.len() + step) as u64;
        id = model.forward_argmax(&[id], &[position], &mut cache).await?;
        peak.sample();
    }
    let decode_s = now() - start;
    let steps = (gen_tokens - steady_from).max(1) as f64;
    let host_ms_per_token = thread_cpu
        .zip(cpu_start)
        .map(|(cpu, from)| (cpu() - from) * 1e3 / steps);
    let dispatches = counters.launches() as f64 / steps;
    let readback_bytes_per_token = counters.readback_bytes() as f64 / steps;
    let on_gpu = model.device().choice() == DeviceChoice::Wgpu;
    let stages = match params.stages && on_gpu {
        true => Some(model.stage_times(&mut cache, STAGE_REPEATS, now).await?),
        false => None,
    };
    drop(cache);

    let read_bandwidth_gb_s = match model.device().choice() {
        DeviceChoice::Wgpu => Some(streaming_read_gb_s(model.device(), PROBE_BYTES, 5, now).await?),
        DeviceChoice::Cpu => None,
    };
    let burn_f32_matmul_tok_s = match (params.compare_f32, on_gpu) {
        (true, true) => {
            let c = model.config();
            let (q, kv) = (c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim);
            let block = [
                (q, c.hidden_size),
                (kv, c.hidden_size),
                (kv, c.hidden_size),
                (c.hidden_size, q),
                (c.ffn_size, c.hidden_size),
                (c.ffn_size, c.hidden_size),
                (c.hidden_size, c.ffn_size),
            ];
            let device = model.device();
            let blocks = f32_matmul_seconds(device, &block, prompt.len(), now).await?;
            let head = f32_matmul_seconds(device, &[(c.vocab_size, c.hidden_size)], 1, now).await?;
            Some(prompt.len() as f64 / (blocks * c.n_layers as f64 + head))
        }
        _ => None,
    };
    let sampled = match params.sampled {
        true => {
            let first = argmax(&logits);
            let shortlist = time_sampled(model, &prompt, first, context, params, now, true).await?;
            let every = time_sampled(model, &prompt, first, context, params, now, false).await?;
            Some(SampledReport {
                shortlist_tok_s: shortlist.0,
                shortlist_readback_bytes_per_token: shortlist.1,
                shortlist_decided: shortlist.2,
                logits_tok_s: every.0,
                logits_readback_bytes_per_token: every.1,
            })
        }
        false => None,
    };
    let weight_bytes_per_token = model.weight_bytes();
    let decode_tok_s = gen_tokens as f64 / decode_s;
    let effective_gb_s = weight_bytes_per_token as f64 * decode_tok_s / 1e9;
    Ok(BenchReport {
        device: device_name,
        software_gpu: model.device().is_software_gpu(),
        prompt_len: prompt.len(),
        gen_tokens,
        context,
        kv_format: params.kv_format,
        decode_graphs: model.device().decode_graphs(),
        arithmetic: model.device().arithmetic(),
        warmup_s,
        prefill_tok_s: prompt.len() as f64 / prefill_s,
        decode_tok_s,
        weight_bytes_per_token,
        effective_gb_s,
        dispatches_per_token: on_gpu.then_some(dispatches),
        submits_per_token: on_gpu.then(|| (dispatches / TASKS_PER_SUBMIT as f64).ceil().max(1.0)),
        readback_bytes_per_token,
        host_ms_per_token,
        peak_gpu_bytes: peak.reserved,
        peak_gpu_bytes_in_use: peak.in_use,
        read_bandwidth_gb_s,
        roofline_fraction: read_bandwidth_gb_s.map(|roof| effective_gb_s / roof),
        burn_f32_matmul_tok_s,
        sampled,
        stages,
    })
}

/// Prefills `prompt` (untimed), then decodes `params.gen_tokens` sampled tokens after `first`,
/// from the shortlist or from every logit: tokens per second, bytes read back a step, and the
/// share of steps the shortlist decided.
async fn time_sampled(
    model: &Llama,
    prompt: &[u32],
    first: u32,
    context: usize,
    params: BenchParams,
    now: &dyn Fn() -> f64,
    shortlist: bool,
) -> Result<(f64, f64, f64), ModelError> {
    let mut cache = model.new_cache(context, params.kv_format)?;
    model.prefill(prompt, &mut cache).await?;
    let mut sampler = Sampler::new(SamplingParams {
        temperature: 0.7,
        seed: Some(1),
        ..SamplingParams::default()
    });
    let (mut id, mut decided) = (first, 0);
    let counters = DeviceCounters::start();
    let start = now();
    for step in 0..params.gen_tokens {
        let position = (prompt.len() + step) as u64;
        let next = match shortlist {
            true => shortlist_step(model, &mut sampler, id, position, &mut cache).await?,
            false => Next::Logits(
                model
                    .forward(&[id], &[position], &mut cache, LogitsFor::Last)
                    .await?,
            ),
        };
        id = match next {
            Next::Chosen(id) => {
                decided += 1;
                id
            }
            Next::Logits(mut logits) => sampler.sample(&mut logits, &[], &[]),
        };
    }
    let seconds = now() - start;
    let steps = params.gen_tokens.max(1) as f64;
    let readback = counters.readback_bytes() as f64 / steps;
    Ok((
        params.gen_tokens as f64 / seconds,
        readback,
        decided as f64 / steps,
    ))
}

/// The largest allocator readings seen.
struct Peak<'a> {
    model: &'a Llama,
    reserved: Option<u64>,
    in_use: Option<u64>,
}

impl<'a> Peak<'a> {
    fn new(model: &'a Llama) -> Self {
        let mut peak = Self {
            model,
            reserved: None,
            in_use: None,
        };
        peak.sample();
        peak
    }

    fn sample(&mut self) {
        if let Some(usage) = self.model.device().memory_usage() {
            let max = |old: Option<u64>, new: u64| Some(old.unwrap_or(0).max(new));
            self.reserved = max(self.reserved, usage.reserved);
            self.in_use = max(self.in_use, usage.in_use);
        }
    }
}
