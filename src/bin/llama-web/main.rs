//! `llama-web`: the native command-line tool, the engine's test and benchmark surface
//! (DESIGN.md, "CLI"): its flags in `args`, the commands over a model file and its text in
//! `commands`, `bench` and `synth` in `bench`.

#[cfg(not(target_arch = "wasm32"))]
mod args;
#[cfg(not(target_arch = "wasm32"))]
mod bench;
#[cfg(not(target_arch = "wasm32"))]
mod commands;

/// What a command returns: its error is printed after `llama-web: `.
#[cfg(not(target_arch = "wasm32"))]
type CliResult = Result<(), Box<dyn std::error::Error>>;

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    use clap::Parser;
    match args::Cli::parse().command.run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("llama-web: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The CLI is native only; the wasm build has nothing to run.
#[cfg(target_arch = "wasm32")]
fn main() {}
