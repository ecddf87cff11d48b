//! The `tidemark` command.
//!
//! * `tidemark run [--config FILE]` runs the streaming job; without a config it runs the
//!   embedded default: the built-in generator in real time, results to `./tidemark-out/`, and
//!   the HTTP API and live page on <http://127.0.0.1:8080/>.
//! * `tidemark replay INPUT.ndjson --export-csv OUT.csv` processes a file as fast as possible.
//! * `tidemark generate --events N --out FILE` writes generated events as NDJSON.
//! * `tidemark check-config FILE` validates a configuration file and prints what it would run.
//! * `tidemark eval nab DIR --results OUT` / `tidemark eval forecast DIR --out FILE` measure the
//!   anomaly detector and the forecaster on public benchmarks.

mod check;
mod config;
mod eval;
mod generate;
mod pipeline;
mod produce;
mod server;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "tidemark",
    version,
    about = "Streaming analytics on timely/differential dataflow"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the streaming job (the embedded default when no config is given).
    Run(pipeline::RunArgs),
    /// Process an NDJSON file as fast as possible and export the 1-minute windows as CSV.
    Replay(pipeline::ReplayArgs),
    /// Write generated events as NDJSON.
    Generate(generate::GenerateArgs),
    /// Publish an NDJSON file to a Kafka topic, one message per line.
    Produce(produce::ProduceArgs),
    /// Evaluate the anomaly detector (NAB) or the forecaster (tourism and similar).
    Eval(eval::EvalArgs),
    /// Validate a configuration file, open nothing, and print what `run` would run.
    CheckConfig(check::CheckArgs),
}

/// Where the embedded default writes.
pub const DEFAULT_OUT_DIR: &str = "tidemark-out";

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("TIDEMARK_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Run(args) => pipeline::run(args),
        Command::Replay(args) => pipeline::replay(args),
        Command::Generate(args) => generate::generate(args),
        Command::Produce(args) => produce::produce(args),
        Command::Eval(args) => eval::run(args),
        Command::CheckConfig(args) => check::check(args),
    }
}

/// A path given on the command line, for messages.
fn shown(path: &std::path::Path) -> String {
    PathBuf::from(path).display().to_string()
}
