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
    /// Lines settled before the sends began (the invalid ones).
    settled: usize,
    started: Instant,
    drawn: Option<Instant>,
}

impl Progress {
    /// A progress line for `total` lines, `settled` of them already done. It shows only when
    /// stderr is a terminal, stdout is not (results printed on the same screen would run
    /// into it) and `logging` is off (log lines would tear it).
    pub fn start(total: usize, settled: usize, logging: bool) -> Progress {
        Progress {
            on: !logging && std::io::stderr().is_terminal() && !std::io::stdout().is_terminal(),
            total,
            settled,
            started: Instant::now(),
            drawn: None,
        }
    }

    /// Redraws the line, if it is time to: `sent` and `failed` lines so far (of those sent).
    pub fn update(&mut self, sent: usize, failed: usize) {
        if !self.on || self.drawn.is_some_and(|t| t.elapsed() < EVERY) {
            return;
        }
        self.drawn = Some(Instant::now());
        let done = self.settled + sent + failed;
        let secs = self.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            (sent + failed) as f64 / secs
        } else {
            0.0
        };
        let left = self.total.saturating_sub(done);
        let eta = if rate > 0.0 {
            format!("{:.0} s left", left as f64 / rate)
        } else {
            "time left unknown".to_owned()
        };
        output::write_stderr_raw(&format!(
            "\r\x1b[2K{done}/{} done: {sent} sent, {failed} failed, {rate:.1}/s, {eta}",
            self.total
        ));
    }

    /// Erases the line.
    pub fn finish(&mut self) {
        if self.on && self.drawn.is_some() {
            output::write_stderr_raw("\r\x1b[2K");
        }
    }
}
