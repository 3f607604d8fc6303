//! Attention on the CPU reference device: HF's eager attention with Burn operations, the cache
//! growing by concatenation.

use burn::tensor::activation::softmax;
use burn::tensor::{Tensor, TensorData};

/// [`super::attend`] on the tensor cache: splits `qkv` (`[n, (heads + 2·kv) · head_dim]`) into
/// heads, rotates q and k, appends k and v to `layer`'s (`[kv_heads, tokens, head_dim]` each,
/// none before the first token), and attends with `mask`.
pub(super) fn attend(
    qkv: Tensor<2>,
    angles: &Tensor<3>,
    heads: usize,
    layer: &mut Option<(Tensor<3>, Tensor<3>)>,
    mask: Option<&Tensor<3>>,
) -> Tensor<2> {
    let [n, width] = qkv.dims();
    let hd = angles.dims()[2] * 2;
    let kv = (width / hd - heads) / 2;
    let split = |from: usize, count: usize| {
        qkv.clone()
            .narrow(1, from * hd, count * hd)
            .reshape([n, count, hd])
            .swap_dims(0, 1)
    };
    let q = rope(split(0, heads), angles);
    let k = rope(split(heads, kv), angles);
    let v = split(heads + kv, kv);
    let (k, v) = match layer.take() {
        None => (k, v),
        Some((pk, pv)) => (Tensor::cat(vec![pk, k], 1), Tensor::cat(vec![pv, v], 1)),
    };
    *layer = Some((k.clone(), v.clone()));
    reference(q, k, v, mask)
}

/// Rotates adjacent pairs `(2j, 2j+1)` of `x` (`[heads, tokens, head_dim]`) by `angles`
/// (`[2, tokens, head_dim / 2]`) with Burn operations, as HF: `(a·cos − b·sin, b·cos + a·sin)`.
fn rope(x: Tensor<3>, angles: &Tensor<3>) -> Tensor<3> {
    let [heads, n, hd] = x.dims();
    let half = hd / 2;
    let table = |i: usize| angles.clone().narrow(0, i, 1).reshape([1, n, half, 1]);
    let (cos, sin) = (table(0), table(1));
    let pairs = x.reshape([heads, n, half, 2]);
    let a = pairs.clone().slice([0..heads, 0..n, 0..half, 0..1]);
    let b = pairs.slice([0..heads, 0..n, 0..half, 1..2]);
    let ra = a.clone() * cos.clone() - b.clone() * sin.clone();
    let rb = b * cos + a * sin;
    Tensor::cat(vec![ra, rb], 3).reshape([heads, n, hd])
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
