//! Grouped-query attention over the KV cache, on either kind of cache:
//!
//! - **rows on the GPU** (wgpu): our kernels store the new keys and values in place into
//!   preallocated rows (f32, f16, or 8-bit with a scale per row) and attend in one pass with an
//!   online softmax, split into segments of keys and merged — no score matrix, no mask, no
//!   copies of the cache;
//! - **tensors** (the CPU reference device): Burn operations as HF's eager attention, the cache
//!   growing by concatenation.

mod kernels;
mod reference;
mod rows;
mod softmax;
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Dispatch, backend_extension};
use burn::tensor::{Int, Shape, Tensor};
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device;
use burn_cubecl::tensor::CubeTensor;
use cubecl::prelude::*;

use super::kv_cache::{KvCache, KvLayout, Store};
use super::plan::attention_segments;
pub(crate) use kernels::STEP_SEGMENTS;
pub(crate) use reference::causal_mask;

/// The cache kernels, as a Burn backend extension.
#[backend_extension(Cube)]
pub(crate) trait AttentionOps: burn::backend::Backend {
    /// Rotates the query and key heads of `qkv` (`[n, (heads + 2 · kv_heads) · head_dim]`) by
    /// `angles` (`[2, n, head_dim / 2]`: cosines, sines), stores keys and values in place into
    /// rows `start .. start + n` of the cache, and returns the rotated queries
    /// (`[heads, n, head_dim]`).
    #[allow(clippy::too_many_arguments)]
    fn rope_store(
        qkv: FloatTensor<Self>,
        angles: FloatTensor<Self>,
        keys: IntTensor<Self>,
        values: IntTensor<Self>,
        layout: KvLayout,
        heads: usize,
        start: usize,
    ) -> FloatTensor<Self>;

    /// [`Self::rope_store`] and [`Self::attend`] for one token (`qkv` `[1, …]`) in one launch
    /// (the merge of segments, where there are several, in a second): `[1, heads · head_dim]`.
    /// The token's slot and the segment count are read from `info` ([`step_info`]) on the
    /// device; `past` only says whether one segment holds the keys (one
    /// launch) or several (a merge, its buffer sized for the whole cache), so the same launches
    /// serve every position on the same side of [`SEGMENT_KEYS`].
    #[allow(clippy::too_many_arguments)]
    fn rope_attend(
        qkv: FloatTensor<Self>,
        angles: FloatTensor<Self>,
        keys: IntTensor<Self>,
        values: IntTensor<Self>,
        info: IntTensor<Self>,
        layout: KvLayout,
        heads: usize,
        past: usize,
    ) -> FloatTensor<Self>;

    /// Attends `q` (`[heads, n, head_dim]`, tokens at cache slots `past ..`) to the cached
    /// `keys` and `values` causally: `[n, heads · head_dim]` (`info`: [`step_info`]'s).
    fn attend(
        q: FloatTensor<Self>,
        keys: IntTensor<Self>,
        values: IntTensor<Self>,
        info: IntTensor<Self>,
        layout: KvLayout,
        past: usize,
    ) -> FloatTensor<Self>;
}

impl AttentionOps for CubeBackend {
    fn rope_store(
        qkv: FloatTensor<Self>,
        angles: FloatTensor<Self>,
        keys: IntTensor<Self>,
        values: IntTensor<Self>,
        layout: KvLayout,
        heads: usize,
        start: usize,
    ) -> FloatTensor<Self> {
        let qkv = into_contiguous(qkv);
        let angles = into_contiguous(angles);
        let n = qkv.meta.shape()[0];
        let client = qkv.client.clone();
        let q = empty_device::<f32>(
            client.clone(),
            qkv.device.clone(),
            Shape::new([heads, n, layout.head_dim]),
        );
        let units = (n * (heads + 2 * layout.kv_heads)) as u32;
        kernels::rope_store_kernel::launch(
            &client,
            CubeCount::Static(units.div_ceil(layout.cube_units), 1, 1),
            CubeDim::new_1d(layout.cube_units),
            qkv.into_tensor_arg(),
            angles.into_tensor_arg(),
            q.clone().into_tensor_arg(),
            keys.into_tensor_arg(),
            values.into_tensor_arg(),
            heads,
            layout.kv_heads,
            n,
            layout.capacity,
            start,
            layout.head_dim,
            layout.format,
        );
        q
    }

