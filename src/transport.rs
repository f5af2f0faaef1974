//! A transport wrapper that keeps the attempt timeout without a system call per read, and
//! probes a pooled connection once per reuse instead of twice.
//!
//! The attempt timeout is a deadline, so the time left changes on every read and write, and
//! ureq's TCP transport then calls `setsockopt` to update the socket's timeout before nearly
//! each one: three extra system calls per send on a kept-alive connection, measured at a few
//! percent of a loopback round trip. This wrapper hands the transport the value it set last
//! while that value is within [`SLACK`] of the true time left. A blocking read or write can
//! therefore end at most `SLACK` before or after the deadline, and a fast exchange (and every
//! new send on a pooled connection, whose budget starts afresh) sets no timeout at all.
//!
//! It also halves the liveness probes. ureq probes a connection (a non-blocking one-byte read
//! between two `ioctl`s: three system calls) both when it returns to the pool and when it is
//! taken out again. The first probe, straight after a response was read to its end, tells
//! nothing the second does not: both look for a closed connection or stray bytes, and a
//! connection that fails the second is discarded just the same. So the probe on return is
//! skipped, and every connection is still probed before a request is written on it.

use std::time::Duration as StdDuration;

use ureq::unversioned::transport::time::Duration;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, DefaultConnector, NextTimeout, Transport,
};

/// How far a socket timeout may be from the exact time left before it is updated.
pub(crate) const SLACK: StdDuration = StdDuration::from_millis(10);

#[derive(Debug, Default)]
pub(crate) struct StableTimeoutConnector {
    inner: DefaultConnector,
}

/// A failure while opening a connection (TCP, proxy CONNECT, TLS handshake): no byte of the
/// request can have been written. ureq's errors do not say which phase they come from, so the
/// connector marks its own; [`ConnectPhase::unwrap`] takes the mark off again.
#[derive(Debug)]
pub(crate) struct ConnectPhase(ureq::Error);

impl std::fmt::Display for ConnectPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("could not open a connection")
    }
}

impl std::error::Error for ConnectPhase {}

impl ConnectPhase {
    /// The error as ureq reported it, and whether it came from opening the connection.
    pub(crate) fn unwrap(e: ureq::Error) -> (ureq::Error, bool) {
        match e {
            ureq::Error::Other(b) => match b.downcast::<ConnectPhase>() {
                Ok(marked) => (marked.0, true),
                Err(b) => (ureq::Error::Other(b), false),
            },
            e => (e, false),
        }
    }
}

impl Connector<()> for StableTimeoutConnector {
    type Out = StableTimeouts;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<()>,
    ) -> Result<Option<StableTimeouts>, ureq::Error> {
        let transport = self
            .inner
            .connect(details, chained)
            .map_err(|e| ureq::Error::Other(Box::new(ConnectPhase(e))))?;
        Ok(transport.map(|inner| StableTimeouts {
            inner,
            read: Stable::default(),
            write: Stable::default(),
            just_used: false,
        }))
    }
}

#[derive(Debug)]
pub(crate) struct StableTimeouts {
    inner: Box<dyn Transport>,
    read: Stable,
    write: Stable,
    /// I/O happened since the last `is_open`: the next one is ureq's check on returning the
    /// connection to the pool, which the probe on taking it out makes redundant.
    just_used: bool,
}

/// The timeout last handed down for one direction.
#[derive(Debug, Default)]
struct Stable {
    last: Option<StdDuration>,
}

impl Stable {
    fn stabilize(&mut self, mut t: NextTimeout) -> NextTimeout {
        let Duration::Exact(after) = t.after else {
            self.last = None;
            return t;
        };
        match self.last {
            // Zero must reach the transport, which then reports the timeout.
            Some(last) if !after.is_zero() && last.abs_diff(after) <= SLACK => {
                t.after = Duration::Exact(last);
            }
            _ => self.last = Some(after),
        }
        t
    }
}

impl Transport for StableTimeouts {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.just_used = true;
        let t = self.write.stabilize(timeout);
        self.inner.transmit_output(amount, t)
    }

    fn maybe_await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.just_used = true;
        let t = self.read.stabilize(timeout);
        self.inner.maybe_await_input(t)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.just_used = true;
        let t = self.read.stabilize(timeout);
        self.inner.await_input(t)
    }

    fn is_open(&mut self) -> bool {
        std::mem::take(&mut self.just_used) || self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> NextTimeout {
        NextTimeout {
            after: Duration::Exact(StdDuration::from_millis(ms)),
            ..NextTimeout::default()
        }
    }

    fn after(t: NextTimeout) -> u64 {
        t.after.as_millis() as u64
    }

    #[test]
    fn keeps_the_last_value_within_the_slack() {
        let mut s = Stable::default();
        assert_eq!(after(s.stabilize(t(60_000))), 60_000);
        assert_eq!(after(s.stabilize(t(59_995))), 60_000, "5 ms off: unchanged");
        assert_eq!(after(s.stabilize(t(60_000))), 60_000);
        assert_eq!(after(s.stabilize(t(59_980))), 59_980, "20 ms off: updated");
        assert_eq!(after(s.stabilize(t(59_975))), 59_980);
        assert_eq!(
            after(s.stabilize(t(0))),
            0,
            "an expired budget always goes through"
        );
        let never = NextTimeout::default();
        assert!(s.stabilize(never).after.is_not_happening());
        assert_eq!(after(s.stabilize(t(59_975))), 59_975);
    }

    #[test]
    fn never_moves_a_deadline_by_more_than_the_slack() {
        let mut s = Stable::default();
        for left in (0..=2_000u64).rev() {
            let given = after(s.stabilize(t(left)));
            assert!(
                given.abs_diff(left) <= SLACK.as_millis() as u64,
                "{left}: {given}"
            );
        }
    }
}
