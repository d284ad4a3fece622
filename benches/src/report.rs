//! The results of one harness run: one row per figure, each beside its ceiling and goal, printed
//! as one table and written as JSON (`target/e2e/results.json` by default) for the plots and
//! for anyone who wants to compare runs.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result};
use serde::Serialize;

/// One figure.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The scenario it belongs to.
    pub scenario: String,
    /// What was measured, e.g. "start to last confirm".
    pub measure: String,
    /// Our figure.
    pub ours: f64,
    /// Its unit.
    pub unit: String,
    /// What it is compared with, e.g. "bare lapin publisher", and that figure.
    pub ceiling: Option<(String, f64)>,
    /// The ratio the goal is about (higher is better), when there is a ceiling.
    pub ratio: Option<f64>,
    /// The goal, in words, e.g. "≥ 0.85×".
    pub goal: String,
    /// Whether the goal is met; `None` when the row is context, not a goal.
    pub met: Option<bool>,
}

/// One point of the throughput-against-size plot.
#[derive(Debug, Clone, Serialize)]
pub struct SizePoint {
    /// Bytes per file.
    pub file_size: u64,
    /// Files in the corpus.
    pub files: u64,
    /// Start to last confirm, seconds.
    pub seconds: f64,
}

impl SizePoint {
    /// MiB per second.
    pub fn mib_per_s(&self) -> f64 {
        (self.file_size * self.files) as f64 / f64::from(1u32 << 20) / self.seconds
    }
}

/// Everything one run measured.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// CPU model, cores, memory, kernel.
    pub machine: String,
    /// UTC date and time of the run.
    pub date: String,
    /// The command line that produced it.
    pub command: String,
    /// The figures.
    pub rows: Vec<Row>,
    /// Live latencies, close to receipt minus the settle delay, in milliseconds.
    pub live_latency_ms: Vec<f64>,
    /// The settle delay of the live run, in milliseconds.
    pub live_settle_ms: f64,
    /// Throughput by file size (ours).
    pub sizes: Vec<SizePoint>,
    /// Rounds each timed figure is the median of.
    pub rounds: usize,
}

impl Report {
    /// A row that is context (no goal).
    pub fn info(&mut self, scenario: &str, measure: &str, ours: f64, unit: &str) {
        self.rows.push(Row {
            scenario: scenario.into(),
            measure: measure.into(),
            ours,
            unit: unit.into(),
            ceiling: None,
            ratio: None,
            goal: String::new(),
            met: None,
        });
    }

    /// A row with a goal on `ours` alone.
    pub fn goal(
        &mut self,
        scenario: &str,
        measure: &str,
        ours: f64,
        unit: &str,
        goal: &str,
        met: bool,
    ) {
        self.rows.push(Row {
            scenario: scenario.into(),
            measure: measure.into(),
            ours,
            unit: unit.into(),
            ceiling: None,
            ratio: None,
            goal: goal.into(),
            met: Some(met),
        });
    }

    /// A row beside its ceiling; `ratio` is higher-is-better and `min_ratio` is the goal.
    #[allow(clippy::too_many_arguments)]
    pub fn versus(
        &mut self,
        scenario: &str,
        measure: &str,
        ours: f64,
        unit: &str,
        ceiling_name: &str,
        ceiling: f64,
        ratio: f64,
        min_ratio: f64,
    ) {
        self.rows.push(Row {
            scenario: scenario.into(),
            measure: measure.into(),
            ours,
            unit: unit.into(),
            ceiling: Some((ceiling_name.into(), ceiling)),
            ratio: Some(ratio),
            goal: format!("≥ {}×", two_places(min_ratio)),
            met: Some(ratio >= min_ratio),
        });
    }

    /// A row beside another figure, for context: a ratio but no goal.
    #[allow(clippy::too_many_arguments)]
    pub fn beside(
        &mut self,
        scenario: &str,
        measure: &str,
        ours: f64,
        unit: &str,
        other_name: &str,
        other: f64,
        ratio: f64,
    ) {
        self.rows.push(Row {
            scenario: scenario.into(),
            measure: measure.into(),
            ours,
            unit: unit.into(),
            ceiling: Some((other_name.into(), other)),
            ratio: Some(ratio),
            goal: String::new(),
            met: None,
        });
    }

    /// The table, as Markdown, so it can be pasted into the docs as it is.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "| scenario | measure | ours | beside it | ratio | goal | met |"
        );
        let _ = writeln!(t, "| --- | --- | ---: | --- | ---: | --- | --- |");
        for r in &self.rows {
            let ceiling = r.ceiling.as_ref().map_or(String::new(), |(n, v)| {
                format!("{n}: {} {}", num(*v), r.unit)
            });
            let ratio = r.ratio.map_or(String::new(), |x| format!("{x:.2}×"));
            let met = match r.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "",
            };
            let _ = writeln!(
                t,
                "| {} | {} | {} {} | {ceiling} | {ratio} | {} | {met} |",
                r.scenario,
                r.measure.replace('|', "\\|"),
                num(r.ours),
                r.unit,
                r.goal
            );
        }
        t
    }

    /// Writes the report as JSON.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let json = serde_json::to_vec_pretty(self)?;
        std::fs::write(path, json).with_context(|| format!("write {}", path.display()))
    }
}

/// A figure with as many digits as it deserves.
fn num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        // A count (messages, events): no decimals to suggest it was measured to a thousandth.
        format!("{x:.0}")
    } else if x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

/// The machine, in one line: CPU model, cores, memory, kernel.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|r| r.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|r| r.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / f64::from(1u32 << 20));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    format!("{cpu}, {cores} cores, {mem_gib:.0} GiB RAM, Linux {kernel}")
}

/// The median of `v` (the upper one of an even count); 0 when empty.
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// The `q` quantile (0..=1) of `v`, nearest rank; 0 when empty.
pub fn quantile(v: &[f64], q: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// A ratio with at most two decimals and no trailing zeros: 0.9, 0.71, 1.
fn two_places(x: f64) -> String {
    let s = format!("{x:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::{num, two_places};

    #[test]
    fn goals_show_two_decimals_at_most() {
        for (x, want) in [
            (0.9, "0.9"),
            (1.0 / 1.4, "0.71"),
            (1.0, "1"),
            (0.126, "0.13"),
        ] {
            assert_eq!(two_places(x), want, "{x}");
        }
    }

    #[test]
    fn figures_get_the_digits_they_deserve() {
        for (x, want) in [
            (0.0, "0"),
            (55_000.0, "55000"),
            (2.5, "2.500"),
            (0.0625, "0.062"),
            (12.34, "12.3"),
            (1_234.4, "1234"),
        ] {
            assert_eq!(num(x), want, "{x}");
        }
    }
}
