//! The floor of a decode step on the native Vulkan device (lavapipe here), measured with minimal
//! hand-written WGSL kernels through wgpu (no Burn, no CubeCL): what one dispatch costs, the
//! streaming-read bandwidth, and Q4_1 GEMVs of several shapes in bytes of weights a second.
//! The native twin of `scripts/peers/webgpu-floor.html`. Prints one JSON object.
//!
//! `cargo run --example vulkan_floor [-- ROWS COLS]` (default 1536 × 576: SmolLM2's gate/up).

use std::time::Instant;

use cubecl::wgpu::wgpu;
use wgpu::util::DeviceExt;

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
            "adapter: {} ({}), subgroup size {subgroup_size:?}",
            info.name, info.driver_info
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

/// Random Q4_1 blocks with finite scales (d, m in [-1, 1) as f16 bits).
fn q4_1_words(blocks: usize, seed: &mut u64) -> Vec<u32> {
    let mut next = || {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed as u32
    };
    (0..blocks * BLOCK_WORDS)
        .map(|i| {
            if i % BLOCK_WORDS == 0 {
                0x3400_3400 ^ (next() & 0x8000_8000)
            } else {
                next()
            }
        })
        .collect()
}

/// The Q4_1 dot of one block's nibble word `j` (elements j·4.. and 16 + j·4..) with x.
const DOT_WORD: &str = "
fn nibbles_lo(q: u32) -> vec4f { return vec4f(f32(q & 15u), f32((q >> 8u) & 15u), f32((q >> 16u) & 15u), f32((q >> 24u) & 15u)); }
fn nibbles_hi(q: u32) -> vec4f { return vec4f(f32((q >> 4u) & 15u), f32((q >> 12u) & 15u), f32((q >> 20u) & 15u), f32(q >> 28u)); }
";

/// The bindings and constants every GEMV shares, the weights bound as `array<{weight}>`.
fn header(rows: usize, cols: usize, weight: &str) -> String {
    format!(
        "@group(0) @binding(0) var<storage, read> w: array<{weight}>;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
const ROWS: u32 = {rows}u;
const BLOCKS: u32 = {}u;
{DOT_WORD}",
        cols / 32
    )
}

/// A GEMV of `per` consecutive rows a unit, `wg` units a workgroup: block by block, the block's
/// input values (`xs`, and their sum `sx`) loaded once for the unit's rows, then `block` run for
/// each row (`row`, clamped to the last) to add the row's block dot to `acc[r]`.
fn gemv_skeleton(header: String, wg: u32, per: u32, block: &str) -> String {
    format!(
        "{header}
@compute @workgroup_size({wg}) fn main(@builtin(global_invocation_id) g: vec3u) {{
  var acc: array<f32, {per}>;
  for (var b = 0u; b < BLOCKS; b++) {{
    var xs: array<vec4f, 8>;
    var sx = 0.0;
    for (var j = 0u; j < 8u; j++) {{ xs[j] = x[b * 8u + j]; sx += dot(xs[j], vec4f(1.0)); }}
    for (var r = 0u; r < {per}u; r++) {{
      let row = min(g.x * {per}u + r, ROWS - 1u);
      {block}
    }}
  }}
  for (var r = 0u; r < {per}u; r++) {{
    let row = g.x * {per}u + r;
    if (row < ROWS) {{ y[row] = acc[r]; }}
  }}
}}"
    )
}

/// `per` consecutive rows a unit, `wg` units a workgroup, the blocks in GGUF's order or
/// interleaved across rows (word k of block b of every row side by side); `d·Σq·x + m·Σx`.
fn gemv_rows(rows: usize, cols: usize, wg: u32, per: u32, interleaved: bool) -> String {
    let word = |k: &str| match interleaved {
        true => format!("(b * 5u + {k}) * ROWS + row"),
        false => format!("(row * BLOCKS + b) * 5u + {k}"),
    };
    let block = format!(
        "let dm = unpack2x16float(w[{}]);
      var sq = 0.0;
      for (var j = 0u; j < 4u; j++) {{
        let q = w[{}];
        sq += dot(nibbles_lo(q), xs[j]) + dot(nibbles_hi(q), xs[4u + j]);
      }}
      acc[r] += dm.x * sq + dm.y * sx;",
        word("0u"),
        word("1u + j")
    );
    gemv_skeleton(header(rows, cols, "u32"), wg, per, &block)
}

/// As `gemv_rows` in GGUF's order, but with the blocks repacked at load: every block's d and m
/// word first (rows × blocks words), then every block's 16 bytes of nibbles as one aligned
/// vec4: two loads a block instead of five.
fn gemv_repacked(rows: usize, cols: usize, wg: u32, per: u32) -> String {
    let nibbles = (rows * cols / 32).div_ceil(4);
    let block = format!(
        "let i = row * BLOCKS + b;
      let dm = unpack2x16float(w[i >> 2u][i & 3u]);
      let q = w[{nibbles}u + i];
      let sq = dot(nibbles_lo(q.x), xs[0]) + dot(nibbles_hi(q.x), xs[4])
        + dot(nibbles_lo(q.y), xs[1]) + dot(nibbles_hi(q.y), xs[5])
        + dot(nibbles_lo(q.z), xs[2]) + dot(nibbles_hi(q.z), xs[6])
        + dot(nibbles_lo(q.w), xs[3]) + dot(nibbles_hi(q.w), xs[7]);
      acc[r] += dm.x * sq + dm.y * sx;"
    );
    gemv_skeleton(header(rows, cols, "vec4<u32>"), wg, per, &block)
}

