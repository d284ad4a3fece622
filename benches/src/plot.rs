//! The two plots, drawn as SVG by plotters (no font or image library: the SVG viewer renders the
//! text): the distribution of live latencies, and throughput against file size.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use crate::report::{quantile, SizePoint};

/// A histogram of live latencies (close to receipt, settle delay subtracted), with the p50 and
/// p99 marked and the goal (100 ms) drawn as a line.
///
/// # Errors
/// The file cannot be written.
pub fn latency(path: &Path, latencies_ms: &[f64], settle_ms: f64) -> Result<()> {
    let err = |e: String| anyhow!("plot {}: {e}", path.display());
    let max = latencies_ms
        .iter()
        .copied()
        .fold(0.0f64, f64::max)
        .max(110.0);
    let bins = 60usize;
    let width = max / bins as f64;
    let mut counts = vec![0u32; bins];
    for &l in latencies_ms {
        let i = ((l.max(0.0) / width) as usize).min(bins - 1);
        counts[i] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(1).max(1);
    let (p50, p99) = (quantile(latencies_ms, 0.5), quantile(latencies_ms, 0.99));

    let root = SVGBackend::new(path, (800, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            if settle_ms > 0.0 {
                format!(
                    "Live: close() to consumer, minus the {settle_ms:.0} ms settle delay ({} files)",
                    latencies_ms.len()
                )
            } else {
                format!(
                    "Live: close() to consumer, fast path on ({} files)",
                    latencies_ms.len()
                )
            },
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..max, 0u32..top + top / 10 + 1)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc(if settle_ms > 0.0 {
            "latency beyond the settle delay (ms)"
        } else {
            "latency (ms)"
        })
        .y_desc("files")
        .draw()
        .map_err(|e| err(e.to_string()))?;
    chart
        .draw_series(counts.iter().enumerate().map(|(i, &c)| {
            let x0 = i as f64 * width;
            Rectangle::new([(x0, 0), (x0 + width, c)], BLUE.mix(0.6).filled())
        }))
        .map_err(|e| err(e.to_string()))?;
    for (x, label, color) in [
        (p50, format!("p50 {p50:.0} ms"), GREEN),
        (p99, format!("p99 {p99:.0} ms"), MAGENTA),
        (100.0, "goal: p99 ≤ 100 ms".to_owned(), RED),
    ] {
        chart
            .draw_series(LineSeries::new([(x, 0), (x, top)], color.stroke_width(2)))
            .map_err(|e| err(e.to_string()))?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}

/// Throughput (MiB/s, start to last confirm, fresh state) against file size on a log axis, with
/// the two-core `openssl dgst -sha256` rate as the hashing ceiling.
///
/// # Errors
/// The file cannot be written.
pub fn throughput(path: &Path, points: &[SizePoint], openssl_mib_s: Option<f64>) -> Result<()> {
    let err = |e: String| anyhow!("plot {}: {e}", path.display());
    let mut points = points.to_vec();
    points.sort_by_key(|p| p.file_size);
    // The x axis is log2 of the size, so the labels fall on powers of two (4 KiB, 16 KiB, …).
    let log2 = |bytes: u64| (bytes.max(1) as f64).log2();
    let min_x = points.first().map_or(12.0, |p| log2(p.file_size)).floor() - 1.0;
    let max_x = points.last().map_or(28.0, |p| log2(p.file_size)).ceil() + 1.0;
    let top = points
        .iter()
        .map(SizePoint::mib_per_s)
        .chain(openssl_mib_s)
        .fold(1.0f64, f64::max)
        * 1.15;

    let root = SVGBackend::new(path, (800, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Throughput by file size (--once to the broker, start to last confirm)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(min_x..max_x, 0f64..top)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("file size")
        .y_desc("MiB/s")
        .x_labels(((max_x - min_x) as usize / 2).max(2))
        .x_label_formatter(&|x| size_label(2f64.powf(*x)))
        .draw()
        .map_err(|e| err(e.to_string()))?;
    let series: Vec<(f64, f64)> = points
        .iter()
        .map(|p| (log2(p.file_size), p.mib_per_s()))
        .collect();
    chart
        .draw_series(LineSeries::new(series.clone(), BLUE.stroke_width(2)))
        .map_err(|e| err(e.to_string()))?
        .label("file-watcher")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    chart
        .draw_series(
            series
                .iter()
                .map(|&(x, y)| Circle::new((x, y), 4, BLUE.filled())),
        )
        .map_err(|e| err(e.to_string()))?;
    if let Some(o) = openssl_mib_s {
        chart
            .draw_series(LineSeries::new(
                [(min_x, o), (max_x, o)],
                RED.stroke_width(1),
            ))
            .map_err(|e| err(e.to_string()))?
            .label("openssl dgst -sha256, 2 at a time")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED.stroke_width(1)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}

/// 4096 → "4 KiB", 268435456 → "256 MiB".
fn size_label(x: f64) -> String {
    if x >= f64::from(1u32 << 30) {
        format!("{:.0} GiB", x / f64::from(1u32 << 30))
    } else if x >= f64::from(1u32 << 20) {
        format!("{:.0} MiB", x / f64::from(1u32 << 20))
    } else if x >= 1024.0 {
        format!("{:.0} KiB", x / 1024.0)
    } else {
        format!("{x:.0} B")
    }
}
