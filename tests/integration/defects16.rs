//! Issue 16's library defects, one test (or a few) each: each fails without its fix.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use telnyx_assistant_sms::{Error, ErrorKind, SendSmsRequest};

use crate::builder;
use crate::support::{ScriptServer, Step};

fn req() -> SendSmsRequest {
    SendSmsRequest::new("+15550001111", "+15550002222").text("hi")
}

/// `at` (seconds since the epoch) as (weekday 0 = Monday, day, month 1-12, year, h, m, s).
fn civil(at: u64) -> (usize, u64, usize, i64, u64, u64, u64) {
    let (days, rem) = ((at / 86_400) as i64, at % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u64;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as usize;
    let y = yoe + era * 400 + i64::from(m <= 2);
    // 1970-01-01 was a Thursday.
    let weekday = ((days + 3).rem_euclid(7)) as usize;
    (weekday, d, m, y, rem / 3600, rem / 60 % 60, rem % 60)
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A `Retry-After` an hour ahead in the obsolete forms RFC 9110 §5.6.7 says a recipient must
/// accept too: RFC 850 and asctime.
fn an_hour_ahead() -> [String; 2] {
    let at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let (wd, d, m, y, h, mi, s) = civil(at);
    [
        format!(
            "{}, {d:02}-{}-{:02} {h:02}:{mi:02}:{s:02} GMT",
            LONG_DAYS[wd],
            MONTHS[m - 1],
            y % 100
        ),
        format!(
            "{} {} {d:>2} {h:02}:{mi:02}:{s:02} {y}",
            DAYS[wd],
            MONTHS[m - 1]
        ),
    ]
}

#[test]
fn retry_after_dates_in_the_obsolete_forms_are_read() {
    for date in an_hour_ahead() {
        let server = ScriptServer::start(vec![Step::json(503, "{}").header("retry-after", &date)]);
        let err: Error = builder(&server.base_url())
            .max_retries(3)
            .build()
            .unwrap()
            .send_sms("asst-1", &req())
            .unwrap_err();
        // An hour is longer than a send waits: it ends at once, with the wait reported.
        assert_eq!(server.request_count(), 1, "{date}: {err}");
        assert_eq!(err.kind(), ErrorKind::Api);
        let wait = err.retry_after().unwrap_or_else(|| panic!("{date}: {err}"));
        assert!(
            wait > Duration::from_secs(3500) && wait <= Duration::from_secs(3600),
            "{date}: {wait:?}"
        );
    }
}

#[test]
fn a_metadata_key_given_twice_is_refused_naming_it() {
    let err = serde_json::from_str::<SendSmsRequest>(
        r#"{"from":"+1","to":"+2","conversation_metadata":{"a":"1","b":2,"a":"2"}}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("duplicate metadata key `a` in conversation_metadata at line 1"),
        "{err}"
    );
    // As a field given twice is.
    let err = serde_json::from_str::<SendSmsRequest>(r#"{"from":"+1","to":"+2","to":"+3"}"#)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("duplicate field `to`"), "{err}");
    // A hostile key is escaped in the message.
    let err = serde_json::from_str::<SendSmsRequest>(
        r#"{"from":"+1","to":"+2","conversation_metadata":{"x\n\u001b[31m":1,"x\n\u001b[31m":1}}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains(r"`x\n\u{1b}[31m`"), "{err}");
    // Distinct keys, and every value type, still read.
    let ok: SendSmsRequest = serde_json::from_str(
        r#"{"from":"+1","to":"+2","conversation_metadata":{"a":"1","b":2,"c":true}}"#,
    )
    .unwrap();
    assert_eq!(ok.conversation_metadata.len(), 3);
    let err = serde_json::from_str::<SendSmsRequest>(
        r#"{"from":"+1","to":"+2","conversation_metadata":{"a":1.5}}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("expected a string, an integer or a boolean"),
        "{err}"
    );
    let err = serde_json::from_str::<SendSmsRequest>(
        r#"{"from":"+1","to":"+2","conversation_metadata":[1]}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("expected an object of metadata values"),
        "{err}"
    );
}

fn config_message(b: telnyx_assistant_sms::ClientBuilder) -> String {
    let err = b.build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    err.to_string()
}

#[test]
fn huge_timeouts_are_refused_at_build_not_panicking_at_send() {
    let base = format!("http://{}/v2", crate::support::closed_port());
    let day = Duration::from_secs(24 * 3600);
    for huge in [Duration::MAX, day + Duration::from_nanos(1)] {
        let msg = config_message(builder(&base).timeout(huge));
        assert!(
            msg.starts_with(
                "invalid configuration: the timeout must be at most 24 hours (86400 s)"
            ),
            "{msg}"
        );
        let msg = config_message(builder(&base).connect_timeout(huge));
        assert!(
            msg.starts_with(
                "invalid configuration: the connect timeout must be at most 24 hours (86400 s)"
            ),
            "{msg}"
        );
    }
    // The limit itself is fine, and sends.
    let server = ScriptServer::start(vec![Step::ok()]);
    let res = builder(&server.base_url())
        .timeout(day)
        .connect_timeout(day)
        .build()
        .unwrap()
        .send_sms("asst-1", &req())
        .unwrap();
    assert_eq!(res.attempts, 1);
    assert_eq!(server.request_count(), 1);
}

#[test]
fn https_to_a_plain_http_port_is_final_not_retried() {
    use std::io::{Read, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = connections.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            seen.fetch_add(1, Ordering::SeqCst);
            // What a plain HTTP server says to a ClientHello.
            let mut buf = [0u8; 512];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
    });
    let err = builder(&format!("https://{addr}/v2"))
        .max_retries(3)
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(2))
        .build()
        .unwrap()
        .send_sms("asst-1", &req())
        .unwrap_err();
    assert_eq!(connections.load(Ordering::SeqCst), 1, "{err}");
    assert_eq!(err.kind(), ErrorKind::Transport);
    assert_eq!(err.attempts(), 1);
    assert!(!err.may_have_been_sent());
    assert_eq!(
        err.to_string(),
        format!(
            "transport error: the tls handshake with {addr} failed: the server did not answer \
             in tls (is this a plain-http port? the base url is https); the sms was not sent"
        )
    );
}

#[test]
fn a_dotenv_line_is_not_an_api_key() {
    use telnyx_assistant_sms::{Client, check_api_key};
    for line in [
        "TELNYX_API_KEY=KEYsecret0123",
        "export TELNYX_API_KEY=KEYsecret0123",
        "TELNYX_API_KEY=\"KEYsecret0123\"",
    ] {
        let msg = config_message(Client::builder().api_key(line));
        assert!(
            msg.starts_with(
                "invalid configuration: the api key contains `=`: it looks like a `.env` line"
            ),
            "{msg}"
        );
        assert!(!msg.contains("secret0123"), "{msg}");
        let err = check_api_key(line).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert_eq!(err.to_string(), msg);
    }
    // The public check is the builder's.
    assert!(check_api_key(crate::KEY).is_ok());
    for bad in ["", "Bearer KEY1", "KEY 1", "KEY\u{7}", "KEYé"] {
        let from_check = check_api_key(bad).unwrap_err().to_string();
        assert_eq!(from_check, config_message(Client::builder().api_key(bad)));
    }
}

#[test]
fn a_base_url_without_a_version_path_is_refused_unless_loopback() {
    use telnyx_assistant_sms::Client;
    for (url, shown) in [
        ("https://api.telnyx.com", "https://api.telnyx.com"),
        ("https://api.telnyx.com/", "https://api.telnyx.com"),
        ("https://api.telnyx.com//", "https://api.telnyx.com"),
        (
            "https://gateway.example:8443",
            "https://gateway.example:8443",
        ),
    ] {
        let msg = config_message(Client::builder().api_key(crate::KEY).base_url(url));
        assert_eq!(
            msg,
            format!(
                "invalid configuration: the base url has no version path, so every call would \
                 answer 404: use {shown}/v2"
            )
        );
    }
    // A loopback stand-in may serve the API at its root, and its requests go there.
    let server = ScriptServer::start(vec![Step::ok()]);
    let bare = format!("http://{}", server.addr());
    for url in [
        bare.clone(),
        format!("{bare}/"),
        "https://localhost:9".into(),
    ] {
        Client::builder()
            .api_key(crate::KEY)
            .base_url(url)
            .build()
            .unwrap();
    }
    builder(&bare)
        .build()
        .unwrap()
        .send_sms("asst-1", &req())
        .unwrap();
    assert_eq!(server.requests()[0].path, "/ai/assistants/asst-1/chat/sms");
    // Any path is a path.
    for url in [
        "https://api.telnyx.com/v2",
        "https://gateway.example/telnyx",
    ] {
        Client::builder()
            .api_key(crate::KEY)
            .base_url(url)
            .build()
            .unwrap();
    }
}

#[test]
fn attempts_come_before_what_they_mean_and_after_the_request_id() {
    // A 503 (asking for a wait) three times: "after 3 attempts" is its own clause, not glued
    // to the request id.
    let server = ScriptServer::start(vec![
        Step::json(503, r#"{"errors":[{"title":"Service unavailable"}]}"#)
            .header("x-request-id", "req-503")
            .header("retry-after-ms", "1"),
    ]);
    let err = builder(&server.base_url())
        .max_retries(2)
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(2))
        .build()
        .unwrap()
        .send_sms("asst-1", &req())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "api error: http 503 service unavailable: Service unavailable (request id req-503); \
         after 3 attempts, the sms was not sent; the server asked to retry after 1ms"
    );
    // A 500 three times (retried only by retry_ambiguous): "after 3 attempts, the sms may
    // have been sent".
    let server = ScriptServer::start(vec![Step::json(500, "{}").header("x-request-id", "r5")]);
    let err = builder(&server.base_url())
        .max_retries(2)
        .retry_ambiguous(true)
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(2))
        .build()
        .unwrap()
        .send_sms("asst-1", &req())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "api error: http 500 internal server error (request id r5); after 3 attempts, the sms \
         may have been sent"
    );
    // One attempt: the clause alone, as before.
    let server = ScriptServer::start(vec![Step::json(500, "{}")]);
    let err = builder(&server.base_url())
        .max_retries(0)
        .build()
        .unwrap()
        .send_sms("asst-1", &req())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "api error: http 500 internal server error; the sms may have been sent"
    );
}

