//! The command line: its subcommands and flags, parsed by clap (DESIGN.md, "CLI"), and the
//! function each subcommand runs.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use llama_web::engine::bench::BenchParams;
use llama_web::engine::sampling::SamplingParams;
use llama_web::model::device::DeviceChoice;
use llama_web::model::plan::KvFormat;
use llama_web::model::{Arithmetic, DecodeKernel};

use crate::CliResult;
use crate::bench::{DeviceSetup, bench, synth};
use crate::commands::{Prompt, dequant, generate, inspect, logits, render, tokenize};

/// Llama 3.1 in the browser — the native tool.
#[derive(Parser)]
#[command(name = "llama-web", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Print a GGUF model's architecture, hyper-parameters and tensor type counts as JSON.
    Inspect {
        /// The GGUF file.
        model: PathBuf,
    },
    /// Encode text exactly (no BOS added) and print `{"ids": [...]}`.
    Tokenize {
        /// A GGUF file, or a tokenizer.json.
        model: PathBuf,
        /// The text to encode.
        #[arg(long)]
        text: String,
        /// Treat special-token text such as `<|eot_id|>` as plain text.
        #[arg(long)]
        no_special: bool,
    },
    /// Dequantize one tensor to f32 and write it as .npy (GGUF row-major layout).
    Dequant {
        /// The GGUF file.
        model: PathBuf,
        /// The tensor's name, e.g. `blk.0.attn_q.weight`.
        #[arg(long)]
        tensor: String,
        /// Where to write the .npy file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Render a conversation with the model's chat template, generation prompt included;
    /// print the prompt exactly (no trailing newline).
    Render {
        /// A GGUF file, or an HF tokenizer_config.json.
        model: PathBuf,
        /// A JSON file holding the messages array.
        #[arg(long)]
        messages: PathBuf,
        /// A JSON file holding the tools array.
        #[arg(long)]
        tools: Option<PathBuf>,
        /// The template's `date_string`, e.g. "26 Jul 2024".
        #[arg(long)]
        date: Option<String>,
    },
    /// Run token ids through the model and write their logits as .npy `[n, vocab]` f32.
    Logits {
        /// The GGUF file.
        model: PathBuf,
        /// Comma-separated token ids.
        #[arg(long, value_delimiter = ',', required = true)]
        ids: Vec<u32>,
        /// One position per id (like HF `position_ids`); default 0..n-1.
        #[arg(long, value_delimiter = ',')]
        positions: Option<Vec<u64>>,
        /// Where to write the .npy file.
        #[arg(long)]
        out: PathBuf,
        /// `cpu` or `wgpu` (Vulkan).
        #[arg(long, default_value = "wgpu")]
        device: DeviceChoice,
        /// How the KV cache stores keys and values: `f32`, `f16` or `q8` (8-bit, a scale per
        /// row); f16 and q8 on wgpu only.
        #[arg(long, default_value = "f32")]
        kv: KvFormat,
    },
    /// Generate a continuation of a raw prompt or a chat; stream the text, or print JSON.
    Generate {
        /// The GGUF file.
        model: PathBuf,
        /// A raw prompt (BOS added when the model asks for it).
        #[arg(
            long,
            conflicts_with = "messages",
            required_unless_present = "messages"
        )]
        prompt: Option<String>,
        /// A JSON file holding OpenAI-shaped messages, rendered with the model's template.
        #[arg(long)]
        messages: Option<PathBuf>,
        /// At most this many new tokens.
        #[arg(long, default_value_t = 128)]
        max_tokens: usize,
        /// 0 is greedy.
        #[arg(long, default_value_t = 0.0)]
        temperature: f32,
        /// Keep the k most likely tokens.
        #[arg(long)]
        top_k: Option<usize>,
        /// Nucleus sampling mass.
        #[arg(long, default_value_t = 1.0)]
        top_p: f32,
        /// Seed for sampling.
        #[arg(long)]
        seed: Option<u64>,
        /// Stop strings (repeatable).
        #[arg(long)]
        stop: Vec<String>,
        /// Context size (default: min(4096, the model's)).
        #[arg(long)]
        context: Option<usize>,
        /// `cpu` or `wgpu` (Vulkan).
        #[arg(long, default_value = "wgpu")]
        device: DeviceChoice,
        /// How the KV cache stores keys and values: `f32`, `f16` or `q8` (8-bit, a scale per
        /// row); f16 and q8 on wgpu only. Default: q8 on wgpu, f32 on cpu.
        #[arg(long)]
        kv: Option<KvFormat>,
        /// Print one JSON object instead of streaming the text.
        #[arg(long)]
        json: bool,
    },
    /// Measure prefill and decode speed, bandwidth and memory; print one JSON object.
    Bench {
        /// The GGUF file (or use --synthetic).
        #[arg(required_unless_present = "synthetic", conflicts_with = "synthetic")]
        model: Option<PathBuf>,
        /// A synthetic model with a real model's shapes and tensor types: `llama3.1-8b:Q4_K_M`
        /// or `llama3.1-8b:Q4_0`.
        #[arg(long)]
        synthetic: Option<String>,
        /// `cpu` or `wgpu` (Vulkan).
        #[arg(long, default_value = "wgpu")]
        device: DeviceChoice,
        /// Context size: the KV cache is allocated for it, and the memory plan made for it.
        #[arg(long, default_value_t = 8192)]
        context: usize,
        /// How the KV cache stores keys and values: `f32`, `f16` or `q8` (8-bit, a scale per
        /// row).
        /// Default: q8 on wgpu, f32 on cpu.
        #[arg(long)]
        kv: Option<KvFormat>,
        /// Prompt tokens to prefill.
        #[arg(long, default_value_t = 128)]
        prompt_len: usize,
        /// Tokens to decode.
        #[arg(long = "gen", default_value_t = 64)]
        gen_tokens: usize,
        /// Also time Burn's own f32 matmul on the prefill's products (dense random weights):
        /// `burn_f32_matmul_tok_s`.
        #[arg(long)]
        compare_f32: bool,
        /// Also time sampled decoding (temperature 0.7) drawn from the device's shortlist and
        /// from every logit read back: `sampled`.
        #[arg(long)]
        sampled: bool,
        /// Also time a decode step stage by stage (q/k/v, attention, output, gate/up, down,
        /// head; each launched on its own, repeated): `stages`. wgpu only.
        #[arg(long)]
        stages: bool,
        /// The matrix kernel instead of the one for the kind of GPU, to compare shapes on
        /// one GPU: `row-per-unit`, or `cooperative` with any of `,lanes=N`, `,rows=N`,
        /// `,subgroups=off|auto|forced` (default `cooperative,lanes=32,rows=4,subgroups=auto`
        /// on a hardware GPU, `row-per-unit` on a software one). Reported as `decode_kernel`.
        #[arg(long)]
        decode_kernel: Option<DecodeKernel>,
        /// Launch every decode step kernel by kernel instead of replaying the step recorded
        /// at the first (wgpu), to compare the two. Reported as `decode_graphs`.
        #[arg(long)]
        no_decode_graphs: bool,
        /// The type the projections' dot products are taken in: `f32` (default) or `f16`
        /// (needs the adapter's `shader-f16`; groups summed in f16, groups added in f32).
        /// Reported as `arithmetic`.
        #[arg(long, default_value = "f32")]
        arithmetic: Arithmetic,
    },
    /// Write a synthetic model (`llama3.1-8b:Q4_K_M` or `llama3.1-8b:Q4_0`) as a real GGUF
    /// file, for other engines to run the very same shapes; print `{"out", "bytes"}`.
    Synth {
        /// Which synthetic model.
        kind: String,
        /// Where to write the GGUF file (written beside it as `.part`, then renamed).
        #[arg(long)]
        out: PathBuf,
    },
}

