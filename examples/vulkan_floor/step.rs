//! The floor of a whole decode step: every weight matrix of a model's step (each layer's q/k/v,
//! output, gate/up and down, then the head), each multiplied by a hand-written GEMV, in one
//! pass and one submission. No norms, no RoPE, no attention, no sampling: what any engine's
//! step on this device costs at least.
//!
//! - SmolLM2-135M (Q4_1 layers, the Q8_0 head) by the best software-GPU GEMV of the
//!   single-matrix measurements (blocks repacked at load, 8 rows a lane, 8-lane workgroups): to
//!   be held against llama.cpp's step on the CPU in the same run.
//! - Llama 3.1 8B (every matrix in Q4_1, the head too: 4.7 GB a step) by the hardware GPU's
//!   shapes (32 lanes a row, words in GGUF's order or repacked into vec4s) and by a plain
//!   streaming read of the same buffers in the same dispatches: what a step of one dispatch a
//!   matrix reaches on a lent GPU, against its best read bandwidth.

use std::collections::HashMap;
use std::time::Instant;

use cubecl::wgpu::wgpu;

use crate::wgsl::{
    gemv_q8_0_repacked, gemv_repacked, gemv_split, gemv_split_repacked, read_stream,
};
use crate::{Gpu, q4_1_words, random_words};

/// A model's decode-step shapes.
pub struct Model {
    layers: usize,
    hidden: usize,
    ffn: usize,
    kv: usize,
    vocab: usize,
    /// The head in Q8_0 (else Q4_1, as every other matrix).
    head_q8_0: bool,
}

/// SmolLM2-135M: 30 layers, hidden 576, the tied Q8_0 head.
pub const SMOLLM2: Model = Model {
    layers: 30,
    hidden: 576,
    ffn: 1536,
    kv: 192,
    vocab: 49152,
    head_q8_0: true,
};

/// Llama 3.1 8B: 32 layers, hidden 4096, 8 KV heads of 128.
pub const LLAMA_8B: Model = Model {
    layers: 32,
    hidden: 4096,
    ffn: 14336,
    kv: 1024,
    vocab: 128256,
    head_q8_0: false,
};

/// How a step's matrices are multiplied.
#[derive(Clone, Copy, Debug)]
pub enum Kernel {
    /// 8 rows a lane, 8-lane workgroups, blocks repacked: the software GPUs' best.
    Rows,
    /// 32 lanes a row, summed by a subgroup add where the subgroups are 32 wide, else through
    /// workgroup memory; words in GGUF's order or the blocks repacked into vec4s.
    Split { repacked: bool },
    /// No arithmetic: each matrix streamed once, 8 vec4s a unit: the step's dispatches and bytes.
    Read,
}

impl Kernel {
    /// The name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Rows => "rows8_wg8_repacked",
            Kernel::Split { repacked: false } => "split32",
            Kernel::Split { repacked: true } => "split32_repacked",
            Kernel::Read => "read",
        }
    }
}

/// What a step took: the fastest and the median of [`RUNS`] runs, in milliseconds.
pub struct StepFloor {
    pub ms_min: f64,
    pub ms_median: f64,
}

/// Steps timed after two untimed ones.
const RUNS: usize = 9;

/// A model's weight matrices on the device, in the order a step multiplies them.
pub struct Weights {
    /// (rows, cols, buffer, Q8_0) of every matrix.
    matrices: Vec<(usize, usize, wgpu::Buffer, bool)>,
    /// A step's bytes of weights.
    pub bytes: usize,
    x: wgpu::Buffer,
    y: wgpu::Buffer,
}

impl Weights {
    /// Random blocks of `model`'s shapes (each matrix's words dropped once uploaded).
    pub fn new(gpu: &Gpu, model: &Model, seed: &mut u64) -> Weights {
        let shapes = [
            (model.hidden + 2 * model.kv, model.hidden),
            (model.hidden, model.hidden),
            (2 * model.ffn, model.hidden),
            (model.hidden, model.ffn),
        ];
        let mut matrices = Vec::new();
        let mut bytes = 0;
        // A matrix larger than a binding may be goes in chunks of rows, a dispatch each (as
        // the engine loads it: lavapipe binds at most 128 MiB).
        let limit = gpu.device.limits().max_storage_buffer_binding_size as usize;
        let mut upload = |rows: usize, cols: usize, q8_0: bool| {
            let row_bytes = cols / 32 * if q8_0 { 34 } else { 20 };
            let chunk = (limit / row_bytes / 64 * 64).min(rows);
            for first in (0..rows).step_by(chunk) {
                let rows = chunk.min(rows - first);
                let words = match q8_0 {
                    true => q8_0_words(rows * cols / 32, seed),
                    false => q4_1_words(rows * cols / 32, seed),
                };
                bytes += words.len() * 4;
                matrices.push((rows, cols, gpu.buffer(&words), q8_0));
            }
        };
        for _ in 0..model.layers {
            for &(rows, cols) in &shapes {
                upload(rows, cols, false);
            }
        }
        upload(model.vocab, model.hidden, model.head_q8_0);
        // The read's units write one float each: `y` holds the largest matrix's.
        let largest = largest(&matrices).size() as usize;
        Weights {
            matrices,
            bytes,
            x: gpu.buffer(&vec![0x3F80_0000; model.ffn.max(model.hidden)]),
            y: gpu.buffer(&vec![0; read_units(largest).max(model.vocab)]),
        }
    }

    /// Dispatches a step takes: one a matrix (or a chunk of one).
    pub fn dispatches(&self) -> usize {
        self.matrices.len()
    }
}

