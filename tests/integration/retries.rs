//! Retry policy and fault tolerance against the scripted server: what is retried, how often,
//! after how long, under which idempotency key, and what the final error says.
//! Every test is bounded in time: the longest scripted wait is a few seconds.

use std::net::TcpListener;
use std::thread;
use std::time::Duration;

use telnyx_assistant_sms::{Client, Error, ErrorKind, SendSmsRequest};

use crate::builder;
use crate::support::{ScriptServer, Step, closed_port, within};

fn req() -> SendSmsRequest {
    SendSmsRequest::new("+15550001111", "+15550002222").text("hi")
}

fn client_for(server: &ScriptServer) -> Client {
    builder(&server.base_url()).build().unwrap()
}

/// A client that sends no idempotency key of its own.
fn client_without_key(server: &ScriptServer) -> Client {
    builder(&server.base_url())
        .auto_idempotency_key(false)
        .build()
        .unwrap()
}

fn send(client: &Client) -> Result<telnyx_assistant_sms::SendSmsResponse, Error> {
    client.send_sms("asst-1", &req())
}

fn keys(server: &ScriptServer) -> Vec<String> {
    server.header_values("idempotency-key")
}

fn retry_counts(server: &ScriptServer) -> Vec<String> {
    server.header_values("x-stainless-retry-count")
}

#[test]
fn too_many_requests_honours_retry_after_then_succeeds() {
    let server = ScriptServer::first_then_ok(Step::json(429, "{}").header("retry-after", "1"));
    let res = send(&client_for(&server)).unwrap();
    assert_eq!(res.conversation_id.as_deref(), Some("conv-42"));
    let r = server.requests();
    assert_eq!(r.len(), 2);
    let gap = r[1].at - r[0].at;
    // The server asked for 1 s: not less (backoff alone would be <= 0.5 s), and not much more.
    assert!(gap >= Duration::from_millis(950), "waited only {gap:?}");
    assert!(gap < Duration::from_secs(3), "waited {gap:?}");
}

#[test]
fn retry_after_ms_wins_over_retry_after() {
    let server = ScriptServer::first_then_ok(
        Step::json(503, "{}")
            .header("retry-after-ms", "50")
            .header("retry-after", "30"),
    );
    send(&client_for(&server)).unwrap();
    let r = server.requests();
    assert_eq!(r.len(), 2);
    // 50 ms asked for in milliseconds; the 30 s of Retry-After would have been slept through.
    let gap = r[1].at - r[0].at;
    assert!(gap < Duration::from_secs(2), "waited {gap:?}");
}

