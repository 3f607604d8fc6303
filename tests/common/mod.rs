//! Helpers shared by the native integration tests: where the fixtures are, and loading them.
#![allow(dead_code)] // each test file uses its own subset

use std::io::Read;
use std::path::PathBuf;

use llama_web::gguf::{FileSource, GgufHeader};
use llama_web::tokenizer::Tokenizer;
use serde_json::Value;

/// A path inside the repository.
pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A path inside tests/fixtures.
pub fn fixture(rel: &str) -> PathBuf {
    repo_path("tests/fixtures").join(rel)
}

/// A JSON fixture, parsed.
pub fn json_fixture(rel: &str) -> Value {
    serde_json::from_slice(&std::fs::read(fixture(rel)).unwrap()).unwrap()
}

/// A JSON array of token ids.
pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// The SmolLM2 GGUF that `scripts/dev.sh setup` downloads.
pub fn smollm2_path() -> PathBuf {
    repo_path("models/SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// Opens a GGUF file, with a hint when it is the downloaded model that is missing.
pub fn open_gguf(path: PathBuf) -> FileSource {
    FileSource::open(&path).unwrap_or_else(|e| panic!("{e} (run `scripts/dev.sh setup`)"))
}

/// The tokenizer a GGUF file describes.
pub fn gguf_tokenizer(path: PathBuf) -> Tokenizer {
    let source = open_gguf(path);
    let header = GgufHeader::read(&source).unwrap();
    Tokenizer::from_gguf(&header, &source).unwrap()
}

/// The Llama 3.1 tokenizer, from the gzip-compressed tokenizer.json fixture.
pub fn llama31_tokenizer() -> Tokenizer {
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(fixture("tokenizer/llama31/tokenizer.json.gz")).unwrap(),
    )
    .read_to_end(&mut bytes)
    .unwrap();
    Tokenizer::from_json(&bytes).unwrap()
}

/// A `.npy` fixture of f32 values.
pub fn npy_fixture(rel: &str) -> llama_web::npy::NpyArray {
    llama_web::npy::read_f32(&std::fs::read(fixture(rel)).unwrap()).unwrap()
}

/// Loads a GGUF model with its tokenizer into an engine on a native device (`cpu` or `wgpu`).
pub fn load_engine(
    path: PathBuf,
    device: llama_web::model::device::DeviceChoice,
    context: Option<usize>,
) -> llama_web::engine::Engine {
    use llama_web::model::device::ComputeDevice;
    let source = open_gguf(path);
    let header = GgufHeader::read(&source).unwrap();
    let device = ComputeDevice::init_native(device).unwrap();
    pollster::block_on(llama_web::engine::Engine::load(
        &header,
        &source,
        &device,
        context,
        &mut |_| {},
    ))
    .unwrap()
}

/// Loads a GGUF model onto a native device (`cpu` or `wgpu`).
pub fn load_llama(
    path: PathBuf,
    device: llama_web::model::device::DeviceChoice,
) -> llama_web::model::llama::Llama {
    use llama_web::model::device::ComputeDevice;
    load_llama_on(path, &ComputeDevice::init_native(device).unwrap())
}

/// Loads a GGUF model onto a device already set up (e.g. with another arithmetic).
pub fn load_llama_on(
    path: PathBuf,
    device: &llama_web::model::device::ComputeDevice,
) -> llama_web::model::llama::Llama {
    let source = open_gguf(path);
    let header = GgufHeader::read(&source).unwrap();
    pollster::block_on(llama_web::model::llama::Llama::load(
        &header,
        &source,
        device,
        &mut |_| {},
    ))
    .unwrap()
}

/// The largest |a - b|, and the largest |b| (the scale the tolerances are relative to).
pub fn max_diff(actual: &[f32], expected: &[f32]) -> (f32, f32) {
    assert_eq!(actual.len(), expected.len(), "lengths differ");
    let diff = actual
        .iter()
        .zip(expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, |m, d| {
            if d.is_nan() || m.is_nan() {
                f32::NAN
            } else {
                m.max(d)
            }
        });
    let scale = expected.iter().fold(0f32, |m, b| m.max(b.abs()));
    (diff, scale)
}

/// Asserts `actual` is within `rel` × max|expected| of `expected` everywhere.
pub fn assert_close_rel(what: &str, actual: &[f32], expected: &[f32], rel: f32) {
    let (diff, scale) = max_diff(actual, expected);
    eprintln!(
        "{what}: max |diff| {diff:e}, max |ref| {scale}, ratio {:e}",
        diff / scale
    );
    assert!(
        diff <= rel * scale,
        "{what}: max |diff| {diff} > {rel} × {scale}"
    );
}
