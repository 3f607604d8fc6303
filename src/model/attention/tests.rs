//! The f16 cache's conversions on the wgpu device (lavapipe) against the `half` crate, bit for
//! bit: ties, subnormals, overflow, infinities and NaN, then random values of every magnitude;
//! and every half decoded against the host reference that the weights' scales follow.

use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Dispatch, backend_extension};
use burn::tensor::{DType, Int, Shape, TensorData};
use burn_cubecl::CubeBackend;
use burn_cubecl::ops::numeric::empty_device;
use cubecl::prelude::*;

use crate::model::device::{ComputeDevice, DeviceChoice, read_vec};
use crate::model::quant::blocks::{f16_to_f32, f32_to_f16};
use crate::rng::SplitMix64;

/// `out[2i]` = the f16 bits of `x[i]`, `out[2i + 1]` = the f32 bits of those decoded again.
#[cube(launch)]
fn half_round_trip_kernel(x: &Tensor<f32>, out: &mut Tensor<u32>) {
    let i = ABSOLUTE_POS;
    if i < x.len() {
        let half = f32_to_f16(x[i]);
        out[2 * i] = half;
        out[2 * i + 1] = u32::reinterpret(f16_to_f32(half));
    }
}

/// `out[i]` = the f32 bits of the half whose bits are `halves[i]`.
#[cube(launch)]
fn decode_halves_kernel(halves: &Tensor<u32>, out: &mut Tensor<u32>) {
    let i = ABSOLUTE_POS;
    if i < halves.len() {
        out[i] = u32::reinterpret(f16_to_f32(halves[i]));
    }
}

#[backend_extension(Cube)]
trait HalfOps: burn::backend::Backend {
    fn half_round_trip(x: FloatTensor<Self>) -> IntTensor<Self>;
    fn decode_halves(halves: IntTensor<Self>) -> IntTensor<Self>;
}

impl HalfOps for CubeBackend {
    fn half_round_trip(x: FloatTensor<Self>) -> IntTensor<Self> {
        let n = x.meta.shape().num_elements();
        let client = x.client.clone();
        let out = empty_device::<u32>(client.clone(), x.device.clone(), Shape::new([2 * n]));
        half_round_trip_kernel::launch(
            &client,
            CubeCount::Static((n as u32).div_ceil(64), 1, 1),
            CubeDim::new_1d(64),
            x.into_tensor_arg(),
            out.clone().into_tensor_arg(),
        );
        out
    }

    fn decode_halves(halves: IntTensor<Self>) -> IntTensor<Self> {
        let n = halves.meta.shape().num_elements();
        let client = halves.client.clone();
        let out = empty_device::<u32>(client.clone(), halves.device.clone(), Shape::new([n]));
        decode_halves_kernel::launch(
            &client,
            CubeCount::Static((n as u32).div_ceil(64), 1, 1),
            CubeDim::new_1d(64),
            halves.into_tensor_arg(),
            out.clone().into_tensor_arg(),
        );
        out
    }
}

fn on_the_gpu(values: &[f32]) -> Vec<u32> {
    let device = ComputeDevice::init_native(DeviceChoice::Wgpu).unwrap();
    let x = burn::tensor::Tensor::<1>::from_data(
        TensorData::new(values.to_vec(), [values.len()]),
        device.burn(),
    );
    let out = burn::tensor::Tensor::<1, Int>::from_dispatch(
        <Dispatch as HalfOps>::half_round_trip(x.into_dispatch()),
    );
    pollster::block_on(read_vec::<u32, 1, Int>(out)).unwrap()
}

#[test]
fn f32_to_f16_rounds_as_ieee_round_to_nearest_even() {
    let mut values = vec![
        0.0,
        -0.0,
        1.0,
        -2.5,
        65504.0,  // the largest half
        65519.99, // rounds down to it
        65520.0,  // the tie: rounds to ∞
        1e6,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MAX,
        f32::from_bits(0x3880_0000), // 2^-14: the smallest normal half
        f32::from_bits(0x387F_C000), // 1023 × 2^-24: the largest subnormal half
        f32::from_bits(0x3380_0000), // 2^-24: the smallest subnormal half
        f32::from_bits(0x3300_0000), // half of it: the tie rounds to 0
        f32::from_bits(0x3300_0001), // just above the tie: rounds up to it
        f32::from_bits(0x33C0_0000), // 1.5 × 2^-24: the tie rounds to 2 × (even)
        1e-10,                       // far below: 0
        f32::MIN_POSITIVE,           // an f32 normal far below: 0
        1e-45,                       // an f32 subnormal: 0
        1.0 + 1.0 / 2048.0,          // a tie between 1 and the next half: to even (1)
        1.0 + 3.0 / 2048.0,          // a tie: to even (up)
    ];
    let mut rng = SplitMix64::new(16);
    // Random bits over every exponent, and values around the halves' tie points.
    values.extend((0..2000).map(|_| f32::from_bits(rng.next_u64() as u32)));
    values.extend((0..2000).map(|_| {
        let half = half::f16::from_bits(rng.next_u64() as u16 & 0x7BFF).to_f32();
        half * (1.0 + ((rng.next_u64() % 5) as f32 - 2.0) / 4096.0)
    }));
    let out = on_the_gpu(&values);
    for (i, &x) in values.iter().enumerate() {
        let expected = half::f16::from_f32(x);
        let (bits, back) = (out[2 * i], f32::from_bits(out[2 * i + 1]));
        if x.is_nan() {
            assert!(
                half::f16::from_bits(bits as u16).is_nan() && back.is_nan(),
                "{x}"
            );
            continue;
        }
        assert_eq!(bits, expected.to_bits() as u32, "f16 bits of {x:e}");
        assert_eq!(back.to_bits(), expected.to_f32().to_bits(), "{x:e} decoded");
    }
}

#[test]
fn every_half_decodes_to_the_host_references_bits() {
    let device = ComputeDevice::init_native(DeviceChoice::Wgpu).unwrap();
    let halves: Vec<u32> = (0..=u16::MAX as u32).collect();
    let input = burn::tensor::Tensor::<1, Int>::from_data(
        TensorData::new(halves.clone(), [halves.len()]),
        (device.burn(), DType::U32),
    );
    let out = burn::tensor::Tensor::<1, Int>::from_dispatch(<Dispatch as HalfOps>::decode_halves(
        input.into_dispatch(),
    ));
    let out = pollster::block_on(read_vec::<u32, 1, Int>(out)).unwrap();
    for (&h, &bits) in halves.iter().zip(&out) {
        let expected = crate::gguf::dequant::f16_to_f32(h as u16).to_bits();
        assert_eq!(
            bits, expected,
            "half {h:#06x}: {bits:#010x}, not {expected:#010x}"
        );
    }
}
