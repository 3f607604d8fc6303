//! Native: Burn's matmul gives exact answers on the wgpu device (Vulkan; lavapipe in CI) and on
//! the CPU device. Fails if either device is missing or computes anything else.
#![cfg(not(target_arch = "wasm32"))]

use llama_web::model::device::{ComputeDevice, DeviceChoice};
use llama_web::model::selftest::{Matrix, matmul_on_device, self_test};

fn device(choice: DeviceChoice) -> ComputeDevice {
    ComputeDevice::init_native(choice).unwrap_or_else(|e| {
        panic!("{choice} device did not come up (is mesa-vulkan-drivers installed?): {e}")
    })
}

fn known_product(choice: DeviceChoice) {
    let device = device(choice);
    let a = Matrix::new(2, 3, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    let b = Matrix::new(3, 2, vec![7.0, 8.0, 9.0, 10.0, 11.0, 12.0]).unwrap();
    let c = pollster::block_on(matmul_on_device(&device, &a, &b)).unwrap();
    assert_eq!((c.rows(), c.cols()), (2, 2));
    assert_eq!(c.values(), &[58.0, 64.0, 139.0, 154.0]);
}

fn odd_sized_product(choice: DeviceChoice) {
    let device = device(choice);
    let report = pollster::block_on(self_test(&device)).unwrap();
    assert_eq!(
        report.actual, report.expected,
        "{choice} matmul differs from the exact product"
    );
    assert!(report.passed());
}

#[test]
fn wgpu_matmul_known_values() {
    known_product(DeviceChoice::Wgpu);
}

#[test]
fn wgpu_matmul_odd_sizes_exact() {
    odd_sized_product(DeviceChoice::Wgpu);
}

#[test]
fn cpu_matmul_known_values() {
    known_product(DeviceChoice::Cpu);
}

#[test]
fn cpu_matmul_odd_sizes_exact() {
    odd_sized_product(DeviceChoice::Cpu);
}
