//! The floor of a decode step on the native Vulkan device (lavapipe here), measured with minimal
//! hand-written WGSL kernels through wgpu (no Burn, no CubeCL): what one dispatch costs, the
//! streaming-read bandwidth, and Q4_1 GEMVs of several shapes in bytes of weights a second.
//! The native twin of `scripts/peers/webgpu-floor.html`. Prints one JSON object.
//!
//! Then the floor of a whole SmolLM2-135M decode step: its matrices alone, by the best of those
//! kernels (`step.rs`).
//!
//! With `--step llama8b`, also the floor of a Llama 3.1 8B step's matrices on a hardware GPU.
//!
//! `cargo run --example vulkan_floor [-- ROWS COLS] [--step smollm2|llama8b]` (default 1536 × 576:
//! SmolLM2's gate/up; the SmolLM2 step always).

use std::time::Instant;

use cubecl::wgpu::wgpu;
use wgpu::util::DeviceExt;

mod step;
mod wgsl;

use wgsl::{gemv_elementwise, gemv_repacked, gemv_rows, gemv_split, read_rows, read_stream};

/// Matrices the GEMVs rotate through, so that the weights come from memory, not the CPU's cache.
const MATRICES: usize = 64;
/// Words of one Q4_1 block: d and m as two f16s, then 16 bytes of nibbles.
const BLOCK_WORDS: usize = 5;

struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    /// The subgroup size, when the adapter has subgroups and it is fixed.
    subgroup_size: Option<u32>,
    /// Every kernel's bindings: weights (read), input (read), output (read-write).
    layout: wgpu::BindGroupLayout,
}

impl Gpu {
    fn new() -> Gpu {
        let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle();
        descriptor.backends = wgpu::Backends::VULKAN;
        let instance = wgpu::Instance::new(descriptor);
        let adapter = pollster::block_on(instance.request_adapter(&Default::default()))
            .expect("a Vulkan adapter");
        let info = adapter.get_info();
        let subgroups = adapter.features().contains(wgpu::Features::SUBGROUP);
        let subgroup_size = (subgroups && info.subgroup_min_size == info.subgroup_max_size)
            .then_some(info.subgroup_min_size);
        let mut required_features = wgpu::Features::empty();
        if subgroups {
            required_features |= wgpu::Features::SUBGROUP;
        }
        eprintln!(
            "adapter: {} ({}), subgroup size {subgroup_size:?} ({}–{}), shader-f16 {}",
            info.name,
            info.driver_info,
            info.subgroup_min_size,
            info.subgroup_max_size,
            adapter.features().contains(wgpu::Features::SHADER_F16)
        );
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            required_features,
            required_limits: adapter.limits(),
            ..Default::default()
        }))
        .expect("a device");
        let entry = |binding, read_only| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: None,
            entries: &[entry(0, true), entry(1, true), entry(2, false)],
        });
        Gpu {
            device,
            queue,
            subgroup_size,
            layout,
        }
    }

    fn buffer(&self, words: &[u32]) -> wgpu::Buffer {
        self.device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: bytemuck_words(words),
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            })
    }

    fn pipeline(&self, code: &str) -> wgpu::ComputePipeline {
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: None,
                source: wgpu::ShaderSource::Wgsl(code.into()),
            });
        let layout = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: None,
                bind_group_layouts: &[Some(&self.layout)],
                immediate_size: 0,
            });
        self.device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: None,
                layout: Some(&layout),
                module: &module,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            })
    }

    fn bind(&self, buffers: &[&wgpu::Buffer]) -> wgpu::BindGroup {
        let entries: Vec<_> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &self.layout,
            entries: &entries,
        })
    }

    /// Milliseconds per dispatch: `groups.len()` dispatches (one per bind group) in one pass and
    /// one submit, best of three.
    fn time(
        &self,
        pipeline: &wgpu::ComputePipeline,
        groups: &[wgpu::BindGroup],
        workgroups: u32,
    ) -> f64 {
        let mut best = f64::INFINITY;
        for _ in 0..4 {
            let mut encoder = self.device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                pass.set_pipeline(pipeline);
                for group in groups {
                    pass.set_bind_group(0, group, &[]);
                    pass.dispatch_workgroups(workgroups, 1, 1);
                }
            }
            let start = Instant::now();
            self.queue.submit([encoder.finish()]);
            self.device
                .poll(wgpu::PollType::wait_indefinitely())
                .expect("the queue drains");
            best = best.min(start.elapsed().as_secs_f64() * 1e3);
        }
        best / groups.len() as f64
    }
}

fn bytemuck_words(words: &[u32]) -> &[u8] {
    // SAFETY: u32 has no padding and any byte pattern is a valid u8.
    unsafe { std::slice::from_raw_parts(words.as_ptr().cast(), words.len() * 4) }
}

/// `count` pseudo-random words (xorshift64 from `seed`, which moves on).
fn random_words(count: usize, seed: &mut u64) -> Vec<u32> {
    (0..count)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *seed as u32
        })
        .collect()
}

