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
//!
//! Weights are `exp(x − x₀)` of the sorted candidates (the largest is 1), normalized only once
//! the set to draw from is known. A sampled step that no bias or penalty touches can instead be
//! drawn from a device's [`Shortlist`] (the most likely logits in this order, and the
//! normalizer summed on the device): the same arithmetic on the same prefix, so the same token —
//! and where the shortlist could decide otherwise than every logit (too short, or a decision
//! within its normalizer's rounding), [`Sampler::sample_shortlist`] declines and the engine
//! reads every logit back.

use std::collections::HashMap;

use serde::Deserialize;

use crate::model::Shortlist;
use crate::rng::Xoshiro256;

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
        self.temperature == 0.0 && self.leaves_logits_alone()
    }

    /// Whether no bias or penalty changes the logits before the choice.
    fn leaves_logits_alone(&self) -> bool {
        self.logit_bias.is_empty()
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
        let temperature = p.temperature as f64;
        // Candidates as (id, logit / temperature), most likely first.
        let mut candidates: Vec<(u32, f64)> = logits
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.is_nan())
            .map(|(i, &l)| (i as u32, l as f64 / temperature))
            .collect();
        if candidates.is_empty() {
            // All NaN: the engine reports the model broken before it gets here; never panic.
            return argmax(logits);
        }
        candidates.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let r = self.rng.next_f64();
        draw(&self.params, &candidates, None, r).unwrap_or(candidates[0].0)
    }

    /// The settings.
    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Whether [`Sampler::sample_shortlist`] can pick for these settings: sampling (temperature
    /// above 0) that no bias or penalty changes, so the most likely logits and the normalizer
    /// decide every draw.
    pub fn takes_shortlist(&self) -> bool {
        let p = &self.params;
        p.temperature > 0.0 && p.leaves_logits_alone()
    }

    /// Picks the next token from a device's [`Shortlist`]: the very token [`Sampler::sample`]
    /// would pick from every logit, or `None` — having drawn nothing, so `sample` can follow —
    /// when the shortlist cannot decide it (the kept set runs past it, or a decision falls
    /// within the normalizer's margin).
    pub fn sample_shortlist(&mut self, shortlist: &Shortlist) -> Option<u32> {
        if !self.takes_shortlist() || shortlist.top.is_empty() {
            return None;
        }
        let temperature = self.params.temperature as f64;
        let candidates: Vec<(u32, f64)> = shortlist
            .top
            .iter()
            .map(|&(id, l)| (id, l as f64 / temperature))
            .collect();
        let rest = (!shortlist.whole).then_some(Mass::Approx {
            total: shortlist.total,
            margin: shortlist.margin,
        });
        let mut rng = self.rng.clone();
        let id = draw(&self.params, &candidates, rest, rng.next_f64())?;
        self.rng = rng;
        Some(id)
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

/// The mass of the set a draw is made from (the sum of its weights `exp(x − x₀)`).
#[derive(Debug, Clone, Copy)]
enum Mass {
    /// Summed here over the set's own weights.
    Exact(f64),
    /// The device's sum over the whole vocabulary, good to a relative `margin`.
    Approx { total: f64, margin: f64 },
}

impl Mass {
    /// The first index where the running sum of `weights` reaches `share` of the mass
    /// (`cumulative ≥ share · mass`, or `>` when `strict`). Exact: the last index if rounding
    /// keeps the sum short. Approximate: `None` when a running sum falls within the margin of
    /// the target (the host's own sum could decide either way) or never reaches it.
    fn first_reaching(self, weights: &[f64], share: f64, strict: bool) -> Option<usize> {
        let mut cumulative = 0.0;
        match self {
            Mass::Exact(mass) => {
                let target = share * mass;
                let reached = weights.iter().position(|w| {
                    cumulative += w;
                    if strict {
                        cumulative > target
                    } else {
                        cumulative >= target
                    }
                });
                Some(reached.unwrap_or(weights.len() - 1))
            }
            Mass::Approx { total, margin } => {
                let (low, high) = (
                    share * total * (1.0 - margin),
                    share * total * (1.0 + margin),
                );
                for (i, w) in weights.iter().enumerate() {
                    cumulative += w;
                    if cumulative > high {
                        return Some(i);
                    }
                    if cumulative >= low {
                        return None;
                    }
                }
                None
            }
        }
    }
}

/// The filters and the draw (module docs) over `sorted`: `(id, logit ÷ temperature)`, the
/// vocabulary's first entries most likely first — all of it when `rest` is `None`, otherwise
/// `rest` is the device's mass of the whole vocabulary. `r` is the uniform draw. `None` when
/// `sorted` cannot decide: the set to draw from runs past it, or a decision falls within the
/// device's margin. Weights are `exp(x − x₀)`, so the largest is 1 and nothing is normalized
/// until the set is known: the same arithmetic on the same prefix, whichever path.
fn draw(params: &SamplingParams, sorted: &[(u32, f64)], rest: Option<Mass>, r: f64) -> Option<u32> {
    let x0 = sorted[0].1;
    let weights: Vec<f64> = sorted.iter().map(|(_, x)| (x - x0).exp()).collect();
    let exact = |keep: usize| Mass::Exact(weights[..keep].iter().sum());
    let mut keep = weights.len();
    let mut mass = rest.unwrap_or_else(|| exact(keep));
    if let Some(k) = params.top_k.filter(|&k| k > 0) {
        if k > keep && rest.is_some() {
            return None;
        }
        keep = keep.min(k);
        mass = exact(keep);
    }
    if params.top_p < 1.0 {
        keep = mass.first_reaching(&weights[..keep], params.top_p as f64, false)? + 1;
        mass = exact(keep);
    }
    if params.min_p > 0.0 {
        // The largest weight is 1: the floor is min_p itself.
        let floor = params.min_p as f64;
        let above = weights[..keep]
            .iter()
            .take_while(|&&w| w >= floor)
            .count()
            .max(1);
        if above == keep && matches!(mass, Mass::Approx { .. }) {
            return None;
        }
        keep = above;
        mass = exact(keep);
    }
    let chosen = mass.first_reaching(&weights[..keep], r, true)?;
    Some(sorted[chosen].0)
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

#[cfg(test)]
mod tests;
