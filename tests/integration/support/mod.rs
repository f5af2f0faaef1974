//! A scripted HTTP/1.1 server on 127.0.0.1 for tests and benches.
//!
//! mockito cannot hang, drop, drip or count connections; this can. It replays a list of
//! [`Step`]s, one per request, then repeats the last one; it records every request it reads and
//! every connection it accepts. Keep-alive is supported, one thread per connection. Every wait
//! is bounded, and dropping the server stops it.
#![allow(dead_code)] // Each test binary and bench uses a different part of it.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Variables a test or bench process removes before it configures a client: a proxy must not
/// redirect loopback traffic, and nothing may point a test at the real API.
pub const SCRUBBED_ENV: [&str; 10] = [
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
];

/// The 200 body the Assistant SMS Chat call answers with.
pub const OK_BODY: &str = r#"{"conversation_id":"conv-42"}"#;

/// What the server does with one request.
#[derive(Clone, Debug)]
pub enum Step {
    /// Answer with this status, extra headers and body (keep-alive).
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Read the request, then close without answering.
    Close,
    /// Answer 200 with `OK_BODY`, then close the connection (as a server whose keep-alive
    /// timer ran out would).
    OkThenClose,
    /// Read the request, then say nothing for this long before closing.
    Silent(Duration),
    /// Answer 200 with a Content-Length of `len`, then send `chunk` one byte every `every`.
    Drip { len: usize, every: Duration },
    /// Answer 200 with a body of `len` bytes of `x`, streamed.
    Huge { len: usize },
    /// Answer 200 with `OK_BODY`, headers first, but only half of the body, then close.
    Truncated,
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

    /// Adds a response header (for `Respond` steps).
    pub fn header(mut self, name: &str, value: &str) -> Step {
        if let Step::Respond { headers, .. } = &mut self {
            headers.push((name.into(), value.into()));
        }
        self
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

struct Shared {
    steps: Vec<Step>,
    next: AtomicUsize,
    requests: Mutex<Vec<Recorded>>,
    /// Keep every request (tests) or only count them (benches and long runs, whose memory
    /// must not grow with the number of requests).
    record: bool,
    count: AtomicUsize,
    connections: AtomicUsize,
    stop: AtomicBool,
}

/// The running server. Dropping it stops the accept loop.
pub struct ScriptServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl ScriptServer {
    /// Starts a server on 127.0.0.1 with a free port.
    pub fn start(steps: Vec<Step>) -> ScriptServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        ScriptServer::start_on(listener, steps)
    }

    /// Starts on a listener the caller bound (to come up on a known port later).
    pub fn start_on(listener: TcpListener, steps: Vec<Step>) -> ScriptServer {
        ScriptServer::launch(listener, steps, true)
    }

    /// Like [`start`](Self::start), but only counts requests instead of keeping them, so that
    /// the server's memory stays flat however many requests it answers.
    pub fn start_counting(steps: Vec<Step>) -> ScriptServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        ScriptServer::launch(listener, steps, false)
    }

    /// Starts on `listener`, recording every request (`record`) or only counting them.
    pub fn launch(listener: TcpListener, steps: Vec<Step>, record: bool) -> ScriptServer {
        assert!(!steps.is_empty(), "a script needs at least one step");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            steps,
            next: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
            record,
            count: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        let accept = thread::spawn(move || {
            for stream in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let id = s.connections.fetch_add(1, Ordering::SeqCst);
                let s = s.clone();
                thread::spawn(move || serve(stream, id, &s));
            }
        });
        ScriptServer {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:PORT/v2`
    pub fn base_url(&self) -> String {
        format!("http://{}/v2", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request read so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    pub fn request_count(&self) -> usize {
        self.shared.count.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
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

/// A port on 127.0.0.1 where nothing listens (connections are refused).
pub fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn serve(stream: TcpStream, connection: usize, shared: &Shared) {
    // Bounded: an idle keep-alive connection ends after this long.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    while !shared.stop.load(Ordering::SeqCst) {
        let Some(req) = read_request(&mut reader, connection) else {
            return;
        };
        let n = shared.next.fetch_add(1, Ordering::SeqCst);
        let step = &shared.steps[n.min(shared.steps.len() - 1)];
        if shared.record {
            shared.requests.lock().unwrap().push(req);
        }
        // Counted only once recorded, so a test that reads the count sees the request too.
        shared.count.fetch_add(1, Ordering::SeqCst);
        if !answer(&mut out, step) {
            let _ = out.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// Acts out one step; `false` when the connection must close.
fn answer(out: &mut TcpStream, step: &Step) -> bool {
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
            out.write_all(&bytes).is_ok()
        }
        Step::Close => false,
        Step::OkThenClose => {
            let _ = answer(out, &Step::ok());
            false
        }
        Step::Silent(d) => {
            thread::sleep(*d);
            false
        }
        Step::Drip { len, every } => {
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n");
            if out.write_all(head.as_bytes()).is_err() {
                return false;
            }
            for _ in 0..*len {
                thread::sleep(*every);
                if out.write_all(b" ").is_err() {
                    return false;
                }
            }
            false
        }
        Step::Huge { len } => {
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n");
            if out.write_all(head.as_bytes()).is_err() {
                return false;
            }
            let chunk = vec![b'x'; 64 * 1024];
            let mut left = *len;
            while left > 0 {
                let n = left.min(chunk.len());
                if out.write_all(&chunk[..n]).is_err() {
                    return false;
                }
                left -= n;
            }
            false
        }
        Step::Truncated => {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
                OK_BODY.len()
            );
            let _ = out.write_all(head.as_bytes());
            let _ = out.write_all(&OK_BODY.as_bytes()[..OK_BODY.len() / 2]);
            let _ = out.flush();
            false
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        408 => "Request Timeout",
        409 => "Conflict",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Reads one request (head, then `content-length` bytes); `None` at EOF or on error.
pub fn read_request(reader: &mut impl BufRead, connection: usize) -> Option<Recorded> {
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
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Recorded {
        method,
        path,
        headers,
        body,
        at,
        connection,
    })
}
