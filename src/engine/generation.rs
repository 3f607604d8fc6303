//! The pull-style generation step: [`Engine::start`] checks the request and prefills its
//! prompt, then each [`Generation::next`] runs one decode step and gives the text it completed,
//! until it gives the [`Completion`]. The caller's loop decides the pace (a Web Worker posting
//! each delta, a CLI printing it, a test collecting it): to stop early it calls
//! [`Generation::cancel`] or simply drops the generation. Either way the KV cache is kept for
//! the next request, as when a generation finishes.

use super::constrain::Constraint;
use super::sampling::{Sampler, log_softmax_top};
use super::stop::{StopScan, StopStrings};
use super::{
    Completion, Delta, Engine, EngineError, FinishReason, GenerateRequest, TokenLogprob,
    TokenLogprobs, Usage,
};
use crate::model::TopLogits;
use crate::model::error::ModelError;
use crate::model::kv_cache::KvCache;
use crate::model::llama::{Llama, LogitsFor};
use crate::tokenizer::StreamDecoder;

/// What one [`Generation::next`] gives.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// New text (possibly empty while a character or a possible stop string is held back).
    Delta(Delta),
    /// The generation is over; later calls give an error.
    Finished(Completion),
}

/// What the model gave for the next token: its logits, or the id chosen already (on the
/// device, or from the shortlist).
pub(crate) enum Next {
    /// Every logit, for the host to choose from.
    Logits(Vec<f32>),
    /// The id chosen.
    Chosen(u32),
}

/// What a decode step reads back for the choice of the next token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Readback {
    /// The id the device chose (plain greedy: 4 bytes).
    Chosen,
    /// The shortlist (sampling untouched by biases and penalties: ~1 KB), and every logit only
    /// when the sampler cannot decide from it.
    Shortlist,
    /// Every logit (biases, penalties, a grammar, logprobs).
    Logits,
}

/// Where a generation is.
enum State {
    /// Tokens are being chosen; `next` is what the model gave for the next one, `None` while
    /// the last chosen id has still to be run (lazily, so a finished answer runs nothing more).
    Running { next: Option<Next> },
    /// Over for `reason`; the text held back has been given as a last delta.
    Ending(FinishReason),
    /// Over and reported (or failed).
    Done,
}

/// One request's generation in progress (see the module docs).
pub struct Generation<'e> {
    engine: &'e Engine,
    request: GenerateRequest,
    sampler: Sampler,
    /// The grammar the answer must follow, if any.
    constraint: Option<Constraint>,
    /// `None` once given back to the engine (or lost to a failed step).
    cache: Option<KvCache>,
    cached_tokens: usize,
    decoder: StreamDecoder,
    stops: StopStrings,
    ids: Vec<u32>,
    text: String,
    stopped_by_string: bool,
    /// What each decode step reads back.
    readback: Readback,
    state: State,
}

impl Engine {
    /// Checks `request`, takes the kept cache (or a new one) and prefills the prompt's tokens it
    /// does not hold; the returned generation then gives the answer step by step.
    pub async fn start(&self, request: GenerateRequest) -> Result<Generation<'_>, EngineError> {
        let prompt = &request.prompt;
        if prompt.is_empty() {
            return Err(EngineError::BadRequest {
                detail: "empty prompt".into(),
            });
        }
        request
            .sampling
            .validate()
            .map_err(|detail| EngineError::BadRequest { detail })?;
        if prompt.len().saturating_add(request.max_tokens) > self.context_size {
            return Err(EngineError::ContextOverflow {
                prompt_tokens: prompt.len(),
                max_tokens: request.max_tokens,
                context_size: self.context_size,
            });
        }
        let constraint = match &request.grammar {
            None => None,
            Some(grammar) => {
                let end = self.turn_end().ok_or_else(|| EngineError::Grammar {
                    detail: "the model has no end-of-turn token to end a constrained answer".into(),
                })?;
                Some(self.constrainer.constraint(&self.tokenizer, end, grammar)?)
            }
        };
        let (mut cache, cached_tokens) =
            match self.kept.take(prompt, self.context_size, self.kv_format) {
                Some(kept) => kept,
                None => (self.model.new_cache(self.context_size, self.kv_format)?, 0),
            };
        let mut sampler = Sampler::new(request.sampling.clone());
        let host_needs_logits = constraint.is_some() || request.logprobs.is_some();
        let readback = if host_needs_logits {
            Readback::Logits
        } else if request.sampling.is_plain_greedy() {
            Readback::Chosen
        } else if sampler.takes_shortlist() {
            Readback::Shortlist
        } else {
            Readback::Logits
        };
        let uncached = &prompt[cached_tokens..];
        let first = match readback {
            Readback::Shortlist => {
                let temperature = request.sampling.temperature;
                let top = self.model.prefill_top(uncached, &mut cache, temperature);
                choose_from(top.await?, &mut sampler).await?
            }
            _ => Next::Logits(self.model.prefill(uncached, &mut cache).await?),
        };
        Ok(Generation {
            engine: self,
            sampler,
            readback,
            constraint,
            cache: Some(cache),
            cached_tokens,
            decoder: StreamDecoder::new(true),
            stops: StopStrings::new(&request.stop),
            ids: Vec::new(),
            text: String::new(),
            stopped_by_string: false,
            state: State::Running { next: Some(first) },
            request,
        })
    }
}

