//! The retry policy, class by class, under each of the three settings, against a server that
//! ignores `Idempotency-Key` and one that honours it as Telnyx documents (successes replayed,
//! nothing else): counts what the server *performed*, not only what the client says.

use std::time::Duration;

use telnyx_assistant_sms::{Client, SendSmsRequest};

use crate::support::ScriptServer;
use crate::support::telnyx::{Fault, Telnyx};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Setting {
    Default,
    InDoubt,
    Ambiguous,
}

const SETTINGS: [Setting; 3] = [Setting::Default, Setting::InDoubt, Setting::Ambiguous];

fn client(base: &str, setting: Setting) -> Client {
    crate::builder(base)
        .timeout(Duration::from_millis(400))
        .max_retries(1)
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(2))
        .retry_in_doubt(setting == Setting::InDoubt)
        .retry_ambiguous(setting == Setting::Ambiguous)
        .build()
        .unwrap()
}

struct Case {
    name: &'static str,
    fault: fn() -> Fault,
    /// The first attempt performed the send (and, on an honouring server, recorded a success
    /// that a retry replays).
    performs: bool,
    /// ... and the success was recorded under the key (false for an application error).
    recorded: bool,
    may_have_been_sent: bool,
    /// Retried under: default, retry_in_doubt, retry_ambiguous.
    retried: [bool; 3],
}

fn cases() -> Vec<Case> {
    let c = |name, fault: fn() -> Fault, performs, recorded, sent, retried| Case {
        name,
        fault,
        performs,
        recorded,
        may_have_been_sent: sent,
        retried,
    };
    vec![
        c("429", || Fault::before(429), false, false, false, [true; 3]),
        c("408", || Fault::before(408), false, false, false, [true; 3]),
        c(
            "503 with retry-after",
            || Fault::before(503).retry_after("0"),
            false,
            false,
            false,
            [true; 3],
        ),
        c(
            "400",
            || Fault::before(400),
            false,
            false,
            false,
            [false; 3],
        ),
        c(
            "409",
            || Fault::before(409),
            false,
            false,
            true,
            [false, true, true],
        ),
        c(
            "read, then closed",
            || Fault::DropBefore,
            false,
            false,
            true,
            [false, true, true],
        ),
        c(
            "performed, then closed",
            || Fault::DropAfter,
            true,
            true,
            true,
            [false, true, true],
        ),
        // The 200's head arrived, then a reset: sent for sure, and never sent again.
        c(
            "200, then reset mid-body",
            || Fault::ResetAfter,
            true,
            true,
            true,
            [false, false, false],
        ),
        c(
            "performed, then stalled",
            || Fault::StallAfter(Duration::from_millis(900)),
            true,
            true,
            true,
            [false, true, true],
        ),
        c(
            "performed, then 502",
            || Fault::after(502),
            true,
            true,
            true,
            [false, true, true],
        ),
        c(
            "performed, then bare 503",
            || Fault::after(503),
            true,
            true,
            true,
            [false, true, true],
        ),
        c(
            "performed, then 504",
            || Fault::after(504),
            true,
            true,
            true,
            [false, true, true],
        ),
        c(
            "performed, then the application's 500",
            || Fault::fail_after(500),
            true,
            false,
            true,
            [false, false, true],
        ),
    ]
}

#[test]
fn every_failure_class_under_each_setting_counting_performed_sends() {
    for case in cases() {
        for honours in [false, true] {
            for (i, setting) in SETTINGS.into_iter().enumerate() {
                let fault = case.fault;
                let model = Telnyx::new().faults(
                    move |_, attempt| {
                        if attempt == 1 { fault() } else { Fault::None }
                    },
                );
                let model = if honours { model } else { model.ignore_keys() };
                let server = ScriptServer::builder().handler(model.handler()).start();
                let req = SendSmsRequest::new("+15550001111", "+15550002222").text("policy");
                let result = client(&server.base_url(), setting).send_sms("asst-p", &req);
                let what = format!(
                    "{} / {setting:?} / server {}",
                    case.name,
                    if honours {
                        "honours keys"
                    } else {
                        "ignores keys"
                    }
                );
                let retried = case.retried[i];
                let performed = model.performed().len();
                if retried {
                    let res = result.unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_eq!(res.attempts, 2, "{what}");
                    let replayed = honours && case.recorded;
                    let want = usize::from(case.performs) + usize::from(!replayed);
                    assert_eq!(performed, want, "{what}: performed");
                } else {
                    let err = result.expect_err(&what);
                    assert_eq!(err.attempts(), 1, "{what}");
                    assert_eq!(err.may_have_been_sent(), case.may_have_been_sent, "{what}");
                    assert_eq!(performed, usize::from(case.performs), "{what}: performed");
                    assert!(err.idempotency_key().is_some(), "{what}");
                }
                // The default never performs a send twice, whatever the server does.
                if setting == Setting::Default {
                    assert!(performed <= 1, "{what}: performed {performed} times");
                }
            }
        }
    }
}

#[test]
fn a_refused_connection_is_retried_under_every_setting_and_was_not_sent() {
    let addr = crate::support::closed_port();
    for setting in SETTINGS {
        let err = client(&format!("http://{addr}/v2"), setting)
            .send_sms(
                "asst-p",
                &SendSmsRequest::new("+15550001111", "+15550002222"),
            )
            .unwrap_err();
        assert_eq!(err.attempts(), 2, "{setting:?}");
        assert!(!err.may_have_been_sent(), "{setting:?}");
    }
}

#[test]
fn retry_in_doubt_never_retries_a_send_without_a_key() {
    let model = Telnyx::new().ignore_keys().faults(|_, attempt| {
        if attempt == 1 {
            Fault::DropAfter
        } else {
            Fault::None
        }
    });
    let server = ScriptServer::builder().handler(model.handler()).start();
    let client = crate::builder(&server.base_url())
        .auto_idempotency_key(false)
        .retry_in_doubt(true)
        .build()
        .unwrap();
    let err = client
        .send_sms(
            "asst-p",
            &SendSmsRequest::new("+15550001111", "+15550002222"),
        )
        .unwrap_err();
    assert!(err.may_have_been_sent());
    assert_eq!((err.attempts(), model.performed().len()), (1, 1));
}
