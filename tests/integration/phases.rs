//! "Not sent" must mean not sent: failures classified by the phase they happened in.
//!
//! Each server here reads the request and then misbehaves, or never gets it (a proxy that
//! refuses, a closed port). Every one listens on 127.0.0.1 and ends by itself.

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use telnyx_assistant_sms::{Client, ErrorKind, SendSmsRequest};

use crate::support::proxy::{Proxy, dripping_proxy};
use crate::support::{OK_BODY, closed_port, read_request, within};
use crate::{KEY, builder, through_proxy};

fn req() -> SendSmsRequest {
    SendSmsRequest::new("+15550001111", "+15550002222").text("hi")
}

/// A server that reads each request in full, counts it, and answers with `answer`'s bytes
/// (then closes). Returns its address and the request count.
fn answering(
    answer: impl Fn() -> Vec<u8> + Send + Sync + 'static,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let answer = Arc::new(answer);
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let (c, answer) = (c.clone(), answer.clone());
            thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                if read_request(&mut reader, 0).is_some() {
                    c.fetch_add(1, Ordering::SeqCst);
                    let _ = stream.write_all(&answer());
                    let _ = stream.flush();
                    // Let the client read it all before the close.
                    thread::sleep(Duration::from_millis(50));
                }
            });
        }
    });
    (addr, count)
}

fn client_to(addr: SocketAddr) -> Client {
    builder(&format!("http://{addr}/v2")).build().unwrap()
}

#[test]
fn headers_too_large_may_have_been_sent_and_are_retried_only_in_doubt_under_a_key() {
    let (addr, count) = answering(|| {
        let mut a = b"HTTP/1.1 200 OK\r\nx-big: ".to_vec();
        a.extend(std::iter::repeat_n(b'a', 200_000));
        a.extend_from_slice(b"\r\ncontent-length: 2\r\n\r\n{}");
        a
    });
    let client = builder(&format!("http://{addr}/v2"))
        .retry_in_doubt(true)
        .build()
        .unwrap();
    let err = client.send_sms("asst-1", &req()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport);
    assert!(err.may_have_been_sent(), "{err}");
    assert_eq!(err.attempts(), 3, "retried under its key: {err}");
    assert_eq!(count.load(Ordering::SeqCst), 3);
    assert_eq!(
        err.to_string(),
        "transport error: the answer's headers were too large; after 3 attempts, the sms may have been sent"
    );

    // Without a key the same answer is not retried: the server had the request.
    let (addr, count) = answering(|| {
        let mut a = b"HTTP/1.1 200 OK\r\nx-big: ".to_vec();
        a.extend(std::iter::repeat_n(b'a', 200_000));
        a.extend_from_slice(b"\r\n\r\n");
        a
    });
    let client = builder(&format!("http://{addr}/v2"))
        .auto_idempotency_key(false)
        .build()
        .unwrap();
    let err = client.send_sms("asst-1", &req()).unwrap_err();
    assert!(err.may_have_been_sent());
    assert_eq!((err.attempts(), count.load(Ordering::SeqCst)), (1, 1));
}

#[test]
fn thousands_of_continues_may_have_been_sent() {
    let (addr, count) = answering(|| {
        let mut a = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(5_000);
        a.extend_from_slice(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{OK_BODY}",
                OK_BODY.len()
            )
            .as_bytes(),
        );
        a
    });
    let client = builder(&format!("http://{addr}/v2"))
        .max_retries(0)
        .build()
        .unwrap();
    match client.send_sms("asst-1", &req()) {
        // Reading through them to the 200 is fine too; what must not happen is "not sent".
        Ok(res) => assert_eq!(res.conversation_id.as_deref(), Some("conv-42")),
        Err(err) => {
            assert_eq!(err.kind(), ErrorKind::Transport, "{err}");
            assert!(err.may_have_been_sent(), "{err}");
        }
    }
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[test]
fn an_answer_that_is_not_http_may_have_been_sent() {
    for garbage in [
        &b"SSH-2.0-OpenSSH_9.6\r\n\r\n"[..],
        b"\x16\x03\x01\x00\x2a garbage that is not http at all\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nbad header line without colon\r\n\r\n",
    ] {
        let g = garbage.to_vec();
        let (addr, count) = answering(move || g.clone());
        let client = builder(&format!("http://{addr}/v2"))
            .auto_idempotency_key(false)
            .build()
            .unwrap();
        let err = client.send_sms("asst-1", &req()).unwrap_err();
        assert!(
            err.may_have_been_sent(),
            "{}: {err}",
            String::from_utf8_lossy(garbage)
        );
        assert_eq!(
            count.load(Ordering::SeqCst),
            1,
            "no retry without a key: {err}"
        );
        // A 2xx whose body is cut off is a Decode error, which says "accepted" in words.
        if err.kind() != ErrorKind::Decode {
            assert!(
                err.to_string().ends_with("the sms may have been sent"),
                "{err}"
            );
        }
    }
}

