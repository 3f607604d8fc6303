//! The floor of a whole decode step: every weight matrix of SmolLM2-135M's step (30 layers of
//! q/k/v, output, gate/up and down in Q4_1, then the 49152-row Q8_0 head), each multiplied by
//! the best hand-written GEMV of the single-matrix measurements (blocks repacked at load, 8 rows
//! a lane, 8-lane workgroups), in one pass and one submission. No norms, no RoPE, no attention,
//! no sampling: what any engine's step on this device costs at least, to be held against
//! llama.cpp's step on the CPU in the same run.

use std::time::Instant;

use cubecl::wgpu::wgpu;

use crate::wgsl::{gemv_q8_0_repacked, gemv_repacked};
use crate::{Gpu, q4_1_words, random_words};

const LAYERS: usize = 30;
const HIDDEN: usize = 576;
const FFN: usize = 1536;
const KV: usize = 192;
const VOCAB: usize = 49152;
/// Rows a lane and lanes a workgroup of every GEMV of the step.
const PER: u32 = 8;
const WG: u32 = 8;
/// Steps timed after two untimed ones.
const RUNS: usize = 9;

/// What the step took: the fastest and the median of [`RUNS`] runs, in milliseconds, and the
/// bytes of weights one step reads.
pub struct StepFloor {
    pub ms_min: f64,
    pub ms_median: f64,
    pub weight_bytes: usize,
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

/// Runs the step [`RUNS`] times after two warm-ups.
pub fn measure(gpu: &Gpu, seed: &mut u64) -> StepFloor {
    // (rows, cols) of a layer's matrices, in the order a step multiplies them.
    let shapes = [
        (HIDDEN + 2 * KV, HIDDEN),
        (HIDDEN, HIDDEN),
        (2 * FFN, HIDDEN),
        (HIDDEN, FFN),
    ];
    let x_hidden = gpu.buffer(&vec![0x3F80_0000; HIDDEN]);
    let x_ffn = gpu.buffer(&vec![0x3F80_0000; FFN]);
    let y = gpu.buffer(&vec![0; VOCAB]);
    let pipelines: Vec<_> = shapes
        .iter()
        .map(|&(rows, cols)| gpu.pipeline(&gemv_repacked(rows, cols, WG, PER)))
        .collect();
    let head_pipeline = gpu.pipeline(&gemv_q8_0_repacked(VOCAB, HIDDEN, WG, PER));

    // (pipeline, bind group, workgroups) for every dispatch of the step.
    let mut dispatches: Vec<(&wgpu::ComputePipeline, wgpu::BindGroup, u32)> = Vec::new();
    let mut weight_bytes = 0;
    let workgroups = |rows: usize| rows.div_ceil((PER * WG) as usize) as u32;
    for _ in 0..LAYERS {
        for (pipeline, &(rows, cols)) in pipelines.iter().zip(&shapes) {
            let words = q4_1_words(rows * cols / 32, seed);
            weight_bytes += words.len() * 4;
            let x = if cols == FFN { &x_ffn } else { &x_hidden };
            let group = gpu.bind(&[&gpu.buffer(&words), x, &y]);
            dispatches.push((pipeline, group, workgroups(rows)));
        }
    }
    let head = q8_0_words(VOCAB * HIDDEN / 32, seed);
    weight_bytes += head.len() * 4;
    let group = gpu.bind(&[&gpu.buffer(&head), &x_hidden, &y]);
    dispatches.push((&head_pipeline, group, workgroups(VOCAB)));

    let mut times = Vec::new();
    for run in 0..RUNS + 2 {
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            for (pipeline, group, workgroups) in &dispatches {
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
        weight_bytes,
    }
}
