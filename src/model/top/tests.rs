//! The shortlist kernel on the wgpu device (lavapipe) against the host's sort: vocabularies that
//! are not multiples of the cube, ties, the likely tokens crowded into one unit's share,
//! logits that are not finite; the output pool poisoned beforehand.

use burn::tensor::{Tensor, TensorData};
use pollster::block_on;

use super::kernels::{TOP, UNITS};
use super::{Shortlist, shortlist_on_device};
use crate::model::device::{ComputeDevice, DeviceChoice};
use crate::rng::SplitMix64;

fn wgpu() -> ComputeDevice {
    ComputeDevice::init_native(DeviceChoice::Wgpu).unwrap()
}

/// Fills the memory pool with buffers of `0xFFFF_FFFF` words (a NaN as f32), so an entry the
/// kernel skips is not a stale right answer.
fn poison(device: &ComputeDevice) {
    let words = 4096;
    let junk = Tensor::<1>::from_data(
        TensorData::new(vec![f32::NAN; words], [words]),
        device.burn(),
    );
    let _ = junk.into_data();
}

fn shortlist(device: &ComputeDevice, logits: &[f32], temperature: f32) -> Shortlist {
    poison(device);
    let n = logits.len();
    let t = Tensor::<2>::from_data(TensorData::new(logits.to_vec(), [1, n]), device.burn());
    block_on(shortlist_on_device(t, device, temperature))
        .unwrap()
        .shortlist
}

/// Logits on a grid of 1/16 in -8..8, so many are tied.
fn random_logits(n: usize, rng: &mut SplitMix64) -> Vec<f32> {
    (0..n)
        .map(|_| (rng.next_u64() % 257) as f32 / 16.0 - 8.0)
        .collect()
}

#[test]
fn the_shortlist_is_the_host_order_prefix_and_the_total_within_its_margin() {
    let device = wgpu();
    let mut rng = SplitMix64::new(9);
    for n in [1, 7, 300, 1283, 49157, 128_257] {
        let logits = random_logits(n, &mut rng);
        for temperature in [1.0, 0.7, 0.01] {
            let expected = Shortlist::from_logits(&logits, temperature, TOP as usize);
            let got = shortlist(&device, &logits, temperature);
            let len = n.min(TOP as usize);
            assert_eq!(
                got.top.len(),
                len,
                "n = {n}: spread logits leave {len} certain"
            );
            assert_eq!(got.top, expected.top, "n = {n}, T = {temperature}");
            assert_eq!(got.whole, n <= TOP as usize, "n = {n}");
            let host = expected.total;
            assert!(
                (got.total - host).abs() <= got.margin * got.total,
                "n = {n}, T = {temperature}: {} vs {host}, margin {}",
                got.total,
                got.margin
            );
            assert!(got.margin < 2e-4, "n = {n}: margin {}", got.margin);
        }
    }
}

#[test]
fn likely_tokens_crowded_into_one_share_shorten_the_shortlist_but_keep_it_exact() {
    let device = wgpu();
    let mut rng = SplitMix64::new(3);
    let n = 5000;
    let mut logits = random_logits(n, &mut rng);
    // The 20 largest all in unit 0's share (ids ≡ 0 mod 256): it keeps only five of them,
    // so only those five are certain.
    for k in 0..20 {
        logits[k * UNITS as usize] = 20.0 - k as f32 * 0.25;
    }
    let got = shortlist(&device, &logits, 1.0);
    assert_eq!(got.top, Shortlist::from_logits(&logits, 1.0, 5).top);
    assert!(!got.whole);
}

#[test]
fn a_logit_that_is_not_finite_gives_no_shortlist() {
    let device = wgpu();
    let mut rng = SplitMix64::new(4);
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut logits = random_logits(3000, &mut rng);
        logits[1777] = bad;
        let got = shortlist(&device, &logits, 1.0);
        assert_eq!(got, Shortlist::default(), "{bad}");
        assert_eq!(
            Shortlist::from_logits(&logits, 1.0, 5),
            got,
            "the reference agrees"
        );
    }
}
