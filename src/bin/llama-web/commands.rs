//! The commands over a model file and its text: `inspect`, `tokenize`, `dequant`, `render`,
//! `logits` and `generate`.

use std::collections::BTreeMap;
use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;

use llama_web::engine::sampling::SamplingParams;
use llama_web::engine::{Engine, GenerateRequest};
use llama_web::gguf::{FileSource, GgufHeader};
use llama_web::model::config::LlamaConfig;
use llama_web::model::device::{ComputeDevice, DeviceChoice};
use llama_web::model::llama::{Llama, LogitsFor};
use llama_web::model::plan::KvFormat;
use llama_web::tokenizer::{ChatTemplate, RenderOptions, SpecialTokens, Tokenizer};
use serde_json::json;

use crate::CliResult;

pub(crate) fn inspect(model: PathBuf) -> CliResult {
    let source = FileSource::open(&model)?;
    let header = GgufHeader::read(&source)?;
    let config = LlamaConfig::from_gguf(&header)?;
    let mut types = BTreeMap::<String, usize>::new();
    for t in header.tensors() {
        *types.entry(t.ggml_type.to_string()).or_default() += 1;
    }
    let report = json!({
        "file": model.display().to_string(),
        "gguf_version": header.version(),
        "architecture": header.require_str("general.architecture")?,
        "name": header.get("general.name").and_then(|v| v.as_str()),
        "hyper_parameters": config,
        "tensor_count": header.tensors().len(),
        "tensor_types": types,
        "tensor_bytes": header.tensors().iter().map(|t| t.n_bytes).sum::<u64>(),
        "alignment": header.alignment(),
        "data_offset": header.data_offset(),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// A tokenizer from a GGUF file's metadata, or from a tokenizer.json (any other extension).
fn load_tokenizer(model: &PathBuf) -> Result<Tokenizer, Box<dyn std::error::Error>> {
    if model.extension().is_some_and(|e| e == "gguf") {
        let source = FileSource::open(model)?;
        let header = GgufHeader::read(&source)?;
        Ok(Tokenizer::from_gguf(&header, &source)?)
    } else {
        let bytes = std::fs::read(model).map_err(|e| format!("{}: {e}", model.display()))?;
        Ok(Tokenizer::from_json(&bytes)?)
    }
}

pub(crate) fn dequant(model: PathBuf, tensor: &str, out: PathBuf) -> CliResult {
    let source = FileSource::open(&model)?;
    let header = GgufHeader::read(&source)?;
    let info = header
        .tensor(tensor)
        .ok_or_else(|| format!("{}: no tensor named `{tensor}`", model.display()))?;
    let bytes = header.read_tensor_bytes(&source, tensor)?;
    let values =
        llama_web::gguf::dequant::dequantize(info.ggml_type, &bytes, info.n_elements as usize)?;
    // GGUF dims are innermost-first; NumPy's shape is outermost-first.
    let shape: Vec<usize> = info.dims.iter().rev().map(|&d| d as usize).collect();
    std::fs::write(&out, llama_web::npy::write_f32(&shape, &values))
        .map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(())
}

pub(crate) fn logits(
    model: PathBuf,
    ids: &[u32],
    positions: Option<Vec<u64>>,
    out: PathBuf,
    device: DeviceChoice,
    kv: KvFormat,
) -> CliResult {
    let positions = positions.unwrap_or_else(|| (0..ids.len() as u64).collect());
    let source = FileSource::open(&model)?;
    let header = GgufHeader::read(&source)?;
    let device = ComputeDevice::init_native(device)?;
    let llama = pollster::block_on(Llama::load(&header, &source, &device, &mut |_| {}))?;
    let mut cache = llama.new_cache(ids.len(), kv)?;
    let values = pollster::block_on(llama.forward(ids, &positions, &mut cache, LogitsFor::All))?;
    let shape = [ids.len(), llama.config().vocab_size];
    std::fs::write(&out, llama_web::npy::write_f32(&shape, &values))
        .map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(())
}

/// Where `generate` gets its prompt.
pub(crate) enum Prompt {
    /// A raw prompt.
    Text(String),
    /// A JSON file of chat messages.
    Messages(PathBuf),
}

#[allow(clippy::too_many_arguments)] // one per command-line flag
pub(crate) fn generate(
    model: PathBuf,
    prompt: Prompt,
    max_tokens: usize,
    sampling: SamplingParams,
    stop: Vec<String>,
    context: Option<usize>,
    device: DeviceChoice,
    kv: Option<KvFormat>,
    json: bool,
) -> CliResult {
    let source = FileSource::open(&model)?;
    let header = GgufHeader::read(&source)?;
    let device = ComputeDevice::init_native(device)?;
    let mut engine = pollster::block_on(Engine::load(
        &header,
        &source,
        &device,
        context,
        &mut |_| {},
    ))?;
    if let Some(kv) = kv {
        engine.set_kv_format(kv)?;
    }
    let prompt = match prompt {
        Prompt::Text(text) => engine.text_prompt(&text)?,
        Prompt::Messages(path) => engine.chat_prompt(&read_json(&path)?, None)?,
    };
    let request = GenerateRequest {
        prompt,
        max_tokens,
        sampling,
        stop,
        ignore_eos: false,
        grammar: None,
        logprobs: None,
    };
    let mut stdout = std::io::stdout();
    let completion = pollster::block_on(engine.generate(&request, &mut |delta| {
        if !json {
            // A closed pipe ends the generation.
            let written = stdout
                .write_all(delta.text.as_bytes())
                .and_then(|_| stdout.flush());
            if written.is_err() {
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }))?;
    if json {
        println!("{}", serde_json::to_string(&completion)?);
    } else {
        println!();
    }
    Ok(())
}

fn read_json(path: &PathBuf) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?)
}

pub(crate) fn render(
    model: PathBuf,
    messages: PathBuf,
    tools: Option<PathBuf>,
    date: Option<String>,
) -> CliResult {
    let template = if model.extension().is_some_and(|e| e == "gguf") {
        let source = FileSource::open(&model)?;
        let header = GgufHeader::read(&source)?;
        let tokenizer = Tokenizer::from_gguf(&header, &source)?;
        ChatTemplate::from_gguf(&header, &tokenizer)?
    } else {
        let bytes = std::fs::read(&model).map_err(|e| format!("{}: {e}", model.display()))?;
        ChatTemplate::from_tokenizer_config(&bytes)?
    };
    let mut options = RenderOptions {
        add_generation_prompt: true,
        tools: tools.as_ref().map(read_json).transpose()?,
        ..Default::default()
    };
    if let Some(date) = date {
        options.extra.insert("date_string".into(), date.into());
    }
    let prompt = template.render(&read_json(&messages)?, &options)?;
    use std::io::Write;
    std::io::stdout().write_all(prompt.as_bytes())?;
    Ok(())
}

pub(crate) fn tokenize(model: PathBuf, text: &str, no_special: bool) -> CliResult {
    let tokenizer = load_tokenizer(&model)?;
    let special = if no_special {
        SpecialTokens::AsText
    } else {
        SpecialTokens::Parse
    };
    let ids = tokenizer.encode(text, special)?;
    println!("{}", json!({ "ids": ids }));
    Ok(())
}
