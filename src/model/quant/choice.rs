//! How a matrix is multiplied: the kernel's shape ([`DecodeKernel`], by the kind of GPU) and the
//! type its dot products are taken in ([`Arithmetic`]).

use crate::model::device::ComputeDevice;

/// How a matrix is multiplied, chosen by the kind of GPU: named for the single token (decode)
/// it was made for, it also shapes the tile for several tokens (prefill).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeKernel {
    /// The lanes of a workgroup share a row and read neighbouring blocks (coalesced), then
    /// reduce: the GEMV for hardware GPUs; several tokens take the shape's [`Prefill`] tile.
    Cooperative(Cooperative),
    /// One unit per row, no barrier: faster on software GPUs, where a barrier is expensive
    /// (lavapipe: 1.5 vs 0.9 tok/s on SmolLM2, 0.088 vs 0.062 on the 8B Q4_0); for several
    /// tokens, a unit takes up to 16 rows × 8 tokens.
    RowPerUnit,
}

/// The shape of the cooperative GEMV ([`DecodeKernel::Cooperative`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cooperative {
    /// Lanes sharing a row (32; a power of two).
    pub lanes: u32,
    /// The most rows a unit takes for one token, each input value loaded once for all of them
    /// (fewer where a matrix's rows do not divide); one for several tokens.
    pub rows: u32,
    /// How the lanes' partial sums are added up.
    pub subgroups: Subgroups,
    /// The tile for several tokens (prefill).
    pub prefill: Prefill,
    /// Keys one unit of the attention reads a query token (a segment when decoding, times the
    /// tokens of a prefill chunk; the segments' sums are then merged): a power of two from 16 to
    /// 256.
    pub segment_keys: u32,
}

impl Cooperative {
    /// The default shape: 32 lanes a row, up to 4 rows a unit for one token (the input
    /// loaded once for 4 rows, as llama.cpp's Vulkan GEMV takes several rows a workgroup),
    /// subgroup sums where the device has them; prefill by the shared tile; decode attention
    /// in segments of 32 keys (a unit walking its keys alone waits on memory for each one: the
    /// software GPU's 256 gave the 8B's 32 heads 32 units up to 256 tokens of context, each
    /// walking every key).
    pub const DEFAULT: Cooperative = Cooperative {
        lanes: 32,
        rows: 4,
        subgroups: Subgroups::Auto,
        prefill: Prefill::SharedTile,
        segment_keys: 32,
    };
}

/// How a hardware GPU multiplies a matrix by several tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefill {
    /// A cube computes a block of up to 32 rows × 32 tokens, the weights of a slab of columns
    /// dequantized once into workgroup memory and the inputs staged beside them, each unit a
    /// register tile of up to 4 × 4 from there (`project::shared_tile`); where the device's
    /// workgroup memory holds no tile, or the parts' rows do not split into whole tiles, the
    /// shared row.
    SharedTile,
    /// The cooperative GEMV's lanes share one row and take 8 tokens at a time, each group
    /// dequantized once for them and every input loaded from cache for every product
    /// (`project::shared_row`; session 17's shape).
    SharedRow,
}

/// Whether the cooperative GEMV adds its lanes' partial sums with subgroup shuffles (no
/// workgroup memory, no barrier) or through workgroup memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subgroups {
    /// Through workgroup memory, always.
    Off,
    /// Subgroup shuffles where CubeCL reports subgroup operations (native Vulkan and Metal on a
    /// hardware GPU; wgpu 30's WebGPU backend does not ask the browser for `subgroups`) with
    /// subgroups of at least the row's lanes; workgroup memory elsewhere.
    Auto,
    /// Subgroup shuffles: the caller knows the device has subgroups of at least the row's lanes
    /// (tests, on lavapipe, whose subgroups of 8 CubeCL does not report for a CPU device).
    Forced,
}

impl DecodeKernel {
    /// The kernel for `device`: the one it was given ([`ComputeDevice::with_decode_kernel`]),
    /// else by its kind of GPU.
    pub fn for_device(device: &ComputeDevice) -> Self {
        if let Some(kernel) = device.decode_kernel() {
            return kernel;
        }
        match device.is_software_gpu() {
            true => DecodeKernel::RowPerUnit,
            false => DecodeKernel::Cooperative(Cooperative::DEFAULT),
        }
    }

    /// Keys one unit of the attention reads a query token: the cooperative shape's
    /// ([`Cooperative::segment_keys`]), on a software GPU [`SEGMENT_KEYS`] (256: enough units for
    /// its cores at any length, and fewer partial sums to merge).
    ///
    /// [`SEGMENT_KEYS`]: crate::model::plan::SEGMENT_KEYS
    pub fn segment_keys(self) -> usize {
        match self {
            DecodeKernel::Cooperative(shape) => shape.segment_keys as usize,
            DecodeKernel::RowPerUnit => crate::model::plan::SEGMENT_KEYS,
        }
    }

