//! `bench` (a model's speed and memory on a device, as JSON) and `synth` (a synthetic model
//! written as a real GGUF file).

use std::io::Write;
use std::path::PathBuf;

use llama_web::engine::bench::BenchParams;
use llama_web::gguf::{ByteSource, FileSource, GgufHeader};
use llama_web::model::config::LlamaConfig;
use llama_web::model::device::{ComputeDevice, DeviceChoice};
use llama_web::model::llama::Llama;
use llama_web::model::plan::{KvFormat, MemoryPlan};
use llama_web::model::synthetic::{SyntheticKind, SyntheticModel};
use llama_web::model::{Arithmetic, DecodeKernel};
use serde_json::json;

use crate::CliResult;

/// How `bench` sets its device up.
pub(crate) struct DeviceSetup {
    /// Which device.
    pub(crate) choice: DeviceChoice,
    /// The matrix kernel instead of the one for the kind of GPU.
    pub(crate) decode_kernel: Option<DecodeKernel>,
    /// Whether decode steps replay a recording.
    pub(crate) decode_graphs: bool,
    /// The type the projections' dot products are taken in.
    pub(crate) arithmetic: Arithmetic,
}

pub(crate) fn bench(
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

pub(crate) fn synth(name: &str, out: PathBuf) -> CliResult {
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
