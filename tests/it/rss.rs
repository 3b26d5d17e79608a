//! Resident memory of the process serving the test (RELIABILITY.md T16, T23: "memory bounded").
//!
//! `TestApp` runs the gateway inside the test binary, so these figures are the test process's
//! own (`/proc/self/status`): the gateway plus the test's clients and any other test the same
//! binary runs at the same time. The bounds are generous for that reason; they still fail when
//! a request path buffers without limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * KIB;

/// `VmRSS` and `VmHWM` of a process, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct Rss {
    pub rss: u64,
    pub hwm: u64,
}

pub fn read(pid: &str) -> Rss {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kib| kib.parse::<u64>().ok())
            .map(|kib| kib * KIB)
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
    };
    Rss {
        rss: field("VmRSS:"),
        hwm: field("VmHWM:"),
    }
}

pub fn own() -> Rss {
    read("self")
}

/// Samples `VmRSS` every 20 ms until stopped and keeps the largest value seen.
pub struct PeakSampler {
    peak: Arc<AtomicU64>,
    stop: CancellationToken,
}

impl PeakSampler {
    pub fn start() -> PeakSampler {
        let peak = Arc::new(AtomicU64::new(own().rss));
        let stop = CancellationToken::new();
        let (p, s) = (peak.clone(), stop.clone());
        tokio::spawn(async move {
            while !s.is_cancelled() {
                p.fetch_max(own().rss, Ordering::Relaxed);
                tokio::select! {
                    _ = s.cancelled() => {}
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                }
            }
        });
        PeakSampler { peak, stop }
    }

    /// The largest `VmRSS` sampled so far.
    pub fn peak(&self) -> u64 {
        self.peak
            .fetch_max(own().rss, Ordering::Relaxed)
            .max(own().rss)
    }
}

impl Drop for PeakSampler {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

/// Prints before / peak / after and asserts the peak under `peak_bound` and the memory left
/// after the run within `after_margin` of where it started.
pub fn report_and_bound(
    test: &str,
    before: Rss,
    peak: u64,
    after: Rss,
    peak_bound: u64,
    after_margin: u64,
) {
    eprintln!(
        "{test} RSS (test process, gateway in-process): before {:.1} MiB, peak {:.1} MiB \
         (VmHWM {:.1} MiB), after {:.1} MiB",
        mib(before.rss),
        mib(peak),
        mib(after.hwm),
        mib(after.rss)
    );
    assert!(
        peak < peak_bound,
        "{test}: resident memory peaked at {:.1} MiB, bound {:.0} MiB",
        mib(peak),
        mib(peak_bound)
    );
    assert!(
        after.rss < before.rss + after_margin,
        "{test}: resident memory stayed at {:.1} MiB after the run, {:.1} MiB before (margin {:.0} MiB)",
        mib(after.rss),
        mib(before.rss),
        mib(after_margin)
    );
}