    fn rope_attend(
        qkv: FloatTensor<Self>,
        angles: FloatTensor<Self>,
        keys: IntTensor<Self>,
        values: IntTensor<Self>,
        info: IntTensor<Self>,
        layout: KvLayout,
        heads: usize,
        past: usize,
    ) -> FloatTensor<Self> {
        let qkv = into_contiguous(qkv);
        let angles = into_contiguous(angles);
        assert_eq!(qkv.meta.shape()[0], 1, "one token");
        let head_dim = layout.head_dim;
        let (segments, seg_len) = attention_segments(1, past + 1, layout.segment_keys);
        // Room for as many segments as the whole cache has: the launch is recorded once and
        // replayed at later positions (`info` says how many there are now).
        let room = match segments {
            1 => 1,
            _ => attention_segments(1, layout.capacity, layout.segment_keys)
                .0
                .max(2),
        };
        let outputs = Outputs::new(&qkv, heads, 1, room, head_dim);
        // Units for every segment there is room for: those past the step's count stop at once.
        // (Not an indirect dispatch: its arguments could share a buffer with `info`, which the
        // kernel binds for writing, and WebGPU forbids the two uses in one dispatch.)
        let units = (heads * room) as u32;
        kernels::rope_attend_kernel::launch(
            &qkv.client,
            CubeCount::Static(units.div_ceil(layout.cube_units), 1, 1),
            CubeDim::new_1d(layout.cube_units),
            qkv.clone().into_tensor_arg(),
            angles.into_tensor_arg(),
            keys.into_tensor_arg(),
            values.into_tensor_arg(),
            outputs.partial.clone().into_tensor_arg(),
            info.clone().into_tensor_arg(),
            heads,
            layout.kv_heads,
            layout.capacity,
            seg_len,
            1.0 / (head_dim as f32).sqrt(),
            head_dim,
            layout.format,
            outputs.direct(),
        );
        outputs.combine(layout, info)
    }

    fn attend(
        q: FloatTensor<Self>,
        keys: IntTensor<Self>,
        values: IntTensor<Self>,
        info: IntTensor<Self>,
        layout: KvLayout,
        past: usize,
    ) -> FloatTensor<Self> {
        let q = into_contiguous(q);
        let [heads, n, head_dim] = [q.meta.shape()[0], q.meta.shape()[1], q.meta.shape()[2]];
        let (segments, seg_len) = attention_segments(n, past + n, layout.segment_keys);
        let outputs = Outputs::new(&q, heads, n, segments, head_dim);
        let units = (heads * n * segments) as u32;
        kernels::attend_kernel::launch(
            &q.client,
            CubeCount::Static(units.div_ceil(layout.cube_units), 1, 1),
            CubeDim::new_1d(layout.cube_units),
            q.clone().into_tensor_arg(),
            keys.into_tensor_arg(),
            values.into_tensor_arg(),
            outputs.partial.clone().into_tensor_arg(),
            heads,
            layout.kv_heads,
            n,
            past,
            layout.capacity,
            segments,
            seg_len,
            1.0 / (head_dim as f32).sqrt(),
            head_dim,
            layout.format,
            outputs.direct(),
        );
        outputs.combine(layout, info)
    }
}

/// Where the attention kernels write: with one segment (decode over up to 256 keys, a prefill
/// chunk over up to 256 per token) the output itself, no merge launch; otherwise each segment's
/// partial sums, merged by [`kernels::combine_kernel`] into the output.
struct Outputs {
    /// `[n, heads · head_dim]`.
    out: CubeTensor,
    /// `out`, or the segments' partial sums.
    partial: CubeTensor,
    /// `[heads, n, segments, head_dim]`: what the buffers were made for (room for `segments`;
    /// one: the output itself).
    shape: [usize; 4],
}

impl Outputs {
    /// The buffers for `n` tokens of `heads` heads over `segments` segments, on `like`'s device.
    fn new(like: &CubeTensor, heads: usize, n: usize, segments: usize, head_dim: usize) -> Self {
        let empty = |shape: Vec<usize>| {
            empty_device::<f32>(like.client.clone(), like.device.clone(), Shape::from(shape))
        };
        let out = empty(vec![n, heads * head_dim]);
        let partial = match segments {
            1 => out.clone(),
            _ => empty(vec![heads * n * segments * (head_dim + 2)]),
        };
        let shape = [heads, n, segments, head_dim];
        Outputs {
            out,
            partial,
            shape,
        }
    }

