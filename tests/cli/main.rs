//! The native CLI, run as a user runs it: here the commands over a file's header and text
//! (`inspect`, `tokenize`, `render`); the model's numbers in `model`, `bench` and `synth` in
//! `bench`.
#![cfg(not(target_arch = "wasm32"))]

mod bench;
mod model;

use std::process::Command;

/// A fresh scratch folder for one test.
pub(crate) fn scratch_dir(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("llama-web-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the CLI (the test build's binary) with `args`, from the crate root.
pub(crate) fn llama_web(args: &[&str]) -> std::process::Output {
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
