//! The key/value cache: every past token's keys and values, per block.

use burn::tensor::Tensor;

/// Keys and values of the tokens seen so far, `[kv_heads, tokens, head_dim]` per block, in f32.
/// A cache belongs to one sequence; start a new one (or [`KvCache::clear`]) for the next.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<Option<(Tensor<3>, Tensor<3>)>>,
    len: usize,
    capacity: usize,
}

impl KvCache {
    /// An empty cache for `n_layers` blocks that holds at most `capacity` tokens.
    pub fn new(n_layers: usize, capacity: usize) -> Self {
        Self {
            layers: vec![None; n_layers],
            len: 0,
            capacity,
        }
    }

    /// Tokens cached so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no token is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Tokens the cache can hold (the context size).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forgets every token.
    pub fn clear(&mut self) {
        self.layers.iter_mut().for_each(|l| *l = None);
        self.len = 0;
    }

    /// Appends block `layer`'s new keys and values and returns all of that block's so far.
    pub(crate) fn append(
        &mut self,
        layer: usize,
        k: Tensor<3>,
        v: Tensor<3>,
    ) -> (Tensor<3>, Tensor<3>) {
        let slot = &mut self.layers[layer];
        let (k, v) = match slot.take() {
            None => (k, v),
            Some((pk, pv)) => (Tensor::cat(vec![pk, k], 1), Tensor::cat(vec![pv, v], 1)),
        };
        *slot = Some((k.clone(), v.clone()));
        (k, v)
    }

    /// Records that `n` more tokens were appended to every block.
    pub(crate) fn advance(&mut self, n: usize) {
        self.len += n;
    }
}
