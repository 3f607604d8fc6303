//! The hand-written WGSL kernels the floor measures, as source text: GEMVs over Q4_1 (and the
//! head's Q8_0) blocks in several shapes and layouts, and the plain reads they are held against.

/// The Q4_1 dot of one block's nibble word `j` (elements j·4.. and 16 + j·4..) with x.
const DOT_WORD: &str = "
fn nibbles_lo(q: u32) -> vec4f { return vec4f(f32(q & 15u), f32((q >> 8u) & 15u), f32((q >> 16u) & 15u), f32((q >> 24u) & 15u)); }
fn nibbles_hi(q: u32) -> vec4f { return vec4f(f32((q >> 4u) & 15u), f32((q >> 12u) & 15u), f32((q >> 20u) & 15u), f32(q >> 28u)); }
";

/// Block `b` of row `row` (a WGSL expression) of a repacked Q4_1 matrix whose nibbles start at
/// vec4 `nibbles`: its `dm` (d, m) and `sq` = Σq·x against the block's inputs `xs`.
fn repacked_block(row: &str, nibbles: usize) -> String {
    format!(
        "let i = {row} * BLOCKS + b;
    let dm = unpack2x16float(w[i >> 2u][i & 3u]);
    let q = w[{nibbles}u + i];
    let sq = dot(nibbles_lo(q.x), xs[0]) + dot(nibbles_hi(q.x), xs[4])
      + dot(nibbles_lo(q.y), xs[1]) + dot(nibbles_hi(q.y), xs[5])
      + dot(nibbles_lo(q.z), xs[2]) + dot(nibbles_hi(q.z), xs[6])
      + dot(nibbles_lo(q.w), xs[3]) + dot(nibbles_hi(q.w), xs[7]);"
    )
}

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
pub fn gemv_rows(rows: usize, cols: usize, wg: u32, per: u32, interleaved: bool) -> String {
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
pub fn gemv_repacked(rows: usize, cols: usize, wg: u32, per: u32) -> String {
    let nibbles = (rows * cols / 32).div_ceil(4);
    let block = format!(
        "{}
      acc[r] += dm.x * sq + dm.y * sx;",
        repacked_block("row", nibbles)
    );
    gemv_skeleton(header(rows, cols, "vec4<u32>"), wg, per, &block)
}

/// As `gemv_rows` in GGUF's order, but the way our CubeCL kernel computed it until session 25:
/// every element dequantized (`q · d + m`) before its product, the f16 scales decoded with
/// integer operations and branches (exact, no `unpack2x16float`).
pub fn gemv_elementwise(rows: usize, cols: usize, wg: u32, per: u32) -> String {
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
pub fn gemv_split(rows: usize, cols: usize, lanes: u32, subgroup: bool) -> String {
    let block = "let base = (r * BLOCKS + b) * 5u;
    let dm = unpack2x16float(w[base]);
    var sq = 0.0;
    var sx = 0.0;
    for (var j = 0u; j < 4u; j++) {
      let q = w[base + 1u + j];
      let xl = x[b * 8u + j];
      let xh = x[b * 8u + 4u + j];
      sq += dot(nibbles_lo(q), xl) + dot(nibbles_hi(q), xh);
      sx += dot(xl, vec4f(1.0)) + dot(xh, vec4f(1.0));
    }";
    split_skeleton(header(rows, cols, "u32"), lanes, subgroup, block)
}

/// As [`gemv_split`], the blocks repacked as [`gemv_repacked`] lays them out: a lane's block is
/// one d·m word and one aligned vec4 of nibbles, and a subgroup's 32 lanes read 512 contiguous
/// bytes of nibbles — the shape of a hardware GPU's GEMV.
pub fn gemv_split_repacked(rows: usize, cols: usize, lanes: u32, subgroup: bool) -> String {
    let nibbles = (rows * cols / 32).div_ceil(4);
    let block = format!(
        "var xs: array<vec4f, 8>;
    for (var j = 0u; j < 8u; j++) {{ xs[j] = x[b * 8u + j]; }}
    {}
    let sx = dot(xs[0] + xs[1] + xs[2] + xs[3] + xs[4] + xs[5] + xs[6] + xs[7], vec4f(1.0));",
        repacked_block("r", nibbles)
    );
    split_skeleton(header(rows, cols, "vec4<u32>"), lanes, subgroup, &block)
}

/// A GEMV of `lanes` units a row in 64-unit workgroups: each lane runs `block` (which leaves the
/// block's `dm`, `sq` = Σq·x and `sx` = Σx) for blocks `lane, lane + lanes, …` of row `r`, then
/// the lanes' sums are added through workgroup memory (one barrier) or a subgroup add (lanes =
/// the subgroup's size).
fn split_skeleton(header: String, lanes: u32, subgroup: bool, block: &str) -> String {
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
        "{header}
var<workgroup> sums: array<f32, 64>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u, @builtin(local_invocation_id) l: vec3u) {{
  let lane = l.x % {lanes}u;
  let row = g.x / {lanes}u;
  let r = min(row, ROWS - 1u);
  var acc = 0.0;
  for (var b = lane; b < BLOCKS; b += {lanes}u) {{
    {block}
    acc += dm.x * sq + dm.y * sx;
  }}
  {reduce}
}}"
    )
}

/// Reads every weight word as `gemv_rows` does (one row per unit, GGUF's order) without the
/// arithmetic: the access pattern's cost alone.
pub fn read_rows(rows: usize, cols: usize) -> String {
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
pub fn read_stream(units: u32) -> String {
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

/// A Q8_0 GEMV with the blocks repacked at load as [`gemv_repacked`] does: every block's f16
/// scale first (two a word, rows × blocks halves), then every block's 32 signed bytes as two
/// aligned vec4s — the head of a decode step (SmolLM2's is Q8_0), `d·Σq·x`.
pub fn gemv_q8_0_repacked(rows: usize, cols: usize, wg: u32, per: u32) -> String {
    let quants = (rows * cols / 32).div_ceil(8);
    let block = format!(
        "let i = row * BLOCKS + b;
      let d = unpack2x16float(w[i >> 3u][(i >> 1u) & 3u])[i & 1u];
      let q0 = w[{quants}u + 2u * i];
      let q1 = w[{quants}u + 2u * i + 1u];
      let sq = dot(bytes(q0.x), xs[0]) + dot(bytes(q0.y), xs[1]) + dot(bytes(q0.z), xs[2])
        + dot(bytes(q0.w), xs[3]) + dot(bytes(q1.x), xs[4]) + dot(bytes(q1.y), xs[5])
        + dot(bytes(q1.z), xs[6]) + dot(bytes(q1.w), xs[7]);
      acc[r] += d * sq;"
    );
    let bytes = "fn bytes(q: u32) -> vec4f {
  let s = bitcast<i32>(q);
  return vec4f(f32((s << 24u) >> 24u), f32((s << 16u) >> 24u), f32((s << 8u) >> 24u), f32(s >> 24u));
}";
    gemv_skeleton(
        format!("{}\n{bytes}", header(rows, cols, "vec4<u32>")),
        wg,
        per,
        &block,
    )
}
