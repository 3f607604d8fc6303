//! NumPy `.npy` files of f32 (`<f4`, C order): what the CLI writes (`dequant`, `logits`) and
//! the format of the fixtures' reference outputs.

/// A malformed or unsupported `.npy` file.
#[derive(Debug, thiserror::Error)]
#[error("not a little-endian f32 C-order .npy file: {0}")]
pub struct NpyError(String);

/// An f32 array read from `.npy`: its shape (outermost first) and values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// The dimensions, outermost first.
    pub shape: Vec<usize>,
    /// The values, C order.
    pub values: Vec<f32>,
}

/// Encodes `values` with `shape` as a NumPy v1.0 `.npy` file.
pub fn write_f32(shape: &[usize], values: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Decodes a version 1 or 2 `.npy` file holding `<f4` values in C order.
pub fn read_f32(bytes: &[u8]) -> Result<NpyArray, NpyError> {
    let err = |m: &str| NpyError(m.to_string());
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(err("bad magic"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => return Err(err("unsupported version")),
    };
    let header = bytes
        .get(start..start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| err("truncated header"))?;
    if !header.contains("'descr': '<f4'") || !header.contains("'fortran_order': False") {
        return Err(err(header.trim()));
    }
    let dims = header
        .split("'shape': (")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .ok_or_else(|| err("no shape"))?;
    let shape = dims
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| d.parse::<usize>().map_err(|_| err("bad shape")))
        .collect::<Result<Vec<_>, _>>()?;
    let data = &bytes[start + header_len..];
    let count = shape.iter().product::<usize>();
    if data.len() != count * 4 {
        return Err(err("data length does not match the shape"));
    }
    let values = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(NpyArray { shape, values })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for shape in [vec![3], vec![2, 3], vec![1, 2, 2]] {
            let values: Vec<f32> = (0..shape.iter().product::<usize>())
                .map(|i| i as f32 * 0.5 - 1.0)
                .collect();
            let back = read_f32(&write_f32(&shape, &values)).unwrap();
            assert_eq!(back, NpyArray { shape, values });
        }
    }

    #[test]
    fn wrong_dtype_and_truncation_are_errors() {
        let good = write_f32(&[2], &[1.0, 2.0]);
        let mut f8 = good.clone();
        let at = good.windows(3).position(|w| w == b"<f4").unwrap();
        f8[at + 2] = b'8';
        assert!(read_f32(&f8).unwrap_err().to_string().contains("<f8"));
        assert!(read_f32(&good[..good.len() - 1]).is_err());
        assert!(read_f32(b"nope").is_err());
    }
}
