//! The fused projection kernel against the reference path (the same weights dequantized, Burn's
//! f32 operations in HF's order) on the wgpu device (lavapipe): every epilogue, with and without
//! RMSNorm, one to three parts in different formats, both decode kernels (the cooperative one
//! is what hardware GPUs run), one token and several (a whole tile of 8 and a part; 37 tokens
//! are a whole shared tile of 32 or 16 and a part), outputs poisoned beforehand.

use burn::backend::Dispatch;
use burn::tensor::{Tensor, TensorData};

use super::{Epilogue, ProjectOps, ProjectSpec, RmsNorm, kernels, project};
use crate::gguf::GgmlType;
use crate::gguf::dequant::dequantize;
use crate::model::device::ComputeDevice;
use crate::model::llama::LogitsFor;
use crate::model::quant::tests::KERNELS;
use crate::model::quant::tests::{Rng, info, poison, random_rows, read, wgpu};
use crate::model::quant::{Arithmetic, DecodeKernel, Layout, QuantMatrix};
use crate::model::weights::Linear;
use crate::rng::SplitMix64;

const COLS: usize = 512;

/// Random values in [-1, 1].
fn values(rng: &mut Rng, len: usize) -> Vec<f32> {
    (0..len)
        .map(|_| (rng.next() % 2001) as f32 / 1000.0 - 1.0)
        .collect()
}

fn tensor(device: &ComputeDevice, values: Vec<f32>, shape: [usize; 2]) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values, shape), device.burn())
}

/// A random `rows × COLS` matrix in format `t`: as blocks for the kernel, dequantized for the
/// reference.
fn matrix(
    device: &ComputeDevice,
    t: GgmlType,
    rows: usize,
    rng: &mut Rng,
) -> (QuantMatrix, Linear) {
    let bytes = random_rows(t, rows, COLS, rng);
    let quant = QuantMatrix::upload(&info(t, rows, COLS), &bytes, device).unwrap();
    let dense = dequantize(t, &bytes, rows * COLS).unwrap();
    (
        quant,
        Linear::Dense(Box::new(tensor(device, dense, [rows, COLS]))),
    )
}

#[derive(Debug, Clone, Copy)]
enum Case {
    Store,
    AddResidual,
    SwiGlu,
}

/// Each arithmetic and its bound, relative to the largest output: f16's measured at most
/// 2.0e-3 over these cases (SwiGLU multiplies the gate's and the up row's rounding). f16 runs
/// with one kernel only (lavapipe compiles f16 shaders slowly; the matmul test in `quant`
/// covers the other paths).
const ARITHMETICS: [(Arithmetic, f32); 2] = [(Arithmetic::F32, 1e-5), (Arithmetic::F16, 5e-3)];

#[test]
fn the_fused_projection_matches_the_reference_for_every_epilogue() {
    let device = wgpu();
    assert!(device.supports_f16(), "lavapipe has shader-f16");
    let mut worst_f16 = 0f32;
    let mut rng = Rng(SplitMix64::new(11));
    let norm = RmsNorm {
        weight: Tensor::from_data(
            TensorData::new(values(&mut rng, COLS), [COLS]),
            device.burn(),
        ),
        eps: 1e-5,
    };
    // (epilogue, parts as (format, rows), normed, which tokens)
    let cases = [
        (
            Case::Store,
            vec![
                (GgmlType::Q4_K, 64),
                (GgmlType::Q6_K, 32),
                (GgmlType::Q8_0, 35),
            ],
            true,
            LogitsFor::All,
        ),
        (
            Case::Store,
            vec![(GgmlType::Q4_0, 67)],
            false,
            LogitsFor::Last,
        ),
        (
            Case::AddResidual,
            vec![(GgmlType::Q5_K, 48)],
            false,
            LogitsFor::All,
        ),
        (
            Case::SwiGlu,
            vec![(GgmlType::Q4_K, 40), (GgmlType::Q5_0, 40)],
            true,
            LogitsFor::All,
        ),
    ];
    for (case, parts, normed, which) in cases {
        let matrices: Vec<(QuantMatrix, Linear)> = parts
            .iter()
            .map(|&(t, rows)| matrix(&device, t, rows, &mut rng))
            .collect();
        let width: usize = match case {
            Case::SwiGlu => parts[0].1,
            _ => parts.iter().map(|p| p.1).sum(),
        };
        for n in [1, 5, 11, 37] {
            let x = tensor(&device, values(&mut rng, n * COLS), [n, COLS]);
            let outputs = match which {
                LogitsFor::All => n,
                LogitsFor::Last => 1,
            };
            let residual = tensor(&device, values(&mut rng, outputs * width), [outputs, width]);
            let epilogue = match case {
                Case::Store => Epilogue::Store,
                Case::AddResidual => Epilogue::AddTo(&residual),
                Case::SwiGlu => Epilogue::SwiGlu,
            };
            let norm = normed.then_some(&norm);
            let dense: Vec<&Linear> = matrices.iter().map(|(_, d)| d).collect();
            let expected = read(project(&x, norm, &dense, epilogue, which));
            let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (kernel, (arithmetic, bound)) in KERNELS
                .into_iter()
                .flat_map(|k| ARITHMETICS.into_iter().map(move |a| (k, a)))
                .filter(|&(k, (a, _))| a == Arithmetic::F32 || k == DecodeKernel::RowPerUnit)
            {
                let quant: Vec<Linear> = matrices
                    .iter()
                    .map(|(q, _)| {
                        let q = q.clone().with_decode_kernel(kernel);
                        Linear::Quant(q.with_arithmetic(arithmetic))
                    })
                    .collect();
                let quant: Vec<&Linear> = quant.iter().collect();
                poison(&device, outputs * width);
                let actual = read(project(&x, norm, &quant, epilogue, which));
                assert_eq!(actual.len(), outputs * width);
                for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
                    assert!(
                        (a - e).abs() <= bound * scale,
                        "{case:?} {parts:?} normed {normed} {which:?}, {n} tokens, {kernel:?}, \
                         {arithmetic}: output {i} is {a}, expected {e} (largest {scale})"
                    );
                    if arithmetic == Arithmetic::F16 {
                        worst_f16 = worst_f16.max((a - e).abs() / scale);
                    }
                }
            }
        }
    }
    assert!(worst_f16 > 0.0, "the f16 arithmetic rounds as f16");
    eprintln!("f16 arithmetic: largest error {worst_f16:.2e} of the largest output");
}

