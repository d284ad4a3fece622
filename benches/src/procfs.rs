//! What a process costs, read from `/proc`: resident memory (`VmRSS`, and the kernel's own
//! high-water mark `VmHWM`, which catches a peak between two samples) and CPU time (`utime` +
//! `stime`). Linux only, as the service's deployment is.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

/// Resident memory of `pid` now and at its peak, in KiB.
///
/// # Errors
/// The process is gone or `/proc` is not there.
pub fn rss_kib(pid: u32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

/// Clock ticks per second for `/proc/PID/stat` (`getconf CLK_TCK`; 100 on every Linux we know).
fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// User plus system CPU seconds `pid` has used so far.
///
/// # Errors
/// The process is gone or `/proc` is not there.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    // utime and stime.
    stat_seconds(pid, 11)
}

/// User plus system CPU seconds of every child this process has waited for. The harness runs
/// one service at a time, so the difference across one run is that run's CPU, all of it, read
/// after the process is gone.
///
/// # Errors
/// `/proc` is not there.
pub fn children_cpu_seconds() -> Result<f64> {
    // cutime and cstime.
    stat_seconds(std::process::id(), 13)
}

/// The sum of the two clock-tick fields at `first` and `first + 1` of `/proc/PID/stat`,
/// counted after the parenthesised command name (which may hold spaces), in seconds.
fn stat_seconds(pid: u32, first: usize) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    Ok((ticks(first) + ticks(first + 1)) / ticks_per_second())
}

/// Context switches, voluntary and not, of every thread `pid` has now (threads that ended are
/// not counted; the service's threads live as long as it does).
///
/// # Errors
/// The process is gone or `/proc` is not there.
pub fn context_switches(pid: u32) -> Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .with_context(|| format!("read /proc/{pid}/task"))?
    {
        let Ok(status) = std::fs::read_to_string(task?.path().join("status")) else {
            continue;
        };
        total += status
            .lines()
            .filter(|l| {
                l.starts_with("voluntary_ctxt_switches")
                    || l.starts_with("nonvoluntary_ctxt_switches")
            })
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<u64>();
    }
    Ok(total)
}

/// Samples a process's RSS every `every` on a thread of its own until stopped.
#[derive(Debug)]
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Samples>>,
    thread: Option<JoinHandle<()>>,
}

/// What the sampler saw.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    /// `(when, VmRSS KiB)` per sample.
    pub rss: Vec<(Instant, u64)>,
    /// The largest `VmHWM` read: the peak, even between samples.
    pub peak_kib: u64,
}

impl RssSampler {
    /// Starts sampling `pid`.
    pub fn start(pid: u32, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Samples::default()));
        let thread = {
            let (stop, samples) = (Arc::clone(&stop), Arc::clone(&samples));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    // The process may have exited: then the last peak read stands.
                    if let Ok((rss, hwm)) = rss_kib(pid) {
                        if let Ok(mut s) = samples.lock() {
                            s.rss.push((Instant::now(), rss));
                            s.peak_kib = s.peak_kib.max(hwm);
                        }
                    }
                    std::thread::sleep(every);
                }
            })
        };
        Self {
            stop,
            samples,
            thread: Some(thread),
        }
    }

    /// Stops sampling and returns everything seen.
    pub fn finish(mut self) -> Samples {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.samples.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// The median RSS (KiB) of the samples taken after `from`: the steady state once start-up is over.
pub fn steady_kib(samples: &Samples, from: Instant) -> u64 {
    let mut v: Vec<u64> = samples
        .rss
        .iter()
        .filter(|(t, _)| *t >= from)
        .map(|(_, r)| *r)
        .collect();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}
