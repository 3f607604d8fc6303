//! Synthetic models for benchmarks: the real Llama 3.1 8B's shapes and per-tensor types with
//! random blocks made in-process, so the 8B can be measured without downloading it.
//!
//! A [`SyntheticModel`] is a [`ByteSource`] that reads like a GGUF file: a real header (written
//! here) followed by pseudo-random tensor data whose f16 block scales are set to small finite
//! values. Nothing is stored: bytes are generated as they are read, or written out once as a real
//! file ([`SyntheticModel::write_to`], `llama-web synth`) for other engines to load. The header
//! carries a placeholder vocabulary of Llama 3.1's size (byte tokens, filler, the special tokens)
//! that llama.cpp and our tokenizer both accept: benchmarks feed token ids, so its text is moot.

use std::io::Write;

use crate::gguf::{ByteSource, GgmlType, GgufError};
use crate::rng::SplitMix64;

/// Which synthetic model to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyntheticKind {
    /// Llama 3.1 8B as llama.cpp's Q4_K_M recipe lays it out: Q4_K everywhere, Q6_K for
    /// `output.weight` and for `attn_v`/`ffn_down` in 16 of the 32 blocks (the first and last
    /// four, and every third in between), F32 norms and `rope_freqs`.
    Llama31_8bQ4KM,
    /// Llama 3.1 8B with every matrix in Q4_0 (`output.weight` in Q6_K, as llama.cpp does).
    Llama31_8bQ4_0,
}

impl SyntheticKind {
    /// Parses the `--synthetic` argument: `llama3.1-8b:Q4_K_M` or `llama3.1-8b:Q4_0`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "llama3.1-8b:Q4_K_M" => Some(Self::Llama31_8bQ4KM),
            "llama3.1-8b:Q4_0" => Some(Self::Llama31_8bQ4_0),
            _ => None,
        }
    }

    /// The `--synthetic` name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Llama31_8bQ4KM => "llama3.1-8b:Q4_K_M",
            Self::Llama31_8bQ4_0 => "llama3.1-8b:Q4_0",
        }
    }
}

/// Llama 3.1 8B's hyper-parameters.
const LAYERS: u64 = 32;
const HIDDEN: u64 = 4096;
const FFN: u64 = 14336;
const HEADS: u64 = 32;
const KV_HEADS: u64 = 8;
const VOCAB: u64 = 128_256;
const CONTEXT: u64 = 131_072;
const ALIGNMENT: u64 = 32;
/// Llama 3's first special token (`<|begin_of_text|>`), and its end of turn (`<|eot_id|>`).
const BOS: u32 = 128_000;
const EOT: u32 = 128_009;
/// GGUF metadata value types (gguf-py `GGUFValueType`).
const GGUF_U32: u32 = 4;
const GGUF_I32: u32 = 5;
const GGUF_F32: u32 = 6;
const GGUF_STRING: u32 = 8;
const GGUF_ARRAY: u32 = 9;
/// llama.cpp's token types: normal and control.
const TOKEN_NORMAL: i32 = 1;
const TOKEN_CONTROL: i32 = 3;

/// One tensor of the synthetic file.
#[derive(Debug, Clone)]
struct Entry {
    ggml_type: GgmlType,
    /// Absolute offset in the file.
    offset: u64,
    n_bytes: u64,
}

/// A synthetic GGUF file, generated on read.
#[derive(Debug, Clone)]
pub struct SyntheticModel {
    header: Vec<u8>,
    tensors: Vec<Entry>,
    len: u64,
}

