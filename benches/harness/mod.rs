//! A small A/B harness: a subject measured beside its baseline, in alternating rounds.
//!
//! Why not criterion: criterion measures each function in a time window of its own, so slow
//! drift on a shared 2-core machine (another process, frequency changes) lands on one side of
//! a ratio only, and a 3 % goal is inside that noise. Here every round times the baseline and
//! the subject back to back (in alternating order), and the figure reported is the median of
//! the per-round ratios, so drift hits both sides of each ratio alike. It needs no dependency.

use std::time::Instant;

/// The result of one comparison, per iteration.
pub struct Comparison {
    pub name: &'static str,
    pub baseline: &'static str,
    pub base_ns: f64,
    pub subject_ns: f64,
    /// Median of per-round `subject_time / base_time` (cost ratio: lower is better).
    pub cost_ratio: f64,
    /// The inter-quartile range of the per-round cost ratios.
    pub cost_iqr: (f64, f64),
}

impl Comparison {
    /// Rate ratio (subject throughput / baseline throughput): higher is better.
    pub fn rate_ratio(&self) -> f64 {
        1.0 / self.cost_ratio
    }
}

/// Times `iters` calls of `base` and of `subject` per round, for `rounds` rounds after
/// `warmup` discarded ones.
pub fn compare(
    name: &'static str,
    baseline: &'static str,
    rounds: usize,
    iters: usize,
    mut base: impl FnMut(),
    mut subject: impl FnMut(),
) -> Comparison {
    let warmup = (rounds / 10).max(2);
    let mut b = Vec::with_capacity(rounds);
    let mut s = Vec::with_capacity(rounds);
    for round in 0..warmup + rounds {
        let (tb, ts) = if round % 2 == 0 {
            let tb = time(iters, &mut base);
            (tb, time(iters, &mut subject))
        } else {
            let ts = time(iters, &mut subject);
            (time(iters, &mut base), ts)
        };
        if round >= warmup {
            b.push(tb);
            s.push(ts);
        }
    }
    let mut ratios: Vec<f64> = s.iter().zip(&b).map(|(s, b)| s / b).collect();
    let n = iters as f64;
    let c = Comparison {
        name,
        baseline,
        base_ns: median(&mut b) / n,
        subject_ns: median(&mut s) / n,
        cost_ratio: median(&mut ratios),
        cost_iqr: (quantile(&ratios, 0.25), quantile(&ratios, 0.75)),
    };
    eprintln!(
        "  {name}: {:.0} ns vs {:.0} ns ({baseline}), cost ratio {:.3} (IQR {:.3}-{:.3})",
        c.subject_ns, c.base_ns, c.cost_ratio, c.cost_iqr.0, c.cost_iqr.1
    );
    c
}

fn time(iters: usize, f: &mut impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed().as_nanos() as f64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    quantile(v, 0.5)
}

/// `v` must be sorted.
fn quantile(v: &[f64], q: f64) -> f64 {
    let mut sorted = v.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// A duration for the table: `850 ns`, `1.25 µs`, `31.4 µs`.
pub fn show_ns(ns: f64) -> String {
    if ns < 1000.0 {
        format!("{ns:.0} ns")
    } else {
        format!("{:.2} µs", ns / 1000.0)
    }
}

/// Pins this process (every thread it starts later too) to one CPU it may run on, so that
/// the client and the local server always share a core. Unpinned, the scheduler moves them
/// between "same core" and "two cores" placements whose round trips differ by 2× on this
/// kind of machine, which swamps a few-percent difference. Same-core is also the stricter
/// placement for a client: its own CPU work is not hidden behind a cross-core wake-up.
/// Returns the CPU, or `None` where pinning is not available (the figures are then noisier).
pub fn pin_to_one_cpu() -> Option<usize> {
    #[cfg(target_os = "linux")]
    {
        // From glibc; declared here so the bench needs no `libc` dependency.
        unsafe extern "C" {
            fn sched_getaffinity(pid: i32, size: usize, mask: *mut u64) -> i32;
            fn sched_setaffinity(pid: i32, size: usize, mask: *const u64) -> i32;
        }
        let mut mask = [0u64; 16];
        let size = std::mem::size_of_val(&mask);
        // SAFETY: `mask` is a valid, writable buffer of `size` bytes for the whole call.
        if unsafe { sched_getaffinity(0, size, mask.as_mut_ptr()) } != 0 {
            return None;
        }
        let cpu = (0..mask.len() * 64).find(|&c| mask[c / 64] & (1 << (c % 64)) != 0)?;
        let mut one = [0u64; 16];
        one[cpu / 64] = 1 << (cpu % 64);
        // SAFETY: `one` is a valid buffer of `size` bytes; pid 0 is this thread, and threads
        // started later inherit its mask (this runs before any is started).
        (unsafe { sched_setaffinity(0, size, one.as_ptr()) } == 0).then_some(cpu)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}