/// Random Q8_0 blocks repacked as [`gemv_q8_0_repacked`] reads them: the scales (f16 in
/// [-1/4, 1/4), two a word), then 32 bytes of quants a block.
fn q8_0_words(blocks: usize, seed: &mut u64) -> Vec<u32> {
    let scales = blocks.div_ceil(8) * 4;
    let mut words = random_words(scales + blocks * 8, seed);
    for word in &mut words[..scales] {
        *word = 0x3400_3400 ^ (*word & 0x8000_8000);
    }
    words
}

/// The buffer of the largest of `matrices` (rows, cols, buffer, Q8_0).
fn largest(matrices: &[(usize, usize, wgpu::Buffer, bool)]) -> &wgpu::Buffer {
    matrices
        .iter()
        .map(|m| &m.2)
        .max_by_key(|b| b.size())
        .expect("a matrix")
}

/// Units of a streaming read of `bytes`: about eight vec4s each, whole workgroups of 64.
fn read_units(bytes: usize) -> usize {
    (bytes / 16 / 8).max(64).div_ceil(64) * 64
}

/// Runs the step of `weights` by `kernel` [`RUNS`] times after two warm-ups.
pub fn measure(gpu: &Gpu, weights: &Weights, kernel: Kernel) -> StepFloor {
    // One pipeline a shape (a read: a size), and its workgroups.
    let mut pipelines: HashMap<(usize, usize, bool), (wgpu::ComputePipeline, u32)> = HashMap::new();
    let mut dispatches = Vec::new();
    for (rows, cols, buffer, q8_0) in &weights.matrices {
        let (rows, cols, q8_0) = (*rows, *cols, *q8_0);
        let bytes = buffer.size() as usize;
        let key = match kernel {
            Kernel::Read => (bytes, 0, false),
            _ => (rows, cols, q8_0),
        };
        pipelines.entry(key).or_insert_with(|| {
            let subgroup = gpu.subgroup_size == Some(32);
            let (code, workgroups) = match kernel {
                Kernel::Rows if q8_0 => (gemv_q8_0_repacked(rows, cols, 8, 8), rows.div_ceil(64)),
                Kernel::Rows => (gemv_repacked(rows, cols, 8, 8), rows.div_ceil(64)),
                Kernel::Split { .. } if q8_0 => panic!("the split GEMVs read Q4_1 only"),
                Kernel::Split { repacked: false } => {
                    (gemv_split(rows, cols, 32, subgroup), rows.div_ceil(2))
                }
                Kernel::Split { repacked: true } => (
                    gemv_split_repacked(rows, cols, 32, subgroup),
                    rows.div_ceil(2),
                ),
                Kernel::Read => {
                    let units = read_units(bytes);
                    (read_stream(units as u32), units / 64)
                }
            };
            (gpu.pipeline(&code), workgroups as u32)
        });
        let group = gpu.bind(&[buffer, &weights.x, &weights.y]);
        dispatches.push((key, group));
    }

    let mut times = Vec::new();
    for run in 0..RUNS + 2 {
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            for (key, group) in &dispatches {
                let (pipeline, workgroups) = &pipelines[key];
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, group, &[]);
                pass.dispatch_workgroups(*workgroups, 1, 1);
            }
        }
        let start = Instant::now();
        gpu.queue.submit([encoder.finish()]);
        gpu.device
            .poll(wgpu::PollType::wait_indefinitely())
            .expect("the queue drains");
        if run >= 2 {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    StepFloor {
        ms_min: times[0],
        ms_median: times[RUNS / 2],
    }
}

/// The Llama 3.1 8B step's floor as JSON members: the step by each hardware GEMV and by the
/// plain read (`step8b_<kernel>_ms_min`, `_ms_median`, `_gb_s` from the median), and one
/// dispatch streaming its largest matrix (`step8b_read_one_dispatch_gb_s`, best of four).
pub fn llama_8b_report(gpu: &Gpu, seed: &mut u64) -> String {
    let weights = Weights::new(gpu, &LLAMA_8B, seed);
    let mut members = vec![format!(
        "\"step8b_weight_bytes\": {}, \"step8b_dispatches\": {}",
        weights.bytes,
        weights.dispatches()
    )];
    for kernel in [
        Kernel::Split { repacked: false },
        Kernel::Split { repacked: true },
        Kernel::Read,
    ] {
        let step = measure(gpu, &weights, kernel);
        let gb_s = weights.bytes as f64 / step.ms_median / 1e6;
        eprintln!(
            "Llama 3.1 8B step's matrices by {}: {:.2} ms (min), {:.2} ms (median), {gb_s:.1} GB/s",
            kernel.name(),
            step.ms_min,
            step.ms_median
        );
        members.push(format!(
            "\"step8b_{0}_ms_min\": {1:.3}, \"step8b_{0}_ms_median\": {2:.3}, \"step8b_{0}_gb_s\": {3:.1}",
            kernel.name(),
            step.ms_min,
            step.ms_median,
            gb_s
        ));
    }
    let largest = largest(&weights.matrices);
    let units = read_units(largest.size() as usize);
    let pipeline = gpu.pipeline(&read_stream(units as u32));
    let group = gpu.bind(&[largest, &weights.x, &weights.y]);
    let ms = gpu.time(&pipeline, &[group], (units / 64) as u32);
    let gb_s = largest.size() as f64 / ms / 1e6;
    eprintln!("one dispatch reading its largest matrix: {gb_s:.1} GB/s");
    members.push(format!("\"step8b_read_one_dispatch_gb_s\": {gb_s:.1}"));
    members.join(", ")
}
