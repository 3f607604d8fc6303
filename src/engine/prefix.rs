//! The KV cache kept between requests. A chat sends the whole conversation again each turn;
//! the keys and values of what the last request already ran are still valid for the tokens the
//! new prompt shares with it, so only the rest is prefilled (and no cache is allocated again).
//! The warm-up at load leaves the chat template's preamble in it, so even the first question
//! prefills only its own tokens.

use std::sync::{Mutex, MutexGuard};

use super::{Engine, EngineError};
use crate::model::kv_cache::KvCache;
use crate::model::plan::KvFormat;

/// The cache of the last request that finished, with the tokens it holds.
#[derive(Debug, Default)]
pub struct KeptCache(Mutex<Option<(Vec<u32>, KvCache)>>);

impl KeptCache {
    /// Takes the kept cache for `prompt`: truncated to the tokens it shares with `prompt` (all
    /// but the prompt's last at most, which must run to give the next token's logits), and how
    /// many those are. `None` when nothing is kept or the kept cache was made for another
    /// `capacity` or `format`. Until it is [`KeptCache::keep`]-ed again nothing is kept, so a
    /// request that fails leaves nothing half-written behind.
    pub fn take(
        &self,
        prompt: &[u32],
        capacity: usize,
        format: KvFormat,
    ) -> Option<(KvCache, usize)> {
        let (tokens, mut cache) = self.lock().take()?;
        if cache.capacity() != capacity || cache.format() != format {
            return None;
        }
        let shared = shared_len(&tokens, prompt).min(prompt.len().saturating_sub(1));
        cache.truncate(shared);
        Some((cache, shared))
    }

    /// Keeps `cache` for the next request; `tokens` are the ids whose keys and values it
    /// holds, in order (only the first `cache.len()` count).
    pub fn keep(&self, mut tokens: Vec<u32>, cache: KvCache) {
        tokens.truncate(cache.len());
        *self.lock() = Some((tokens, cache));
    }

    /// Drops the kept cache (its GPU memory goes back to the pool).
    pub fn clear(&self) {
        *self.lock() = None;
    }

    /// The slot; a panic while it was held cannot leave it inconsistent (every write is one
    /// assignment), so a poisoned lock is used as it is.
    fn lock(&self) -> MutexGuard<'_, Option<(Vec<u32>, KvCache)>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// How many tokens `a` and `b` begin with alike.
pub fn shared_len(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl Engine {
    /// Compiles every kernel a generation runs now (see
    /// [`crate::model::llama::Llama::warm_up`]), so the first request does not pay for it, and
    /// prefills the chat template's preamble (a model that computes NaN there is
    /// [`EngineError::NonFiniteLogits`]) — the tokens every conversation without its own system
    /// message begins with (BOS, a default system prompt, the first user header) — into the kept
    /// cache, so the first question does not either.
    pub async fn warm_up(&self) -> Result<(), EngineError> {
        self.model
            .warm_up(self.context_size, self.kv_format)
            .await?;
        let preamble = self.chat_preamble();
        if !preamble.is_empty() {
            let mut cache = self.model.new_cache(self.context_size, self.kv_format)?;
            let logits = self.model.prefill(&preamble, &mut cache).await?;
            // A model whose weights hold NaN is refused at load, not at its first answer.
            if logits.iter().any(|l| l.is_nan()) {
                return Err(EngineError::NonFiniteLogits);
            }
            self.kept.keep(preamble, cache);
        }
        Ok(())
    }

    /// The tokens two one-question chats share (none without a chat template).
    fn chat_preamble(&self) -> Vec<u32> {
        let ask = |question: &str| {
            let messages = serde_json::json!([{"role": "user", "content": question}]);
            self.chat_prompt(&messages, None).unwrap_or_default()
        };
        let (a, b) = (ask("Hello?"), ask("What?"));
        a[..shared_len(&a, &b)].to_vec()
    }
}
