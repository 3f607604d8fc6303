//! Grouped-query attention over the KV cache, on either kind of cache:
//!
//! - **rows on the GPU** (wgpu): our kernels store the new keys and values in place into
//!   preallocated rows (f32, or 8-bit with a scale per row) and attend in one pass with an
//!   online softmax, split into segments of keys and merged — no score matrix, no mask, no
//!   copies of the cache;
//! - **tensors** (the CPU reference device): Burn operations as HF's eager attention, the cache
//!   growing by concatenation.

mod kernels;

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Dispatch, backend_extension};
use burn::tensor::activation::softmax;
use burn::tensor::{Shape, Tensor, TensorData};
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device;
use cubecl::prelude::*;

use super::kv_cache::{KvCache, KvLayout, Store};
use super::plan::{KvFormat, attention_segments};

/// Units per workgroup of the attention kernels.
const WORKGROUP: u32 = 64;

/// The cache kernels, as a Burn backend extension (Fusion runs them in its stream).
#[backend_extension(Cube, Fusion)]
pub trait AttentionOps: burn::backend::Backend {
    /// Writes `new` (`[kv_heads, n, head_dim]`) into rows `start .. start + n` of `cache`, in
    /// place, and returns the cache.
    #[fusion(dtype = cache, shape = Shape::new([cache[0]]))]
    fn kv_store(
        new: FloatTensor<Self>,
        cache: IntTensor<Self>,
        layout: KvLayout,
        start: usize,
    ) -> IntTensor<Self>;

    /// Attends `q` (`[heads, n, head_dim]`, tokens at cache slots `past ..`) to the cached
    /// `keys` and `values` causally: `[n, heads · head_dim]`.
    #[fusion(dtype = q, shape = Shape::new([q[1], q[0] * q[2]]))]
    fn attend(
        q: FloatTensor<Self>,
        keys: IntTensor<Self>,
        values: IntTensor<Self>,
        layout: KvLayout,
        past: usize,
    ) -> FloatTensor<Self>;
}

/// The kernels' code for a cache format.
fn format_code(format: KvFormat) -> u32 {
    match format {
        KvFormat::F32 => kernels::KV_F32,
        KvFormat::Q8 => kernels::KV_Q8,
    }
}

impl AttentionOps for CubeBackend {
    fn kv_store(
        new: FloatTensor<Self>,
        cache: IntTensor<Self>,
        layout: KvLayout,
        start: usize,
    ) -> IntTensor<Self> {
        let new = into_contiguous(new);
        let n = new.meta.shape()[1];
        let units = (layout.kv_heads * n) as u32;
        kernels::kv_store_kernel::launch(
            &cache.client.clone(),
            CubeCount::Static(units.div_ceil(WORKGROUP), 1, 1),
            CubeDim::new_1d(WORKGROUP),
            new.into_tensor_arg(),
            cache.clone().into_tensor_arg(),
            layout.kv_heads,
            n,
            layout.capacity,
            start,
            layout.head_dim,
            format_code(layout.format),
        );
        cache
    }

    fn attend(
        q: FloatTensor<Self>,
        keys: IntTensor<Self>,
        values: IntTensor<Self>,
        layout: KvLayout,
        past: usize,
    ) -> FloatTensor<Self> {
        let q = into_contiguous(q);
        let [heads, n, head_dim] = [q.meta.shape()[0], q.meta.shape()[1], q.meta.shape()[2]];
        let (segments, seg_len) = attention_segments(n, past + n);
        let client = q.client.clone();
        let partial = empty_device::<f32>(
            client.clone(),
            q.device.clone(),
            Shape::new([heads * n * segments * (head_dim + 2)]),
        );
        let units = (heads * n * segments) as u32;
        kernels::attend_kernel::launch(
            &client,
            CubeCount::Static(units.div_ceil(WORKGROUP), 1, 1),
            CubeDim::new_1d(WORKGROUP),
            q.clone().into_tensor_arg(),
            keys.into_tensor_arg(),
            values.into_tensor_arg(),
            partial.clone().into_tensor_arg(),
            heads,
            layout.kv_heads,
            n,
            past,
            layout.capacity,
            segments,
            seg_len,
            1.0 / (head_dim as f32).sqrt(),
            head_dim,
            format_code(layout.format),
        );
        let out = empty_device::<f32>(client.clone(), q.device, Shape::new([n, heads * head_dim]));
        let units = (n * heads * head_dim) as u32;
        kernels::combine_kernel::launch(
            &client,
            CubeCount::Static(units.div_ceil(WORKGROUP), 1, 1),
            CubeDim::new_1d(WORKGROUP),
            partial.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            heads,
            n,
            segments,
            head_dim,
        );
        out
    }
}