    /// Units per cube of the kernels on this kind of GPU (the projections and the KV cache's):
    /// 64 on a hardware GPU; 8 on a software GPU (one SIMD group of lavapipe's, two of
    /// SwiftShader's), so that a matrix of a few hundred rows, or a decode step's 9 to 32 heads,
    /// still split into as many cubes as the CPU has cores — decode on lavapipe ~87 → ~76 ms a
    /// token, prefill in Chromium 17–18.6 → 19.7–20.4 tok/s (BENCHMARKS.md, session 14).
    pub fn cube_units(self) -> u32 {
        match self {
            DecodeKernel::Cooperative(_) => 64,
            DecodeKernel::RowPerUnit => 8,
        }
    }
}

impl std::fmt::Display for DecodeKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeKernel::RowPerUnit => write!(f, "row-per-unit"),
            DecodeKernel::Cooperative(c) => {
                let subgroups = match c.subgroups {
                    Subgroups::Off => "off",
                    Subgroups::Auto => "auto",
                    Subgroups::Forced => "forced",
                };
                let prefill = match c.prefill {
                    Prefill::SharedTile => "tile",
                    Prefill::SharedRow => "row",
                };
                write!(
                    f,
                    "cooperative,lanes={},rows={},subgroups={subgroups},prefill={prefill},segment={}",
                    c.lanes, c.rows, c.segment_keys
                )
            }
        }
    }
}

impl std::str::FromStr for DecodeKernel {
    type Err = String;

    /// `row-per-unit`, or `cooperative` with any of `,lanes=N` (a power of two, 8 to 64),
    /// `,rows=N` (1 to 16, at most `lanes`), `,subgroups=off|auto|forced`, `,prefill=tile|row`,
    /// `,segment=N` (a power of two, 16 to 256) (defaults: [`Cooperative::DEFAULT`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut fields = s.split(',');
        match fields.next() {
            Some("row-per-unit") if s == "row-per-unit" => return Ok(DecodeKernel::RowPerUnit),
            Some("cooperative") => {}
            _ => {
                return Err(format!(
                    "`{s}`: expected `row-per-unit` or `cooperative[,…]`"
                ));
            }
        }
        let mut shape = Cooperative::DEFAULT;
        for field in fields {
            let bad = || {
                format!(
                    "`{field}` in `{s}`: expected lanes=N, rows=N, subgroups=…, prefill=… or segment=N"
                )
            };
            let (key, value) = field.split_once('=').ok_or_else(bad)?;
            let number = || value.parse::<u32>().map_err(|_| bad());
            match key {
                "lanes" => shape.lanes = number()?,
                "rows" => shape.rows = number()?,
                "subgroups" => {
                    shape.subgroups = match value {
                        "off" => Subgroups::Off,
                        "auto" => Subgroups::Auto,
                        "forced" => Subgroups::Forced,
                        _ => return Err(bad()),
                    }
                }
                "segment" => shape.segment_keys = number()?,
                "prefill" => {
                    shape.prefill = match value {
                        "tile" => Prefill::SharedTile,
                        "row" => Prefill::SharedRow,
                        _ => return Err(bad()),
                    }
                }
                _ => return Err(bad()),
            }
        }
        let lanes_ok = shape.lanes.is_power_of_two() && (8..=64).contains(&shape.lanes);
        let segment = shape.segment_keys;
        let segment_ok = segment.is_power_of_two() && (16..=256).contains(&segment);
        if !lanes_ok || !segment_ok || !(1..=shape.lanes.min(16)).contains(&shape.rows) {
            return Err(format!(
                "`{s}`: lanes a power of two from 8 to 64, rows from 1 to 16 and at most lanes, \
                 segment a power of two from 16 to 256"
            ));
        }
        Ok(DecodeKernel::Cooperative(shape))
    }
}

/// The type a projection's dot products are taken in. The input, the output, the scales and
/// the epilogue stay f32 in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Arithmetic {
    /// f32 throughout: the fidelity reference, and the default everywhere. The quantized
    /// formats' integers are dotted with the inputs and scaled once a chunk.
    #[default]
    F32,
    /// IEEE half precision (WGSL `f16`): needs the adapter's `shader-f16` feature
    /// ([`ComputeDevice::supports_f16`]). The inputs and the dequantized weights held as f16,
    /// each group of 32–128 products summed in f16, the groups' sums added in f32 (mixed
    /// precision, as llama.cpp's f16 paths); every format is dequantized first, since integer
    /// dots outgrow f16. Half the registers a value, twice the rate on GPUs with packed f16
    /// arithmetic. Its bounds against f32 are in the tests (`quant::tests`, `project::tests`,
    /// `tests/forward.rs`).
    F16,
}

impl std::fmt::Display for Arithmetic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Arithmetic::F32 => "f32",
            Arithmetic::F16 => "f16",
        })
    }
}

impl std::str::FromStr for Arithmetic {
    type Err = String;

    /// `f32` or `f16`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "f32" => Ok(Arithmetic::F32),
            "f16" => Ok(Arithmetic::F16),
            _ => Err(format!("`{s}`: expected `f32` or `f16`")),
        }
    }
}
