//! The native CLI, run as a user runs it.
#![cfg(not(target_arch = "wasm32"))]

use std::process::Command;

/// A fresh scratch folder for one test.
fn scratch_dir(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("llama-web-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn llama_web(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_llama-web"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run llama-web")
}

#[test]
fn inspect_smollm2() {
    let out = llama_web(&["inspect", "models/SmolLM2-135M-Instruct.Q4_1.gguf"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["architecture"], "llama");
    let hp = &v["hyper_parameters"];
    assert_eq!(hp["n_layers"], 30);
    assert_eq!(hp["hidden_size"], 576);
    assert_eq!(hp["n_heads"], 9);
    assert_eq!(hp["n_kv_heads"], 3);
    assert_eq!(hp["head_dim"], 64);
    assert_eq!(hp["vocab_size"], 49152);
    assert_eq!(hp["tied_embeddings"], true);
    assert_eq!(hp["rope_freqs"], false);
    assert_eq!(
        v["tensor_types"],
        serde_json::json!({"F32": 61, "Q4_1": 210, "Q8_0": 1})
    );
    assert_eq!(v["tensor_count"], 272);
}

#[test]
fn inspect_tiny_llama31_has_llama3_rope_and_untied_head() {
    let out = llama_web(&[
        "inspect",
        "tests/fixtures/tiny_llama31/tiny-llama31-Q4_0.gguf",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hp = &v["hyper_parameters"];
    assert_eq!(
        (
            hp["n_layers"].as_u64(),
            hp["n_heads"].as_u64(),
            hp["n_kv_heads"].as_u64()
        ),
        (Some(2), Some(4), Some(2))
    );
    assert_eq!(hp["rope_theta"], 500000.0);
    assert_eq!(hp["rope_freqs"], true);
    assert_eq!(hp["tied_embeddings"], false);
}

#[test]
fn inspect_rejects_a_non_gguf_file_with_a_message() {
    let out = llama_web(&["inspect", "Cargo.toml"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a GGUF file"), "{err}");
    let out = llama_web(&["inspect", "no/such/file.gguf"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no/such/file.gguf"));
}

#[test]
fn tokenize_with_and_without_special_tokens() {
    let run = |extra: &[&str]| -> Vec<u64> {
        let mut args = vec![
            "tokenize",
            "tests/fixtures/tiny_llama31/tiny-llama31-F32.gguf",
            "--text",
            "Hi<|eot_id|>",
        ];
        args.extend_from_slice(extra);
        let out = llama_web(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect()
    };
    let parsed = run(&[]);
    assert_eq!(parsed.last(), Some(&509), "{parsed:?}");
    let as_text = run(&["--no-special"]);
    assert!(
        !as_text.contains(&509) && as_text.len() > parsed.len(),
        "{as_text:?}"
    );
    // The same ids from the model's tokenizer.json.
    let out = llama_web(&[
        "tokenize",
        "tests/fixtures/tiny_llama31/hf/tokenizer.json",
        "--text",
        "Hi<|eot_id|>",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let from_json: Vec<u64> = v["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    assert_eq!(from_json, parsed);
}

#[test]
fn render_prints_the_prompt_exactly() {
    let dir = scratch_dir("cli");
    let messages = dir.join("messages.json");
    std::fs::write(
        &messages,
        r#"[{"role": "user", "content": "What is the capital of France?"}]"#,
    )
    .unwrap();
    let out = llama_web(&[
        "render",
        "models/SmolLM2-135M-Instruct.Q4_1.gguf",
        "--messages",
        messages.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read("tests/fixtures/smollm2/hf_reference.json").unwrap())
            .unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        reference["prompt"].as_str().unwrap()
    );

    let out = llama_web(&[
        "render",
        "tests/fixtures/tokenizer/llama31/tokenizer_config.json",
        "--messages",
        messages.to_str().unwrap(),
        "--date",
        "01 Jan 2025",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let prompt = String::from_utf8(out.stdout).unwrap();
    assert!(prompt.starts_with("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"));
    assert!(prompt.contains("Today Date: 01 Jan 2025\n"));
    assert!(prompt.ends_with("<|start_header_id|>assistant<|end_header_id|>\n\n"));
    std::fs::remove_dir_all(&dir).ok();
}

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

/// `bench` as a user runs it: the defaults per device (the q8 cache on wgpu, f32 on the CPU),
/// the counters, the warm-up, the host clock and the Burn f32 comparison. Nothing asserts a speed.
#[test]
fn bench_reports_its_counters_and_the_device_defaults() {
    let tiny = "tests/fixtures/tiny_llama31/tiny-llama31-Q4_0.gguf";
    let common = ["--prompt-len", "4", "--gen", "2", "--context", "16"];
    let run = |extra: &[&str]| {
        let out = llama_web(&[&["bench", tiny][..], &common, extra].concat());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };

    let gpu = run(&["--compare-f32", "--sampled", "--stages"]);
    assert_eq!(gpu["kv_format"], "q8", "the wgpu default");
    assert_eq!(gpu["arithmetic"], "f32", "the default");
    // Two blocks of 5 launches (attention over 7 keys is one segment, RoPE and the store folded
    // in), the head, the choice.
    assert_eq!(gpu["dispatches_per_token"], 12.0);
    // The stages cover the step: every launch but the greedy choice's, in the step's order.
    let stages = gpu["stages"].as_array().unwrap();
    let names: Vec<&str> = stages
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["qkv", "attention", "output", "gate_up", "down", "head"]
    );
    let launches: Vec<u64> = stages
        .iter()
        .map(|s| s["launches_per_token"].as_u64().unwrap())
        .collect();
    assert_eq!(
        launches,
        [2, 2, 2, 2, 2, 1],
        "attention (RoPE and the store folded in): one launch a block"
    );
    assert!(
        stages
            .iter()
            .all(|s| s["ms_per_token"].as_f64().is_some_and(f64::is_finite))
    );
    assert_eq!(gpu["readback_bytes_per_token"], 4.0);
    for key in ["warmup_s", "host_ms_per_token", "burn_f32_matmul_tok_s"] {
        let value = gpu[key].as_f64().unwrap_or(f64::NAN);
        assert!(value.is_finite() && value > 0.0, "{key}: {}", gpu[key]);
    }
    // Sampled at temperature 0.7: a shortlist a step, and every logit too where its 128 tokens
    // could not decide (the tiny model's random weights spread the mass over its vocabulary),
    // against every logit a step.
    let sampled = &gpu["sampled"];
    let inspect: serde_json::Value =
        serde_json::from_slice(&llama_web(&["inspect", tiny]).stdout).unwrap();
    let logits_bytes = 4.0 * inspect["hyper_parameters"]["vocab_size"].as_f64().unwrap();
    let decided = sampled["shortlist_decided"].as_f64().unwrap();
    assert!(decided > 0.0, "{sampled}");
    assert_eq!(
        sampled["shortlist_readback_bytes_per_token"]
            .as_f64()
            .unwrap(),
        1040.0 + (1.0 - decided) * logits_bytes,
        "{sampled}"
    );
    assert_eq!(sampled["logits_readback_bytes_per_token"], logits_bytes);

    // f16 arithmetic needs shader-f16 (tests/forward.rs runs it on lavapipe): the CPU device
    // has none.
    let refused = llama_web(
        &[
            &["bench", tiny][..],
            &common,
            &["--device", "cpu", "--arithmetic", "f16"],
        ]
        .concat(),
    );
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("no `shader-f16`"), "{message}");

    let cpu = run(&["--device", "cpu"]);
    assert_eq!(cpu["kv_format"], "f32", "the CPU device's only format");
    assert!(cpu["burn_f32_matmul_tok_s"].is_null(), "not asked for");
    assert!(cpu["sampled"].is_null(), "not asked for");
    assert!(cpu["stages"].is_null(), "not asked for");
    assert!(cpu["dispatches_per_token"].is_null());
}

#[test]
fn synth_refuses_an_unknown_model_and_an_unwritable_path_leaving_nothing() {
    let dir = scratch_dir("synth");
    let out_path = dir.join("model.gguf");
    let out = llama_web(&[
        "synth",
        "llama3.1-70b:Q4_K_M",
        "--out",
        out_path.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown synthetic model `llama3.1-70b:Q4_K_M`"),
        "{stderr}"
    );
    assert!(!out_path.exists());

    let missing = dir.join("no-such-folder").join("model.gguf");
    let out = llama_web(&[
        "synth",
        "llama3.1-8b:Q4_0",
        "--out",
        missing.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot create"), "{stderr}");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "nothing left behind"
    );
}
