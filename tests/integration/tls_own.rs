//! The crate's own TLS layer (`src/glue/tls.rs`, used for roots the crate reads itself) against
//! hostile servers, proxies and trust settings on loopback, side by side with ureq's own layer
//! (the built-in roots) where the two must agree: every failure before a certificate is
//! checked reads the same through both, a stalled or dripped handshake is cut off by the
//! connect budget counted from the start of the connection, and the "not sent" line holds.

use std::io::{BufReader, ErrorKind as IoKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::ServerConnection;
use rustls::{ServerConfig, StreamOwned};
use telnyx_assistant_sms::{BatchOptions, ClientBuilder, ErrorKind, SendSmsRequest};

use crate::support::proxy::Proxy;
use crate::support::tls::{Leaf, TlsConfig, ca_pem, pem, pki};
use crate::support::{
    GARBAGE, OK_BODY, ScriptServer, Step, TempDir, read_request, wait_until, within,
};
use crate::{is_child, run_child};

fn req() -> SendSmsRequest {
    SendSmsRequest::new("+15550001111", "+15550002222").text("hi")
}

/// A CA of this file's own and its server configuration: a leaf for `127.0.0.1`, `::1` and
/// `localhost` (the support PKI's leaf has no `::1`, and its key is its own).
struct OwnPki {
    ca_pem: String,
    server: Arc<ServerConfig>,
}

fn own_pki() -> &'static OwnPki {
    static PKI: OnceLock<OwnPki> = OnceLock::new();
    PKI.get_or_init(|| {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::default();
        ca.distinguished_name.push(DnType::CommonName, "tls_own CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let names = ["127.0.0.1", "::1", "localhost"].map(String::from);
        let leaf = CertificateParams::new(names.to_vec()).unwrap();
        let leaf = leaf.signed_by(&key, &issuer).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone()], der)
            .unwrap();
        OwnPki {
            ca_pem: pem("CERTIFICATE", ca_cert.der()),
            server: Arc::new(server),
        }
    })
}

/// Through the crate's own layer: trusting this file's CA.
fn own(base: &str) -> ClientBuilder {
    crate::builder(base)
        .root_certificates_pem(&own_pki().ca_pem)
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(2))
}

/// Through ureq's layer: the built-in roots (which vouch for nothing on loopback).
fn ureqs(base: &str) -> ClientBuilder {
    crate::builder(base).retry_backoff(Duration::from_millis(1), Duration::from_millis(2))
}

/// The attempts of one send that must succeed.
fn sends(b: ClientBuilder) -> u32 {
    b.build()
        .unwrap()
        .send_sms("asst-1", &req())
        .unwrap()
        .attempts
}

/// One send's failure as a user sees it: kind, attempts, may it have been sent, message.
fn failure(b: ClientBuilder) -> (ErrorKind, u32, bool, String) {
    let err = b
        .auto_idempotency_key(false)
        .build()
        .unwrap()
        .send_sms("asst-1", &req())
        .unwrap_err();
    (
        err.kind(),
        err.attempts(),
        err.may_have_been_sent(),
        err.to_string(),
    )
}

/// A server on `bind` (loopback) that hands each connection to `act` on a thread of its own;
/// every read and write on it is bounded.
fn listen(bind: &str, act: impl Fn(TcpStream) + Send + Sync + 'static) -> SocketAddr {
    let listener = TcpListener::bind(bind).unwrap();
    let addr = listener.local_addr().unwrap();
    assert!(addr.ip().is_loopback());
    let act = Arc::new(act);
    thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(s) = s else { return };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
            // Each write goes out at once (Nagle would hold a small one back until an ACK).
            let _ = s.set_nodelay(true);
            let act = act.clone();
            thread::spawn(move || act(s));
        }
    });
    addr
}

type Tls = StreamOwned<ServerConnection, TcpStream>;

/// The server side of a handshake (this file's leaf), and the name the client sent (SNI).
fn handshake(mut tcp: TcpStream) -> Option<(Tls, Option<String>)> {
    let mut conn = ServerConnection::new(own_pki().server.clone()).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).ok()?;
    }
    while conn.wants_write() {
        conn.write_tls(&mut tcp).ok()?;
    }
    let sni = conn.server_name().map(str::to_owned);
    Some((StreamOwned::new(conn, tcp), sni))
}