#[test]
fn unavailable_with_a_wait_three_times_gives_up_after_three_attempts() {
    // A 503 that asks for a wait is a deliberate refusal: not performed, so retried.
    let server = ScriptServer::start(vec![
        Step::json(503, r#"{"errors":[{"title":"Service unavailable"}]}"#)
            .header("retry-after-ms", "1"),
    ]);
    let client = builder(&server.base_url()).max_retries(2).build().unwrap();
    let err = send(&client).unwrap_err();
    assert_eq!(server.request_count(), 3);
    assert_eq!(err.kind(), ErrorKind::Api);
    assert_eq!(err.status(), Some(503));
    assert_eq!(err.attempts(), 3);
    assert!(!err.may_have_been_sent());
    assert_eq!(retry_counts(&server), ["0", "1", "2"]);
    let k = keys(&server);
    assert!(k.iter().all(|x| x == &k[0] && x.len() == 32));
    assert_eq!(err.idempotency_key(), Some(k[0].as_str()));
    assert!(
        err.to_string()
            .contains("; after 3 attempts, the sms was not sent"),
        "{err}"
    );
}

#[test]
fn a_bare_503_may_have_been_sent_and_is_retried_only_in_doubt() {
    // A gateway answers a bare 503 when the upstream failed, maybe after acting.
    let server = ScriptServer::start(vec![Step::json(503, "{}"), Step::ok()]);
    let err = send(&client_for(&server)).unwrap_err();
    assert_eq!(server.request_count(), 1);
    assert!(err.may_have_been_sent());
    let server = ScriptServer::start(vec![Step::json(503, "{}"), Step::ok()]);
    let client = builder(&server.base_url())
        .retry_in_doubt(true)
        .build()
        .unwrap();
    send(&client).unwrap();
    assert_eq!(server.request_count(), 2);
    let k = keys(&server);
    assert_eq!(k[0], k[1]);
}

#[test]
fn a_500_is_retried_only_by_retry_ambiguous_and_reuses_the_key() {
    // Only successes are replayed under a key: a retry after a 500 executes again, so
    // neither the default nor retry_in_doubt retries it.
    for in_doubt in [false, true] {
        let server = ScriptServer::start(vec![Step::json(500, "{}"), Step::ok()]);
        let client = builder(&server.base_url())
            .retry_in_doubt(in_doubt)
            .build()
            .unwrap();
        let err = send(&client).unwrap_err();
        assert_eq!(server.request_count(), 1, "retry_in_doubt({in_doubt})");
        assert!(err.may_have_been_sent());
    }
    let server = ScriptServer::start(vec![Step::json(500, "{}"), Step::ok()]);
    let client = builder(&server.base_url())
        .retry_ambiguous(true)
        .build()
        .unwrap();
    let res = send(&client).unwrap();
    assert_eq!(res.conversation_id.as_deref(), Some("conv-42"));
    assert_eq!(server.request_count(), 2);
    let k = keys(&server);
    assert_eq!(k[0], k[1]);
    assert_eq!(k[0].len(), 32);
    assert_eq!(retry_counts(&server), ["0", "1"]);
    // The body is identical on both attempts.
    let r = server.requests();
    assert_eq!(r[0].body, r[1].body);
}

#[test]
fn conflict_and_gateway_errors_are_retried_under_a_key_only_in_doubt() {
    for status in [409, 502, 504] {
        let server = ScriptServer::start(vec![Step::json(status, "{}"), Step::ok()]);
        let err = send(&client_for(&server)).unwrap_err();
        assert_eq!(server.request_count(), 1, "{status}");
        assert!(err.may_have_been_sent(), "{status}");
        let server = ScriptServer::start(vec![Step::json(status, "{}"), Step::ok()]);
        let client = builder(&server.base_url())
            .retry_in_doubt(true)
            .build()
            .unwrap();
        send(&client).unwrap();
        assert_eq!(server.request_count(), 2, "{status}");
        let k = keys(&server);
        assert_eq!(k[0], k[1], "{status}");
    }
}

#[test]
fn separate_sends_get_different_keys() {
    let server = ScriptServer::start(vec![Step::ok()]);
    let client = client_for(&server);
    send(&client).unwrap();
    send(&client).unwrap();
    let k = keys(&server);
    assert_eq!(k.len(), 2);
    assert_ne!(k[0], k[1]);
}

#[test]
fn callers_key_is_sent_verbatim_on_every_attempt() {
    let server = ScriptServer::start(vec![Step::json(429, "{}"), Step::ok()]);
    // Colons too, as Telnyx documents keys: ^[A-Za-z0-9_:-]{1,255}$.
    let req = req().idempotency_key("order:1042_shipped");
    client_for(&server).send_sms("asst-1", &req).unwrap();
    assert_eq!(keys(&server), ["order:1042_shipped", "order:1042_shipped"]);
    // A malformed one never leaves the machine.
    let err = client_for(&server)
        .send_sms("asst-1", &req.idempotency_key("not ok!"))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert_eq!(server.request_count(), 2);
}

#[test]
fn without_a_key_a_500_is_sent_once() {
    let server = ScriptServer::start(vec![Step::json(500, "{}"), Step::ok()]);
    let client = client_without_key(&server);
    let err = send(&client).unwrap_err();
    assert_eq!(server.request_count(), 1);
    assert_eq!(err.status(), Some(500));
    assert_eq!(err.attempts(), 1);
    assert_eq!(err.idempotency_key(), None);
    assert!(err.may_have_been_sent());
    assert!(server.requests()[0].header("idempotency-key").is_none());
}

#[test]
fn without_a_key_a_dropped_answer_is_sent_once_and_may_have_been_sent() {
    let server = ScriptServer::start(vec![Step::Close, Step::ok()]);
    let client = client_without_key(&server);
    let err = send(&client).unwrap_err();
    assert_eq!(server.request_count(), 1);
    assert_eq!(err.kind(), ErrorKind::Transport);
    assert!(err.may_have_been_sent());
    assert!(
        err.to_string().ends_with("the sms may have been sent"),
        "{err}"
    );
}

#[test]
fn with_a_key_a_dropped_answer_is_retried_only_in_doubt() {
    let server = ScriptServer::start(vec![Step::Close, Step::ok()]);
    let err = send(&client_for(&server)).unwrap_err();
    assert_eq!(server.request_count(), 1);
    assert!(err.may_have_been_sent());
    let server = ScriptServer::start(vec![Step::Close, Step::ok()]);
    let client = builder(&server.base_url())
        .retry_in_doubt(true)
        .build()
        .unwrap();
    send(&client).unwrap();
    assert_eq!(server.request_count(), 2);
    let k = keys(&server);
    assert_eq!(k[0], k[1]);
}

#[test]
fn retry_ambiguous_opts_in_without_a_key() {
    let server = ScriptServer::start(vec![Step::json(502, "<html>"), Step::ok()]);
    let client = builder(&server.base_url())
        .auto_idempotency_key(false)
        .retry_ambiguous(true)
        .build()
        .unwrap();
    send(&client).unwrap();
    assert_eq!(server.request_count(), 2);
}

#[test]
fn should_retry_false_overrides_a_503() {
    let server =
        ScriptServer::first_then_ok(Step::json(503, "{}").header("x-should-retry", "false"));
    let err = send(&client_for(&server)).unwrap_err();
    assert_eq!(server.request_count(), 1);
    assert_eq!(err.status(), Some(503));
}

#[test]
fn should_retry_true_overrides_a_400() {
    let server =
        ScriptServer::first_then_ok(Step::json(400, "{}").header("x-should-retry", "true"));
    send(&client_for(&server)).unwrap();
    assert_eq!(server.request_count(), 2);
}

#[test]
fn final_statuses_are_not_retried() {
    for status in [400, 401, 403, 404, 422, 501, 505] {
        let server = ScriptServer::start(vec![Step::json(status, "{}"), Step::ok()]);
        let err = send(&client_for(&server)).unwrap_err();
        assert_eq!(server.request_count(), 1, "{status}");
        assert_eq!(err.status(), Some(status), "{status}");
        assert_eq!(err.attempts(), 1);
    }
}

#[test]
fn refused_then_the_server_comes_up() {
    let addr = closed_port();
    let client = builder(&format!("http://{addr}/v2")).build().unwrap();
    // The first attempt is refused; the first backoff is at least 375 ms.
    let starter = thread::spawn(move || {
        thread::sleep(Duration::from_millis(150));
        ScriptServer::start_on(TcpListener::bind(addr).unwrap(), vec![Step::ok()])
    });
    let res = send(&client).unwrap();
    let server = starter.join().unwrap();
    assert_eq!(res.conversation_id.as_deref(), Some("conv-42"));
    assert_eq!(server.request_count(), 1);
    assert_eq!(
        retry_counts(&server),
        ["1"],
        "it arrived as the first retry"
    );
}

#[test]
fn refused_throughout_was_not_sent() {
    let addr = closed_port();
    let client = builder(&format!("http://{addr}/v2")).build().unwrap();
    let err = send(&client).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport);
    assert_eq!(err.attempts(), 3);
    assert!(!err.may_have_been_sent());
    assert!(err.to_string().contains("the sms was not sent"), "{err}");
}

