//! A scripted HTTP/1.1 server on 127.0.0.1 for tests and benches, in clear text or TLS.
//!
//! mockito cannot hang, drop, drip, reset or count connections; this can. Each request is read
//! in full and handed to a *handler* that decides what the server does with it (a [`Step`]).
//! The usual handler is a script: a list of steps, one per request, then the last one repeated
//! ([`ScriptServer::start`]); any closure can be one ([`ScriptServer::with_handler`]), and
//! [`telnyx::Telnyx`] is one that models Telnyx's `Idempotency-Key` handling with injectable
//! faults. The server records every request it reads (or only counts them), and counts
//! connections, requests in flight and TLS handshakes.
//! Keep-alive is supported, one thread per connection. Every wait is bounded, and dropping the
//! server stops its accept loop (connections already open end on their own, within their
//! bounded timeouts).
//!
//! TLS ([`ScriptServer::builder`] with [`tls::TlsConfig`]) uses rustls with the ring provider
//! and certificates made at test time ([`tls::pki`]); every step works the same over TLS.
#![allow(dead_code)] // Each test binary and bench uses a different part of it.

pub mod proxy;
pub mod telnyx;
pub mod tls;

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Variables a test or bench process removes before it configures a client: a proxy must not
/// redirect loopback traffic, nothing may point a test at the real API, and the machine's
/// trust settings must not decide a TLS test.
pub const SCRUBBED_ENV: [&str; 12] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "TELNYX_API_KEY",
    "TELNYX_BASE_URL",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// The 200 body the Assistant SMS Chat call answers with.
pub const OK_BODY: &str = r#"{"conversation_id":"conv-42"}"#;

/// How long an idle keep-alive connection waits for its next request, and the longest a
/// single read or write on a connection may block.
const IO_LIMIT: Duration = Duration::from_secs(10);

/// The bytes [`Step::GarbageAfterRequest`] writes: framed like a TLS application-data record
/// (type 0x17, version 0x0303, 32 bytes), filled with noise. Not HTTP; over TLS, a record
/// that cannot be decrypted.
pub const GARBAGE: [u8; 37] = [
    0x17, 0x03, 0x03, 0x00, 0x20, 0x9e, 0x41, 0xd7, 0x02, 0xc5, 0x6b, 0xf0, 0x3a, 0x88, 0x17, 0xe4,
    0x5d, 0x20, 0xb9, 0x73, 0x0c, 0xaa, 0x61, 0xfe, 0x35, 0x92, 0x4e, 0xd1, 0x08, 0x7f, 0xc3, 0x56,
    0x2b, 0xe9, 0x14, 0xbd, 0x60,
];

/// What the server does with one request. Every step ends within a bounded time.
#[derive(Clone, Debug)]
pub enum Step {
    /// Answer with this status (any: 1xx excepted, 3xx included), extra headers and body
    /// (keep-alive). A `content-length` header is always written first, from `body`.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Read the request, then close without answering.
    Close,
    /// Answer 200 with `OK_BODY`, then close the connection (as a server whose keep-alive
    /// timer ran out would; over TLS with a `close_notify` first).
    OkThenClose,
    /// Read the request, then say nothing for this long before closing (a stall past the
    /// client's timeout: there is no separate `Stall` step).
    Silent(Duration),
    /// Answer 200 with a Content-Length of `len`, then send `chunk` one byte every `every`.
    Drip { len: usize, every: Duration },
    /// Answer 200 with a body of `len` bytes of `x`, streamed.
    Huge { len: usize },
    /// Answer 200 with `OK_BODY`, headers first, but only half of the body, then close
    /// (over TLS without `close_notify`).
    Truncated,
    /// Answer 200 with `OK_BODY`, but with one extra header line (`x-huge: aaa…`) of `len`
    /// bytes in the head; then close.
    HugeHeader { len: usize },
    /// `n` interim `HTTP/1.1 100 Continue` responses, then 200 with `OK_BODY` (keep-alive).
    ManyContinues { n: usize },
    /// Answer 200 headers (Content-Length of `OK_BODY`) and half of the body, then reset the
    /// TCP connection (SO_LINGER 0, then close: an RST, on Unix; elsewhere a plain close).
    ResetMidAnswer,
    /// Read the request, then write [`GARBAGE`] and close. Over TLS the bytes go raw to the
    /// TCP socket under the (established) TLS session, so the client's TLS layer fails after
    /// its request was written. The server then waits (bounded) for the client to hang up, so
    /// the client reads the garbage before any close.
    GarbageAfterRequest,
    /// Wait this long (the request counts as in flight), then act the inner step.
    Delay(Duration, Box<Step>),
}