impl Generation<'_> {
    /// One step: the next token's text, or the completion once the answer is over (an end
    /// token, a stop string, `max_tokens`). After [`Step::Finished`] or an error, every call is
    /// an error.
    pub async fn next(&mut self) -> Result<Step, EngineError> {
        let next = match &mut self.state {
            State::Running { next } => next.take(),
            State::Ending(reason) => {
                let reason = *reason;
                return Ok(Step::Finished(self.complete(reason)));
            }
            State::Done => {
                return Err(EngineError::BadRequest {
                    detail: "the generation is over".into(),
                });
            }
        };
        if self.ids.len() == self.request.max_tokens {
            return Ok(self.end(FinishReason::Length));
        }
        // A failed step loses the cache (it may hold half a token), so nothing is kept.
        self.state = State::Done;
        let mut next = match next {
            Some(next) => next,
            None => self.run_last().await?,
        };
        let mut distribution = None;
        let id = match &mut next {
            Next::Logits(logits) if logits.iter().any(|l| l.is_nan()) => {
                return Err(EngineError::NonFiniteLogits);
            }
            Next::Logits(logits) => {
                if let Some(top) = self.request.logprobs {
                    distribution = Some((log_softmax_top(logits, top), logits.clone()));
                }
                if let Some(constraint) = &mut self.constraint {
                    constraint.mask(logits)?;
                }
                self.sampler.sample(logits, &self.request.prompt, &self.ids)
            }
            Next::Chosen(id) => *id,
        };
        if let Some(constraint) = &mut self.constraint {
            constraint.accept(id)?;
        }
        self.state = State::Running { next: None };
        self.ids.push(id);
        if !self.request.ignore_eos && self.engine.end_tokens.contains(&id) {
            return Ok(self.end(FinishReason::Stop));
        }
        let piece = self
            .decoder
            .step(&self.engine.tokenizer, id)?
            .unwrap_or_default();
        let text = match self.stops.push(&piece) {
            StopScan::Continue(text) => text,
            StopScan::Stop(text) => {
                self.stopped_by_string = true;
                self.state = State::Ending(FinishReason::Stop);
                text
            }
        };
        self.text.push_str(&text);
        let logprobs = distribution.map(|((log_norm, top), raw)| {
            let token = |id: u32, logprob: f32| TokenLogprob {
                bytes: self.engine.tokenizer.token_bytes(id),
                logprob,
            };
            TokenLogprobs {
                chosen: token(id, (raw[id as usize] as f64 - log_norm) as f32),
                top: top.into_iter().map(|(id, lp)| token(id, lp)).collect(),
            }
        });
        Ok(Step::Delta(Delta {
            id: Some(id),
            text,
            logprobs,
        }))
    }

    /// Stops here: the completion so far (finish reason [`FinishReason::Cancelled`]), the
    /// cache kept for the next request.
    /// (An answer already over at its last delta keeps its own finish reason.)
    pub fn cancel(mut self) -> Completion {
        let reason = match self.state {
            State::Ending(reason) => reason,
            State::Running { .. } => {
                let _ = self.release_tail();
                FinishReason::Cancelled
            }
            State::Done => FinishReason::Cancelled,
        };
        self.complete(reason)
    }

    /// Runs the last chosen id through the model, for the logits of the next — or the next id,
    /// chosen on the device or drawn from the step's shortlist.
    async fn run_last(&mut self) -> Result<Next, EngineError> {
        let (Some(&id), Some(cache)) = (self.ids.last(), self.cache.as_mut()) else {
            unreachable!("a generation runs an id only after choosing one, with its cache")
        };
        let position = (self.request.prompt.len() + self.ids.len() - 1) as u64;
        let model = &self.engine.model;
        let (token, at) = (&[id], &[position]);
        Ok(match self.readback {
            Readback::Chosen => Next::Chosen(model.forward_argmax(token, at, cache).await?),
            Readback::Shortlist => {
                shortlist_step(model, &mut self.sampler, id, position, cache).await?
            }
            Readback::Logits => {
                Next::Logits(model.forward(token, at, cache, LogitsFor::Last).await?)
            }
        })
    }

    /// Ends for `reason`: the text still held back comes as a last delta if there is any, else
    /// the completion at once.
    fn end(&mut self, reason: FinishReason) -> Step {
        match self.release_tail() {
            Some(text) => {
                self.state = State::Ending(reason);
                Step::Delta(Delta {
                    id: None,
                    text,
                    logprobs: None,
                })
            }
            None => Step::Finished(self.complete(reason)),
        }
    }

    /// What the decoder and the stop matcher still hold, added to the text (`None` if nothing).
    fn release_tail(&mut self) -> Option<String> {
        if self.stopped_by_string {
            return None;
        }
        let tail = self
            .decoder
            .finish(&self.engine.tokenizer)
            .ok()
            .flatten()
            .unwrap_or_default();
        let rest = match self.stops.push(&tail) {
            StopScan::Continue(text) => text + &self.stops.finish(),
            StopScan::Stop(text) => text,
        };
        self.text.push_str(&rest);
        (!rest.is_empty()).then_some(rest)
    }

    /// The completion; the cache goes back to the engine.
    fn complete(&mut self, finish_reason: FinishReason) -> Completion {
        self.keep_cache();
        self.state = State::Done;
        let prompt_tokens = self.request.prompt.len();
        Completion {
            cached_tokens: self.cached_tokens,
            usage: Usage {
                prompt_tokens,
                completion_tokens: self.ids.len(),
                total_tokens: prompt_tokens + self.ids.len(),
            },
            ids: std::mem::take(&mut self.ids),
            text: std::mem::take(&mut self.text),
            finish_reason,
        }
    }

    /// Gives the cache back: it holds the prompt, then every id but the last chosen.
    fn keep_cache(&mut self) {
        if let Some(cache) = self.cache.take() {
            let tokens = [self.request.prompt.as_slice(), &self.ids].concat();
            self.engine.kept.keep(tokens, cache);
        }
    }
}

/// One sampled decode step of `id` at `position`, drawn from the device's shortlist: the id
/// chosen, or every logit when the shortlist cannot decide (`sampler` drew nothing then).
pub(crate) async fn shortlist_step(
    model: &Llama,
    sampler: &mut Sampler,
    id: u32,
    position: u64,
    cache: &mut KvCache,
) -> Result<Next, ModelError> {
    let temperature = sampler.params().temperature;
    let top = model
        .forward_top(&[id], &[position], cache, temperature)
        .await?;
    choose_from(top, sampler).await
}

/// The id `sampler` draws from `top`'s shortlist, or every logit when it cannot decide.
async fn choose_from(top: TopLogits, sampler: &mut Sampler) -> Result<Next, ModelError> {
    Ok(match sampler.sample_shortlist(&top.shortlist) {
        Some(id) => Next::Chosen(id),
        None => Next::Logits(top.read_all().await?),
    })
}

impl Drop for Generation<'_> {
    /// A generation dropped between steps keeps its cache, like a cancelled one; one dropped in
    /// the middle of a step (its future dropped) or after a failure keeps nothing.
    fn drop(&mut self) {
        if matches!(self.state, State::Running { .. } | State::Ending(_)) {
            self.keep_cache();
        }
    }
}