#[test]
fn a_server_that_never_answers_is_cut_off_by_the_timeout() {
    let server = ScriptServer::start(vec![Step::Silent(Duration::from_secs(6))]);
    let client = builder(&server.base_url())
        .timeout(Duration::from_secs(1))
        .max_retries(0)
        .build()
        .unwrap();
    let err = within(Duration::from_secs(3), || send(&client)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport);
    assert!(err.may_have_been_sent(), "the request was written");
    assert_eq!(server.request_count(), 1);
}

#[test]
fn a_dripping_server_is_bounded_by_the_timeout() {
    // One byte a second of a 100-byte body: the whole-attempt timeout must stop it.
    let server = ScriptServer::start(vec![Step::Drip {
        len: 100,
        every: Duration::from_secs(1),
    }]);
    let client = builder(&server.base_url())
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let err = within(Duration::from_secs(5), || send(&client)).unwrap_err();
    // The 200 arrived, so the server accepted it: final, never retried.
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert_eq!(err.status(), Some(200));
    assert!(err.may_have_been_sent());
    assert_eq!(server.request_count(), 1);
}

#[test]
fn a_cut_off_success_is_final() {
    let server = ScriptServer::start(vec![Step::Truncated, Step::ok()]);
    let err = send(&client_for(&server)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(err.to_string().contains("the body was cut off"), "{err}");
    assert_eq!(server.request_count(), 1);
}

#[test]
fn a_ten_mib_success_body_is_refused_by_the_cap() {
    let server = ScriptServer::start(vec![Step::Huge {
        len: 10 * 1024 * 1024,
    }]);
    let err = send(&client_for(&server)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Decode);
    assert!(err.to_string().contains("larger than 1 MiB"), "{err}");
    assert_eq!(err.body(), None, "an oversized success body is not kept");
    assert_eq!(server.request_count(), 1);
}

#[test]
fn a_ten_mib_error_body_is_kept_cut_at_the_cap() {
    let server = ScriptServer::start(vec![Step::Respond {
        status: 500,
        headers: vec![],
        body: vec![b'e'; 10 * 1024 * 1024],
    }]);
    let client = builder(&server.base_url()).max_retries(0).build().unwrap();
    let err = send(&client).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Api);
    assert_eq!(
        err.body().unwrap().len(),
        telnyx_assistant_sms::MAX_BODY_BYTES
    );
}

