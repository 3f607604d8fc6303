//! Constrained decoding: a [`Grammar`] the answer must follow (a JSON schema, any JSON object,
//! or one tool call in Llama 3.1's JSON format), enforced token by token by `llguidance` — the
//! library llama.cpp, vLLM and SGLang use. Before each draw, [`Constraint::mask`] sets the
//! logits of every token that cannot continue a valid answer to −∞; once the grammar is
//! complete only the end token is left.
//!
//! The vocabulary's bytes (a trie `llguidance` builds from the tokenizer) and the parser
//! factory are made once per engine, on the first constrained request ([`Constrainer`]).

use std::sync::{Arc, OnceLock};

use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{TokEnv, TokRxInfo, TokTrie, TokenizerEnv};
use llguidance::{Matcher, ParserFactory};
use serde_json::{Value, json};

use super::EngineError;
use crate::tokenizer::{SpecialTokens, Tokenizer};

/// What a constrained answer must be.
#[derive(Debug, Clone, PartialEq)]
pub enum Grammar {
    /// Any JSON object (OpenAI's `response_format: {type: "json_object"}`).
    JsonObject,
    /// A JSON value valid against this JSON schema (`response_format: {type: "json_schema"}`).
    JsonSchema(Value),
    /// Exactly one call, `{"name": NAME, "parameters": ARGS}` as Llama 3.1's template asks for
    /// it, to one of these functions: each a name and the JSON schema of its parameters.
    ToolCall(Vec<(String, Value)>),
}

/// How generated JSON is laid out: Python's `json.dumps` separators, no free whitespace (a
/// model that may write any amount of whitespace may never finish).
const LAYOUT: &str =
    r#"{"item_separator": ", ", "key_separator": ": ", "whitespace_flexible": false}"#;

impl Grammar {
    /// The JSON schema `llguidance` compiles for this grammar.
    fn schema(&self) -> Value {
        let mut schema = match self {
            Grammar::JsonObject => json!({"type": "object"}),
            Grammar::JsonSchema(schema) => schema.clone(),
            Grammar::ToolCall(functions) => {
                let calls: Vec<Value> = functions
                    .iter()
                    .map(|(name, parameters)| {
                        json!({
                            "type": "object",
                            "properties": {"name": {"const": name}, "parameters": parameters},
                            "required": ["name", "parameters"],
                            "additionalProperties": false,
                        })
                    })
                    .collect();
                json!({"anyOf": calls})
            }
        };
        if let Value::Object(fields) = &mut schema {
            let layout: Value = serde_json::from_str(LAYOUT).expect("a constant");
            fields.insert("x-guidance".into(), layout);
        }
        schema
    }
}

/// Builds [`Constraint`]s for one tokenizer; the costly part (the vocabulary's trie) once.
#[derive(Default)]
pub struct Constrainer {
    factory: OnceLock<Result<ParserFactory, String>>,
}

impl std::fmt::Debug for Constrainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Constrainer")
    }
}

impl Constrainer {
    /// A constraint for one answer; `end_token` is the id that ends it once the grammar is
    /// complete. A schema that does not compile is the request's fault.
    pub fn constraint(
        &self,
        tokenizer: &Tokenizer,
        end_token: u32,
        grammar: &Grammar,
    ) -> Result<Constraint, EngineError> {
        let factory = self
            .factory
            .get_or_init(|| factory(tokenizer, end_token))
            .as_ref()
            .map_err(|detail| EngineError::Grammar {
                detail: format!("the vocabulary cannot be constrained: {detail}"),
            })?;
        let parser = factory
            .create_parser(TopLevelGrammar::from_json_schema(grammar.schema()))
            .map_err(|e| EngineError::Grammar {
                detail: e.to_string(),
            })?;
        Ok(Constraint {
            matcher: Matcher::new(Ok(parser)),
        })
    }
}

/// One answer's grammar state.
pub struct Constraint {
    matcher: Matcher,
}

impl Constraint {
    /// Sets the logits of every token the grammar does not allow next to −∞.
    pub fn mask(&mut self, logits: &mut [f32]) -> Result<(), EngineError> {
        let allowed = self.matcher.compute_mask_or_eos().map_err(grammar_error)?;
        for (id, logit) in logits.iter_mut().enumerate() {
            if id >= allowed.len() || !allowed.is_allowed(id as u32) {
                *logit = f32::NEG_INFINITY;
            }
        }
        Ok(())
    }

    /// Moves the grammar past the chosen token (nothing once the grammar is complete: then
    /// the mask left only the end token).
    pub fn accept(&mut self, id: u32) -> Result<(), EngineError> {
        if self.matcher.is_stopped() {
            return Ok(());
        }
        self.matcher.consume_token(id).map_err(grammar_error)
    }
}

fn grammar_error(e: impl std::fmt::Display) -> EngineError {
    EngineError::Grammar {
        detail: e.to_string(),
    }
}

/// The parser factory over `tokenizer`'s vocabulary.
fn factory(tokenizer: &Tokenizer, end_token: u32) -> Result<ParserFactory, String> {
    let words = llguidance::token_bytes_from_tokenizer_json(&tokenizer.hf_json())
        .map_err(|e| e.to_string())?;
    let info = TokRxInfo::new(words.len() as u32, end_token);
    let env = VocabularyEnv {
        trie: TokTrie::from(&info, &words),
        tokenizer: tokenizer.clone(),
    };
    let env: TokEnv = Arc::new(env);
    let mut factory = ParserFactory::new_simple(&env).map_err(|e| e.to_string())?;
    factory.quiet();
    Ok(factory)
}

/// The vocabulary as `llguidance` sees it: each token's bytes, and the tokenizer for the
/// grammar's fixed strings.
struct VocabularyEnv {
    trie: TokTrie,
    tokenizer: Tokenizer,
}

impl TokenizerEnv for VocabularyEnv {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, bytes: &[u8]) -> Vec<u32> {
        let text = String::from_utf8_lossy(bytes);
        self.tokenizer
            .encode(&text, SpecialTokens::AsText)
            .unwrap_or_else(|_| self.trie.greedy_tokenize(bytes))
    }
}