/// Reads one request and answers 200 (keep-alive); false once the connection ended.
fn answer(tls: &mut Tls) -> bool {
    if read_request(&mut BufReader::new(&mut *tls), 0).is_none() {
        return false;
    }
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        OK_BODY.len()
    );
    tls.write_all(format!("{head}{OK_BODY}").as_bytes()).is_ok()
}

/// An HTTPS server that answers every request; the SNI of each connection, in order.
fn serving(bind: &str) -> (SocketAddr, Arc<Mutex<Vec<Option<String>>>>) {
    let names = Arc::new(Mutex::new(Vec::new()));
    let n = names.clone();
    let addr = listen(bind, move |tcp| {
        let Some((mut tls, sni)) = handshake(tcp) else {
            return;
        };
        n.lock().unwrap().push(sni);
        while answer(&mut tls) {}
    });
    (addr, names)
}

/// Relays a connection to `target`, passing the server's bytes through `down` (which writes
/// them to the client: slowly, altered, ...) and the client's as they come.
fn relay(
    target: SocketAddr,
    down: impl Fn(&[u8], usize, &mut TcpStream) -> bool + Send + Sync + 'static,
) -> SocketAddr {
    listen("127.0.0.1:0", move |client| {
        let Ok(upstream) = TcpStream::connect(target) else {
            return;
        };
        let _ = upstream.set_read_timeout(Some(Duration::from_secs(5)));
        let (mut up_w, mut c_r) = (upstream.try_clone().unwrap(), client.try_clone().unwrap());
        thread::spawn(move || std::io::copy(&mut c_r, &mut up_w));
        let (mut up_r, mut c_w) = (upstream, client);
        let (mut buf, mut at) = ([0u8; 4096], 0);
        while let Ok(n @ 1..) = up_r.read(&mut buf) {
            if !down(&buf[..n], at, &mut c_w) {
                break;
            }
            at += n;
        }
    })
}

/// The support server in TLS mode (its CA: `ca_pem()`), with this script.
fn tls_server(steps: Vec<Step>, config: TlsConfig) -> ScriptServer {
    ScriptServer::builder().steps(steps).tls(config).start()
}

#[test]
fn failures_before_the_certificate_is_checked_read_the_same_through_both_layers() {
    // What the server writes after reading the ClientHello.
    let answers: [(&str, Vec<u8>); 4] = [
        (
            "a plain-http port",
            b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec(),
        ),
        (
            "a record of noise",
            vec![0x16, 3, 3, 0, 8, 0xfe, 1, 2, 3, 4, 5, 6, 7],
        ),
        ("a fatal alert", vec![0x15, 3, 3, 0, 2, 2, 40]),
        ("nothing: a close", Vec::new()),
    ];
    let mut cases: Vec<(&str, SocketAddr)> = answers
        .into_iter()
        .map(|(what, bytes)| {
            let addr = listen("127.0.0.1:0", move |mut s| {
                let _ = s.read(&mut [0; 4096]);
                let _ = s.write_all(&bytes);
                // Until the client hangs up (a close with its bytes unread could be a reset).
                while !bytes.is_empty() && matches!(s.read(&mut [0; 4096]), Ok(1..)) {}
            });
            (what, addr)
        })
        .collect();
    // Past the ServerHello and ChangeCipherSpec, a byte of the encrypted records flipped.
    let (good, _) = serving("127.0.0.1:0");
    let corrupt = relay(good, |b, at, c| {
        let mut b = b.to_vec();
        if let Some(x) = 300usize.checked_sub(at).and_then(|i| b.get_mut(i)) {
            *x ^= 0x55;
        }
        c.write_all(&b).is_ok()
    });
    cases.push(("an encrypted flight corrupted", corrupt));
    for (what, addr) in cases {
        let base = format!("https://{addr}/v2");
        let mine = failure(own(&base).max_retries(1));
        assert_eq!(mine, failure(ureqs(&base).max_retries(1)), "{what}");
        let not_sent = mine.0 == ErrorKind::Transport && !mine.2;
        assert!(
            not_sent && mine.3.ends_with("the sms was not sent"),
            "{what}: {mine:?}"
        );
    }
}