impl SyntheticModel {
    /// Lays out the model's header and tensor table.
    pub fn new(kind: SyntheticKind) -> Self {
        let more_bits =
            |i: u64| !(LAYERS / 8..7 * LAYERS / 8).contains(&i) || (i - LAYERS / 8) % 3 == 2;
        let (base, mixed) = match kind {
            SyntheticKind::Llama31_8bQ4KM => (GgmlType::Q4_K, true),
            SyntheticKind::Llama31_8bQ4_0 => (GgmlType::Q4_0, false),
        };
        let kv = KV_HEADS * HIDDEN / HEADS;
        let mut specs: Vec<(String, Vec<u64>, GgmlType)> = vec![
            ("token_embd.weight".into(), vec![HIDDEN, VOCAB], base),
            (
                "rope_freqs.weight".into(),
                vec![HIDDEN / HEADS / 2],
                GgmlType::F32,
            ),
        ];
        for i in 0..LAYERS {
            let upgraded = if mixed && more_bits(i) {
                GgmlType::Q6_K
            } else {
                base
            };
            let b = |n: &str| format!("blk.{i}.{n}.weight");
            specs.extend([
                (b("attn_norm"), vec![HIDDEN], GgmlType::F32),
                (b("attn_q"), vec![HIDDEN, HIDDEN], base),
                (b("attn_k"), vec![HIDDEN, kv], base),
                (b("attn_v"), vec![HIDDEN, kv], upgraded),
                (b("attn_output"), vec![HIDDEN, HIDDEN], base),
                (b("ffn_norm"), vec![HIDDEN], GgmlType::F32),
                (b("ffn_gate"), vec![HIDDEN, FFN], base),
                (b("ffn_up"), vec![HIDDEN, FFN], base),
                (b("ffn_down"), vec![FFN, HIDDEN], upgraded),
            ]);
        }
        specs.push(("output_norm.weight".into(), vec![HIDDEN], GgmlType::F32));
        specs.push(("output.weight".into(), vec![HIDDEN, VOCAB], GgmlType::Q6_K));

        let mut w = Writer::default();
        w.bytes(b"GGUF");
        w.u32(3);
        w.u64(specs.len() as u64);
        let (tokens, token_types) = vocabulary();
        let metadata: [(&str, Value); 18] = [
            ("general.architecture", Value::Str("llama")),
            ("general.name", Value::Str(kind.name())),
            ("llama.block_count", Value::U32(LAYERS as u32)),
            ("llama.context_length", Value::U32(CONTEXT as u32)),
            ("llama.embedding_length", Value::U32(HIDDEN as u32)),
            ("llama.feed_forward_length", Value::U32(FFN as u32)),
            ("llama.attention.head_count", Value::U32(HEADS as u32)),
            ("llama.attention.head_count_kv", Value::U32(KV_HEADS as u32)),
            ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
            ("llama.rope.freq_base", Value::F32(500_000.0)),
            ("llama.vocab_size", Value::U32(VOCAB as u32)),
            ("tokenizer.ggml.model", Value::Str("gpt2")),
            ("tokenizer.ggml.pre", Value::Str("llama-bpe")),
            ("tokenizer.ggml.tokens", Value::Strings(tokens)),
            ("tokenizer.ggml.token_type", Value::I32s(token_types)),
            ("tokenizer.ggml.merges", Value::Strings(Vec::new())),
            ("tokenizer.ggml.bos_token_id", Value::U32(BOS)),
            ("tokenizer.ggml.eos_token_id", Value::U32(EOT)),
        ];
        w.u64(metadata.len() as u64);
        for (key, value) in metadata {
            w.string(key);
            match value {
                Value::U32(v) => {
                    w.u32(GGUF_U32);
                    w.u32(v);
                }
                Value::F32(v) => {
                    w.u32(GGUF_F32);
                    w.bytes(&v.to_le_bytes());
                }
                Value::Str(v) => {
                    w.u32(GGUF_STRING);
                    w.string(v);
                }
                Value::Strings(v) => {
                    w.u32(GGUF_ARRAY);
                    w.u32(GGUF_STRING);
                    w.u64(v.len() as u64);
                    v.iter().for_each(|s| w.string(s));
                }
                Value::I32s(v) => {
                    w.u32(GGUF_ARRAY);
                    w.u32(GGUF_I32);
                    w.u64(v.len() as u64);
                    v.iter().for_each(|&i| w.bytes(&i.to_le_bytes()));
                }
            }
        }
        let mut relative = 0u64;
        let mut entries = Vec::with_capacity(specs.len());
        for (name, dims, ggml_type) in specs {
            let elements: u64 = dims.iter().product();
            let n_bytes = elements / ggml_type.block_elements() * ggml_type.block_bytes();
            w.string(&name);
            w.u32(dims.len() as u32);
            dims.iter().for_each(|&d| w.u64(d));
            w.u32(ggml_type.id());
            w.u64(relative);
            entries.push(Entry {
                ggml_type,
                offset: relative,
                n_bytes,
            });
            relative = (relative + n_bytes).next_multiple_of(ALIGNMENT);
        }
        while !(w.0.len() as u64).is_multiple_of(ALIGNMENT) {
            w.0.push(0);
        }
        let data_start = w.0.len() as u64;
        entries.iter_mut().for_each(|e| e.offset += data_start);
        Self {
            header: w.0,
            len: data_start + relative,
            tensors: entries,
        }
    }

