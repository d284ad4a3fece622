//! The end-to-end harness: the real release binary against the real broker, every message
//! consumed and checked, each figure beside its ceiling measured in the same run.
//!
//! ```text
//! cargo run --release -p benches --bin e2e -- all|SCENARIO... [--quick] [--rounds N]
//!     [--out DIR] [--plots DIR] [--compare-bin PATH]
//! ```
//! Scenarios: initial-small, restart-unchanged, shell, initial-large, sizes, live, burst.
//! `--quick` makes each one small (the whole run in well under a minute: CI's check that the
//! harness works). Prints one Markdown table; writes `results.json` and, when there is data for
//! them, `live-latency.svg` and `throughput-by-size.svg` to `--out` (default
//! `$CARGO_TARGET_DIR/e2e`), the SVGs to `--plots` instead when given. `AMQP_URL` names the
//! broker (default amqp://guest:guest@127.0.0.1:5672/%2f); `E2E_BIN` a binary to measure instead
//! of a fresh `cargo build --release -p watcher`. `--compare-bin` runs another build of the
//! service beside ours in every initial-small round (two versions side by side).
//!
//! Exits 1 when any check fails (a missing, duplicate or unexpected event, a wrong digest, a
//! run that failed), after running the other scenarios; goals that are missed are shown in the
//! table but do not fail the run.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use benches::report::Report;
use benches::scenario::{self, Ctx, Scale};
use benches::{broker, plot, service};

/// The parsed command line.
struct Args {
    scenarios: Vec<String>,
    quick: bool,
    rounds: Option<usize>,
    out: PathBuf,
    plots: Option<PathBuf>,
    compare_bin: Option<PathBuf>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        scenarios: Vec::new(),
        quick: false,
        rounds: None,
        out: service::target_dir().join("e2e"),
        plots: None,
        compare_bin: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => args.quick = true,
            "--rounds" => {
                let n = it.next().context("--rounds needs a number")?;
                args.rounds = Some(n.parse().context("--rounds needs a number")?);
            }
            "--out" => args.out = it.next().context("--out needs a directory")?.into(),
            "--plots" => args.plots = Some(it.next().context("--plots needs a directory")?.into()),
            "--compare-bin" => {
                args.compare_bin = Some(it.next().context("--compare-bin needs a binary")?.into());
            }
            "all" => args.scenarios.extend(scenario::ALL.iter().map(|s| (*s).to_owned())),
            s if scenario::ALL.contains(&s) => args.scenarios.push(s.to_owned()),
            other => bail!(
                "unknown argument {other:?}; usage: e2e all|SCENARIO... [--quick] [--rounds N] [--out DIR] [--plots DIR] [--compare-bin PATH]; scenarios: {}",
                scenario::ALL.join(", ")
            ),
        }
    }
    if args.scenarios.is_empty() {
        bail!(
            "name a scenario or all; scenarios: {}",
            scenario::ALL.join(", ")
        );
    }
    Ok(args)
}

fn run_scenario(ctx: &mut Ctx, name: &str) -> Result<()> {
    match name {
        "initial-small" => scenario::initial_small::run(ctx),
        "restart-unchanged" => scenario::restart::run(ctx),
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
    let args = parse_args()?;
    let scale = if args.quick {
        Scale::QUICK
    } else {
        Scale::FULL
    };
    let rounds = args.rounds.unwrap_or(if args.quick { 1 } else { 3 });
    let bin = service::binary()?;
    let work = args.out.join("work");
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
            command: format!(
                "cargo run --release -p benches --bin e2e -- {}",
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
    for name in &args.scenarios {
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
    let json = args.out.join("results.json");
    report.write_json(&json)?;
    println!("\nfigures: {}", json.display());
    let plots = args.plots.unwrap_or(args.out);
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
