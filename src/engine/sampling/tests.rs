//! The sampler: its filters, its seeded stream, and the shortlist path against the full one.

use super::*;
use crate::rng::Xoshiro256;

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

/// What a device gives for `logits`: the first `len` in the host's order, and the normalizer
/// off by `error` (relative) within `margin`.
fn shortlist_of(logits: &[f32], temperature: f32, len: usize, error: f64) -> Shortlist {
    let exact = Shortlist::from_logits(logits, temperature, len);
    Shortlist {
        total: exact.total * (1.0 + error),
        margin: 1e-4,
        ..exact
    }
}

/// Peaked logits: a few likely tokens over a long flat tail, like a language model's.
fn peaked_logits(vocab: usize, rng: &mut Xoshiro256) -> Vec<f32> {
    let mut logits: Vec<f32> = (0..vocab)
        .map(|_| (rng.next_f64() * 8.0 - 10.0) as f32)
        .collect();
    for k in 0..6 {
        let at = (rng.next_u64() % vocab as u64) as usize;
        logits[at] = 2.0 + (rng.next_f64() * 4.0) as f32 - k as f32 * 0.3;
    }
    logits
}

/// Steps drawn once from every logit and once from the shortlist first (every logit when it
/// declines), from the same seed: the same ids. Returns how many steps the shortlist decided.
fn shortlist_agrees(params: SamplingParams, len: usize, steps: usize) -> usize {
    let mut data = Xoshiro256::new(11);
    let (mut full, mut short) = (sampler(params.clone()), sampler(params.clone()));
    let mut decided = 0;
    for step in 0..steps {
        let logits = peaked_logits(3000, &mut data);
        let error = if step % 2 == 0 { 5e-5 } else { -5e-5 };
        let list = shortlist_of(&logits, params.temperature, len, error);
        let expected = full.sample(&mut logits.clone(), &[], &[]);
        let got = match short.sample_shortlist(&list) {
            Some(id) => {
                decided += 1;
                id
            }
            None => short.sample(&mut logits.clone(), &[], &[]),
        };
        assert_eq!(got, expected, "{params:?}, step {step}");
    }
    decided
}

#[test]
fn the_shortlist_draws_what_every_logit_draws() {
    let steps = 300;
    let plain = SamplingParams::default();
    let decided = shortlist_agrees(plain.clone(), 128, steps);
    assert!(decided > steps / 2, "temperature 1: {decided} of {steps}");
    let nucleus = SamplingParams {
        temperature: 0.7,
        top_p: 0.9,
        ..plain.clone()
    };
    assert!(shortlist_agrees(nucleus, 128, steps) > steps / 2);
    let top_k = SamplingParams {
        top_k: Some(40),
        ..plain.clone()
    };
    assert_eq!(
        shortlist_agrees(top_k, 128, steps),
        steps,
        "top-k 40 is always decided"
    );
    let min_p = SamplingParams {
        min_p: 0.05,
        ..plain.clone()
    };
    assert_eq!(shortlist_agrees(min_p, 128, steps), steps);
    // More than the shortlist holds: never decided from it.
    let wide = SamplingParams {
        top_k: Some(200),
        ..plain.clone()
    };
    assert_eq!(shortlist_agrees(wide, 128, steps), 0);
    // The whole vocabulary in the shortlist decides everything.
    assert_eq!(shortlist_agrees(plain, 3000, 50), 50);
}

#[test]
fn biases_and_penalties_take_no_shortlist() {
    let list = shortlist_of(&[1.0, 2.0, 3.0], 1.0, 3, 0.0);
    let biased = SamplingParams {
        logit_bias: HashMap::from([(0, 5.0)]),
        ..SamplingParams::default()
    };
    let penalized = SamplingParams {
        presence_penalty: 0.5,
        ..SamplingParams::default()
    };
    for params in [biased, penalized, SamplingParams::greedy()] {
        let mut s = sampler(params.clone());
        assert!(!s.takes_shortlist(), "{params:?}");
        assert_eq!(s.sample_shortlist(&list), None);
    }
    assert!(sampler(SamplingParams::default()).takes_shortlist());
}
