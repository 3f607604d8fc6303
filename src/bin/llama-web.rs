//! `llama-web`: the native command-line tool (DESIGN.md, "CLI"). Subcommands arrive with the
//! layers that implement them; only those that really work are listed.

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("-h") | Some("--help") | Some("help") => {
            println!("{}", USAGE);
            std::process::ExitCode::SUCCESS
        }
        Some("--version") | Some("-V") => {
            println!("llama-web {}", env!("CARGO_PKG_VERSION"));
            std::process::ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("llama-web: unknown subcommand `{other}`\n\n{USAGE}");
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
const USAGE: &str = "usage: llama-web <subcommand> [options]\n\n\
No subcommand is implemented yet: inspect, tokenize, render, dequant, logits, generate and\n\
bench arrive with the layers that implement them (see README.md).";

/// The CLI is native only; the wasm build has nothing to run.
#[cfg(target_arch = "wasm32")]
fn main() {}