impl Step {
    /// `status` with a JSON body.
    pub fn json(status: u16, body: &str) -> Step {
        Step::Respond {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    /// 200 with [`OK_BODY`].
    pub fn ok() -> Step {
        Step::json(200, OK_BODY)
    }

    /// Adds a response header (for `Respond` steps, also inside `Delay`).
    pub fn header(mut self, name: &str, value: &str) -> Step {
        match &mut self {
            Step::Respond { headers, .. } => headers.push((name.into(), value.into())),
            Step::Delay(_, inner) => **inner = inner.as_ref().clone().header(name, value),
            _ => {}
        }
        self
    }

    /// This step, acted after `d`.
    pub fn delayed(self, d: Duration) -> Step {
        Step::Delay(d, Box::new(self))
    }

    /// A redirect: `status` (301, 302, 303, 307, 308) with `location`, empty body.
    pub fn redirect(status: u16, location: &str) -> Step {
        Step::Respond {
            status,
            headers: vec![("location".into(), location.into())],
            body: Vec::new(),
        }
    }
}

/// One request as the server read it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Header names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
    pub connection: usize,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

/// Decides the answer to each request. Called once per request, on the connection's thread,
/// after the request was read in full (and recorded); it may block (the request stays in
/// flight meanwhile), but must return within a bounded time.
pub type Handler = Arc<dyn Fn(&Recorded) -> Step + Send + Sync>;

/// The step-script handler: `steps[0]` for the first request, `steps[1]` for the second, ...,
/// then the last step for every further request (counted across all connections).
pub fn script(steps: Vec<Step>) -> impl Fn(&Recorded) -> Step + Send + Sync + 'static {
    assert!(!steps.is_empty(), "a script needs at least one step");
    let next = AtomicUsize::new(0);
    move |_| {
        let n = next.fetch_add(1, Ordering::SeqCst);
        steps[n.min(steps.len() - 1)].clone()
    }
}

/// A snapshot of the server's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// TCP connections accepted.
    pub connections: usize,
    /// Connections whose thread has ended (closed by either side, or failed).
    pub closed: usize,
    /// Requests read in full.
    pub requests: usize,
    /// Requests in flight now: from the moment a request's head was read until its answer was
    /// fully written (or the connection dropped).
    pub in_flight: usize,
    /// The most requests ever in flight at once.
    pub max_in_flight: usize,
    /// TLS handshakes completed in full (including with a HelloRetryRequest).
    pub full_handshakes: usize,
    /// TLS handshakes completed by resuming a session.
    pub resumed_handshakes: usize,
    /// TLS handshakes that failed (for instance the client rejected the certificate).
    pub failed_handshakes: usize,
    /// Connections closed on purpose during the handshake ([`tls::TlsConfig::close_during_handshake`]).
    pub closed_handshakes: usize,
}

#[derive(Default)]
struct Counters {
    connections: AtomicUsize,
    closed: AtomicUsize,
    requests: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    full_handshakes: AtomicUsize,
    resumed_handshakes: AtomicUsize,
    failed_handshakes: AtomicUsize,
    closed_handshakes: AtomicUsize,
}

