//! The end-to-end harness: the real release binary against the real broker, every message
//! consumed and checked, each figure beside its ceiling measured in the same run.
//!
//! ```text
//! cargo run --release -p benches --bin e2e -- all|SCENARIO... [--quick] [--rounds N]
//!     [--out DIR] [--plots DIR] [--compare-bin PATH]
//! ```
//! Scenarios: initial-small, restart-unchanged, restart-large, shell, initial-large, sizes, live, burst.
//! `--quick` makes each one small (the whole run in well under a minute: CI's check that the
//! harness works). Prints one Markdown table; writes `results.json` and, when there is data for
//! them, `live-latency.svg` and `throughput-by-size.svg` to `--out` (default
//! `$CARGO_TARGET_DIR/e2e`), the SVGs to `--plots` instead when given. `AMQP_URL` names the
//! broker (default amqp://guest:guest@127.0.0.1:5781/%2f, the test suite's own node, which
//! `scripts/test-broker run cargo run …` starts for the run and stops after); `E2E_BIN` a binary
//! to measure instead of a fresh `cargo build --release -p watcher`. `--compare-bin` runs another build of the
//! service beside ours in every initial-small round (two versions side by side).
//!
//! Exits 1 when any check fails (a missing, duplicate or unexpected event, a wrong digest, a
//! run that failed), after running the other scenarios; goals that are missed are shown in the
//! table but do not fail the run.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use benches::report::Report;
use benches::scenario::{self, Ctx, Scale};
use benches::{broker, plot, service};
use clap::Parser as _;

/// The end-to-end harness: runs the release binary of file-watcher against the real broker,
/// consumes and checks every message, and prints each figure beside its ceiling measured in the
/// same run.
#[derive(clap::Parser)]
#[command(
    name = "e2e",
    after_help = "AMQP_URL names the broker (default amqp://guest:guest@127.0.0.1:5781/%2f, the test suite's \
own node: run under `scripts/test-broker run`). \
E2E_BIN measures that binary instead of a fresh `cargo build --release -p watcher`. \
Exits 1 when a check fails (a missing, repeated or unexpected event, a wrong digest, a failed run); \
a missed goal is shown in the table and does not fail the run. See docs/e2e.md."
)]
struct Args {
    /// Scenarios to run, in order, or `all`.
    #[arg(required = true, value_parser = scenario_name)]
    scenarios: Vec<String>,
    /// Every scenario small: the whole run in well under a minute (CI's check that the harness
    /// works, not a measurement).
    #[arg(long)]
    quick: bool,
    /// Rounds per scenario; figures are medians. Default: 3, or 1 with --quick.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    rounds: Option<u16>,
    /// Where results.json (and the plots, unless --plots) go. Default: $CARGO_TARGET_DIR/e2e.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where live-latency.svg and throughput-by-size.svg go.
    #[arg(long)]
    plots: Option<PathBuf>,
    /// Another build of file-watcher, run beside ours in every initial-small round.
    #[arg(long)]
    compare_bin: Option<PathBuf>,
}

/// A scenario's name, or `all`.
fn scenario_name(s: &str) -> Result<String, String> {
    if s == "all" || scenario::ALL.contains(&s) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "no such scenario; one of: all, {}",
            scenario::ALL.join(", ")
        ))
    }
}

fn run_scenario(ctx: &mut Ctx, name: &str) -> Result<()> {
    match name {
        "initial-small" => scenario::initial_small::run(ctx),
        "restart-unchanged" => scenario::restart::run(ctx),
        "restart-large" => scenario::restart_large::run(ctx),
        "shell" => scenario::shell::run(ctx),
        "initial-large" => scenario::initial_large::run(ctx),
        "sizes" => scenario::sizes::run(ctx),
        "live" => scenario::live::run(ctx),
        "burst" => scenario::burst::run(ctx),
        other => bail!("no scenario {other}"),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("e2e: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the scenarios; `Ok(false)` when a check failed.
fn run() -> Result<bool> {
    let args = Args::parse();
    let scenarios: Vec<String> = args
        .scenarios
        .iter()
        .flat_map(|s| match s.as_str() {
            "all" => scenario::ALL.iter().map(|a| (*a).to_owned()).collect(),
            one => vec![one.to_owned()],
        })
        .collect();
    let out = args
        .out
        .unwrap_or_else(|| service::target_dir().join("e2e"));
    let scale = if args.quick {
        Scale::QUICK
    } else {
        Scale::FULL
    };
    let rounds = args
        .rounds
        .map_or(if args.quick { 1 } else { 3 }, usize::from);
    let bin = service::binary()?;
    let work = out.join("work");
    scenario::remove(&work)?;
    let mut ctx = Ctx {
        rt: tokio::runtime::Runtime::new()?,
        url: broker::amqp_url(),
        bin,
        work: work.clone(),
        scale,
        rounds,
        report: Report {
            machine: benches::report::machine(),
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            // The binary measured is part of what makes the figures comparable.
            command: format!(
                "{}cargo run --release -p benches --bin e2e -- {}",
                std::env::var("E2E_BIN").map_or(String::new(), |b| format!("E2E_BIN={b} ")),
                std::env::args().skip(1).collect::<Vec<_>>().join(" ")
            ),
            rounds,
            ..Report::default()
        },
        small: None,
        openssl_mib_s: None,
        compare_bin: args.compare_bin,
    };
    let mut failed = Vec::new();
    for name in &scenarios {
        eprintln!("e2e: {name}");
        if let Err(e) = run_scenario(&mut ctx, name) {
            eprintln!("e2e: {name} FAILED: {e:#}");
            failed.push(name.clone());
        }
    }
    scenario::remove(&work)?;

    let report = &ctx.report;
    println!(
        "\n{}; {}; medians of {} round(s)\n`{}`\n",
        report.machine, report.date, report.rounds, report.command
    );
    print!("{}", report.table());
    let json = out.join("results.json");
    report.write_json(&json)?;
    println!("\nfigures: {}", json.display());
    let plots = args.plots.unwrap_or(out);
    std::fs::create_dir_all(&plots)?;
    if !report.live_latency_ms.is_empty() {
        let p = plots.join("live-latency.svg");
        plot::latency(&p, &report.live_latency_ms, report.live_settle_ms)?;
        println!("plot: {}", p.display());
    }
    if report.sizes.len() > 1 {
        let p = plots.join("throughput-by-size.svg");
        plot::throughput(&p, &report.sizes, ctx.openssl_mib_s)?;
        println!("plot: {}", p.display());
    }
    if failed.is_empty() {
        Ok(true)
    } else {
        eprintln!("e2e: FAILED checks in: {}", failed.join(", "));
        Ok(false)
    }
}
