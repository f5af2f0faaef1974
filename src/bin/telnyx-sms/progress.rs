//! `send-batch`'s live progress line on stderr: only while stderr is a terminal and stdout is
//! not (and no log lines are being printed), redrawn at most ten times a second, erased at
//! the end.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use crate::output;

/// How often the line is redrawn, at most.
const EVERY: Duration = Duration::from_millis(100);

pub struct Progress {
    on: bool,
    total: usize,
    /// Lines found invalid before the sends began: done, and counted as such.
    invalid: usize,
    started: Instant,
    drawn: Option<Instant>,
}

impl Progress {
    /// A progress line for `total` lines, `invalid` of them settled already as invalid. It
    /// shows only when stderr is a terminal, stdout is not (results printed on the same
    /// screen would run into it) and `logging` is off (log lines would tear it).
    pub fn start(total: usize, invalid: usize, logging: bool) -> Progress {
        Progress {
            on: !logging && std::io::stderr().is_terminal() && !std::io::stdout().is_terminal(),
            total,
            invalid,
            started: Instant::now(),
            drawn: None,
        }
    }

    /// Redraws the line, if it is time to, with the lines sent, found duplicate and failed
    /// so far.
    pub fn update(&mut self, sent: usize, duplicate: usize, failed: usize) {
        if !self.on || self.drawn.is_some_and(|t| t.elapsed() < EVERY) {
            return;
        }
        self.drawn = Some(Instant::now());
        let line = self.line(sent, duplicate, failed, self.started.elapsed());
        output::write_stderr_raw(&format!("\r\x1b[2K{line}"));
    }

    /// The line's text: `32/49 done: 26 sent, 0 failed, 6 invalid, 9.8/s, 2 s left`. The
    /// counts add up to the lines done (a duplicate is named when there is one).
    fn line(&self, sent: usize, duplicate: usize, failed: usize, took: Duration) -> String {
        let settled = sent + duplicate + failed;
        let done = self.invalid + settled;
        let secs = took.as_secs_f64();
        let rate = if secs > 0.0 {
            settled as f64 / secs
        } else {
            0.0
        };
        let left = self.total.saturating_sub(done);
        let eta = if rate > 0.0 {
            format!("{:.0} s left", left as f64 / rate)
        } else {
            "time left unknown".to_owned()
        };
        let duplicate = if duplicate > 0 {
            format!("{duplicate} duplicate, ")
        } else {
            String::new()
        };
        format!(
            "{done}/{} done: {sent} sent, {duplicate}{failed} failed, {} invalid, {rate:.1}/s, \
             {eta}",
            self.total, self.invalid
        )
    }

    /// Erases the line.
    pub fn finish(&mut self) {
        if self.on && self.drawn.is_some() {
            output::write_stderr_raw("\r\x1b[2K");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counts_add_up_to_the_lines_done() {
        let p = Progress::start(49, 6, true);
        assert_eq!(
            p.line(26, 0, 0, Duration::from_secs(2)),
            "32/49 done: 26 sent, 0 failed, 6 invalid, 13.0/s, 1 s left"
        );
        assert_eq!(
            p.line(40, 2, 1, Duration::from_secs(4)),
            "49/49 done: 40 sent, 2 duplicate, 1 failed, 6 invalid, 10.8/s, 0 s left"
        );
        assert_eq!(
            p.line(0, 0, 0, Duration::ZERO),
            "6/49 done: 0 sent, 0 failed, 6 invalid, 0.0/s, time left unknown"
        );
    }
}