impl Counters {
    fn snapshot(&self) -> Counts {
        let g = |a: &AtomicUsize| a.load(Ordering::SeqCst);
        Counts {
            connections: g(&self.connections),
            closed: g(&self.closed),
            requests: g(&self.requests),
            in_flight: g(&self.in_flight),
            max_in_flight: g(&self.max_in_flight),
            full_handshakes: g(&self.full_handshakes),
            resumed_handshakes: g(&self.resumed_handshakes),
            failed_handshakes: g(&self.failed_handshakes),
            closed_handshakes: g(&self.closed_handshakes),
        }
    }
}

/// Marks one request in flight for as long as it lives.
struct InFlight<'a>(&'a Counters);

impl<'a> InFlight<'a> {
    fn new(c: &'a Counters) -> InFlight<'a> {
        let now = c.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        c.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(c)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Shared {
    handler: Handler,
    tls: Option<tls::Server>,
    requests: Mutex<Vec<Recorded>>,
    /// Keep every request (tests) or only count them (benches and long runs, whose memory
    /// must not grow with the number of requests).
    record: bool,
    counters: Counters,
    stop: AtomicBool,
}

/// Chooses how a [`ScriptServer`] runs: what answers (steps or a handler), clear text or TLS,
/// recording or counting, on which listener. [`start`](Self::start) launches it.
#[must_use]
pub struct ServerBuilder {
    handler: Option<Handler>,
    tls: Option<tls::TlsConfig>,
    record: bool,
    listener: Option<TcpListener>,
}

impl ServerBuilder {
    /// Answer with this script (see [`script`]).
    pub fn steps(self, steps: Vec<Step>) -> ServerBuilder {
        self.handler(script(steps))
    }

    /// Answer through `handler`, called once per request (see [`Handler`]).
    pub fn handler(
        mut self,
        handler: impl Fn(&Recorded) -> Step + Send + Sync + 'static,
    ) -> ServerBuilder {
        self.handler = Some(Arc::new(handler));
        self
    }

    /// Serve HTTPS (every step over TLS) with these certificates and options.
    pub fn tls(mut self, config: tls::TlsConfig) -> ServerBuilder {
        self.tls = Some(config);
        self
    }

    /// Only count requests instead of keeping them (memory stays flat).
    pub fn counting(mut self) -> ServerBuilder {
        self.record = false;
        self
    }

    /// Listen on this listener (bound by the caller, on 127.0.0.1) instead of a fresh port.
    pub fn listener(mut self, listener: TcpListener) -> ServerBuilder {
        self.listener = Some(listener);
        self
    }

    pub fn start(self) -> ScriptServer {
        let handler = self.handler.expect("a server needs steps or a handler");
        let listener = self
            .listener
            .unwrap_or_else(|| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1"));
        let addr = listener.local_addr().unwrap();
        assert!(
            addr.ip().is_loopback(),
            "test servers listen on loopback only"
        );
        let shared = Arc::new(Shared {
            handler,
            tls: self.tls.map(tls::Server::new),
            requests: Mutex::new(Vec::new()),
            record: self.record,
            counters: Counters::default(),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let accept = thread::spawn(move || {
            for stream in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let id = s.counters.connections.fetch_add(1, Ordering::SeqCst);
                let s = s.clone();
                thread::spawn(move || {
                    serve(stream, id, &s);
                    s.counters.closed.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        ScriptServer {
            addr,
            tls: shared.tls.is_some(),
            shared,
            accept: Some(accept),
        }
    }
}

/// The running server. Dropping it stops the accept loop.
pub struct ScriptServer {
    addr: SocketAddr,
    tls: bool,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl fmt::Debug for ScriptServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScriptServer")
            .field("addr", &self.addr)
            .field("tls", &self.tls)
            .field("counts", &self.counts())
            .finish()
    }
}

impl ScriptServer {
    /// A clear-text, recording server on a fresh 127.0.0.1 port, with no handler chosen yet.
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            handler: None,
            tls: None,
            record: true,
            listener: None,
        }
    }

    /// Starts a server on 127.0.0.1 with a free port.
    pub fn start(steps: Vec<Step>) -> ScriptServer {
        ScriptServer::builder().steps(steps).start()
    }

    /// Starts a server that acts `first` for the first request and answers 200 with
    /// [`OK_BODY`] from then on.
    pub fn first_then_ok(first: Step) -> ScriptServer {
        ScriptServer::start(vec![first, Step::ok()])
    }

    /// Starts a clear-text server on 127.0.0.1 that answers through `handler`.
    pub fn with_handler(
        handler: impl Fn(&Recorded) -> Step + Send + Sync + 'static,
    ) -> ScriptServer {
        ScriptServer::builder().handler(handler).start()
    }

    /// Starts on a listener the caller bound (to come up on a known port later).
    pub fn start_on(listener: TcpListener, steps: Vec<Step>) -> ScriptServer {
        ScriptServer::launch(listener, steps, true)
    }

    /// Like [`start`](Self::start), but only counts requests instead of keeping them, so that
    /// the server's memory stays flat however many requests it answers.
    pub fn start_counting(steps: Vec<Step>) -> ScriptServer {
        ScriptServer::builder().steps(steps).counting().start()
    }

    /// Starts on `listener`, recording every request (`record`) or only counting them.
    pub fn launch(listener: TcpListener, steps: Vec<Step>, record: bool) -> ScriptServer {
        let b = ScriptServer::builder().steps(steps).listener(listener);
        if record { b } else { b.counting() }.start()
    }

    /// `http://127.0.0.1:PORT/v2`, or `https://` in TLS mode.
    pub fn base_url(&self) -> String {
        format!("{}://{}/v2", self.scheme(), self.addr)
    }

    /// `http://localhost:PORT/v2`, or `https://` in TLS mode (the good leaf is valid for the
    /// name `localhost` as well as for the IP address).
    pub fn base_url_localhost(&self) -> String {
        format!("{}://localhost:{}/v2", self.scheme(), self.addr.port())
    }

    fn scheme(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request read so far (none in counting mode).
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The value of header `name` in each request read so far, in order ("" where absent).
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| r.header(name).unwrap_or("").to_owned())
            .collect()
    }

    pub fn request_count(&self) -> usize {
        self.shared.counters.requests.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.counters.connections.load(Ordering::SeqCst)
    }

    /// Requests in flight right now (see [`Counts::in_flight`]). The server updates it after
    /// the last byte of an answer was written, so a client may see its answer a moment before
    /// the count drops: use [`wait_until`] to assert it settles.
    pub fn in_flight(&self) -> usize {
        self.shared.counters.in_flight.load(Ordering::SeqCst)
    }

    /// The most requests ever in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.counters.max_in_flight.load(Ordering::SeqCst)
    }

    /// Full TLS handshakes completed (0 in clear text).
    pub fn full_handshakes(&self) -> usize {
        self.shared.counters.full_handshakes.load(Ordering::SeqCst)
    }

    /// Resumed TLS handshakes completed (0 in clear text).
    pub fn resumed_handshakes(&self) -> usize {
        self.shared
            .counters
            .resumed_handshakes
            .load(Ordering::SeqCst)
    }

    /// Every counter at once.
    pub fn counts(&self) -> Counts {
        self.shared.counters.snapshot()
    }
}

impl Drop for ScriptServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

/// Polls `cond` every 2 ms until it holds or `timeout` passes; returns whether it held. For
/// server-side counts that settle a moment after the client saw its answer.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// Holds a server's answers back until the test lets them go: wrap a handler with
/// [`Hold::handler`], and while the hold is [closed](Hold::closed) each request is handled
/// (a [`telnyx::Telnyx`] model performs and records it) and then waits, unanswered, until
/// [`open`](Hold::open). [`held`](Hold::held) counts the requests waiting: a test that sees
/// `n` held knows `n` requests were read in full and performed, and that no client has its
/// answer, so it can kill or signal the client "mid-send" with no timing involved (a fixed
/// server delay only makes that likely, and a request counted in flight may still be
/// unread). A request is held at most a minute, so a test that fails before it opens the
/// hold leaves no thread behind for long.
#[derive(Clone)]
pub struct Hold(Arc<(Mutex<HoldState>, Condvar)>);

struct HoldState {
    closed: bool,
    held: usize,
}

/// The longest a [`Hold`] keeps one answer back.
const HOLD_LIMIT: Duration = Duration::from_secs(60);

impl Hold {
    /// A hold that keeps every answer back until [`open`](Self::open).
    pub fn closed() -> Hold {
        Hold(Arc::new((
            Mutex::new(HoldState {
                closed: true,
                held: 0,
            }),
            Condvar::new(),
        )))
    }

    /// `inner`, whose answers wait while the hold is closed (`inner` runs first: what it
    /// does with the request, such as performing it, is done before the wait).
    pub fn handler(
        &self,
        inner: impl Fn(&Recorded) -> Step + Send + Sync + 'static,
    ) -> impl Fn(&Recorded) -> Step + Send + Sync + 'static {
        let hold = self.clone();
        move |req| {
            let step = inner(req);
            hold.wait_while_closed();
            step
        }
    }

    /// A server answering with `inner`, its answers held by this hold.
    pub fn serve(&self, inner: impl Fn(&Recorded) -> Step + Send + Sync + 'static) -> ScriptServer {
        ScriptServer::builder().handler(self.handler(inner)).start()
    }

    fn wait_while_closed(&self) {
        let (lock, cv) = &*self.0;
        let mut s = lock.lock().unwrap();
        if !s.closed {
            return;
        }
        s.held += 1;
        let (mut s, _) = cv.wait_timeout_while(s, HOLD_LIMIT, |s| s.closed).unwrap();
        s.held -= 1;
    }

    /// Requests handled and waiting for their answer to go now.
    pub fn held(&self) -> usize {
        self.0.0.lock().unwrap().held
    }

    /// Lets every held answer go, and the answers of later requests go at once.
    pub fn open(&self) {
        let (lock, cv) = &*self.0;
        lock.lock().unwrap().closed = false;
        cv.notify_all();
    }

    /// Holds the answers of the requests handled from now on (until [`open`](Self::open)).
    pub fn close(&self) {
        self.0.0.lock().unwrap().closed = true;
    }
}

/// A directory of its own in the temporary directory (named for the test, this process and
/// the time), removed when dropped: for journals and inputs.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!(
            "telnyx-test-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }

    /// `name` inside it.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// `name` inside it, as a string (for command lines).
    pub fn file(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `f` and returns what it returned, asserting that it took less than `limit`. For
/// "this is cut off, not waited out" checks: keep `limit` generous (a busy machine is slow,
/// a regression is a hang).
pub fn within<T>(limit: Duration, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    let took = started.elapsed();
    assert!(took < limit, "took {took:?}, more than {limit:?}");
    out
}

/// A port on 127.0.0.1 where nothing listens (connections are refused).
pub fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// One accepted connection, clear text or TLS.
enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => &s.sock,
        }
    }

    /// Writes `bytes` to the TCP socket itself, under any TLS session (whose pending records
    /// are flushed first).
    fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.flush()?;
        let mut tcp = self.tcp();
        tcp.write_all(bytes)?;
        tcp.flush()
    }

    /// Closes the connection the way `end` says.
    fn finish(mut self, end: End) {
        match end {
            End::KeepAlive | End::Graceful => {
                if let Conn::Tls(s) = &mut self {
                    s.conn.send_close_notify();
                    let _ = s.flush();
                }
                let _ = self.tcp().shutdown(Shutdown::Both);
            }
            End::Abrupt => {
                let _ = self.tcp().shutdown(Shutdown::Both);
            }
            End::Reset => reset(self.tcp()),
            End::Drain => {
                let mut tcp = self.tcp();
                let _ = tcp.shutdown(Shutdown::Write);
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(2)));
                let mut sink = [0; 4096];
                let end = Instant::now() + Duration::from_secs(2);
                while Instant::now() < end && matches!(tcp.read(&mut sink), Ok(n) if n > 0) {}
            }
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

/// Sends a TCP RST: SO_LINGER with a zero timeout, then close. `TcpStream::set_linger` is
/// unstable (rust-lang/rust#88494), so on Unix this goes through libc; elsewhere it is only
/// a close.
fn reset(tcp: &TcpStream) {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: a valid open socket descriptor, a `linger` value and its exact size.
        let rc = unsafe {
            libc::setsockopt(
                tcp.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "setsockopt(SO_LINGER)");
    }
    #[cfg(not(unix))]
    let _ = tcp;
    // The caller drops the stream right after: with linger 0 that close is the RST.
}

/// How a connection goes on after an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// Read the next request.
    KeepAlive,
    /// Close after a complete answer (TLS: `close_notify` first).
    Graceful,
    /// Close without `close_notify` (a crash, a cut).
    Abrupt,
    /// TCP RST.
    Reset,
    /// Stop writing, then wait (bounded) for the client to hang up.
    Drain,
}

fn serve(tcp: TcpStream, connection: usize, shared: &Shared) {
    // Bounded: an idle keep-alive connection ends after this long, and so does a write to a
    // client that stopped reading.
    let _ = tcp.set_read_timeout(Some(IO_LIMIT));
    let _ = tcp.set_write_timeout(Some(IO_LIMIT));
    let _ = tcp.set_nodelay(true);
    let conn = match &shared.tls {
        None => Conn::Plain(tcp),
        Some(server) => match server.accept(tcp, &shared.counters) {
            Some(s) => Conn::Tls(Box::new(s)),
            None => return,
        },
    };
    let mut reader = BufReader::new(conn);
    let mut end = End::Abrupt;
    while !shared.stop.load(Ordering::SeqCst) {
        let Some(head) = read_head(&mut reader) else {
            break;
        };
        let _in_flight = InFlight::new(&shared.counters);
        let Some(req) = read_body(&mut reader, head, connection) else {
            break;
        };
        if shared.record {
            shared.requests.lock().unwrap().push(req.clone());
        }
        // Counted only once recorded, so a test that reads the count sees the request too.
        shared.counters.requests.fetch_add(1, Ordering::SeqCst);
        let step = (shared.handler)(&req);
        end = act(reader.get_mut(), &step);
        if end != End::KeepAlive {
            break;
        }
    }
    reader.into_inner().finish(end);
}

fn write_flush(out: &mut Conn, bytes: &[u8]) -> bool {
    out.write_all(bytes).is_ok() && out.flush().is_ok()
}

fn ok_head(len: usize) -> String {
    format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n")
}

/// Acts out one step and says how the connection goes on.
fn act(out: &mut Conn, step: &Step) -> End {
    match step {
        Step::Respond {
            status,
            headers,
            body,
        } => {
            let mut head = format!(
                "HTTP/1.1 {status} {}\r\ncontent-length: {}\r\n",
                reason(*status),
                body.len()
            );
            for (n, v) in headers {
                head.push_str(&format!("{n}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let mut bytes = head.into_bytes();
            bytes.extend_from_slice(body);
            if write_flush(out, &bytes) {
                End::KeepAlive
            } else {
                End::Abrupt
            }
        }
        Step::Close => End::Abrupt,
        Step::OkThenClose => {
            let _ = act(out, &Step::ok());
            End::Graceful
        }
        Step::Silent(d) => {
            thread::sleep(*d);
            End::Abrupt
        }
        Step::Drip { len, every } => {
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n");
            if !write_flush(out, head.as_bytes()) {
                return End::Abrupt;
            }
            for _ in 0..*len {
                thread::sleep(*every);
                if !write_flush(out, b" ") {
                    return End::Abrupt;
                }
            }
            End::Graceful
        }
        Step::Huge { len } => {
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n");
            if out.write_all(head.as_bytes()).is_err() {
                return End::Abrupt;
            }
            let chunk = vec![b'x'; 64 * 1024];
            let mut left = *len;
            while left > 0 {
                let n = left.min(chunk.len());
                if out.write_all(&chunk[..n]).is_err() {
                    return End::Abrupt;
                }
                left -= n;
            }
            let _ = out.flush();
            End::Graceful
        }
        Step::Truncated => {
            let mut bytes = ok_head(OK_BODY.len()).into_bytes();
            bytes.extend_from_slice(&OK_BODY.as_bytes()[..OK_BODY.len() / 2]);
            let _ = write_flush(out, &bytes);
            End::Abrupt
        }
        Step::HugeHeader { len } => {
            let mut bytes = Vec::with_capacity(len + 200);
            bytes.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n");
            let name = b"x-huge: ";
            bytes.extend_from_slice(name);
            bytes.resize(bytes.len() + len.saturating_sub(name.len()), b'a');
            bytes.extend_from_slice(
                format!("\r\ncontent-length: {}\r\n\r\n", OK_BODY.len()).as_bytes(),
            );
            bytes.extend_from_slice(OK_BODY.as_bytes());
            // The client may hang up part-way (a header limit): that is the point.
            let _ = write_flush(out, &bytes);
            End::Graceful
        }
        Step::ManyContinues { n } => {
            let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
            let mut bytes = Vec::with_capacity(n * interim.len() + 200);
            for _ in 0..*n {
                bytes.extend_from_slice(interim);
            }
            bytes.extend_from_slice(ok_head(OK_BODY.len()).as_bytes());
            bytes.extend_from_slice(OK_BODY.as_bytes());
            if write_flush(out, &bytes) {
                End::KeepAlive
            } else {
                End::Abrupt
            }
        }
        Step::ResetMidAnswer => {
            let mut bytes = ok_head(OK_BODY.len()).into_bytes();
            bytes.extend_from_slice(&OK_BODY.as_bytes()[..OK_BODY.len() / 2]);
            let _ = write_flush(out, &bytes);
            End::Reset
        }
        Step::GarbageAfterRequest => {
            let _ = out.write_raw(&GARBAGE);
            End::Drain
        }
        Step::Delay(d, inner) => {
            thread::sleep(*d);
            act(out, inner)
        }
    }
}

/// The reason phrase for `status` (clients ignore it; it reads well in captures).
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// A request head: method, path, headers and the announced body length.
struct Head {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    len: usize,
    at: Instant,
}

/// Reads one request (head, then `content-length` bytes); `None` at EOF or on error.
pub fn read_request(reader: &mut impl BufRead, connection: usize) -> Option<Recorded> {
    let head = read_head(reader)?;
    read_body(reader, head, connection)
}

fn read_head(reader: &mut impl BufRead) -> Option<Head> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let at = Instant::now();
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = Vec::new();
    let mut len = 0usize;
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':')?;
        let (n, v) = (n.trim().to_ascii_lowercase(), v.trim().to_owned());
        if n == "content-length" {
            len = v.parse().ok()?;
        }
        headers.push((n, v));
    }
    Some(Head {
        method,
        path,
        headers,
        len,
        at,
    })
}

fn read_body(reader: &mut impl BufRead, head: Head, connection: usize) -> Option<Recorded> {
    let mut body = vec![0; head.len];
    reader.read_exact(&mut body).ok()?;
    Some(Recorded {
        method: head.method,
        path: head.path,
        headers: head.headers,
        body,
        at: head.at,
        connection,
    })
}