/// Appends block `layer`'s new keys and values (`[kv_heads, n, head_dim]`, after RoPE) to the
/// cache and attends the queries (`[heads, n, head_dim]`) to everything cached for it, causally
/// (`mask` is the CPU path's `[1, n, past + n]` additive mask; `None` for one token). Returns
/// `[n, heads · head_dim]`. The cache's length advances only in [`KvCache::advance`].
pub(crate) fn attend(
    q: Tensor<3>,
    k: Tensor<3>,
    v: Tensor<3>,
    layer: usize,
    cache: &mut KvCache,
    mask: Option<&Tensor<3>>,
) -> Tensor<2> {
    let past = cache.len();
    match &mut cache.store {
        Store::Rows { layers, layout } => {
            let (keys, values) = &mut layers[layer];
            let store = |new: Tensor<3>, rows: &mut Tensor<1, burn::tensor::Int>| {
                *rows = Tensor::from_dispatch(<Dispatch as AttentionOps>::kv_store(
                    new.into_dispatch(),
                    rows.clone().into_dispatch(),
                    *layout,
                    past,
                ));
            };
            store(k, keys);
            store(v, values);
            Tensor::from_dispatch(<Dispatch as AttentionOps>::attend(
                q.into_dispatch(),
                keys.clone().into_dispatch(),
                values.clone().into_dispatch(),
                *layout,
                past,
            ))
        }
        Store::Tensors(layers) => {
            let slot = &mut layers[layer];
            let (k, v) = match slot.take() {
                None => (k, v),
                Some((pk, pv)) => (Tensor::cat(vec![pk, k], 1), Tensor::cat(vec![pv, v], 1)),
            };
            *slot = Some((k.clone(), v.clone()));
            reference(q, k, v, mask)
        }
    }
}

/// HF's eager attention with Burn operations: `softmax(q kᵀ / √d + mask) v`, query heads
/// `g·rep .. g·rep+rep-1` sharing KV head `g`.
fn reference(q: Tensor<3>, k: Tensor<3>, v: Tensor<3>, mask: Option<&Tensor<3>>) -> Tensor<2> {
    let [heads, n, hd] = q.dims();
    let [kv_heads, total, _] = k.dims();
    let rep = heads / kv_heads;
    // Group the query heads of a KV head along the token axis.
    let q = q.reshape([kv_heads, rep * n, hd]);
    let scores = q.matmul(k.transpose()) * (1.0 / (hd as f64).sqrt());
    let mut scores = scores.reshape([heads, n, total]);
    if let Some(mask) = mask {
        scores = scores + mask.clone();
    }
    let probs = softmax(scores, 2).reshape([kv_heads, rep * n, total]);
    let out = probs.matmul(v).reshape([heads, n, hd]).swap_dims(0, 1);
    out.reshape([n, heads * hd])
}

/// `[1, n, past + n]`: 0 where token `i` (cache slot `past + i`) may attend, −∞ after it.
pub(crate) fn causal_mask(n: usize, past: usize, device: &burn::tensor::Device) -> Tensor<3> {
    let total = past + n;
    let values = (0..n)
        .flat_map(|i| {
            (0..total).map(move |j| {
                if j <= past + i {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
        })
        .collect::<Vec<f32>>();
    Tensor::from_data(TensorData::new(values, [1, n, total]), device)
}
