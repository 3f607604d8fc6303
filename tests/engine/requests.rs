//! Requests over the kept cache — pulled steps, a dropped generation, a follow-up prompt, the
//! warm-up's chat preamble — end tokens from the metadata, and what fails as a typed error:
//! context overflow, bad requests, NaN weights.

use super::*;

/// The pull-style step gives the same deltas and completion as `generate`; a generation
/// dropped between steps leaves its cache for the next request; a finished one says so.
#[test]
fn pulling_steps_equals_generate_and_a_dropped_generation_keeps_its_cache() {
    let engine = engine(smollm2_path(), DeviceChoice::Cpu, None);
    let messages =
        serde_json::json!([{"role": "user", "content": "What is the capital of France?"}]);
    let prompt = engine.chat_prompt(&messages, None).unwrap();
    let mut req = request(prompt.clone(), 20, SamplingParams::greedy());
    req.stop = vec![" Par".into()];
    let mut streamed = Vec::new();
    let whole = block_on(engine.generate(&req, &mut |d| {
        streamed.push(d.clone());
        ControlFlow::Continue(())
    }))
    .unwrap();

    let mut generation = block_on(engine.start(req.clone())).unwrap();
    let mut pulled = Vec::new();
    let completion = loop {
        match block_on(generation.next()).unwrap() {
            Step::Delta(delta) => pulled.push(delta),
            Step::Finished(completion) => break completion,
        }
    };
    assert_eq!(pulled, streamed);
    assert_eq!(completion.ids, whole.ids);
    assert_eq!(completion.text, "The capital of France is");
    assert_eq!(completion.finish_reason, FinishReason::Stop);
    assert!(
        matches!(
            block_on(generation.next()),
            Err(EngineError::BadRequest { .. })
        ),
        "a finished generation gives no more steps"
    );
    drop(generation);

    // Two steps, then dropped: the next request finds the prompt (all but its last token) kept.
    let mut generation =
        block_on(engine.start(request(prompt.clone(), 20, SamplingParams::greedy()))).unwrap();
    for _ in 0..2 {
        assert!(matches!(
            block_on(generation.next()).unwrap(),
            Step::Delta(_)
        ));
    }
    drop(generation);
    let again = run(
        &engine,
        &request(prompt.clone(), 20, SamplingParams::greedy()),
    );
    assert_eq!(again.cached_tokens, prompt.len() - 1);
    assert_eq!(again.text, "The capital of France is Paris.");
}

#[test]
fn context_overflow_and_bad_requests_are_typed_errors() {
    let engine = engine(
        fixture("tiny_llama31/tiny-llama31-F32.gguf"),
        DeviceChoice::Cpu,
        Some(20),
    );
    let prompt = ids(&json_fixture("tiny_llama31/golden/golden.json")["ids"]);
    let result = block_on(engine.generate(
        &request(prompt.clone(), 5, SamplingParams::greedy()),
        &mut |_| ControlFlow::Continue(()),
    ));
    assert!(
        matches!(
            result,
            Err(EngineError::ContextOverflow {
                prompt_tokens: 16,
                max_tokens: 5,
                context_size: 20
            })
        ),
        "{result:?}"
    );
    for bad in [
        request(vec![], 1, SamplingParams::greedy()),
        request(
            prompt.clone(),
            1,
            SamplingParams {
                top_p: 2.0,
                ..SamplingParams::default()
            },
        ),
    ] {
        let result = block_on(engine.generate(&bad, &mut |_| ControlFlow::Continue(())));
        assert!(
            matches!(result, Err(EngineError::BadRequest { .. })),
            "{result:?}"
        );
    }
    let out = run(&engine, &request(prompt, 4, SamplingParams::greedy()));
    assert_eq!(out.ids.len(), 4, "still usable");
}