#[test]
fn a_redirect_may_have_been_sent_and_is_not_followed() {
    let (addr, count) = answering(|| {
        b"HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:9/elsewhere\r\ncontent-length: 0\r\n\r\n"
            .to_vec()
    });
    let err = client_to(addr).send_sms("asst-1", &req()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Api);
    assert_eq!(err.status(), Some(302));
    assert!(err.may_have_been_sent());
    assert_eq!((err.attempts(), count.load(Ordering::SeqCst)), (1, 1));
    assert!(
        err.to_string()
            .starts_with("api error: http 302 found; the sms may have been sent"),
        "{err}"
    );
}

#[test]
fn a_refused_direct_connection_names_the_host_and_port_and_is_retried() {
    let port = closed_port();
    let client = builder(&format!("http://{port}/v2"))
        .auto_idempotency_key(false)
        .build()
        .unwrap();
    let err = client.send_sms("asst-1", &req()).unwrap_err();
    assert!(!err.may_have_been_sent());
    assert_eq!(err.attempts(), 3);
    assert_eq!(
        err.to_string(),
        format!(
            "transport error: could not connect to {port}: the connection was refused; \
             after 3 attempts, the sms was not sent"
        )
    );
}

#[test]
fn an_unreachable_proxy_is_retried_and_named() {
    let proxy = closed_port();
    // The https API is never reached: the proxy is the first hop.
    let client = through_proxy(proxy)
        .auto_idempotency_key(false)
        .build()
        .unwrap();
    let err = client.send_sms("asst-1", &req()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport);
    assert!(!err.may_have_been_sent());
    assert_eq!(err.attempts(), 3, "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "transport error: could not reach the proxy {proxy}: the connection was refused; \
             after 3 attempts, the sms was not sent"
        )
    );
}

#[test]
fn a_proxy_that_refuses_the_tunnel_is_retried_and_names_both_ends() {
    let proxy = Proxy::start(Some("HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n"));
    let client = through_proxy(proxy.addr).max_retries(1).build().unwrap();
    let err = client.send_sms("asst-1", &req()).unwrap_err();
    assert!(!err.may_have_been_sent());
    assert_eq!(err.attempts(), 2);
    assert_eq!(proxy.heads().len(), 2);
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!(
            "transport error: the proxy {} would not open a tunnel to 127.0.0.1:9: ",
            proxy.addr
        )) && shown.contains("403"),
        "{shown}"
    );
    // The key never goes to the proxy: the CONNECT head carries no Authorization.
    assert!(
        !proxy.heads()[0]
            .to_ascii_lowercase()
            .contains("authorization: bearer")
    );
}

#[test]
fn a_proxy_that_wants_credentials_is_not_asked_again() {
    let proxy = Proxy::start(Some(
        "HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n",
    ));
    let client = through_proxy(proxy.addr).build().unwrap();
    let err = client.send_sms("asst-1", &req()).unwrap_err();
    assert!(!err.may_have_been_sent());
    assert_eq!((err.attempts(), proxy.heads().len()), (1, 1));
    assert_eq!(
        err.to_string(),
        format!(
            "transport error: the proxy {} wants credentials (407) to open a tunnel to \
             127.0.0.1:9: give them in the proxy url, http://user:password@host:port; the sms \
             was not sent",
            proxy.addr
        )
    );
}

#[test]
fn a_proxy_that_drips_its_answer_is_cut_off_by_the_timeouts() {
    let proxy = dripping_proxy();
    let client = through_proxy(proxy)
        .timeout(Duration::from_secs(1))
        .max_retries(0)
        .build()
        .unwrap();
    // Bounded by the attempt's timeout (it ran forever when every read of the proxy's answer
    // got a fresh connect timeout).
    let err = within(Duration::from_secs(3), || client.send_sms("asst-1", &req())).unwrap_err();
    assert!(!err.may_have_been_sent());
    assert_eq!(
        err.to_string(),
        format!(
            "transport error: could not connect to 127.0.0.1:9 through the proxy {proxy}: \
             connecting timed out; the sms was not sent"
        )
    );
}

#[test]
fn a_proxy_password_with_a_slash_is_sent_whole_and_never_shown() {
    let server = crate::support::ScriptServer::start(vec![crate::support::Step::ok()]);
    let proxy = Proxy::start(None);
    let builder = Client::builder()
        .api_key(KEY)
        .base_url(server.base_url())
        .proxy(format!("http://user:pa/ss@{}", proxy.addr));
    let shown = format!("{builder:?}");
    let client = builder.build().unwrap();
    let shown_client = format!("{client:?}");
    for s in [&shown, &shown_client] {
        assert!(!s.contains("pa/ss") && !s.contains("ss@"), "{s}");
    }
    assert!(
        shown_client.contains(&format!("http://***@{}", proxy.addr)),
        "{shown_client}"
    );
    let res = client.send_sms("asst-1", &req()).unwrap();
    assert_eq!(res.conversation_id.as_deref(), Some("conv-42"));
    let heads = proxy.heads();
    assert_eq!(heads.len(), 1);
    // base64("user:pa/ss")
    assert!(
        heads[0].contains("Proxy-Authorization: Basic dXNlcjpwYS9zcw=="),
        "{}",
        heads[0]
    );
    assert!(heads[0].starts_with(&format!("CONNECT {} ", server.addr())));
}

