//! The numeric self-test: a matrix product on a device, read back asynchronously.
//!
//! On wasm a shader that fails to compile only reaches `log::error!` and the call returns
//! zeros, so the first thing a page does on a new device is compute something whose exact
//! answer it knows. Products of small integers are exact in f32 on every backend.

use burn::tensor::{Tensor, TensorData};

use super::device::{ComputeDevice, DeviceError, read_vec};

/// A dense row-major f32 matrix on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    values: Vec<f32>,
}

impl Matrix {
    /// A `rows × cols` matrix from row-major values; the length must be `rows * cols`.
    pub fn new(rows: usize, cols: usize, values: Vec<f32>) -> Result<Self, DeviceError> {
        if rows.checked_mul(cols) != Some(values.len()) {
            return Err(DeviceError::Shape {
                detail: format!("{} values for a {rows}×{cols} matrix", values.len()),
            });
        }
        Ok(Self { rows, cols, values })
    }

    /// A `rows × cols` matrix of small integers (in -4..=4) that depend on `seed` and the
    /// position, so that products up to a few thousand terms stay exact in f32.
    pub fn small_integers(rows: usize, cols: usize, seed: u32) -> Self {
        let values = (0..rows * cols)
            .map(|i| {
                let h = (i as u32)
                    .wrapping_mul(2_654_435_761)
                    .wrapping_add(seed.wrapping_mul(97));
                ((h >> 7) % 9) as f32 - 4.0
            })
            .collect();
        Self { rows, cols, values }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The values, row-major.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// The product `self × rhs` computed on the host in f64, the reference for device results.
    pub fn reference_matmul(&self, rhs: &Matrix) -> Result<Matrix, DeviceError> {
        check_inner_dims(self, rhs)?;
        let mut out = Vec::with_capacity(self.rows * rhs.cols);
        for i in 0..self.rows {
            for j in 0..rhs.cols {
                let sum: f64 = (0..self.cols)
                    .map(|k| {
                        self.values[i * self.cols + k] as f64 * rhs.values[k * rhs.cols + j] as f64
                    })
                    .sum();
                out.push(sum as f32);
            }
        }
        Matrix::new(self.rows, rhs.cols, out)
    }
}

fn check_inner_dims(lhs: &Matrix, rhs: &Matrix) -> Result<(), DeviceError> {
    if lhs.cols != rhs.rows {
        return Err(DeviceError::Shape {
            detail: format!(
                "cannot multiply {}×{} by {}×{}",
                lhs.rows, lhs.cols, rhs.rows, rhs.cols
            ),
        });
    }
    Ok(())
}

/// Computes `lhs × rhs` on `device` with Burn's matmul and reads the result back
/// asynchronously (synchronous readback panics on wasm).
pub async fn matmul_on_device(
    device: &ComputeDevice,
    lhs: &Matrix,
    rhs: &Matrix,
) -> Result<Matrix, DeviceError> {
    check_inner_dims(lhs, rhs)?;
    let to_tensor = |m: &Matrix| {
        Tensor::<2>::from_data(
            TensorData::new(m.values.clone(), [m.rows, m.cols]),
            device.burn(),
        )
    };
    let values: Vec<f32> = read_vec(to_tensor(lhs).matmul(to_tensor(rhs))).await?;
    Matrix::new(lhs.rows, rhs.cols, values)
}

/// The outcome of [`self_test`]: the device's answer next to the exact one.
#[derive(Debug, Clone, PartialEq)]
pub struct SelfTestReport {
    /// What the device computed.
    pub actual: Matrix,
    /// The exact answer.
    pub expected: Matrix,
}

impl SelfTestReport {
    /// Whether the device's answer is exactly right.
    pub fn passed(&self) -> bool {
        self.actual == self.expected
    }
}

/// The start-up self-test: a 33×65 by 65×17 product of small integers (sizes that are not
/// multiples of any workgroup), checked exactly against the host.
pub async fn self_test(device: &ComputeDevice) -> Result<SelfTestReport, DeviceError> {
    let lhs = Matrix::small_integers(33, 65, 1);
    let rhs = Matrix::small_integers(65, 17, 2);
    let expected = lhs.reference_matmul(&rhs)?;
    let actual = matmul_on_device(device, &lhs, &rhs).await?;
    Ok(SelfTestReport { actual, expected })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_matmul_known_values() {
        let a = Matrix::new(2, 3, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let b = Matrix::new(3, 2, vec![7.0, 8.0, 9.0, 10.0, 11.0, 12.0]).unwrap();
        let c = a.reference_matmul(&b).unwrap();
        assert_eq!(c.values(), &[58.0, 64.0, 139.0, 154.0]);
    }

    #[test]
    fn mismatched_shapes_are_typed_errors() {
        assert!(matches!(
            Matrix::new(2, 2, vec![1.0; 3]),
            Err(DeviceError::Shape { .. })
        ));
        let a = Matrix::small_integers(2, 3, 0);
        assert!(matches!(
            a.reference_matmul(&a),
            Err(DeviceError::Shape { .. })
        ));
    }

    #[test]
    fn small_integers_are_varied_and_bounded() {
        let m = Matrix::small_integers(8, 8, 3);
        assert!(
            m.values()
                .iter()
                .all(|v| (-4.0..=4.0).contains(v) && v.fract() == 0.0)
        );
        let distinct: std::collections::BTreeSet<i32> =
            m.values().iter().map(|v| *v as i32).collect();
        assert!(distinct.len() >= 5, "too few distinct values: {distinct:?}");
    }
}
