//! Choosing the next token from logits: greedy, or seeded sampling with the usual filters.
//!
//! Order of operations (HF's, with llama.cpp's penalty definitions):
//! `logit_bias` → repetition penalty (over prompt and output, HF/llama.cpp: a positive logit
//! is divided by it, a negative one multiplied) → presence and frequency penalties (OpenAI:
//! over the output so far, `- presence·[count>0] - frequency·count`) → greedy if temperature is
//! 0 → divide by temperature → top-k → softmax → top-p (smallest set whose mass reaches p) →
//! min-p (drop tokens below `min_p × the top probability`) → draw. Probabilities are
//! computed in f64 and the draw uses our own PRNG, so the same seed gives the same tokens on
//! every platform (natively and in wasm) given the same logits.

use std::collections::HashMap;

use serde::Deserialize;

use crate::rng::SplitMix64;

/// Sampling settings, OpenAI-shaped where OpenAI has the setting.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct SamplingParams {
    /// 0 picks the most likely token (greedy); higher flattens the distribution.
    pub temperature: f32,
    /// Keep only the `k` most likely tokens (`None` or 0: all).
    pub top_k: Option<usize>,
    /// Keep the smallest set of tokens whose probability reaches `top_p` (1: all).
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` times the most likely one (0: none).
    pub min_p: f32,
    /// HF-style repetition penalty over prompt and output (1: none).
    pub repetition_penalty: f32,
    /// OpenAI presence penalty (0: none).
    pub presence_penalty: f32,
    /// OpenAI frequency penalty (0: none).
    pub frequency_penalty: f32,
    /// Added to the logits of these token ids (-100 bans a token, +100 forces it).
    pub logit_bias: HashMap<u32, f32>,
    /// Seed for the draw; `None` seeds from the platform's entropy.
    pub seed: Option<u64>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_k: None,
            top_p: 1.0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            logit_bias: HashMap::new(),
            seed: None,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding: always the most likely token.
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            ..Self::default()
        }
    }

    /// Whether this is greedy choice untouched by biases or penalties (the largest logit wins,
    /// so the device can choose it without reading the logits back).
    pub fn is_plain_greedy(&self) -> bool {
        self.temperature == 0.0
            && self.logit_bias.is_empty()
            && self.repetition_penalty == 1.0
            && self.presence_penalty == 0.0
            && self.frequency_penalty == 0.0
    }

    /// Checks the ranges OpenAI documents (and a few of our own).
    pub fn validate(&self) -> Result<(), String> {
        let in_range = |name: &str, v: f32, lo: f32, hi: f32| {
            if v.is_finite() && (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(format!("{name} = {v} is outside {lo}..={hi}"))
            }
        };
        in_range("temperature", self.temperature, 0.0, 2.0)?;
        in_range("top_p", self.top_p, 0.0, 1.0)?;
        in_range("min_p", self.min_p, 0.0, 1.0)?;
        in_range("repetition_penalty", self.repetition_penalty, 0.01, 10.0)?;
        in_range("presence_penalty", self.presence_penalty, -2.0, 2.0)?;
        in_range("frequency_penalty", self.frequency_penalty, -2.0, 2.0)?;
        for (id, bias) in &self.logit_bias {
            in_range(&format!("logit_bias[{id}]"), *bias, -100.0, 100.0)?;
        }
        Ok(())
    }
}

/// A sampler for one generation: the settings and the random stream.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    rng: Xoshiro256,
}

impl Sampler {
    /// A sampler seeded from `params.seed`, or from the platform's entropy.
    pub fn new(params: SamplingParams) -> Self {
        let seed = params
            .seed
            .unwrap_or_else(|| getrandom::u64().unwrap_or(0x5eed_5eed_5eed_5eed));
        Self {
            params,
            rng: Xoshiro256::new(seed),
        }
    }

    /// Picks the next token. `logits` (one per vocabulary entry) are modified in place;
    /// `prompt` and `output` are the ids so far, for the penalties.
    pub fn sample(&mut self, logits: &mut [f32], prompt: &[u32], output: &[u32]) -> u32 {
        self.apply_penalties(logits, prompt, output);
        let p = &self.params;
        if p.temperature == 0.0 {
            return argmax(logits);
        }
        // Candidates as (id, logit / temperature), most likely first.
        let mut candidates: Vec<(u32, f64)> = logits
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.is_nan())
            .map(|(i, &l)| (i as u32, l as f64 / p.temperature as f64))
            .collect();
        if candidates.is_empty() {
            // All NaN: the engine reports the model broken before it gets here; never panic.
            return argmax(logits);
        }
        candidates.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if let Some(k) = p.top_k.filter(|&k| k > 0) {
            candidates.truncate(k);
        }
        let max = candidates[0].1;
        let mut probs: Vec<f64> = candidates.iter().map(|(_, l)| (l - max).exp()).collect();
        normalize(&mut probs);
        if p.top_p < 1.0 {
            let mut mass = 0.0;
            let keep = probs
                .iter()
                .position(|&q| {
                    mass += q;
                    mass >= p.top_p as f64
                })
                .map_or(probs.len(), |i| i + 1);
            probs.truncate(keep);
        }
        if p.min_p > 0.0 {
            let floor = probs[0] * p.min_p as f64;
            let keep = probs.iter().take_while(|&&q| q >= floor).count().max(1);
            probs.truncate(keep);
        }
        normalize(&mut probs);
        let r = self.rng.next_f64();
        let mut acc = 0.0;
        for (i, q) in probs.iter().enumerate() {
            acc += q;
            if r < acc {
                return candidates[i].0;
            }
        }
        candidates[probs.len() - 1].0
    }

    fn apply_penalties(&self, logits: &mut [f32], prompt: &[u32], output: &[u32]) {
        let p = &self.params;
        for (&id, &bias) in &p.logit_bias {
            if let Some(l) = logits.get_mut(id as usize) {
                *l += bias;
            }
        }
        if p.repetition_penalty != 1.0 {
            let seen: std::collections::BTreeSet<u32> =
                prompt.iter().chain(output).copied().collect();
            for id in seen {
                if let Some(l) = logits.get_mut(id as usize) {
                    *l = if *l > 0.0 {
                        *l / p.repetition_penalty
                    } else {
                        *l * p.repetition_penalty
                    };
                }
            }
        }
        if p.presence_penalty != 0.0 || p.frequency_penalty != 0.0 {
            let mut counts: HashMap<u32, u32> = HashMap::new();
            for &id in output {
                *counts.entry(id).or_default() += 1;
            }
            for (id, count) in counts {
                if let Some(l) = logits.get_mut(id as usize) {
                    *l -= p.presence_penalty + p.frequency_penalty * count as f32;
                }
            }
        }
    }
}

pub use crate::model::argmax::argmax;

/// Natural-log probabilities from `logits` (log-softmax, in f64): the log of the normalizer,
/// and the `top` most likely ids with their log-probabilities, most likely first.
pub fn log_softmax_top(logits: &[f32], top: usize) -> (f64, Vec<(u32, f32)>) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    let log_norm = max + sum.ln();
    let mut ids: Vec<u32> = (0..logits.len() as u32).collect();
    let by_logit = |a: &u32, b: &u32| {
        logits[*b as usize]
            .total_cmp(&logits[*a as usize])
            .then(a.cmp(b))
    };
    if top < ids.len() && top > 0 {
        ids.select_nth_unstable_by(top - 1, by_logit);
    }
    ids.truncate(top);
    ids.sort_by(by_logit);
    let top = ids
        .into_iter()
        .map(|id| (id, (logits[id as usize] as f64 - log_norm) as f32))
        .collect();
    (log_norm, top)
}

fn normalize(probs: &mut [f64]) {
    let sum: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|q| *q /= sum);
}

/// xoshiro256** seeded through SplitMix64: small, fast, and the same on every platform.
#[derive(Debug, Clone)]
struct Xoshiro256 {
    s: [u64; 4],
}

impl Xoshiro256 {
    fn new(seed: u64) -> Self {
        let mut splitmix = SplitMix64::new(seed);
        Self {
            s: [(); 4].map(|_| splitmix.next_u64()),
        }
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 random bits.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampler(params: SamplingParams) -> Sampler {
        Sampler::new(SamplingParams {
            seed: Some(7),
            ..params
        })
    }

    #[test]
    fn greedy_takes_the_first_largest() {
        let mut s = sampler(SamplingParams::greedy());
        assert_eq!(s.sample(&mut [1.0, 3.0, 3.0, -1.0], &[], &[]), 1);
    }

    #[test]
    fn same_seed_same_draws_and_different_seeds_differ() {
        let draws = |seed| {
            let mut s = Sampler::new(SamplingParams {
                seed: Some(seed),
                ..SamplingParams::default()
            });
            (0..64)
                .map(|_| s.sample(&mut [0.0; 50], &[], &[]))
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(1), draws(1));
        assert_ne!(draws(1), draws(2));
    }

    #[test]
    fn the_prng_stream_is_pinned() {
        // xoshiro256** from SplitMix64(0): if this changes, seeded outputs change for users.
        let mut r = Xoshiro256::new(0);
        assert_eq!(r.next_u64(), 0x99EC_5F36_CB75_F2B4);
    }

    #[test]
    fn top_k_one_and_tiny_top_p_are_greedy() {
        let logits = [0.5, 2.0, 1.9, -3.0];
        for params in [
            SamplingParams {
                top_k: Some(1),
                ..SamplingParams::default()
            },
            SamplingParams {
                top_p: 0.01,
                ..SamplingParams::default()
            },
            SamplingParams {
                min_p: 0.99,
                ..SamplingParams::default()
            },
        ] {
            let mut s = sampler(params);
            for _ in 0..20 {
                assert_eq!(s.sample(&mut logits.clone(), &[], &[]), 1);
            }
        }
    }

    #[test]
    fn sampling_follows_the_distribution() {
        // p = softmax([ln 1, ln 3]) = [0.25, 0.75].
        let mut s = sampler(SamplingParams::default());
        let n = 20_000;
        let ones = (0..n)
            .filter(|_| s.sample(&mut [0.0, 3f32.ln()], &[], &[]) == 1)
            .count();
        let share = ones as f64 / n as f64;
        assert!((share - 0.75).abs() < 0.02, "{share}");
    }

    #[test]
    fn penalties_and_bias_move_the_choice() {
        let greedy = |params: SamplingParams, output: &[u32]| {
            sampler(params).sample(&mut [2.0, 1.5, 1.0], &[], output)
        };
        let bias = HashMap::from([(2, 5.0)]);
        assert_eq!(
            greedy(
                SamplingParams {
                    logit_bias: bias,
                    ..SamplingParams::greedy()
                },
                &[]
            ),
            2
        );
        let presence = SamplingParams {
            presence_penalty: 1.0,
            ..SamplingParams::greedy()
        };
        assert_eq!(greedy(presence, &[0]), 1);
        let frequency = SamplingParams {
            frequency_penalty: 0.3,
            ..SamplingParams::greedy()
        };
        assert_eq!(greedy(frequency.clone(), &[0]), 0);
        assert_eq!(greedy(frequency, &[0, 0]), 1);
        let repetition = SamplingParams {
            repetition_penalty: 1.5,
            ..SamplingParams::greedy()
        };
        assert_eq!(greedy(repetition, &[0]), 1);
    }

    #[test]
    fn log_softmax_top_normalizes_and_orders() {
        let logits = [1.0, 3.0, 2.0, 3.0];
        let (log_norm, top) = log_softmax_top(&logits, 3);
        let total: f64 = logits.iter().map(|&l| (l as f64 - log_norm).exp()).sum();
        assert!((total - 1.0).abs() < 1e-12);
        assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), vec![1, 3, 2]);
        assert!((top[0].1 as f64 - (3.0 - log_norm)).abs() < 1e-6);
        assert_eq!(log_softmax_top(&logits, 0).1, vec![]);
        assert_eq!(log_softmax_top(&logits, 9).1.len(), 4);
    }

    #[test]
    fn out_of_range_settings_are_rejected() {
        for bad in [
            SamplingParams {
                temperature: -1.0,
                ..SamplingParams::default()
            },
            SamplingParams {
                top_p: 1.5,
                ..SamplingParams::default()
            },
            SamplingParams {
                temperature: f32::NAN,
                ..SamplingParams::default()
            },
        ] {
            assert!(bad.validate().is_err());
        }
        assert!(SamplingParams::default().validate().is_ok());
    }
}