#[test]
fn a_prepared_send_is_refused_by_any_other_client() {
    let a = crate::support::ScriptServer::start(vec![crate::support::Step::ok()]);
    let b = crate::support::ScriptServer::start(vec![crate::support::Step::ok()]);
    let client_a = builder(&a.base_url()).build().unwrap();
    let client_b = Client::builder()
        .api_key("KEY-of-client-b")
        .base_url(b.base_url())
        .no_proxy()
        .build()
        .unwrap();
    let prepared = client_a.prepare("asst-1", &req()).unwrap();
    let err = client_b.send_prepared(&prepared).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(!err.may_have_been_sent());
    assert_eq!(err.attempts(), 0);
    assert!(
        err.to_string().contains("prepared by another client"),
        "{err}"
    );
    assert_eq!((a.request_count(), b.request_count()), (0, 0));
    // The client that prepared it, or a clone of it, sends it.
    client_a.clone().send_prepared(&prepared).unwrap();
    assert_eq!((a.request_count(), b.request_count()), (1, 0));
    // A second send of the same PreparedSend carries the same key.
    client_a.send_prepared(&prepared).unwrap();
    let keys = a.header_values("idempotency-key");
    assert_eq!(keys[0], keys[1]);
    assert_eq!(Some(keys[0].as_str()), prepared.idempotency_key());
}

#[test]
fn an_assistant_id_too_long_for_a_request_line_is_refused_before_sending() {
    let server = crate::support::ScriptServer::start(vec![crate::support::Step::ok()]);
    let client = builder(&server.base_url()).build().unwrap();
    let err = client.prepare(&"a".repeat(100_000), &req()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert_eq!(err.violations()[0].field(), "path.assistant_id");
    assert_eq!(err.violations()[0].code(), "too_long");
    assert_eq!(
        err.to_string(),
        "invalid request, nothing was sent: path.assistant_id: must be at most 256 bytes long (it is 100000)"
    );
    // The longest id allowed, in its most expensive encoding (3 characters per byte), goes
    // through.
    let longest = "é".repeat(telnyx_assistant_sms::MAX_ASSISTANT_ID_BYTES / 2);
    client.send_sms(&longest, &req()).unwrap();
    let path = &server.requests()[0].path;
    assert_eq!(path.len(), "/v2/ai/assistants//chat/sms".len() + 256 * 3);
    assert_eq!(server.request_count(), 1);
}

#[test]
fn a_205_is_not_read_until_the_connection_closes() {
    // No length, connection kept open: reading its "body" would take the whole timeout.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut reader = BufReader::new(s.try_clone().unwrap());
            let _ = read_request(&mut reader, 0);
            let _ = s.write_all(b"HTTP/1.1 205 Reset Content\r\n\r\n");
            thread::sleep(Duration::from_secs(5));
        }
    });
    let client = builder(&format!("http://{addr}/v2"))
        .timeout(Duration::from_secs(4))
        .build()
        .unwrap();
    let err = within(Duration::from_secs(2), || client.send_sms("asst-1", &req())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert_eq!(err.status(), Some(205));
    assert!(err.may_have_been_sent());
}

#[test]
fn a_timeout_while_the_request_is_still_going_out_says_so() {
    // The server reads the head, then nothing: a 20 MB body fills the socket buffers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        if let Ok((s, _)) = listener.accept() {
            thread::sleep(Duration::from_secs(3));
            drop(s);
        }
    });
    let client = builder(&format!("http://{addr}/v2"))
        .timeout(Duration::from_millis(500))
        .max_retries(0)
        .build()
        .unwrap();
    let big = SendSmsRequest::new("+15550001111", "+15550002222").text("x".repeat(20 << 20));
    let err = client.send_sms("asst-1", &big).unwrap_err();
    assert!(err.may_have_been_sent());
    assert_eq!(
        err.to_string(),
        "transport error: timed out while sending the request; the sms may have been sent"
    );
}

#[test]
fn configuration_text_in_messages_is_escaped_and_bounded() {
    let long_host = format!("http://{}:99999", "h".repeat(5000));
    let escaped = "http://127.0.0.1:31\u{1b}[31m28";
    for proxy in [long_host.as_str(), escaped] {
        let err = through_proxy(proxy).build().unwrap_err();
        let shown = err.to_string();
        assert!(shown.chars().count() < 1000, "{} characters", shown.len());
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
    }
}
