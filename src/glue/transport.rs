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
//! when a byte of the request is handed to the socket ([`progress`]). A failure that
//! is marked, or comes before that note, provably never delivered the request.

use std::cell::Cell;
#[cfg(feature = "rustls")]
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use ureq::unversioned::transport::time::Duration;
use ureq::unversioned::transport::{
    Buffers, ConnectProxyConnector, ConnectionDetails, Connector, Either, NextTimeout,
    TcpConnector, Transport,
};

/// How far a socket timeout may be from the exact time left before it is updated.
pub(crate) const SLACK: StdDuration = StdDuration::from_millis(10);

#[derive(Debug)]
pub(crate) struct StableTimeoutConnector {
    inner: Box<dyn Connector<(), Out = Box<dyn Transport>>>,
}

impl Default for StableTimeoutConnector {
    /// ureq's own chain (a CONNECT proxy, TCP, rustls), with a layer more: under TLS the TCP
    /// transport gets its timeouts kept stable too. (rustls hands it the time left to the
    /// deadline, afresh on every read and write, which would otherwise cost a `setsockopt`
    /// each. Socks proxies are refused by the builder, so ureq's socks layers are left out.)
    fn default() -> Self {
        #[cfg(feature = "rustls")]
        return Self::with_tls(None);
        #[cfg(not(feature = "rustls"))]
        StableTimeoutConnector {
            inner: Box::new(
                ().chain(ConnectProxyConnector::default())
                    .chain(TcpConnector::default())
                    .chain(UnderTls)
                    .chain(Boxed),
            ),
        }
    }
}

impl StableTimeoutConnector {
    /// The [default](Self::default) chain, in which, given a configuration, the crate's own
    /// TLS layer ([`OwnTls`](super::tls::OwnTls)) does the handshake with it, and ureq's
    /// layer, next, finds the connection encrypted already.
    #[cfg(feature = "rustls")]
    pub(crate) fn with_tls(config: Option<Arc<rustls::ClientConfig>>) -> Self {
        StableTimeoutConnector {
            inner: Box::new(
                ().chain(ConnectProxyConnector::default())
                    .chain(TcpConnector::default())
                    .chain(UnderTls)
                    .chain(super::tls::OwnTls { config })
                    .chain(ureq::unversioned::transport::RustlsConnector::default())
                    .chain(Boxed),
            ),
        }
    }
}

/// Wraps a transport that TLS is about to be layered on in [`UnderTlsTimeouts`].
#[derive(Debug)]
struct UnderTls;

impl<In: Transport> Connector<In> for UnderTls {
    type Out = Either<In, UnderTlsTimeouts<In>>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        Ok(chained.map(|t| {
            if details.needs_tls() && !t.is_tls() {
                Either::B(UnderTlsTimeouts {
                    inner: t,
                    read: Stable::default(),
                    write: Stable::default(),
                })
            } else {
                Either::A(t)
            }
        }))
    }
}

/// Erases the chain's type, as ureq's own default connector does.
#[derive(Debug)]
struct Boxed;

impl<In: Transport> Connector<In> for Boxed {
    type Out = Box<dyn Transport>;

    fn connect(
        &self,
        _: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        Ok(chained.map(|t| Box::new(t) as Box<dyn Transport>))
    }
}

/// The transport under TLS, with its timeouts kept stable (see [`Stable`]).
#[derive(Debug)]
struct UnderTlsTimeouts<T> {
    inner: T,
    read: Stable,
    write: Stable,
}

impl<T: Transport> Transport for UnderTlsTimeouts<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let t = self.write.stabilize(timeout);
        self.inner.transmit_output(amount, t)
    }

    fn maybe_await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let t = self.read.stabilize(timeout);
        self.inner.maybe_await_input(t)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let t = self.read.stabilize(timeout);
        self.inner.await_input(t)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
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

/// How far the current attempt got, as the transport saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Progress {
    /// No byte of the request was handed to the socket: it never left this machine.
    NotWritten,
    /// (Some of) the request was handed to the socket, and no answer was awaited yet.
    Writing,
    /// The client was waiting for or reading the answer.
    Reading,
}

thread_local! {
    /// How far the current request got. ureq runs a request entirely on the calling thread,
    /// so the send loop resets this before each attempt and reads it after a failure: still
    /// `NotWritten` proves the request never left.
    static PROGRESS: Cell<Progress> = const { Cell::new(Progress::NotWritten) };
    /// How deep in nested `connect` calls this thread is (2 while ureq opens the connection
    /// to a CONNECT proxy from inside the outer connect).
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Starts an attempt: nothing of it has been written yet.
pub(crate) fn start_attempt() {
    PROGRESS.set(Progress::NotWritten);
}

/// How far the attempt got (see [`PROGRESS`]).
pub(crate) fn progress() -> Progress {
    PROGRESS.get()
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
            PROGRESS.set(Progress::NotWritten);
        }
        // The connection to a proxy is used while the outer connect is still going on (the
        // CONNECT exchange, the TLS handshake through the tunnel), with a timeout ureq hands
        // afresh to every read of the proxy's answer: a proxy that drips its answer would never
        // time out. So it keeps the connect deadline itself.
        let connect_deadline = match details.timeout.after {
            Duration::Exact(d) if !outermost => Instant::now().checked_add(d),
            _ => None,
        };
        Ok(transport.map(|inner| StableTimeouts {
            inner,
            read: Stable::default(),
            write: Stable::default(),
            just_used: false,
            // Only the outermost transport manages timeouts and probes; one to a proxy, inside
            // it, passes everything through (else its own skipped probe would hide the
            // outer one's), but for the connect deadline.
            passthrough: !outermost,
            connect_deadline,
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
    /// For a connection to a proxy: when opening the connection through it must be done by.
    connect_deadline: Option<Instant>,
}

impl StableTimeouts {
    /// For a connection to a proxy while the connection through it is being opened: the
    /// timeout cut to the connect deadline, or the timeout error once it has passed.
    fn within_connect(&self, mut t: NextTimeout) -> Result<NextTimeout, ureq::Error> {
        let Some(deadline) = self.connect_deadline else {
            return Ok(t);
        };
        if DEPTH.get() == 0 {
            // Opened: the request's own timeouts apply from here on.
            return Ok(t);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ureq::Error::Timeout(ureq::Timeout::Connect));
        }
        match t.after {
            Duration::Exact(d) if d <= left => {}
            _ => {
                t.after = Duration::Exact(left);
                t.reason = ureq::Timeout::Connect;
            }
        }
        Ok(t)
    }
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
            PROGRESS.set(Progress::Writing);
        }
        if self.passthrough {
            let t = self.within_connect(timeout)?;
            return self.inner.transmit_output(amount, t);
        }
        self.just_used = true;
        let t = self.write.stabilize(timeout);
        self.inner.transmit_output(amount, t)
    }

    fn maybe_await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        awaiting();
        if self.passthrough {
            let t = self.within_connect(timeout)?;
            return self.inner.maybe_await_input(t);
        }
        self.just_used = true;
        let t = self.read.stabilize(timeout);
        self.inner.maybe_await_input(t)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        awaiting();
        if self.passthrough {
            let t = self.within_connect(timeout)?;
            return self.inner.await_input(t);
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

/// Waiting for input after writing means the request is out and the answer awaited.
fn awaiting() {
    if PROGRESS.get() == Progress::Writing {
        PROGRESS.set(Progress::Reading);
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