#[test]
fn a_stalled_or_dripped_handshake_is_cut_off_by_the_connect_timeout_and_was_not_sent() {
    let (good, _) = serving("127.0.0.1:0");
    // The server's flight, a byte every 20 ms: every read gets data, only a deadline ends it.
    let dripped = relay(good, |b, _, c| {
        b.iter().all(|x| {
            thread::sleep(Duration::from_millis(20));
            c.write_all(&[*x]).is_ok()
        })
    });
    // And a server that reads the ClientHello and says nothing.
    let stalling = listen("127.0.0.1:0", |mut s| {
        let _ = s.read(&mut [0; 4096]);
        thread::sleep(Duration::from_secs(3));
    });
    for addr in [stalling, dripped] {
        let base = format!("https://{addr}/v2");
        for layer in [own, ureqs] {
            let b = layer(&base)
                .connect_timeout(Duration::from_millis(300))
                .max_retries(1);
            let (kind, attempts, maybe, shown) = within(Duration::from_secs(3), || failure(b));
            assert_eq!((kind, attempts, maybe), (ErrorKind::Transport, 2, false));
            assert_eq!(
                shown,
                format!(
                    "transport error: could not connect to {addr}: connecting timed out; after \
                     2 attempts, the sms was not sent"
                )
            );
        }
    }
}

/// Reads a CONNECT request's head, byte by byte (nothing past it).
fn read_head(r: &mut impl Read) {
    let (mut head, mut b) = (Vec::new(), [0u8; 1]);
    while !head.ends_with(b"\r\n\r\n") && matches!(r.read(&mut b), Ok(1)) {
        head.push(b[0]);
    }
}

/// A CONNECT proxy that answers 200 after `delay`, then swallows what comes (a handshake that
/// stalls at the far end of the tunnel).
fn slow_tunnel(delay: Duration) -> SocketAddr {
    listen("127.0.0.1:0", move |mut s| {
        read_head(&mut s);
        thread::sleep(delay);
        let _ = s.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
        while matches!(s.read(&mut [0; 4096]), Ok(1..)) {}
    })
}

#[test]
fn through_a_connect_proxy_the_own_layer_handshakes_and_keeps_the_connect_budget() {
    // Through the tunnel, twice on one connection; no name is sent for an IP address.
    let (addr, names) = serving("127.0.0.1:0");
    let proxy = Proxy::start(None);
    let client = own(&format!("https://{addr}/v2"))
        .proxy(format!("http://{}", proxy.addr))
        .build()
        .unwrap();
    for _ in 0..2 {
        assert_eq!(client.send_sms("asst-1", &req()).unwrap().attempts, 1);
    }
    assert_eq!(proxy.heads().len(), 1);
    assert_eq!(*names.lock().unwrap(), [None]);

    // A handshake that stalls beyond the tunnel: the connect timeout ends it, not sent. With
    // the tunnel opened 700 ms into a 1 s budget, 300 ms are left for the handshake (a fresh
    // budget would end it at 1.7 s).
    for layer in [own, ureqs] {
        let proxy = slow_tunnel(Duration::from_millis(700));
        let b = layer("https://127.0.0.1:9/v2")
            .proxy(format!("http://{proxy}"))
            .connect_timeout(Duration::from_millis(1000))
            .max_retries(0);
        let started = Instant::now();
        let (_, _, maybe, shown) = failure(b);
        let took = started.elapsed();
        assert!(!maybe);
        assert_eq!(
            shown,
            format!(
                "transport error: could not connect to 127.0.0.1:9 through the proxy {proxy}: \
                 connecting timed out; the sms was not sent"
            )
        );
        assert!(took < Duration::from_millis(1500), "took {took:?}");
    }
}