/// Random Q4_1 blocks with finite scales (d, m in [-1/4, 1/4) as f16 bits).
fn q4_1_words(blocks: usize, seed: &mut u64) -> Vec<u32> {
    let mut words = random_words(blocks * BLOCK_WORDS, seed);
    for block in words.chunks_mut(BLOCK_WORDS) {
        block[0] = 0x3400_3400 ^ (block[0] & 0x8000_8000);
    }
    words
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let llama_8b = match args.iter().position(|a| a == "--step") {
        Some(at) => {
            let step = args.get(at + 1).cloned().unwrap_or_default();
            args.drain(at..(at + 2).min(args.len()));
            match step.as_str() {
                "llama8b" => true,
                "smollm2" => false,
                _ => panic!("--step takes smollm2 or llama8b, not {step:?}"),
            }
        }
        None => false,
    };
    let args: Vec<usize> = args
        .iter()
        .map(|a| a.parse().expect("[ROWS COLS] [--step smollm2|llama8b]"))
        .collect();
    let (rows, cols) = (
        args.first().copied().unwrap_or(1536),
        args.get(1).copied().unwrap_or(576),
    );
    assert!(cols % 32 == 0, "COLS must be a multiple of 32");
    let gpu = Gpu::new();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let blocks = rows * cols / 32;
    let mats: Vec<_> = (0..MATRICES)
        .map(|_| gpu.buffer(&q4_1_words(blocks, &mut seed)))
        .collect();
    let x = gpu.buffer(&vec![0x3F80_0000; cols]);
    let y = gpu.buffer(&vec![0; rows.max(1 << 16)]);
    let bytes = (blocks * BLOCK_WORDS * 4) as f64;
    let gb_s = |ms: f64| bytes / (ms / 1e3) / 1e9;

    let mut report = vec![format!(
        "\"rows\": {rows}, \"cols\": {cols}, \"matrix_bytes\": {bytes}"
    )];
    let mut measure = |name: &str, code: String, units: usize, per_group: u32| {
        let pipeline = gpu.pipeline(&code);
        let groups: Vec<_> = mats.iter().map(|m| gpu.bind(&[m, &x, &y])).collect();
        let workgroups = units.div_ceil(per_group as usize) as u32;
        let ms = gpu.time(&pipeline, &groups, workgroups);
        eprintln!("{name}: {ms:.3} ms, {:.2} GB/s", gb_s(ms));
        report.push(format!(
            "\"{name}_ms\": {ms:.4}, \"{name}_gb_s\": {:.3}",
            gb_s(ms)
        ));
    };

    let tiny = "@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) { if (g.x == 0u) { y[0] += 1.0; } }";
    measure("tiny_dispatch", tiny.into(), 64, 64);
    // About eight vec4s a unit: few enough that a hardware GPU has threads to hide its latency.
    let stream_units = ((bytes as usize / 16 / 8).max(64 * 64)).div_ceil(64) * 64;
    measure(
        "read_stream",
        read_stream(stream_units as u32),
        stream_units,
        64,
    );
    measure("read_rows", read_rows(rows, cols), rows, 64);
    for (wg, per) in [(64u32, 1u32), (64, 4), (64, 8), (8, 4), (8, 8)] {
        let units = rows.div_ceil(per as usize);
        measure(
            &format!("rows{per}_wg{wg}"),
            gemv_rows(rows, cols, wg, per, false),
            units,
            wg,
        );
    }
    measure(
        "rows8_wg8_interleaved",
        gemv_rows(rows, cols, 8, 8, true),
        rows.div_ceil(8),
        8,
    );
    measure(
        "rows8_wg8_repacked",
        gemv_repacked(rows, cols, 8, 8),
        rows.div_ceil(8),
        8,
    );
    measure(
        "rows8_wg8_elementwise",
        gemv_elementwise(rows, cols, 8, 8),
        rows.div_ceil(8),
        8,
    );
    // 8 lanes a row (a software GPU's SIMD width), and 32 (a hardware GPU's warp: each warp
    // reads 640 contiguous bytes a step), summed through workgroup memory, or through subgroup
    // operations where the adapter's subgroups are that wide.
    for lanes in [8u32, 32] {
        measure(
            &format!("split{lanes}_barrier"),
            gemv_split(rows, cols, lanes, false),
            rows * lanes as usize,
            64,
        );
        if gpu.subgroup_size == Some(lanes) {
            measure(
                &format!("split{lanes}_subgroup"),
                gemv_split(rows, cols, lanes, true),
                rows * lanes as usize,
                64,
            );
        }
    }
    let smollm2 = step::Weights::new(&gpu, &step::SMOLLM2, &mut seed);
    let step = step::measure(&gpu, &smollm2, step::Kernel::Rows);
    let step_bytes = smollm2.bytes;
    drop(smollm2);
    eprintln!(
        "SmolLM2 step's matrices: {:.2} ms (min), {:.2} ms (median)",
        step.ms_min, step.ms_median
    );
    report.push(format!(
        "\"step_ms_min\": {:.3}, \"step_ms_median\": {:.3}, \"step_weight_bytes\": {}, \"step_tok_s\": {:.2}",
        step.ms_min,
        step.ms_median,
        step_bytes,
        1e3 / step.ms_median
    ));
    if llama_8b {
        report.push(step::llama_8b_report(&gpu, &mut seed));
    }
    println!("{{{}}}", report.join(", "));
}