/// A model whose weights hold NaN: its first answer is a typed `NonFiniteLogits` (code
/// `bad_model`), not a panic in the sampler, on both devices; the warm-up refuses it at load.
#[test]
fn nan_weights_are_a_typed_error_not_a_panic() {
    use llama_web::api::{ApiError, ErrorCode};
    use llama_web::gguf::GgufHeader;
    let source = fixture("tiny_llama31/tiny-llama31-F32.gguf");
    let header = GgufHeader::read(&open_gguf(source.clone())).unwrap();
    let norm = header.tensor("output_norm.weight").unwrap();
    let mut bytes = std::fs::read(&source).unwrap();
    let start = norm.offset as usize;
    for value in bytes[start..start + norm.n_bytes as usize].chunks_exact_mut(4) {
        value.copy_from_slice(&f32::NAN.to_le_bytes());
    }
    let path = std::env::temp_dir().join(format!("llama-web-nan-{}.gguf", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    let prompt = ids(&json_fixture("tiny_llama31/golden/golden.json")["ids"]);
    for device in [DeviceChoice::Cpu, DeviceChoice::Wgpu] {
        let engine = engine(path.clone(), device, Some(64));
        let sampled = SamplingParams {
            temperature: 0.8,
            seed: Some(1),
            ..SamplingParams::default()
        };
        for sampling in [SamplingParams::greedy(), sampled] {
            let result = block_on(
                engine.generate(&request(prompt.clone(), 4, sampling), &mut |_| {
                    ControlFlow::Continue(())
                }),
            );
            let Err(e) = result else {
                panic!("{device}: NaN weights answered {result:?}")
            };
            assert!(matches!(e, EngineError::NonFiniteLogits), "{device}: {e:?}");
            assert_eq!(ApiError::from(&e).code, ErrorCode::BadModel);
        }
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn end_tokens_come_from_metadata_and_token_texts() {
    let engine = tiny(DeviceChoice::Cpu);
    // 505 <|end_of_text|>, 508 <|eom_id|>, 509 <|eot_id|>.
    assert_eq!(engine.end_tokens(), [505, 508, 509]);
    let smollm = engine_end_tokens_of_smollm2();
    assert!(smollm.contains(&2), "{smollm:?}");
}

fn engine_end_tokens_of_smollm2() -> Vec<u32> {
    engine(smollm2_path(), DeviceChoice::Cpu, None)
        .end_tokens()
        .to_vec()
}

#[test]
fn a_follow_up_prompt_reuses_the_kept_cache_and_gets_the_same_tokens() {
    let greedy = SamplingParams::greedy;
    for device in [DeviceChoice::Cpu, DeviceChoice::Wgpu] {
        let prompt = ids(&json_fixture("tiny_llama31/golden/golden.json")["ids"]);
        let kept = tiny(device);
        let first = run(&kept, &request(prompt.clone(), 6, greedy()));
        assert_eq!(
            first.cached_tokens, 0,
            "{device}: nothing is kept before the first call"
        );

        // The conversation goes on: the prompt, the answer, then more tokens.
        let follow: Vec<u32> = [&prompt[..], &first.ids, &prompt[..5]].concat();
        let second = run(&kept, &request(follow.clone(), 6, greedy()));
        // All the first call ran is reused: its prompt and every id but the last chosen.
        assert_eq!(
            second.cached_tokens,
            prompt.len() + first.ids.len() - 1,
            "{device}"
        );
        let fresh = run(&tiny(device), &request(follow, 6, greedy()));
        assert_eq!(fresh.cached_tokens, 0);
        assert_eq!(
            second.ids, fresh.ids,
            "{device}: reused and fresh caches disagree"
        );

        // A prompt that departs from the kept tokens early keeps only what they share.
        let mut other = prompt.clone();
        other[3] ^= 1;
        let third = run(&kept, &request(other.clone(), 4, greedy()));
        assert_eq!(third.cached_tokens, 3, "{device}");
        let fresh = run(&tiny(device), &request(other, 4, greedy()));
        assert_eq!(
            third.ids, fresh.ids,
            "{device}: a truncated cache disagrees"
        );
    }
}

#[test]
fn the_warm_up_leaves_the_chat_preamble_for_the_first_question() {
    let messages =
        serde_json::json!([{"role": "user", "content": "What is the capital of France?"}]);
    let warmed = engine(smollm2_path(), DeviceChoice::Wgpu, Some(128));
    block_on(warmed.warm_up()).unwrap();
    let prompt = warmed.chat_prompt(&messages, None).unwrap();
    let answer = run(
        &warmed,
        &request(prompt.clone(), 8, SamplingParams::greedy()),
    );
    // BOS, the default system prompt and the user header are already in the cache.
    assert!(
        (20..prompt.len() - 5).contains(&answer.cached_tokens),
        "{} of {} prompt tokens cached",
        answer.cached_tokens,
        prompt.len()
    );
    let fresh = engine(smollm2_path(), DeviceChoice::Wgpu, Some(128));
    let expected = run(&fresh, &request(prompt, 8, SamplingParams::greedy()));
    assert_eq!(expected.cached_tokens, 0);
    assert_eq!(answer.ids, expected.ids);
    assert_eq!(answer.text, "The capital of France is Paris.");
}