/// Passes what `from` has (if anything, within its read timeout) to `to`; false once closed.
fn pass(from: &mut impl Read, to: &mut impl Write) -> bool {
    let mut buf = [0u8; 16 * 1024];
    match from.read(&mut buf) {
        Ok(0) => false,
        Ok(n) => to.write_all(&buf[..n]).is_ok(),
        Err(e) => matches!(e.kind(), IoKind::WouldBlock | IoKind::TimedOut),
    }
}

#[test]
fn through_an_https_proxy_both_hops_are_verified_by_the_own_layer() {
    let (target, names) = serving("127.0.0.1:0");
    // TLS to the proxy (this file's leaf), CONNECT inside it, then bytes both ways.
    let proxy = listen("127.0.0.1:0", move |tcp| {
        let Some((mut tls, _)) = handshake(tcp) else {
            return;
        };
        read_head(&mut tls);
        let mut up = TcpStream::connect(target).unwrap();
        let _ = tls.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
        // Both ways on one thread (a rustls stream cannot be split): short reads, in turn.
        let quick = Some(Duration::from_millis(5));
        let _ = (tls.sock.set_read_timeout(quick), up.set_read_timeout(quick));
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end && pass(&mut tls, &mut up) && pass(&mut up, &mut tls) {}
    });
    // `localhost` for the proxy, the IP for the target: each hop checks its own name.
    let client = own(&format!("https://{target}/v2"))
        .proxy(format!("https://localhost:{}", proxy.port()))
        .build()
        .unwrap();
    for _ in 0..2 {
        assert_eq!(client.send_sms("asst-1", &req()).unwrap().attempts, 1);
    }
    // One tunnel, one connection to the target, which was sent no name.
    assert_eq!(*names.lock().unwrap(), [None]);
    // A proxy whose certificate is not trusted: refused at its handshake, not sent.
    let (_, _, maybe, shown) = failure(
        ureqs(&format!("https://{target}/v2"))
            .proxy(format!("https://localhost:{}", proxy.port()))
            .root_certificates_pem(ca_pem())
            .max_retries(0),
    );
    assert!(!maybe);
    assert!(
        shown.contains(&format!(
            "the tls handshake with localhost:{} failed: the server's certificate is not \
             trusted (unknown issuer)",
            proxy.port()
        )),
        "{shown}"
    );
}

#[test]
fn ip_literals_and_names_are_verified_and_sni_is_sent_for_names_only() {
    let (v4, names) = serving("127.0.0.1:0");
    sends(own(&format!("https://{v4}/v2")));
    sends(own(&format!("https://localhost:{}/v2", v4.port())));
    assert_eq!(*names.lock().unwrap(), [None, Some("localhost".to_owned())]);
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("no ::1 on this machine: the IPv6 half is skipped");
        return;
    }
    let (v6, names) = serving("[::1]:0");
    let base = format!("https://{v6}/v2");
    assert!(base.starts_with("https://[::1]:"));
    sends(own(&base));
    assert_eq!(*names.lock().unwrap(), [None]);
    // A leaf without `::1`: the name is checked against the bare address.
    let wrong = ScriptServer::builder()
        .steps(vec![Step::ok()])
        .tls(TlsConfig::new())
        .listener(TcpListener::bind("[::1]:0").unwrap())
        .start();
    let (_, attempts, maybe, shown) = failure(
        crate::builder(&wrong.base_url())
            .root_certificates_pem(ca_pem())
            .max_retries(2),
    );
    assert_eq!((attempts, maybe), (1, false));
    assert_eq!(
        shown,
        format!(
            "transport error: the tls handshake with {} failed: the server's certificate is not \
             valid for this host name; the sms was not sent",
            wrong.addr()
        )
    );
}

