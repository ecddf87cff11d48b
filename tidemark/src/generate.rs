//! `tidemark generate`: the built-in generator, to a file or stdout.

use anyhow::{Context, Result};
use clap::Args;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use tidemark_connectors::generator::{Generator, GeneratorSettings, Pace};

/// Arguments of `tidemark generate`.
#[derive(Args)]
pub struct GenerateArgs {
    /// How many events.
    #[arg(long)]
    events: u64,
    /// Seed (same seed, same events).
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Events per second of event time.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// First event time, epoch ms.
    #[arg(long, default_value_t = GeneratorSettings::default().start_ms)]
    start_ms: i64,
    /// Fraction of events delivered out of order (0-0.05).
    #[arg(long, default_value_t = GeneratorSettings::default().out_of_order_ratio)]
    out_of_order: f64,
    /// Largest disorder in ms.
    #[arg(long, default_value_t = GeneratorSettings::default().max_disorder_ms)]
    max_disorder_ms: i64,
    /// Fraction of deliberately malformed lines.
    #[arg(long, default_value_t = 0.0)]
    malformed: f64,
    /// Output file (default: stdout).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs `tidemark generate`.
pub fn generate(args: GenerateArgs) -> Result<()> {
    let settings = GeneratorSettings {
        seed: args.seed,
        events_per_second: args.rate,
        start_ms: args.start_ms,
        total_events: Some(args.events),
        out_of_order_ratio: args.out_of_order,
        max_disorder_ms: args.max_disorder_ms,
        malformed_ratio: args.malformed,
        pace: Pace::Unlimited,
    };
    settings.validate().map_err(anyhow::Error::msg)?;
    let sink: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::with_capacity(1 << 20, sink);
    let mut generator = Generator::new(&settings, 0, 1);
    let mut line = Vec::with_capacity(512);
    while generator.next_line(&mut line).is_some() {
        line.push(b'\n');
        out.write_all(&line).context("writing events")?;
        line.clear();
    }
    out.flush().context("writing events")?;
    Ok(())
}