#[test]
fn an_error_clones_cheaply_and_whole() {
    use std::error::Error as _;
    let server = ScriptServer::start(vec![Step::json(500, "{}").header("x-request-id", "r9")]);
    let err = builder(&server.base_url())
        .max_retries(0)
        .build()
        .unwrap()
        .send_sms("asst-1", &req())
        .unwrap_err();
    let copy = err.clone();
    assert_eq!(copy.to_string(), err.to_string());
    assert_eq!(format!("{copy:?}"), format!("{err:?}"));
    assert_eq!(
        (copy.status(), copy.request_id(), copy.attempts()),
        (Some(500), Some("r9"), 1)
    );
    assert_eq!(copy.idempotency_key(), err.idempotency_key());
    // A cause survives the clone, shared rather than copied.
    let refused = builder(&format!("http://{}/v2", crate::support::closed_port()))
        .max_retries(0)
        .build()
        .unwrap()
        .send_sms("asst-1", &req())
        .unwrap_err();
    let copy = refused.clone();
    let (a, b) = (refused.source().unwrap(), copy.source().unwrap());
    assert!(std::ptr::addr_eq(a, b));
    assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
}

#[test]
fn a_success_body_that_is_not_an_object_is_a_decode_error() {
    for body in [r#"["c-1"]"#, r#""c-1""#] {
        let server = ScriptServer::start(vec![Step::json(200, body)]);
        let err = builder(&server.base_url())
            .build()
            .unwrap()
            .send_sms("asst-1", &req())
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode, "{body}: {err}");
        assert_eq!(err.body(), Some(body));
    }
    // An object without the id is a success with none (the schema does not require it).
    let server = ScriptServer::start(vec![Step::json(200, r#"{"later":1}"#)]);
    let res = builder(&server.base_url())
        .build()
        .unwrap()
        .send_sms("asst-1", &req())
        .unwrap();
    assert_eq!((res.conversation_id, res.attempts), (None, 1));
}