    /// Total bytes of tensor data, as in the real file.
    pub fn tensor_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.n_bytes).sum()
    }

    /// Writes the whole file, header and generated tensor data, to `out`: the same bytes this
    /// source reads. `progress(written, total)` is called after each tensor.
    pub fn write_to(
        &self,
        out: &mut impl Write,
        mut progress: impl FnMut(u64, u64),
    ) -> std::io::Result<()> {
        fn zeros(out: &mut impl Write, n: u64) -> std::io::Result<()> {
            out.write_all(&vec![0; n as usize])
        }
        out.write_all(&self.header)?;
        let mut written = self.header.len() as u64;
        let mut buf = Vec::new();
        for entry in &self.tensors {
            zeros(out, entry.offset - written)?;
            buf.resize(entry.n_bytes as usize, 0);
            Self::fill_tensor(entry, &mut buf);
            out.write_all(&buf)?;
            written = entry.offset + entry.n_bytes;
            progress(written, self.len);
        }
        zeros(out, self.len - written)
    }

    /// Fills `buf` with the data of the tensor that starts at `offset`: random blocks whose f16
    /// scales are small finite values (norms and `rope_freqs`: ones).
    fn fill_tensor(entry: &Entry, buf: &mut [u8]) {
        let mut rng = SplitMix64::new(entry.offset);
        if entry.ggml_type == GgmlType::F32 {
            buf.chunks_exact_mut(4)
                .for_each(|c| c.copy_from_slice(&1.0f32.to_le_bytes()));
            return;
        }
        for chunk in buf.chunks_mut(8) {
            let bytes = rng.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        let scale_fields: &[usize] = match entry.ggml_type {
            GgmlType::Q4_0 | GgmlType::Q8_0 | GgmlType::Q5_0 => &[0],
            GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
            GgmlType::Q6_K => &[208],
            _ => &[],
        };
        // 2^-10: products stay far from f32 overflow whatever the random quants are.
        let scale = 0x1400u16.to_le_bytes();
        for block in buf.chunks_exact_mut(entry.ggml_type.block_bytes() as usize) {
            for &at in scale_fields {
                block[at..at + 2].copy_from_slice(&scale);
            }
        }
    }
}

impl ByteSource for SyntheticModel {
    fn len(&self) -> u64 {
        self.len
    }

    /// Header bytes anywhere; tensor data only as whole tensors (how the loader reads them).
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), GgufError> {
        let end = offset + buf.len() as u64;
        if end <= self.header.len() as u64 {
            buf.copy_from_slice(&self.header[offset as usize..end as usize]);
            return Ok(());
        }
        match self
            .tensors
            .iter()
            .find(|t| t.offset == offset && t.n_bytes == buf.len() as u64)
        {
            Some(entry) => {
                Self::fill_tensor(entry, buf);
                Ok(())
            }
            None => Err(GgufError::Source {
                offset,
                end,
                reason: "a synthetic model serves its header and whole tensors only".into(),
            }),
        }
    }
}

/// The byte-level tokens (GPT-2's byte-to-character map, in byte order), filler tokens up to
/// Llama 3's first special token, then its 256 special tokens; and their llama.cpp token types.
fn vocabulary() -> (Vec<String>, Vec<i32>) {
    let printable = |b: u32| matches!(b, 0x21..=0x7e | 0xa1..=0xac | 0xae..=0xff);
    let mut unprintable = 0;
    let mut tokens: Vec<String> = (0..256u32)
        .map(|b| {
            let c = if printable(b) {
                b
            } else {
                unprintable += 1;
                255 + unprintable
            };
            char::from_u32(c).expect("below U+0200").to_string()
        })
        .collect();
    tokens.extend((256..BOS).map(|i| format!("[{i}]")));
    tokens.extend((BOS..VOCAB as u32).map(|id| match id - BOS {
        0 => "<|begin_of_text|>".to_string(),
        1 => "<|end_of_text|>".to_string(),
        9 => "<|eot_id|>".to_string(),
        n => format!("<|reserved_special_token_{n}|>"),
    }));
    let types = (0..VOCAB as u32)
        .map(|id| {
            if id < BOS {
                TOKEN_NORMAL
            } else {
                TOKEN_CONTROL
            }
        })
        .collect();
    (tokens, types)
}

enum Value {
    U32(u32),
    F32(f32),
    Str(&'static str),
    Strings(Vec<String>),
    I32s(Vec<i32>),
}

#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn bytes(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    fn string(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.bytes(s.as_bytes());
    }
}
