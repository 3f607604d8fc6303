//! A local answer from start to end: the request built from the checked parameters, the
//! engine's steps pulled one by one and turned into OpenAI objects. Plain Rust: the browser's
//! backend (page or worker) and the native tests run the same loop.

use serde_json::Value;

use super::chunks::{LocalAnswer, ResponseIds};
use super::{ApiError, ChatParams};
use crate::engine::sampling::SamplingParams;
use crate::engine::{Engine, GenerateRequest, Step};

/// The engine's request for `params`: the conversation rendered (with the tools the model may
/// call) and tokenized, the sampling settings, the grammar the answer must follow.
pub fn generate_request(engine: &Engine, params: &ChatParams) -> Result<GenerateRequest, ApiError> {
    let prompt = engine
        .chat_prompt(&params.messages, params.template_tools())
        .map_err(|e| ApiError::from(&e))?;
    Ok(GenerateRequest {
        prompt,
        max_tokens: params.max_tokens,
        sampling: SamplingParams {
            temperature: params.temperature,
            top_p: params.top_p,
            top_k: params.top_k,
            seed: params.seed,
            presence_penalty: params.presence_penalty,
            frequency_penalty: params.frequency_penalty,
            ..SamplingParams::default()
        },
        stop: params.stop.clone(),
        ignore_eos: false,
        grammar: params.grammar(),
        logprobs: params.logprobs,
    })
}

/// Answers `params` with `engine`: every `chat.completion.chunk` goes to `on_chunk` (the role
/// chunk first), and the whole `chat.completion` is returned. Stops between two steps once
/// `cancelled()` says so (then the error is `aborted`).
pub async fn answer(
    engine: &Engine,
    params: &ChatParams,
    ids: ResponseIds,
    on_chunk: &mut dyn FnMut(Value),
    cancelled: &dyn Fn() -> bool,
) -> Result<Value, ApiError> {
    let request = generate_request(engine, params)?;
    let mut answer = LocalAnswer::for_request(ids, params, engine.python_tag());
    on_chunk(answer.role_chunk());
    let error = |e| ApiError::from(&e);
    let mut generation = engine.start(request).await.map_err(error)?;
    let completion = loop {
        if cancelled() {
            break generation.cancel();
        }
        match generation.next().await.map_err(error)? {
            Step::Delta(delta) => answer.step(&delta).into_iter().for_each(&mut *on_chunk),
            Step::Finished(completion) => break completion,
        }
    };
    let end = answer
        .end(&completion)
        .ok_or_else(|| ApiError::aborted("the request"))?;
    end.chunks.into_iter().for_each(&mut *on_chunk);
    Ok(end.completion)
}
