//! The GGUF reader on hostile files built in memory, field by field: every truncation and
//! malformation is a typed error, never a panic, and absurd counts allocate nothing.

use llama_web::gguf::{GgufError, GgufHeader, MemorySource, MetadataValue};

/// Builds GGUF bytes field by field.
#[derive(Default, Clone)]
struct Builder {
    version: u32,
    kv: Vec<(String, u32, Vec<u8>)>,
    tensors: Vec<(String, Vec<u64>, u32, u64)>,
    data: Vec<u8>,
    alignment: u64,
}

fn gguf_string(s: &str) -> Vec<u8> {
    let mut v = (s.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(s.as_bytes());
    v
}

impl Builder {
    fn new() -> Self {
        Self {
            version: 3,
            alignment: 32,
            ..Default::default()
        }
    }

    fn kv(mut self, key: &str, type_id: u32, payload: Vec<u8>) -> Self {
        self.kv.push((key.into(), type_id, payload));
        self
    }

    fn tensor(mut self, name: &str, dims: &[u64], type_id: u32, offset: u64) -> Self {
        self.tensors
            .push((name.into(), dims.to_vec(), type_id, offset));
        self
    }

    /// A valid small file: a few metadata kinds and two F32 tensors.
    fn valid() -> Self {
        let mut arr = 8u32.to_le_bytes().to_vec();
        arr.extend_from_slice(&100u64.to_le_bytes());
        for i in 0..100 {
            arr.extend(gguf_string(&format!("tok{i}")));
        }
        let mut b = Self::new()
            .kv("general.architecture", 8, gguf_string("llama"))
            .kv("llama.block_count", 4, 2u32.to_le_bytes().to_vec())
            .kv("flag", 7, vec![1])
            .kv("tokens", 9, arr)
            .tensor("a", &[8, 2], 0, 0)
            .tensor("b", &[4], 0, 64);
        b.data = (0..(64 + 16)).map(|i| i as u8).collect();
        b
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.kv.len() as u64).to_le_bytes());
        for (k, t, payload) in &self.kv {
            out.extend(gguf_string(k));
            out.extend_from_slice(&t.to_le_bytes());
            out.extend_from_slice(payload);
        }
        for (name, dims, t, off) in &self.tensors {
            out.extend(gguf_string(name));
            out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            for d in dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.to_le_bytes());
            out.extend_from_slice(&off.to_le_bytes());
        }
        while !(out.len() as u64).is_multiple_of(self.alignment) {
            out.push(0);
        }
        out.extend_from_slice(&self.data);
        out
    }

    fn read(&self) -> Result<GgufHeader, GgufError> {
        GgufHeader::read(&MemorySource::new(self.bytes()))
    }
}

#[test]
fn the_valid_builder_file_reads() {
    let b = Builder::valid();
    let bytes = b.bytes();
    let h = GgufHeader::read(&MemorySource::new(&bytes)).unwrap();
    assert_eq!(h.require_u64("llama.block_count").unwrap(), 2);
    assert_eq!(h.get("flag"), Some(&MetadataValue::Bool(true)));
    let tokens = h.read_array(&MemorySource::new(&bytes), "tokens").unwrap();
    assert_eq!(tokens[99].as_str(), Some("tok99"));
    let t = h.tensor("b").unwrap();
    assert_eq!(t.offset, h.data_offset() + 64);
    assert_eq!(h.data_offset() % 32, 0);
}

