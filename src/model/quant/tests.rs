//! The quantized kernels on the wgpu device (lavapipe) against the host reference: every format,
//! random blocks, shapes that are not multiples of the workgroup, outputs poisoned beforehand.
//! Inside the crate: they drive the kernels through Burn tensors, which are not public.

use burn::backend::Dispatch;
use burn::tensor::{DType, Int, Tensor, TensorData};

use super::{
    Arithmetic, CHUNK_ROW_MULTIPLE, Cooperative, DecodeKernel, Prefill, QuantMatrix, QuantOps,
    Subgroups, streaming_read_gb_s,
};
use crate::gguf::dequant::dequantize;
use crate::gguf::{GgmlType, TensorInfo};
use crate::model::device::{ComputeDevice, DeviceChoice};
use crate::rng::SplitMix64;

/// The matrix kernels every product is checked with: the hardware GPU's default (on lavapipe
/// its lanes' sums go through workgroup memory: CubeCL reports no subgroups for a CPU device;
/// several tokens take the shared tile), its shape with sums by subgroup shuffles (lavapipe's
/// subgroups are 8 lanes) and several tokens on a shared row, and the software GPU's.
pub(crate) const KERNELS: [DecodeKernel; 3] = [
    DecodeKernel::Cooperative(Cooperative::DEFAULT),
    DecodeKernel::Cooperative(Cooperative {
        lanes: 8,
        rows: 2,
        subgroups: Subgroups::Forced,
        prefill: Prefill::SharedRow,
        segment_keys: 32,
    }),
    DecodeKernel::RowPerUnit,
];

/// Random test data from the crate's SplitMix64.
pub(crate) struct Rng(pub(crate) SplitMix64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    /// A finite f16 of moderate size (|x| in about 2^-9 .. 2^1), either sign.
    fn f16_bits(&mut self) -> [u8; 2] {
        let exp = 6 + (self.next() % 10) as u16; // biased exponent 6..=15
        let bits = ((self.next() as u16 & 1) << 15) | (exp << 10) | (self.next() as u16 & 0x3FF);
        bits.to_le_bytes()
    }
}

/// `rows` rows of random `t` blocks with finite scales, `cols` elements each.
pub(crate) fn random_rows(t: GgmlType, rows: usize, cols: usize, rng: &mut Rng) -> Vec<u8> {
    let (be, bb) = (t.block_elements() as usize, t.block_bytes() as usize);
    let mut out = Vec::new();
    for _ in 0..rows * cols / be {
        let mut block: Vec<u8> = (0..bb).map(|_| rng.byte()).collect();
        let f16_fields: &[usize] = match t {
            GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q5_0 => &[0],
            GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
            GgmlType::Q6_K => &[208],
            GgmlType::F16 => &[0],
            _ => &[],
        };
        for &at in f16_fields {
            block[at..at + 2].copy_from_slice(&rng.f16_bits());
        }
        match t {
            GgmlType::F32 => {
                let v = (rng.next() % 2001) as f32 / 1000.0 - 1.0;
                block.copy_from_slice(&v.to_le_bytes());
            }
            GgmlType::BF16 => {
                let v = (rng.next() % 2001) as f32 / 1000.0 - 1.0;
                block.copy_from_slice(&v.to_bits().to_le_bytes()[2..]);
            }
            _ => {}
        }
        out.extend(block);
    }
    out
}

/// The tensor entry of a `rows × cols` matrix in format `t`.
pub(crate) fn info(t: GgmlType, rows: usize, cols: usize) -> TensorInfo {
    TensorInfo {
        name: format!("test.{t}"),
        dims: vec![cols as u64, rows as u64],
        ggml_type: t,
        offset: 0,
        n_elements: (rows * cols) as u64,
        n_bytes: (rows * cols) as u64 / t.block_elements() * t.block_bytes(),
    }
}

/// The native wgpu device (lavapipe in CI).
pub(crate) fn wgpu() -> ComputeDevice {
    ComputeDevice::init_native(DeviceChoice::Wgpu).unwrap()
}

/// Fills the memory pool with NaN buffers of `len` floats, so a kernel that skips an output
/// element leaves NaN behind instead of a stale right answer.
pub(crate) fn poison(device: &ComputeDevice, len: usize) {
    let nan = Tensor::<1>::from_data(TensorData::new(vec![f32::NAN; len], [len]), device.burn());
    let _ = nan.into_data();
}