/// The shared tile's shape: the most rows, then tokens, that fit the device's workgroup memory
/// (32 KiB: lavapipe's and most browsers'; 48 KiB: NVIDIA's on Vulkan), a slab that holds
/// every part's natural group and divides the row, none where the parts do not split.
#[test]
fn the_shared_tile_fits_workgroup_memory_and_the_parts() {
    use super::shared_tile::SharedTile;
    use GgmlType::*;
    let tile = |rows, tokens, slab| Some(SharedTile { rows, tokens, slab });
    let qkv = [(Q4_K, 4096), (Q4_K, 1024), (Q6_K, 1024)];
    // Q6_K's 128-element halves take a 128 slab: 32 tokens would need 33,024 bytes.
    assert_eq!(
        SharedTile::choose(&qkv, false, 4096, 64, 32768),
        tile(32, 16, 128)
    );
    assert_eq!(
        SharedTile::choose(&qkv, false, 4096, 64, 49152),
        tile(32, 32, 128)
    );
    // Gate and up stage twice the rows; Q4_K's pairs of sub-blocks fit a 64 slab.
    let gate_up = [(Q4_K, 14336), (Q4_K, 14336)];
    assert_eq!(
        SharedTile::choose(&gate_up, true, 4096, 64, 32768),
        tile(32, 32, 64)
    );
    // SmolLM2's 576 columns are 4.5 slabs of 128; a 5-token prompt needs no 32-token tile.
    assert_eq!(
        SharedTile::choose(&[(Q4_1, 576)], false, 576, 5, 32768),
        tile(32, 8, 64)
    );
    assert_eq!(
        SharedTile::choose(&[(Q4_1, 576)], false, 576, 9, 32768),
        tile(32, 16, 64)
    );
    // Parts of 40 rows split into 8-row tiles only; of 20 rows not at all.
    let forty = [(Q8_0, 40), (Q8_0, 40)];
    assert_eq!(
        SharedTile::choose(&forty, false, 512, 64, 32768),
        tile(8, 32, 128)
    );
    assert_eq!(
        SharedTile::choose(&[(Q8_0, 20), (Q8_0, 20)], false, 512, 64, 32768),
        None
    );
    // No room at all.
    assert_eq!(SharedTile::choose(&qkv, false, 4096, 64, 4096), None);
    for max_shared in [16384, 32768, 49152] {
        let chosen = SharedTile::choose(&qkv, false, 4096, 64, max_shared).unwrap();
        assert!(chosen.shared_bytes(false) <= max_shared, "{chosen:?}");
    }
}

/// RMSNorm's squares summed unit by unit where a software GPU's cube of 8 spans several SIMD
/// groups or the subgroup size is not reported (a browser), through the cube's barrier where
/// the cube is one group (lavapipe's 8 lanes) or wider.
#[test]
fn the_norm_skips_the_barrier_where_a_cube_spans_several_subgroups() {
    use super::choose::solo_norm;
    assert!(solo_norm(8, None));
    assert!(solo_norm(8, Some(4)));
    assert!(!solo_norm(8, Some(8)));
    assert!(!solo_norm(8, Some(16)));
}

/// The guard of the kernel's unchecked launch: a spec with more rows than the weights' words
/// hold is refused before anything is launched (the same launch with the right rows runs).
#[test]
#[should_panic(expected = "a projection launch outside its tensors")]
fn a_projection_launch_outside_its_tensors_is_refused() {
    let device = wgpu();
    let mut rng = Rng(SplitMix64::new(3));
    let (quant, _) = matrix(&device, GgmlType::Q4_0, 8, &mut rng);
    let (words, layout) = quant.chunks()[0].clone();
    let x = tensor(&device, values(&mut rng, COLS), [1, COLS]);
    let launch = |rows: usize| {
        let spec = ProjectSpec {
            parts: [Layout { rows, ..layout }; 3],
            part_count: 1,
            rows,
            tokens: 1,
            first: 0,
            out_width: rows,
            offset: 0,
            eps_bits: None,
            epilogue: kernels::STORE,
        };
        let out = Tensor::<2>::empty([1, rows], &x.device());
        let words = || words.clone().into_dispatch();
        read(Tensor::from_dispatch(<Dispatch as ProjectOps>::project(
            x.clone().into_dispatch(),
            x.clone().reshape([-1]).into_dispatch(),
            words(),
            words(),
            words(),
            x.clone().into_dispatch(),
            out.into_dispatch(),
            spec,
        )))
    };
    assert_eq!(launch(8).len(), 8);
    launch(9);
}