#[test]
fn every_truncation_is_a_typed_error() {
    let bytes = Builder::valid().bytes();
    for cut in 0..bytes.len() {
        match GgufHeader::read(&MemorySource::new(&bytes[..cut])) {
            Err(GgufError::Truncated { .. } | GgufError::Implausible { .. }) => {}
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn bad_magic_and_versions() {
    let mut bytes = Builder::valid().bytes();
    bytes[0] = b'X';
    assert!(matches!(
        GgufHeader::read(&MemorySource::new(&bytes)),
        Err(GgufError::BadMagic { .. })
    ));
    for version in [1, 4, 0x0300_0000] {
        let mut b = Builder::valid();
        b.version = version;
        assert!(
            matches!(b.read(), Err(GgufError::UnsupportedVersion { version: v }) if v == version)
        );
    }
}

#[test]
fn absurd_counts_and_lengths_allocate_nothing() {
    // A huge tensor count, metadata count, string length and array length in a tiny file.
    let mut bytes = Builder::valid().bytes();
    bytes[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        GgufHeader::read(&MemorySource::new(&bytes)),
        Err(GgufError::Implausible { .. })
    ));
    let mut bytes = Builder::valid().bytes();
    bytes[16..24].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(matches!(
        GgufHeader::read(&MemorySource::new(&bytes)),
        Err(GgufError::Implausible { .. })
    ));

    let mut long = u64::MAX.to_le_bytes().to_vec();
    long.extend_from_slice(b"x");
    let b = Builder::new().kv("s", 8, long);
    assert!(matches!(b.read(), Err(GgufError::Implausible { .. })));
    let mut long = (1u64 << 20).to_le_bytes().to_vec();
    long.extend_from_slice(b"x");
    let b = Builder::new().kv("s", 8, long);
    assert!(matches!(b.read(), Err(GgufError::Truncated { .. })));

    let mut arr = 4u32.to_le_bytes().to_vec();
    arr.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
    let b = Builder::new().kv("a", 9, arr);
    assert!(matches!(b.read(), Err(GgufError::Implausible { .. })));
}

#[test]
fn malformed_metadata_is_rejected() {
    let b = Builder::new().kv("k", 13, vec![0; 8]);
    assert!(matches!(
        b.read(),
        Err(GgufError::UnknownValueType { type_id: 13, .. })
    ));
    let b = Builder::new().kv("k", 7, vec![2]);
    assert!(matches!(b.read(), Err(GgufError::Implausible { .. })));
    let b = Builder::new().kv("k", 4, vec![0; 4]).kv("k", 4, vec![0; 4]);
    assert!(matches!(b.read(), Err(GgufError::DuplicateKey { .. })));
    let b = Builder::new().kv("k", 8, {
        let mut v = 2u64.to_le_bytes().to_vec();
        v.extend_from_slice(&[0xff, 0xfe]);
        v
    });
    assert!(matches!(b.read(), Err(GgufError::BadUtf8 { .. })));
    // Arrays nested deeper than the limit.
    let mut nested = Vec::new();
    for _ in 0..6 {
        nested.extend_from_slice(&9u32.to_le_bytes());
        nested.extend_from_slice(&1u64.to_le_bytes());
    }
    nested.extend_from_slice(&4u32.to_le_bytes());
    nested.extend_from_slice(&0u64.to_le_bytes());
    let b = Builder::new().kv("n", 9, nested);
    assert!(matches!(b.read(), Err(GgufError::Implausible { .. })));
}

#[test]
fn bad_alignment_is_rejected() {
    for a in [0u32, 3, 48, 1 << 30] {
        let mut b = Builder::valid().kv("general.alignment", 4, a.to_le_bytes().to_vec());
        b.alignment = 32;
        assert!(
            matches!(b.read(), Err(GgufError::BadAlignment { .. })),
            "alignment {a}"
        );
    }
    let b = Builder::valid().kv("general.alignment", 8, gguf_string("32"));
    assert!(matches!(b.read(), Err(GgufError::WrongType { .. })));
}

#[test]
fn malformed_tensors_are_rejected() {
    let with = |dims: &[u64], t: u32, off: u64| {
        let mut b = Builder::valid();
        b.tensors[1] = ("b".into(), dims.to_vec(), t, off);
        b.read()
    };
    assert!(matches!(
        with(&[4], 10, 64),
        Err(GgufError::UnsupportedTensorType {
            type_id: 10,
            type_name: "Q2_K",
            ..
        })
    ));
    assert!(matches!(
        with(&[4], 99, 64),
        Err(GgufError::UnsupportedTensorType { type_id: 99, .. })
    ));
    assert!(
        matches!(with(&[4], 0, 65), Err(GgufError::BadTensor { .. })),
        "misaligned offset"
    );
    assert!(
        matches!(with(&[4], 0, 1 << 20), Err(GgufError::Truncated { .. })),
        "data past the end"
    );
    assert!(matches!(
        with(&[4], 0, u64::MAX - 31),
        Err(GgufError::BadTensor { .. } | GgufError::Truncated { .. })
    ));
    assert!(
        matches!(
            with(&[1, 1, 1, 1, 1], 0, 64),
            Err(GgufError::BadTensor { .. })
        ),
        "five dims"
    );
    assert!(
        matches!(with(&[0], 0, 64), Err(GgufError::BadTensor { .. })),
        "zero dim"
    );
    assert!(
        matches!(
            with(&[u64::MAX, 2], 0, 64),
            Err(GgufError::BadTensor { .. })
        ),
        "overflow"
    );
    assert!(
        matches!(with(&[31], 8, 64), Err(GgufError::BadTensor { .. })),
        "partial Q8_0 block"
    );
    let mut b = Builder::valid();
    b.tensors[1].0 = "a".into();
    assert!(matches!(b.read(), Err(GgufError::DuplicateTensor { .. })));
}

#[test]
fn missing_and_mistyped_keys_are_typed() {
    let h = Builder::valid().read().unwrap();
    assert!(matches!(
        h.require_u64("nope"),
        Err(GgufError::MissingKey { .. })
    ));
    assert!(matches!(
        h.require_u64("general.architecture"),
        Err(GgufError::WrongType { .. })
    ));
    assert!(matches!(
        h.require_str("llama.block_count"),
        Err(GgufError::WrongType { .. })
    ));
    assert!(matches!(
        h.read_tensor_bytes(&MemorySource::new(Builder::valid().bytes()), "zz"),
        Err(GgufError::NoSuchTensor { .. })
    ));
}

#[test]
fn version_2_files_read_like_version_3() {
    let mut b = Builder::valid();
    b.version = 2;
    let h = b.read().unwrap();
    assert_eq!(h.version(), 2);
    assert_eq!(h.tensors().len(), 2);
    assert_eq!(h.require_str("general.architecture").unwrap(), "llama");
}
