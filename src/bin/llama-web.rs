//! `llama-web`: the native command-line tool, the engine's test and benchmark surface
//! (DESIGN.md, "CLI"). Subcommands arrive with the layers that implement them.

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::process::ExitCode;

    use clap::{Parser, Subcommand};
    use std::io::Write;
    use std::ops::ControlFlow;

    use llama_web::engine::bench::BenchParams;
    use llama_web::engine::sampling::SamplingParams;
    use llama_web::engine::{Engine, GenerateRequest};
    use llama_web::gguf::{ByteSource, FileSource, GgufHeader};
    use llama_web::model::config::LlamaConfig;
    use llama_web::model::device::{ComputeDevice, DeviceChoice};
    use llama_web::model::llama::{Llama, LogitsFor};
    use llama_web::model::plan::{KvFormat, MemoryPlan};
    use llama_web::model::synthetic::{SyntheticKind, SyntheticModel};
    use llama_web::model::{Arithmetic, DecodeKernel};
    use llama_web::tokenizer::{ChatTemplate, RenderOptions, SpecialTokens, Tokenizer};
    use serde_json::json;

    /// Llama 3.1 in the browser — the native tool.
    #[derive(Parser)]
    #[command(name = "llama-web", version, about)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Subcommand)]
    enum Command {
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

    type CliResult = Result<(), Box<dyn std::error::Error>>;

    pub fn main() -> ExitCode {
        let cli = Cli::parse();
        let result = match cli.command {
            Command::Inspect { model } => inspect(model),
            Command::Tokenize {
                model,
                text,
                no_special,
            } => tokenize(model, &text, no_special),
            Command::Dequant { model, tensor, out } => dequant(model, &tensor, out),
            Command::Render {
                model,
                messages,
                tools,
                date,
            } => render(model, messages, tools, date),
            Command::Logits {
                model,
                ids,
                positions,
                out,
                device,
                kv,
            } => logits(model, &ids, positions, out, device, kv),
            Command::Generate {
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
            Command::Bench {
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
            Command::Synth { kind, out } => synth(&kind, out),
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("llama-web: {e}");
                ExitCode::FAILURE
            }
        }
    }

    fn inspect(model: PathBuf) -> CliResult {
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

    fn dequant(model: PathBuf, tensor: &str, out: PathBuf) -> CliResult {
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

    fn logits(
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
        let values =
            pollster::block_on(llama.forward(ids, &positions, &mut cache, LogitsFor::All))?;
        let shape = [ids.len(), llama.config().vocab_size];
        std::fs::write(&out, llama_web::npy::write_f32(&shape, &values))
            .map_err(|e| format!("{}: {e}", out.display()))?;
        Ok(())
    }

    /// Where `generate` gets its prompt.
    enum Prompt {
        Text(String),
        Messages(PathBuf),
    }

    #[allow(clippy::too_many_arguments)] // one per command-line flag
    fn generate(
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

    /// How `bench` sets its device up.
    struct DeviceSetup {
        /// Which device.
        choice: DeviceChoice,
        /// The matrix kernel instead of the one for the kind of GPU.
        decode_kernel: Option<DecodeKernel>,
        /// Whether decode steps replay a recording.
        decode_graphs: bool,
        /// The type the projections' dot products are taken in.
        arithmetic: Arithmetic,
    }

    fn bench(
        model: Option<PathBuf>,
        synthetic: Option<String>,
        device: DeviceSetup,
        params: BenchParams,
    ) -> CliResult {
        match (model, synthetic) {
            (Some(path), _) => {
                let source = FileSource::open(&path)?;
                run_bench(&source, path.display().to_string(), device, params)
            }
            (None, Some(name)) => {
                let source = SyntheticModel::new(synthetic_kind(&name)?);
                run_bench(&source, format!("synthetic {name}"), device, params)
            }
            (None, None) => unreachable!("clap requires one"),
        }
    }

    fn synthetic_kind(name: &str) -> Result<SyntheticKind, String> {
        SyntheticKind::parse(name).ok_or_else(|| {
            format!("unknown synthetic model `{name}` (llama3.1-8b:Q4_K_M or llama3.1-8b:Q4_0)")
        })
    }

    fn synth(name: &str, out: PathBuf) -> CliResult {
        let model = SyntheticModel::new(synthetic_kind(name)?);
        let mut part = out.clone().into_os_string();
        part.push(".part");
        let part = PathBuf::from(part);
        let file = std::fs::File::create(&part)
            .map_err(|e| format!("cannot create {}: {e}", part.display()))?;
        let mut writer = std::io::BufWriter::new(file);
        let mut reported = 0;
        model
            .write_to(&mut writer, |written, total| {
                let percent = written * 100 / total;
                if percent >= reported + 10 {
                    reported = percent;
                    eprintln!("llama-web synth: {percent} % of {total} bytes");
                }
            })
            .and_then(|()| writer.flush())
            .and_then(|()| std::fs::rename(&part, &out))
            .map_err(|e| {
                let _ = std::fs::remove_file(&part);
                format!("cannot write {}: {e}", out.display())
            })?;
        println!(
            "{}",
            json!({ "out": out.display().to_string(), "bytes": model.len() })
        );
        Ok(())
    }

    fn run_bench(
        source: &impl ByteSource,
        model_name: String,
        setup: DeviceSetup,
        params: BenchParams,
    ) -> CliResult {
        let context = params.context.expect("the CLI always sets a context");
        let header = GgufHeader::read(source)?;
        let config = LlamaConfig::from_gguf(&header)?;
        let plans: Vec<MemoryPlan> = KvFormat::ALL
            .map(|kv| MemoryPlan::new(&header, &config, context, kv))
            .into();
        let mut device = ComputeDevice::init_native(setup.choice)?
            .with_decode_graphs(setup.decode_graphs)
            .with_arithmetic(setup.arithmetic)?;
        if let Some(kernel) = setup.decode_kernel {
            device = device.with_decode_kernel(kernel);
        }
        let started = std::time::Instant::now();
        let mut reported = 0;
        let llama = pollster::block_on(Llama::load(&header, source, &device, &mut |p| {
            let percent = (p.bytes_done * 100 / p.bytes_total.max(1)) as usize;
            if percent >= reported + 10 || p.tensors_done == p.tensors_total {
                reported = percent;
                eprintln!(
                    "loading: {percent}% ({} of {} tensors)",
                    p.tensors_done, p.tensors_total
                );
            }
        }))?;
        let load_s = started.elapsed().as_secs_f64();
        let device_name = device
            .adapter_name()
            .unwrap_or_else(|| device.choice().to_string());
        let clock = std::time::Instant::now();
        let now = || clock.elapsed().as_secs_f64();
        let thread_cpu = thread_cpu_seconds().map(|_| || thread_cpu_seconds().unwrap_or(0.0));
        let report = pollster::block_on(llama_web::engine::bench::run(
            &llama,
            device_name,
            params,
            &now,
            thread_cpu.as_ref().map(|f| f as &dyn Fn() -> f64),
        ))?;
        let mut json = serde_json::to_value(&report)?;
        let decode_kernel = (device.choice() == DeviceChoice::Wgpu)
            .then(|| DecodeKernel::for_device(&device).to_string());
        let extra = json!({
            "model": model_name,
            "decode_kernel": decode_kernel,
            "load_s": load_s,
            "plan": plans,
        });
        json.as_object_mut()
            .expect("a report is an object")
            .extend(extra.as_object().expect("an object").clone());
        println!("{}", serde_json::to_string_pretty(&json)?);
        Ok(())
    }

    /// CPU seconds the calling thread has run (Linux: the scheduler's nanosecond count in
    /// `/proc/thread-self/schedstat`); `None` where that file is missing.
    fn thread_cpu_seconds() -> Option<f64> {
        let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
        let nanos: u64 = stat.split_whitespace().next()?.parse().ok()?;
        Some(nanos as f64 / 1e9)
    }

    fn read_json(path: &PathBuf) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?)
    }

    fn render(
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

    fn tokenize(model: PathBuf, text: &str, no_special: bool) -> CliResult {
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
}

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

/// The CLI is native only; the wasm build has nothing to run.
#[cfg(target_arch = "wasm32")]
fn main() {}
