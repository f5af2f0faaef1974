//! The library's log records: what each attempt did, why it retried and how long it waited,
//! when it gave up, and never a secret or a piece of personal data.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::thread::{self, ThreadId};
use std::time::Duration;

use log::kv::{Key, Value, VisitSource};
use telnyx_assistant_sms::SendSmsRequest;

use crate::support::{ScriptServer, Step};
use crate::{KEY, builder};

/// One record as the capturing logger saw it.
#[derive(Clone, Debug)]
pub struct Captured {
    pub level: log::Level,
    pub message: String,
    pub fields: BTreeMap<String, String>,
}

struct Capture {
    records: Mutex<Vec<(ThreadId, Captured)>>,
}

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.target() == "telnyx_assistant_sms"
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        struct Fields(BTreeMap<String, String>);
        impl<'kvs> VisitSource<'kvs> for Fields {
            fn visit_pair(&mut self, k: Key<'kvs>, v: Value<'kvs>) -> Result<(), log::kv::Error> {
                self.0.insert(k.to_string(), v.to_string());
                Ok(())
            }
        }
        let mut fields = Fields(BTreeMap::new());
        let _ = record.key_values().visit(&mut fields);
        self.records.lock().unwrap().push((
            thread::current().id(),
            Captured {
                level: record.level(),
                message: record.args().to_string(),
                fields: fields.0,
            },
        ));
    }

    fn flush(&self) {}
}

fn logger() -> &'static Capture {
    static LOGGER: OnceLock<&'static Capture> = OnceLock::new();
    LOGGER.get_or_init(|| {
        let l: &'static Capture = Box::leak(Box::new(Capture {
            records: Mutex::new(Vec::new()),
        }));
        log::set_logger(l).expect("the only logger of this test binary");
        log::set_max_level(log::LevelFilter::Debug);
        l
    })
}

/// Runs `f` and returns the crate's records this thread emitted meanwhile (tests run in
/// parallel; each send logs on its caller's thread).
pub fn records_of<T>(f: impl FnOnce() -> T) -> (T, Vec<Captured>) {
    let l = logger();
    let me = thread::current().id();
    let out = f();
    let mut all = l.records.lock().unwrap();
    let mine = all
        .iter()
        .filter(|(t, _)| *t == me)
        .map(|(_, r)| r.clone())
        .collect();
    all.retain(|(t, _)| *t != me);
    (out, mine)
}

const TEXT: &str = "Your PIN is 99887766";
const FROM: &str = "+15550001111";
const TO: &str = "+15559998888";
const META: &str = "secret-metadata-value-4242";

fn personal_request() -> SendSmsRequest {
    SendSmsRequest::new(FROM, TO)
        .text(TEXT)
        .metadata("note", META)
        .metadata("n", 918_273_645)
}

fn assert_nothing_personal(records: &[Captured]) {
    for r in records {
        let all = format!("{} {:?}", r.message, r.fields);
        for secret in [
            KEY,
            "secret0123",
            TEXT,
            "99887766",
            FROM,
            TO,
            "5559998888",
            META,
            "918273645",
        ] {
            assert!(!all.contains(secret), "{secret} in a record: {all}");
        }
    }
}