/// A 2-D tensor's values.
pub(crate) fn read(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// How far the f16 arithmetic's product may be from the exact one, relative to `Σ|x·w|` (f32's
/// bound is 1e-5): measured at most 6.2e-4 over these cases (8.1e-4 with every case in f16), the
/// rounding of inputs and weights to 11-bit significands (2^-12 relative) and of sums of up to
/// 128 products in f16.
const F16_BOUND: f64 = 2e-3;

/// Whether the f16 arithmetic is tested for format `t` with `kernel` on `rows` rows and `n`
/// tokens: every format for one token (the dequantization is shared by every path), and Q4_K and
/// Q8_0 for several tokens with lanes sharing a row and with one lane a row, on one shape.
/// lavapipe compiles f16 shaders slowly: every case in f16 took this test from ~400 s to
/// ~1,000 s with a cold shader cache.
fn f16_case(t: GgmlType, kernel: DecodeKernel, rows: usize, n: usize) -> bool {
    let several = n == 5
        && matches!(t, GgmlType::Q4_K | GgmlType::Q8_0)
        && (kernel == KERNELS[0] || kernel == DecodeKernel::RowPerUnit);
    rows == 67 && ((n == 1 && kernel == KERNELS[0]) || several)
}

#[test]
fn matmul_matches_dequantize_then_matmul_for_every_format() {
    let device = wgpu();
    assert!(device.supports_f16(), "lavapipe has shader-f16");
    let mut worst_f16 = 0f64;
    let mut rng = Rng(SplitMix64::new(42));
    // Every format the GGUF reader knows (the kernels' `decodes` is an exhaustive match).
    for t in GgmlType::ALL {
        // One token takes the decode GEMV, more the prefill kernel. Rows not a multiple of any
        // workgroup or tile (up to 16 rows × 8 tokens: 11 tokens are a whole tile and a part);
        // 1280 columns are 40 groups of 32, not a multiple of the GEMV's 32 lanes.
        // Rows of 18 and 19 blocks of 32: the 32-element formats' dot products then take blocks
        // two at a time and one at a time (`dot_group`), four for the others; the shared tile
        // stages 64 and 32 columns at a time. 37 tokens: a whole shared tile of 32 and a part.
        for (rows, cols, n) in [
            (1, 256, 1),
            (67, 512, 1),
            (67, 512, 5),
            (67, 512, 11),
            (130, 1280, 1),
            (5, 1280, 7),
            (37, 576, 1),
            (13, 608, 3),
            (21, 608, 37),
        ] {
            if cols % t.block_elements() as usize != 0 {
                continue;
            }
            let bytes = random_rows(t, rows, cols, &mut rng);
            let w = dequantize(t, &bytes, rows * cols).unwrap();
            let x: Vec<f32> = (0..n * cols)
                .map(|_| (rng.next() % 2001) as f32 / 1000.0 - 1.0)
                .collect();

            let uploaded = QuantMatrix::upload(&info(t, rows, cols), &bytes, &device).unwrap();
            let arithmetics = [(Arithmetic::F32, 1e-5), (Arithmetic::F16, F16_BOUND)];
            for (kernel, (arithmetic, bound)) in KERNELS
                .into_iter()
                .flat_map(|k| arithmetics.into_iter().map(move |a| (k, a)))
                .filter(|&(k, (a, _))| a == Arithmetic::F32 || f16_case(t, k, rows, n))
            {
                let matrix = uploaded
                    .clone()
                    .with_decode_kernel(kernel)
                    .with_arithmetic(arithmetic);
                poison(&device, n * rows);
                let xt =
                    Tensor::<2>::from_data(TensorData::new(x.clone(), [n, cols]), device.burn());
                let actual = read(matrix.matmul(xt));
                assert_eq!(actual.len(), n * rows);
                for tok in 0..n {
                    for r in 0..rows {
                        let terms =
                            (0..cols).map(|k| x[tok * cols + k] as f64 * w[r * cols + k] as f64);
                        let expected: f64 = terms.clone().sum();
                        let magnitude: f64 = terms.map(f64::abs).sum();
                        let got = actual[tok * rows + r] as f64;
                        let error = (got - expected).abs();
                        assert!(
                            error <= bound * magnitude + 1e-30,
                            "{t} {rows}×{cols} ({kernel:?}, {arithmetic}), token {tok} row {r}: \
                             {got} vs {expected}"
                        );
                        if arithmetic == Arithmetic::F16 {
                            worst_f16 = worst_f16.max(error / magnitude.max(1e-30));
                        }
                    }
                }
            }
        }
    }
    assert!(worst_f16 > 0.0, "the f16 arithmetic rounds as f16");
    eprintln!("f16 arithmetic: largest error {worst_f16:.2e} of Σ|x·w|");
}

/// A matrix split into row chunks (as a 430 MB head is on a 128 MiB-binding adapter) gives the
/// same product as one buffer.
#[test]
fn row_chunks_give_the_same_product() {
    let device = wgpu();
    let mut rng = Rng(SplitMix64::new(9));
    let (t, rows, cols, n) = (GgmlType::Q6_K, 23, 512, 3);
    let bytes = random_rows(t, rows, cols, &mut rng);
    let x: Vec<f32> = (0..n * cols)
        .map(|_| (rng.next() % 2001) as f32 / 1000.0 - 1.0)
        .collect();
    let info = info(t, rows, cols);
    let row_bytes = bytes.len() / rows;
    let product = |max_chunk_bytes: usize| {
        let m = QuantMatrix::upload_chunked(&info, &bytes, &device, max_chunk_bytes).unwrap();
        poison(&device, n * rows);
        let xt = Tensor::<2>::from_data(TensorData::new(x.clone(), [n, cols]), device.burn());
        let chunk_rows: Vec<usize> = m.chunks.iter().map(|(_, l)| l.rows).collect();
        (chunk_rows, read(m.matmul(xt)))
    };
    let (one, whole) = product(usize::MAX);
    // Four rows of two Q6_K blocks are one whole superblock on the device.
    let four_rows = super::layout::device_bytes(t, 4 * row_bytes as u64) as usize;
    assert_eq!(four_rows, 4 * row_bytes);
    let (six, chunked) = product(four_rows + 7);
    assert_eq!(
        (one, six),
        (vec![23], vec![4, 4, 4, 4, 4, 3]),
        "23 rows in chunks of 4"
    );
    assert_eq!(whole, chunked);
    // Room for 20 rows: a chunk takes 16, a multiple of the projection tile's rows.
    let (two, chunked) = product(5 * four_rows + 7);
    assert_eq!(two, [CHUNK_ROW_MULTIPLE, 23 - CHUNK_ROW_MULTIPLE]);
    assert_eq!(whole, chunked);
    assert!(QuantMatrix::upload_chunked(&info, &bytes, &device, row_bytes - 1).is_err());
    assert!(QuantMatrix::upload(&info, &bytes[1..], &device).is_err());
}

#[test]
fn the_bandwidth_probe_reads_the_whole_buffer() {
    let device = wgpu();
    for n in [16 * 1000 + 16, 1 << 20] {
        let words: Vec<u32> = (0..n as u32).map(|i| i.wrapping_mul(2654435761)).collect();
        let t = Tensor::<1, Int>::from_data(
            TensorData::new(words.clone(), [n]),
            (device.burn(), DType::U32),
        );
        let out = Tensor::<1, Int>::from_dispatch(<Dispatch as QuantOps>::stream_read(
            t.into_dispatch(),
            16,
            5,
        ));
        let got: Vec<u32> = out.into_data().try_into_vec_as::<u32>().unwrap();
        let units = n / 16;
        let expected: Vec<u32> = (0..units)
            .map(|u| (0..16).fold(5, |a, k| a ^ words[u + k * units]))
            .collect();
        assert_eq!(got, expected, "n = {n}");
    }
}

#[test]
fn the_bandwidth_probe_reports_a_finite_rate() {
    let device = wgpu();
    let clock = std::time::Instant::now();
    let now = || clock.elapsed().as_secs_f64();
    let gb_s = streaming_read_gb_s(&device, 8 << 20, 2, &now);
    let gb_s = pollster::block_on(gb_s).unwrap();
    assert!(gb_s.is_finite() && gb_s > 0.0);
}

/// A kernel's name reads back as the same kernel; malformed names are refused with a reason.
#[test]
fn decode_kernel_names_round_trip() {
    for kernel in KERNELS {
        assert_eq!(kernel.to_string().parse::<DecodeKernel>(), Ok(kernel));
    }
    let parsed: DecodeKernel = "cooperative,rows=1,subgroups=off".parse().unwrap();
    let expected = Cooperative {
        rows: 1,
        subgroups: Subgroups::Off,
        ..Cooperative::DEFAULT
    };
    assert_eq!(parsed, DecodeKernel::Cooperative(expected));
    let parsed: DecodeKernel = "cooperative,prefill=row,segment=256".parse().unwrap();
    let expected = Cooperative {
        prefill: Prefill::SharedRow,
        segment_keys: 256,
        ..Cooperative::DEFAULT
    };
    assert_eq!(parsed, DecodeKernel::Cooperative(expected));
    assert_eq!(parsed.segment_keys(), 256);
    assert_eq!(DecodeKernel::RowPerUnit.segment_keys(), 256);
    for bad in [
        "",
        "cooperative,",
        "cooperative,rows",
        "cooperative,rows=0",
        "cooperative,lanes=8,rows=16",
        "cooperative,lanes=48",
        "cooperative,subgroups=yes",
        "cooperative,prefill=",
        "cooperative,prefill=tiled",
        "cooperative,segment=8",
        "cooperative,segment=48",
        "row-per-unit,rows=2",
        "tiled",
    ] {
        assert!(bad.parse::<DecodeKernel>().is_err(), "`{bad}` parsed");
    }
}
