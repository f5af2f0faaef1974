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
//!
//! And it tells the send loop which phase a failure happened in, which ureq's errors do not
//! say: whether "the sms was not sent" is true depends on it. Errors from opening a
//! connection are marked ([`ConnectPhase`]), and the transport notes on the calling thread
//! when a byte of the request is handed to the socket ([`request_written`]). A failure that
//! is marked, or comes before that note, provably never delivered the request.

use std::cell::Cell;
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
/// connector marks its own. Through a CONNECT proxy, ureq opens the connection to the proxy
/// through this same connector, so an error can be marked twice: [`unmark`] takes off every
/// mark and keeps the innermost address, which is where opening failed.
#[derive(Debug)]
pub(crate) struct ConnectPhase {
    error: ureq::Error,
    /// `host:port` being connected to.
    authority: String,
}

impl std::fmt::Display for ConnectPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "could not open a connection to {}", self.authority)
    }
}

impl std::error::Error for ConnectPhase {}

/// The error as ureq reported it, and, if it came from opening a connection, the `host:port`
/// whose opening failed.
pub(crate) fn unmark(e: ureq::Error) -> (ureq::Error, Option<String>) {
    let mut e = e;
    let mut at = None;
    loop {
        match e {
            ureq::Error::Other(b) => match b.downcast::<ConnectPhase>() {
                Ok(marked) => {
                    at = Some(marked.authority);
                    e = marked.error;
                }
                Err(b) => return (ureq::Error::Other(b), at),
            },
            e => return (e, at),
        }
    }
}

thread_local! {
    /// Whether a byte of the current request may have been handed to the socket. ureq runs a
    /// request entirely on the calling thread, so the send loop clears this before each attempt
    /// and reads it after a failure: still `false` proves the request never left.
    static WROTE: Cell<bool> = const { Cell::new(false) };
    /// How deep in nested `connect` calls this thread is (2 while ureq opens the connection
    /// to a CONNECT proxy from inside the outer connect).
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Starts an attempt: nothing of it has been written yet.
pub(crate) fn start_attempt() {
    WROTE.set(false);
}

/// Whether any byte of the attempt's request may have been written (see [`WROTE`]).
pub(crate) fn request_written() -> bool {
    WROTE.get()
}

impl Connector<()> for StableTimeoutConnector {
    type Out = StableTimeouts;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<()>,
    ) -> Result<Option<StableTimeouts>, ureq::Error> {
        struct Depth;
        impl Drop for Depth {
            fn drop(&mut self) {
                DEPTH.set(DEPTH.get() - 1);
            }
        }
        DEPTH.set(DEPTH.get() + 1);
        let depth = Depth;
        let result = self.inner.connect(details, chained);
        drop(depth);
        let outermost = DEPTH.get() == 0;
        let transport = result.map_err(|error| {
            ureq::Error::Other(Box::new(ConnectPhase {
                error,
                authority: crate::url::authority(details.uri),
            }))
        })?;
        if outermost {
            // Whatever was written so far (a CONNECT request, a TLS handshake through the
            // tunnel) opened the connection; the request itself has not been written.
            WROTE.set(false);
        }
        Ok(transport.map(|inner| StableTimeouts {
            inner,
            read: Stable::default(),
            write: Stable::default(),
            just_used: false,
            // Only the outermost transport manages timeouts and probes; one to a proxy, inside
            // it, passes everything through (else its own skipped probe would hide the
            // outer one's).
            passthrough: !outermost,
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
    passthrough: bool,
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
        // Marked before the write: a write that fails part-way may still have delivered.
        if amount > 0 {
            WROTE.set(true);
        }
        if self.passthrough {
            return self.inner.transmit_output(amount, timeout);
        }
        self.just_used = true;
        let t = self.write.stabilize(timeout);
        self.inner.transmit_output(amount, t)
    }

    fn maybe_await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        if self.passthrough {
            return self.inner.maybe_await_input(timeout);
        }
        self.just_used = true;
        let t = self.read.stabilize(timeout);
        self.inner.maybe_await_input(t)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        if self.passthrough {
            return self.inner.await_input(timeout);
        }
        self.just_used = true;
        let t = self.read.stabilize(timeout);
        self.inner.await_input(t)
    }

    fn is_open(&mut self) -> bool {
        if self.passthrough {
            return self.inner.is_open();
        }
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