#[test]
fn a_429_then_500_then_200_is_logged_attempt_by_attempt() {
    let server = ScriptServer::start(vec![
        Step::json(429, "{}")
            .header("retry-after-ms", "50")
            .header("x-request-id", "req-a"),
        Step::json(500, r#"{"errors":[{"title":"Internal error"}]}"#)
            .header("x-request-id", "req-b"),
        Step::ok().header("x-request-id", "req-c"),
    ]);
    // A 500 is retried only by the setting that accepts duplicates.
    let client = builder(&server.base_url())
        .retry_ambiguous(true)
        .build()
        .unwrap();
    let (res, records) = records_of(|| client.send_sms("asst-7", &personal_request()));
    let res = res.unwrap();
    assert_eq!(res.attempts, 3);
    let key = server.requests()[0]
        .header("idempotency-key")
        .unwrap()
        .to_owned();
    let summary: Vec<(log::Level, &str)> = records
        .iter()
        .map(|r| (r.level, r.message.as_str()))
        .collect();
    assert_eq!(records.len(), 5, "{summary:#?}");

    // Attempt 1: a 429, then a retry after the 50 ms the server asked for.
    let a1 = &records[0];
    assert_eq!(a1.level, log::Level::Debug);
    assert!(
        a1.message
            .starts_with("attempt 1 to assistant asst-7: http 429 too many requests in ")
            && a1
                .message
                .ends_with(&format!("(request id req-a, idempotency key {key})")),
        "{}",
        a1.message
    );
    assert_eq!(a1.fields["attempt"], "1");
    assert_eq!(a1.fields["assistant_id"], "asst-7");
    assert_eq!(a1.fields["idempotency_key"], key);
    assert_eq!(a1.fields["request_id"], "req-a");
    assert!(a1.fields.contains_key("duration_ms"));
    let r1 = &records[1];
    assert_eq!(r1.level, log::Level::Info);
    assert_eq!(
        r1.message,
        "retrying in 50ms (asked by the server in retry-after-ms): api error: http 429 too many \
         requests (request id req-a); the server asked to retry after 50ms"
    );
    assert_eq!(r1.fields["wait_ms"], "50");
    assert_eq!(r1.fields["wait_source"], "retry-after-ms");
    assert_eq!(r1.fields["attempt"], "2");

    // Attempt 2: a 500, retried under the key after the backoff (1 s, jittered).
    assert!(
        records[2].message.starts_with(
            "attempt 2 to assistant asst-7: http 500 internal server error: Internal error in "
        ),
        "{}",
        records[2].message
    );
    let r2 = &records[3];
    assert_eq!(r2.level, log::Level::Info);
    assert!(
        r2.message.contains(
            "(backoff): api error: http 500 internal server error: Internal error \
             (request id req-b); the sms may have been sent"
        ),
        "{}",
        r2.message
    );
    let wait: u64 = r2.fields["wait_ms"].parse().unwrap();
    assert!((750..=1000).contains(&wait), "{wait}");
    assert_eq!(r2.fields["wait_source"], "backoff");

    // Attempt 3: the answer.
    assert!(
        records[4]
            .message
            .starts_with("attempt 3 to assistant asst-7: ok in ")
            && records[4].message.contains("request id req-c"),
        "{}",
        records[4].message
    );
    assert_nothing_personal(&records);
}

#[test]
fn giving_up_is_a_warning_with_the_errors_own_words() {
    let server = ScriptServer::start(vec![
        Step::json(503, r#"{"errors":[{"title":"Busy"}]}"#).header("retry-after-ms", "10"),
    ]);
    let client = builder(&server.base_url()).max_retries(2).build().unwrap();
    let (err, records) = records_of(|| client.send_sms("asst-7", &personal_request()));
    let err = err.unwrap_err();
    let warn: Vec<&Captured> = records
        .iter()
        .filter(|r| r.level == log::Level::Warn)
        .collect();
    assert_eq!(warn.len(), 1);
    assert_eq!(warn[0].message, format!("giving up: {err}"));
    assert_eq!(warn[0].fields["attempts"], "3");
    assert_eq!(warn[0].fields["may_have_been_sent"], "false");
    assert_eq!(
        records
            .iter()
            .filter(|r| r.level == log::Level::Info)
            .count(),
        2
    );
    assert!(
        err.elapsed() >= Duration::from_millis(20),
        "{:?}",
        err.elapsed()
    );
    assert_nothing_personal(&records);
}

#[test]
fn a_transport_failure_is_logged_in_the_crates_words() {
    let port = crate::support::closed_port();
    let client = builder(&format!("http://{port}/v2"))
        .max_retries(1)
        .build()
        .unwrap();
    let (err, records) = records_of(|| client.send_sms("asst-7", &personal_request()));
    let err = err.unwrap_err();
    assert_eq!(records.len(), 4, "{records:#?}");
    assert!(records[0].message.starts_with(&format!(
        "attempt 1 to assistant asst-7: could not connect to {port}: the connection was refused in "
    )));
    assert!(
        records[0]
            .message
            .contains("(request id none, idempotency key "),
        "{}",
        records[0].message
    );
    assert_eq!(records[3].message, format!("giving up: {err}"));
    assert_nothing_personal(&records);
}

#[test]
fn a_validation_error_sends_and_logs_nothing() {
    let client = builder("http://127.0.0.1:9/v2").build().unwrap();
    let (err, records) = records_of(|| client.send_sms("asst-7", &SendSmsRequest::new("", TO)));
    assert_eq!(err.unwrap_err().attempts(), 0);
    assert!(records.is_empty(), "{records:#?}");
}