#[test]
fn after_the_handshake_noise_or_a_close_may_have_been_sent_and_an_idle_connection_is_probed() {
    // Connection 0 answers, then (once the answer was surely read) sends bytes no request
    // asked for; 1 answers; 2 sends close_notify at once; 3 sends noise at once.
    let noisy = Arc::new(AtomicUsize::new(0));
    let (n, conns) = (noisy.clone(), Arc::new(AtomicUsize::new(0)));
    let addr = listen("127.0.0.1:0", move |tcp| {
        let i = conns.fetch_add(1, Ordering::SeqCst);
        let Some((mut tls, _)) = handshake(tcp) else {
            return;
        };
        match i {
            0 => {
                answer(&mut tls);
                thread::sleep(Duration::from_millis(200));
                let _ = tls.sock.write_all(&GARBAGE);
                n.store(1, Ordering::SeqCst);
            }
            2 => {
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
            3 => {
                let _ = tls.sock.write_all(&GARBAGE);
                let _ = tls.sock.read(&mut [0; 4096]);
            }
            _ => {}
        }
        while answer(&mut tls) {}
    });
    let base = format!("https://{addr}/v2");
    let client = own(&base).max_retries(0).build().unwrap();
    client.send_sms("asst-1", &req()).unwrap();
    assert!(wait_until(Duration::from_secs(2), || noisy
        .load(Ordering::SeqCst)
        == 1));
    // The pool's probe sees the stray bytes under TLS: a new connection, one attempt.
    assert_eq!(client.send_sms("asst-1", &req()).unwrap().attempts, 1);
    // (Noise in answer to the request: tls.rs, `Step::GarbageAfterRequest`.)
    for _ in 2..4 {
        let (kind, attempts, maybe, shown) = failure(own(&base));
        assert_eq!(
            (kind, attempts, maybe),
            (ErrorKind::Transport, 1, true),
            "{shown}"
        );
        assert!(shown.ends_with("; the sms may have been sent"), "{shown}");
    }
}

/// Files for the `SSL_CERT_FILE` + `SSL_CERT_DIR` fallback: a bundle without the test CA, and
/// a directory of odd entries (a FIFO, a link to `/dev/zero`, a sparse 1 GiB file, a
/// directory, a dangling link, a loop of hash links), with the test CA or without it.
#[cfg(unix)]
fn odd_trust_dir(name: &str, with_ca: bool) -> (TempDir, String, String) {
    use std::os::unix::fs::symlink;
    let t = TempDir::new(name);
    let bundle = t.path("bundle.crt");
    std::fs::write(&bundle, &pki().leaf(Leaf::SelfSigned).pem).unwrap();
    let d = t.path("certs");
    std::fs::create_dir(&d).unwrap();
    let fifo = std::process::Command::new("mkfifo")
        .arg(d.join("a-fifo.pem"))
        .status();
    assert!(fifo.is_ok_and(|s| s.success()));
    let links = [
        ("/dev/zero", "zero.pem"),
        ("/dev/zero", "0000000f.0"),
        ("missing.pem", "dangling.pem"),
        ("0000000c.1", "0000000c.0"),
        ("0000000c.0", "0000000c.1"),
    ];
    for (target, name) in links {
        symlink(target, d.join(name)).unwrap();
    }
    let big = std::fs::File::create(d.join("big.crt")).unwrap();
    big.set_len(1 << 30).unwrap();
    std::fs::create_dir(d.join("sub.pem")).unwrap();
    if with_ca {
        std::fs::write(d.join("test-ca.pem"), ca_pem()).unwrap();
    }
    let dirs = format!("/dev:/proc/self:{}", d.display());
    (t, bundle.to_str().unwrap().to_owned(), dirs)
}

#[cfg(unix)]
#[test]
fn the_ssl_cert_dir_fallback_copes_with_odd_entries_and_concurrent_first_sends() {
    let tls = tls_server(vec![Step::ok()], TlsConfig::new());
    let run = |with_ca: bool, batch: &str| {
        let (_t, file, dirs) = odd_trust_dir("fallback", with_ca);
        run_child(
            "tls_own::child_sends_with_the_environment",
            &[
                ("SSL_CERT_FILE", &file),
                ("SSL_CERT_DIR", &dirs),
                ("TEST_BASE_URL", &tls.base_url()),
                ("TEST_BATCH", batch),
            ],
        )
    };
    // The directory vouches: one send, then a batch of 16, 8 at a time, from a cold client.
    let out = run(true, "1");
    assert!(out.contains("result: sent 1"), "{out}");
    let out = run(true, "16");
    assert!(out.contains("result: sent 16"), "{out}");
    assert_eq!(tls.request_count(), 17);
    // Nothing vouches: the usual unknown issuer, before anything was sent.
    let out = run(false, "1");
    let unknown = format!(
        "result: transport error: the tls handshake with {} failed: the server's certificate \
         is not trusted (unknown issuer)",
        tls.addr()
    );
    assert!(
        out.contains(&unknown) && out.contains("the sms was not sent"),
        "{out}"
    );
    assert_eq!(tls.request_count(), 17);
}

/// With both variables set, `SSL_CERT_DIR` is read at the first server the bundle cannot
/// vouch for: the directories are those named at `build` (relative ones made absolute then,
/// so a later `chdir` changes nothing), and the bundle is not read again (a temporary file
/// removed since `build` changes nothing). Both broke the fallback when it re-read the
/// variables' paths as given.
#[cfg(unix)]
#[test]
fn the_fallback_reads_what_the_variables_named_at_build() {
    let tls = tls_server(vec![Step::ok()], TlsConfig::new());
    let t = TempDir::new("relative");
    std::fs::create_dir_all(t.path("rel/certs")).unwrap();
    std::fs::write(t.path("rel/certs/test-ca.pem"), ca_pem()).unwrap();
    let bundle = t.file("rel/bundle.crt");
    for (file, after) in [(&bundle[..], "remove"), ("rel/bundle.crt", "chdir")] {
        std::fs::write(&bundle, &pki().leaf(Leaf::SelfSigned).pem).unwrap();
        let out = run_child(
            "tls_own::child_sends_with_the_environment",
            &[
                ("SSL_CERT_FILE", file),
                ("SSL_CERT_DIR", "rel/certs"),
                ("TEST_DIR", t.0.to_str().unwrap()),
                ("TEST_AFTER_BUILD", after),
                ("TEST_BASE_URL", &tls.base_url()),
            ],
        );
        assert!(out.contains("result: sent 1"), "{after}: {out}");
    }
}

/// Sends with the roots the environment names: once, or (`TEST_BATCH` > 1) a batch 8 at a
/// time; with `TEST_DIR`, built there, then `TEST_AFTER_BUILD` (`chdir` to `/`, or `remove`
/// the bundle). Prints `result: sent N` or the error.
#[test]
#[ignore = "a helper: its parent test runs it in a child process"]
fn child_sends_with_the_environment() {
    if !is_child("tls_own::child_sends_with_the_environment") {
        return;
    }
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    if !var("TEST_DIR").is_empty() {
        std::env::set_current_dir(var("TEST_DIR")).unwrap();
    }
    let client = crate::builder(&var("TEST_BASE_URL"))
        .max_retries(2)
        .build()
        .unwrap();
    match &var("TEST_AFTER_BUILD")[..] {
        // A daemon's habit, after its setup.
        "chdir" => std::env::set_current_dir("/").unwrap(),
        "remove" => std::fs::remove_file(var("SSL_CERT_FILE")).unwrap(),
        _ => {}
    }
    let n: usize = var("TEST_BATCH").parse().unwrap_or(1);
    let requests =
        (0..n).map(|i| SendSmsRequest::new("+15550001111", format!("+1555000{i:04}")).text("hi"));
    let started = Instant::now();
    let shown = if n == 1 {
        match client.send_sms("asst-1", &req()) {
            Ok(_) => "sent 1".to_owned(),
            Err(e) => {
                assert_eq!((e.attempts(), e.may_have_been_sent()), (1, false), "{e}");
                e.to_string()
            }
        }
    } else {
        let options = BatchOptions::new().concurrency(8);
        let summary = client
            .send_batch("asst-1", requests, &options, |_| {})
            .unwrap();
        format!("sent {} failed {}", summary.sent, summary.failed)
    };
    // No odd entry held the fallback up.
    assert!(started.elapsed() < Duration::from_secs(3), "{shown}");
    println!("result: {shown}");
}