/// As `gemv_rows` in GGUF's order, but the way our CubeCL kernel computes it: every element
/// dequantized (`q · d + m`) before its product, the f16 scales decoded with integer operations
/// and branches (exact, no `unpack2x16float`).
fn gemv_elementwise(rows: usize, cols: usize, wg: u32, per: u32) -> String {
    let f16 = "fn f16(h: u32) -> f32 {
  let sign = (h >> 15u) & 1u; let e = (h >> 10u) & 31u; let mant = h & 1023u;
  var bits = (sign << 31u) | ((e + 112u) << 23u) | (mant << 13u);
  if (e == 31u) { bits = (sign << 31u) | (255u << 23u) | (mant << 13u); }
  var v = bitcast<f32>(bits);
  if (e == 0u) { v = f32(mant) * 5.9604645e-8; if (sign == 1u) { v = -v; } }
  return v;
}";
    let block = "let base = (row * BLOCKS + b) * 5u;
      let d = f16(w[base] & 65535u);
      let m = f16(w[base] >> 16u);
      var sum = 0.0;
      for (var j = 0u; j < 4u; j++) {
        let q = w[base + 1u + j];
        sum += dot(nibbles_lo(q) * d + m, xs[j]) + dot(nibbles_hi(q) * d + m, xs[4u + j]);
      }
      acc[r] += sum;";
    gemv_skeleton(
        format!("{}\n{f16}", header(rows, cols, "u32")),
        wg,
        per,
        block,
    )
}

/// `lanes` units share a row, each taking every `lanes`-th block; their sums are added through
/// workgroup memory (one barrier) or a subgroup add (lanes = the subgroup's size).
fn gemv_split(rows: usize, cols: usize, lanes: u32, subgroup: bool) -> String {
    let reduce = match subgroup {
        true => "let total = subgroupAdd(acc);
  if (lane == 0u && row < ROWS) { y[row] = total; }"
            .to_string(),
        false => format!(
            "sums[l.x] = acc;
  workgroupBarrier();
  if (lane == 0u && row < ROWS) {{
    var total = 0.0;
    for (var i = 0u; i < {lanes}u; i++) {{ total += sums[l.x + i]; }}
    y[row] = total;
  }}"
        ),
    };
    format!(
        "{}
var<workgroup> sums: array<f32, 64>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u, @builtin(local_invocation_id) l: vec3u) {{
  let lane = l.x % {lanes}u;
  let row = g.x / {lanes}u;
  let r = min(row, ROWS - 1u);
  var acc = 0.0;
  for (var b = lane; b < BLOCKS; b += {lanes}u) {{
    let base = (r * BLOCKS + b) * 5u;
    let dm = unpack2x16float(w[base]);
    var sq = 0.0;
    var sx = 0.0;
    for (var j = 0u; j < 4u; j++) {{
      let q = w[base + 1u + j];
      let xl = x[b * 8u + j];
      let xh = x[b * 8u + 4u + j];
      sq += dot(nibbles_lo(q), xl) + dot(nibbles_hi(q), xh);
      sx += dot(xl, vec4f(1.0)) + dot(xh, vec4f(1.0));
    }}
    acc += dm.x * sq + dm.y * sx;
  }}
  {reduce}
}}",
        header(rows, cols, "u32")
    )
}

/// Reads every weight word as `gemv_rows` does (one row per unit, GGUF's order) without the
/// arithmetic: the access pattern's cost alone.
fn read_rows(rows: usize, cols: usize) -> String {
    format!(
        "{}
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {{
  let row = min(g.x, ROWS - 1u);
  var acc = 0u;
  for (var i = 0u; i < BLOCKS * 5u; i++) {{ acc ^= w[row * BLOCKS * 5u + i]; }}
  if (g.x < ROWS) {{ y[g.x] = f32(acc); }}
}}",
        header(rows, cols, "u32")
    )
}

/// Streams the buffer once, each unit striding over vec4s (coalesced across units).
fn read_stream(units: u32) -> String {
    format!(
        "@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> unused: array<vec4f>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {{
  var acc = vec4<u32>(0u);
  for (var i = g.x; i < arrayLength(&src); i += {units}u) {{ acc ^= src[i]; }}
  out[g.x] = f32(acc.x ^ acc.y ^ acc.z ^ acc.w);
}}"
    )
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("ROWS COLS"))
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
    measure(
        "split8_barrier",
        gemv_split(rows, cols, 8, false),
        rows * 8,
        64,
    );
    if gpu.subgroup_size == Some(8) {
        measure(
            "split8_subgroup",
            gemv_split(rows, cols, 8, true),
            rows * 8,
            64,
        );
    }
    println!("{{{}}}", report.join(", "));
}
