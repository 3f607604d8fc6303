//! The commands that compute with the model: `dequant`, `logits`, `generate`.

use super::{llama_web, scratch_dir};

#[test]
fn dequant_writes_npy_identical_to_gguf_py() {
    let dir = scratch_dir("dequant");
    let out_path = dir.join("embd.npy");
    let out = llama_web(&[
        "dequant",
        "tests/fixtures/tiny_llama31/tiny-llama31-Q4_0.gguf",
        "--tensor",
        "token_embd.weight",
        "--out",
        out_path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let npy = std::fs::read(&out_path).unwrap();
    assert_eq!(&npy[..8], b"\x93NUMPY\x01\x00");
    let header_len = u16::from_le_bytes([npy[8], npy[9]]) as usize;
    assert_eq!((10 + header_len) % 64, 0);
    let header = std::str::from_utf8(&npy[10..10 + header_len]).unwrap();
    assert!(
        header.contains("'descr': '<f4'") && header.contains("'shape': (512, 64)"),
        "{header}"
    );
    use sha2::Digest;
    let digest: String = sha2::Sha256::digest(&npy[10 + header_len..])
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let hashes: serde_json::Value = serde_json::from_slice(
        &std::fs::read("tests/fixtures/dequant/tensor_sha256.json").unwrap(),
    )
    .unwrap();
    assert_eq!(
        digest,
        hashes["tiny-llama31-Q4_0.gguf"]["token_embd.weight"]
            .as_str()
            .unwrap()
    );
    let missing = llama_web(&[
        "dequant",
        "tests/fixtures/tiny_llama31/tiny-llama31-Q4_0.gguf",
        "--tensor",
        "nope",
        "--out",
        out_path.to_str().unwrap(),
    ]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no tensor named `nope`"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn logits_with_positions_match_the_hf_golden() {
    let dir = scratch_dir("logits");
    let out_path = dir.join("logits.npy");
    let golden: serde_json::Value = serde_json::from_slice(
        &std::fs::read("tests/fixtures/tiny_llama31/golden/golden.json").unwrap(),
    )
    .unwrap();
    let join = |key: &str| -> String {
        let v: Vec<String> = golden[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.to_string())
            .collect();
        v.join(",")
    };
    let out = llama_web(&[
        "logits",
        "tests/fixtures/tiny_llama31/tiny-llama31-F32.gguf",
        "--ids",
        &join("ids"),
        "--positions",
        &join("positions_b"),
        "--out",
        out_path.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours = llama_web::npy::read_f32(&std::fs::read(&out_path).unwrap()).unwrap();
    let hf = llama_web::npy::read_f32(
        &std::fs::read("tests/fixtures/tiny_llama31/golden/hf_f32_logits_pos100000.npy").unwrap(),
    )
    .unwrap();
    assert_eq!(ours.shape, [16, 512]);
    let scale = hf.values.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = ours
        .values
        .iter()
        .zip(&hf.values)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(diff <= 1e-4 * scale, "{diff}");

    let bad = llama_web(&[
        "logits",
        "tests/fixtures/tiny_llama31/tiny-llama31-F32.gguf",
        "--ids",
        "1,2,9999",
        "--out",
        out_path.to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("outside the vocabulary"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn generate_json_reports_ids_text_finish_reason_and_usage() {
    let dir = scratch_dir("generate");
    let messages = dir.join("messages.json");
    std::fs::write(
        &messages,
        r#"[{"role": "user", "content": "What is the capital of France?"}]"#,
    )
    .unwrap();
    let model = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
    let out = llama_web(&[
        "generate",
        model,
        "--messages",
        messages.to_str().unwrap(),
        "--max-tokens",
        "20",
        "--device",
        "cpu",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["text"], "The capital of France is Paris.");
    assert_eq!(report["finish_reason"], "stop");
    assert_eq!(
        report["ids"],
        serde_json::json!([504, 3575, 282, 4649, 314, 7042, 30, 2])
    );
    assert_eq!(
        report["usage"],
        serde_json::json!({"prompt_tokens": 37, "completion_tokens": 8, "total_tokens": 45})
    );

    // Streaming mode prints the same text; a length stop is reported in JSON as "length".
    let streamed = llama_web(&[
        "generate",
        model,
        "--messages",
        messages.to_str().unwrap(),
        "--max-tokens",
        "20",
        "--device",
        "cpu",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&streamed.stdout),
        "The capital of France is Paris.\n"
    );
    let short = llama_web(&[
        "generate",
        model,
        "--prompt",
        "Hello",
        "--max-tokens",
        "2",
        "--device",
        "cpu",
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&short.stdout).unwrap();
    assert_eq!(report["finish_reason"], "length");
    assert_eq!(report["usage"]["completion_tokens"], 2);

    let overflow = llama_web(&[
        "generate",
        model,
        "--prompt",
        "Hello",
        "--max-tokens",
        "50",
        "--context",
        "8",
        "--device",
        "cpu",
    ]);
    assert!(!overflow.status.success());
    assert!(String::from_utf8_lossy(&overflow.stderr).contains("context overflow"));
    std::fs::remove_dir_all(&dir).ok();
}