impl Command {
    /// Runs the command.
    pub fn run(self) -> CliResult {
        match self {
            Self::Inspect { model } => inspect(model),
            Self::Tokenize {
                model,
                text,
                no_special,
            } => tokenize(model, &text, no_special),
            Self::Dequant { model, tensor, out } => dequant(model, &tensor, out),
            Self::Render {
                model,
                messages,
                tools,
                date,
            } => render(model, messages, tools, date),
            Self::Logits {
                model,
                ids,
                positions,
                out,
                device,
                kv,
            } => logits(model, &ids, positions, out, device, kv),
            Self::Generate {
                model,
                prompt,
                messages,
                max_tokens,
                temperature,
                top_k,
                top_p,
                seed,
                stop,
                context,
                device,
                kv,
                json,
            } => {
                let sampling = SamplingParams {
                    temperature,
                    top_k,
                    top_p,
                    seed,
                    ..SamplingParams::default()
                };
                let prompt = match (prompt, messages) {
                    (Some(text), _) => Prompt::Text(text),
                    (None, Some(path)) => Prompt::Messages(path),
                    (None, None) => unreachable!("clap requires one"),
                };
                generate(
                    model, prompt, max_tokens, sampling, stop, context, device, kv, json,
                )
            }
            Self::Bench {
                model,
                synthetic,
                device,
                context,
                kv,
                prompt_len,
                gen_tokens,
                compare_f32,
                sampled,
                stages,
                decode_kernel,
                no_decode_graphs,
                arithmetic,
            } => {
                let params = BenchParams {
                    prompt_len,
                    gen_tokens,
                    context: Some(context),
                    kv_format: kv.unwrap_or(KvFormat::default_for(device)),
                    compare_f32,
                    sampled,
                    stages,
                };
                bench(
                    model,
                    synthetic,
                    DeviceSetup {
                        choice: device,
                        decode_kernel,
                        decode_graphs: !no_decode_graphs,
                        arithmetic,
                    },
                    params,
                )
            }
            Self::Synth { kind, out } => synth(&kind, out),
        }
    }
}
