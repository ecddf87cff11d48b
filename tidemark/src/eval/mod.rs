//! `tidemark eval`: measures the detector and the forecaster on public benchmarks.
//!
//! * `tidemark eval nab DIR --results OUT` — the Numenta Anomaly Benchmark ([`nab`]).
//! * `tidemark eval forecast DIR --out FILE` — forecasting competitions such as tourism
//!   ([`forecast`]).
//!
//! Both feed the series point by point, exactly as the streaming job does, so the numbers
//! measure the product's code path rather than a batch re-implementation.

pub mod forecast;
pub mod nab;
pub mod timestamp;

use anyhow::Result;
use clap::{Args, Subcommand};

/// Arguments of `tidemark eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(subcommand)]
    command: EvalCommand,
}

#[derive(Subcommand, Debug)]
enum EvalCommand {
    /// Run the anomaly detector over the NAB corpus, write NAB result files and score them.
    Nab(nab::NabArgs),
    /// Run the forecaster over `<set>_train/test/meta.csv` triples and print sMAPE and MASE.
    Forecast(forecast::ForecastArgs),
}

/// Runs `tidemark eval`.
pub fn run(args: EvalArgs) -> Result<()> {
    match args.command {
        EvalCommand::Nab(args) => nab::run(args),
        EvalCommand::Forecast(args) => forecast::run(args),
    }
}