#[test]
fn a_long_retry_after_is_not_slept_through() {
    let server = ScriptServer::first_then_ok(Step::json(429, "{}").header("retry-after", "3600"));
    let err = within(Duration::from_secs(2), || send(&client_for(&server))).unwrap_err();
    assert_eq!(server.request_count(), 1);
    assert_eq!(err.status(), Some(429));
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3600)));
    assert!(
        err.to_string()
            .ends_with("the server asked to retry after 3600s"),
        "{err}"
    );
}

#[test]
fn retry_after_zero_retries_at_once() {
    let server = ScriptServer::first_then_ok(Step::json(429, "{}").header("retry-after", "0"));
    // A backoff of 5 s, so that "at once" can be told from it with room for a busy machine.
    let client = builder(&server.base_url())
        .retry_backoff(Duration::from_secs(5), Duration::from_secs(5))
        .build()
        .unwrap();
    send(&client).unwrap();
    let r = server.requests();
    let gap = r[1].at - r[0].at;
    assert!(gap < Duration::from_secs(2), "waited {gap:?}");
}

#[test]
fn an_earlier_doubt_is_remembered_in_the_final_error() {
    // 502 (may have sent), then refused (not sent): the send as a whole may have gone out.
    let server = ScriptServer::start(vec![Step::json(502, "{}"), Step::json(400, "{}")]);
    let client = builder(&server.base_url())
        .retry_in_doubt(true)
        .build()
        .unwrap();
    let err = send(&client).unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert_eq!(err.attempts(), 2);
    assert!(err.may_have_been_sent());
    assert!(err.to_string().contains("may have been sent"), "{err}");
}

#[test]
fn a_pooled_connection_the_server_closed_is_not_reused() {
    // No key and no retries: a request written on the dead connection would fail.
    let server = ScriptServer::start(vec![Step::OkThenClose]);
    let client = builder(&server.base_url())
        .auto_idempotency_key(false)
        .max_retries(0)
        .build()
        .unwrap();
    for _ in 0..3 {
        send(&client).unwrap();
        // Time for the server's FIN to arrive, as between two real sends.
        thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(server.request_count(), 3);
    assert_eq!(server.connections(), 3);
}

#[test]
fn a_kept_alive_connection_is_reused() {
    let server = ScriptServer::start(vec![Step::ok()]);
    let client = client_for(&server);
    for _ in 0..5 {
        send(&client).unwrap();
    }
    assert_eq!(server.connections(), 1);
}

#[test]
fn a_failed_tls_handshake_was_not_sent_and_is_retried_even_without_a_key() {
    // A peer that accepts and hangs up before the TLS handshake completes: no byte of the
    // request was written, so the send is retried and reported as not sent.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = thread::spawn(move || {
        for _ in 0..3 {
            let (stream, _) = listener.accept().unwrap();
            drop(stream);
        }
    });
    let client = builder(&format!("https://{addr}/v2"))
        .auto_idempotency_key(false)
        .max_retries(2)
        .build()
        .unwrap();
    let err = send(&client).unwrap_err();
    peer.join().unwrap();
    assert_eq!(err.kind(), ErrorKind::Transport);
    assert_eq!(err.attempts(), 3);
    assert!(!err.may_have_been_sent(), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "transport error: could not connect to {addr}: the connection closed while it was being \
             opened; after 3 attempts, the sms was not sent"
        )
    );
}