    /// Whether the attention kernel writes the output itself (one segment).
    fn direct(&self) -> bool {
        self.shape[2] == 1
    }

    /// The output, the segments (as many as `info` says) merged first where there are several.
    fn combine(self, layout: KvLayout, info: CubeTensor) -> CubeTensor {
        if self.direct() {
            return self.out;
        }
        let [heads, n, _, head_dim] = self.shape;
        let units = (n * heads * head_dim) as u32;
        kernels::combine_kernel::launch(
            &self.out.client,
            CubeCount::Static(units.div_ceil(layout.cube_units), 1, 1),
            CubeDim::new_1d(layout.cube_units),
            self.partial.into_tensor_arg(),
            self.out.clone().into_tensor_arg(),
            info.into_tensor_arg(),
            heads,
            n,
            head_dim,
        );
        self.out
    }
}

/// What a step's attention takes besides the cache: the CPU path's additive causal mask
/// (`[1, n, past + n]`; `None` for one token), or the preallocated cache's [`step_info`] on the
/// device.
#[derive(Clone, Copy, Default)]
pub(crate) struct StepInputs<'a> {
    /// The CPU path's mask.
    pub mask: Option<&'a Tensor<3>>,
    /// The wgpu path's step parameters.
    pub info: Option<&'a Tensor<1, Int>>,
}

/// The step parameters the attention kernels read from the device for `n` tokens after `past`
/// (`kernels::STEP_WORDS`): the first slot, the number of key segments (of `segment_keys` keys
/// for one token: the cache's).
pub(crate) fn step_info(n: usize, past: usize, segment_keys: usize) -> Vec<u32> {
    let (segments, _) = attention_segments(n, past + n, segment_keys);
    let mut info = vec![0; kernels::STEP_WORDS];
    info[kernels::STEP_PAST] = past as u32;
    info[kernels::STEP_SEGMENTS] = segments as u32;
    info
}

/// Attention for block `layer` from its q/k/v projection (`[n, (heads + 2 · kv_heads) ·
/// head_dim]`): RoPE by `angles` (`[2, n, head_dim / 2]`, cosines then sines), the new keys and
/// values appended to the cache, the queries attended to everything cached for the block,
/// causally (`mask` is the CPU path's `[1, n, past + n]` additive mask; `None` for one token;
/// `info`: [`step_info`]'s, on the device, for the preallocated cache). Returns `[n, heads ·
/// head_dim]`. The cache's length advances only in [`KvCache::advance`].
pub(crate) fn attend(
    qkv: Tensor<2>,
    angles: &Tensor<3>,
    heads: usize,
    layer: usize,
    cache: &mut KvCache,
    step: StepInputs<'_>,
) -> Tensor<2> {
    let past = cache.len();
    let StepInputs { mask, info } = step;
    match &mut cache.store {
        Store::Rows { layers, layout } => {
            let (keys, values) = &layers[layer];
            let info = info
                .expect("the preallocated cache's attention reads its step from the device")
                .clone()
                .into_dispatch();
            if qkv.dims()[0] == 1 {
                return Tensor::from_dispatch(<Dispatch as AttentionOps>::rope_attend(
                    qkv.into_dispatch(),
                    angles.clone().into_dispatch(),
                    keys.clone().into_dispatch(),
                    values.clone().into_dispatch(),
                    info,
                    *layout,
                    heads,
                    past,
                ));
            }
            let q = Tensor::<3>::from_dispatch(<Dispatch as AttentionOps>::rope_store(
                qkv.into_dispatch(),
                angles.clone().into_dispatch(),
                keys.clone().into_dispatch(),
                values.clone().into_dispatch(),
                *layout,
                heads,
                past,
            ));
            Tensor::from_dispatch(<Dispatch as AttentionOps>::attend(
                q.into_dispatch(),
                keys.clone().into_dispatch(),
                values.clone().into_dispatch(),
                info,
                *layout,
                past,
            ))
        }
        Store::Tensors(layers) => reference::attend(qkv, angles, heads, &mut layers[layer], mask),
    }
}
