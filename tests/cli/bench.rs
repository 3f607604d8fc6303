//! `bench` (its counters, the device defaults) and `synth` (its refusals).

use super::{llama_web, scratch_dir};

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
