//! Which tile a projection launch takes: the shared tile for several tokens on a hardware GPU
//! where it fits, else the fused kernel's tile for the kind of GPU and the number of tokens.

use super::ProjectSpec;
use super::kernels::{self, Tile};
use super::shared_tile::SharedTile;
use crate::model::quant::{Arithmetic, CHUNK_ROW_MULTIPLE, DecodeKernel, Prefill, Subgroups};

/// The shared tile for a launch of several tokens on a hardware GPU whose kernel asks for it
/// ([`Prefill::SharedTile`]), if one fits the device's workgroup memory and the parts' rows.
pub(super) fn shared_tile_for(
    spec: &ProjectSpec,
    decode: DecodeKernel,
    client: &cubecl::client::Client,
) -> Option<SharedTile> {
    let DecodeKernel::Cooperative(shape) = decode else {
        return None;
    };
    if shape.prefill != Prefill::SharedTile || spec.tokens < 2 {
        return None;
    }
    let used = &spec.parts[..spec.part_count as usize];
    let parts: Vec<_> = used.iter().map(|p| (p.format, p.rows)).collect();
    let max_shared = client.properties().hardware.max_shared_memory_size;
    let paired = spec.epilogue == kernels::SWIGLU;
    SharedTile::choose(&parts, paired, used[0].cols, spec.tokens, max_shared)
}

/// The device's subgroup size (the smallest it may pick) where CubeCL reports subgroup
/// operations, else `None`.
pub(super) fn subgroup_size(client: &cubecl::client::Client) -> Option<u32> {
    let properties = client.properties();
    let ops = properties
        .features
        .plane
        .contains(cubecl::features::Plane::Ops);
    ops.then_some(properties.hardware.plane_size_min)
}

/// The tile a unit computes. On a hardware GPU 32 lanes share each row (the cooperative GEMV):
/// for one token each unit takes up to 4 rows (`Cooperative::rows`: each input value loaded
/// once for them; cubes of 8 rows, hundreds to thousands of them for a matrix), their sums added
/// with subgroup shuffles where `subgroup_size` allows; for several tokens, where the shared
/// tile is not taken ([`shared_tile_for`]), one row for up to 8 tokens (each block dequantized
/// once for 8 tokens). (The software GPU's tile below gave the H200 a 4096-row
/// matrix in 8 cubes of 64 units for a 16-token prefill: 6.6 tok/s for the 8B Q4_K_M,
/// BENCHMARKS.md session 17.) On a software GPU one lane takes whole rows: for one token up to
/// 16 rows (each input value loaded once for 16 rows); for several, up to 16 rows × 8 tokens in
/// every format (each block dequantized once for 8 tokens, each token's inputs loaded once for
/// 16 rows) — as many rows as keep every unit's rows inside one part (each part but the last a
/// whole number of units). The kernel unrolls its token loop, not its row loop, so rows cost no
/// compile time.
///
/// Measured in Chromium on SwiftShader (SmolLM2, 64-token prompt): 4 × 4 → 8 × 8 → 16 × 8
/// took prefill from 3.6 to 11.6 to 13.5 tok/s (BENCHMARKS.md, session 7); on lavapipe the 8B
/// Q4_K_M's prefill from 0.38 to 0.81 tok/s with 16 × 8 over the K-quants too, whose groups of
/// 2–4 sub-blocks double the warm-up (69 → 131 s; session 8). One token, 8 → 16 rows: decode
/// in Chromium 2.92 → 3.32 tok/s (three runs each), on lavapipe the same (session 14).
pub(super) fn tile_for(
    spec: &ProjectSpec,
    decode: DecodeKernel,
    subgroup_size: Option<u32>,
) -> Tile {
    let tokens = match spec.tokens {
        1 => 1,
        _ => 8,
    };
    let used = &spec.parts[..spec.part_count as usize];
    let inner = &used[..used.len().saturating_sub(1)];
    let integer_dots = used[0].arithmetic == Arithmetic::F32;
    // The most rows, from `most` down by halves, that keep every unit's rows in one part.
    let rows_from = |most: u32| {
        std::iter::successors(Some(most), |&r| (r > 1).then_some(r / 2))
            .find(|&rows| {
                spec.epilogue == kernels::SWIGLU
                    || inner.iter().all(|p| p.rows % rows as usize == 0)
            })
            .unwrap_or(1)
    };
    match decode {
        DecodeKernel::Cooperative(shape) => Tile {
            units: decode.cube_units(),
            lanes: shape.lanes,
            rows: match tokens {
                1 => rows_from(shape.rows),
                _ => 1,
            },
            tokens,
            subgroup: match shape.subgroups {
                Subgroups::Off => false,
                Subgroups::Auto => subgroup_size.is_some_and(|size| size >= shape.lanes),
                Subgroups::Forced => true,
            },
            integer_dots,
            solo_norm: false,
        },
        DecodeKernel::RowPerUnit => Tile {
            units: decode.cube_units(),
            lanes: 1,
            rows: rows_from(CHUNK_ROW_MULTIPLE as u32),
            tokens,
            subgroup: false,
            integer_dots,
            solo_norm: solo_norm(decode.cube_units(), subgroup_size),
        },
    }
}

/// Whether a software GPU's cube of `units` sums RMSNorm's squares unit by unit
/// ([`Tile::solo_norm`]): where its units span more than one subgroup, or the subgroup size is
/// not reported (a browser: wgpu's WebGPU backend does not ask for subgroups; SwiftShader's
/// are 4 lanes). On lavapipe a cube of 8 is one of its 8-lane SIMD groups and the barrier
/// costs nothing measurable (BENCHMARKS.md, session 26).
pub(super) fn solo_norm(units: u32, subgroup_size: Option<u32>) -> bool {
    subgroup_size.is_none_or(|size| size < units)
}
