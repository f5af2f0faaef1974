//! Hostile or huge server answers: nothing a server says can forge a line of our output,
//! drive a terminal, flood a log, or cost much more memory than the answer itself.

use telnyx_assistant_sms::{Error, ErrorKind, SendSmsRequest};

use crate::alloc::peak_during;
use crate::builder;
use crate::support::{ScriptServer, Step};

fn failed_send(step: Step) -> (Error, usize) {
    let server = ScriptServer::start(vec![step]);
    let client = builder(&server.base_url()).max_retries(0).build().unwrap();
    let req = SendSmsRequest::new("+15550001111", "+15550002222");
    let (result, peak) = peak_during(|| client.send_sms("asst-1", &req));
    (result.unwrap_err(), peak)
}

/// One line, no control character, under 1,000 characters.
fn assert_safe_line(shown: &str) {
    assert!(shown.chars().count() < 1000, "{} characters", shown.len());
    assert!(
        !shown.chars().any(|c| c.is_control()),
        "control character in {shown:?}"
    );
}

#[test]
fn server_text_cannot_forge_lines_or_drive_a_terminal() {
    let evil = format!(
        "Bad\nERROR forged log line\r\u{1b}[2J\u{1b}]0;pwned\u{7}{}",
        "x".repeat(100_000)
    );
    let body = serde_json::json!({
        "errors": [{"code": "1\n2", "title": evil, "detail": evil, "source": {"pointer": evil}}],
        "detail": [{"loc": ["body", evil], "msg": evil, "type": "t"}],
    })
    .to_string();
    let (err, _) = failed_send(
        Step::json(400, &body).header("x-request-id", &format!("req-{}", "r".repeat(60_000))),
    );
    let shown = err.to_string();
    assert_safe_line(&shown);
    assert!(
        shown.starts_with(
            "api error: http 400 bad request: Bad\\nERROR forged log line\\r\\u{1b}[2J"
        ),
        "{shown}"
    );
    assert!(shown.contains('…'), "{shown}");
    // The parts shown on their own are safe too.
    assert_safe_line(&err.api_errors()[0].to_string());
    assert_safe_line(&err.violations()[0].to_string());
    // The full text stays available.
    assert_eq!(err.api_errors()[0].title(), Some(evil.as_str()));
    assert_eq!(err.violations()[0].message(), evil);
    assert_eq!(err.request_id().map(str::len), Some(60_004));
    assert_eq!(err.body(), Some(body.as_str()));
    // Debug escapes (as Debug does) and shows only the start of the body.
    let debug = format!("{err:?}");
    assert!(!debug.contains('\n') && !debug.contains('\u{1b}'));
}

#[test]
fn a_message_only_body_is_cleaned_too() {
    let body = serde_json::json!({"detail": format!("nope\n{}", "y".repeat(5_000))}).to_string();
    let (err, _) = failed_send(Step::json(404, &body));
    let shown = err.to_string();
    assert_safe_line(&shown);
    assert!(
        shown.starts_with("api error: http 404 not found: nope\\nyyy"),
        "{shown}"
    );
}

#[test]
fn a_huge_422_keeps_100_violations_counts_all_and_costs_about_its_size() {
    let mut body = String::from(r#"{"detail":["#);
    let mut n = 0;
    while body.len() < 1_000_000 {
        if n > 0 {
            body.push(',');
        }
        body.push_str(&format!(r#"{{"loc":["body",{n}],"msg":"m","type":"t"}}"#));
        n += 1;
    }
    body.push_str("]}");
    assert!(body.len() <= telnyx_assistant_sms::MAX_BODY_BYTES);
    let (err, peak) = failed_send(Step::json(422, &body));
    assert_eq!(err.status(), Some(422));
    assert!(n > 20_000, "{n} entries");
    assert_eq!(err.violations().len(), 100);
    assert_eq!(err.violation_count(), n);
    assert_eq!(err.violations()[99].path(), ["body", "99"]);
    assert!(
        err.to_string().contains(&format!("and {} more", n - 3)),
        "{err}"
    );
    assert_safe_line(&err.to_string());
    // Reading the body (its buffer grows by doubling) and keeping it, plus what is parsed:
    // a few times the body, where building a `serde_json::Value` first cost 50-77 times it.
    assert!(
        peak < 4 * body.len(),
        "peak {peak} bytes for a {} byte body",
        body.len()
    );
}

#[test]
fn a_huge_error_envelope_keeps_100_entries_and_bounds_meta() {
    let big_meta = format!(r#"{{"blob":"{}"}}"#, "z".repeat(20_000));
    let mut body = String::from(r#"{"errors":["#);
    let mut n = 0;
    while body.len() < 900_000 {
        if n > 0 {
            body.push(',');
        }
        let meta = if n == 0 {
            big_meta.as_str()
        } else {
            r#"{"url":"u"}"#
        };
        body.push_str(&format!(
            r#"{{"code":{n},"title":"t{n}","detail":["d",1],"meta":{meta}}}"#
        ));
        n += 1;
    }
    body.push_str(r#","not an object",7]}"#);
    let (err, peak) = failed_send(Step::json(500, &body));
    assert_eq!(err.api_errors().len(), 100);
    assert_eq!(err.api_error_count(), n);
    let first = &err.api_errors()[0];
    // A `meta` over 8 KiB stays in the body only; small ones are kept.
    assert_eq!(first.meta(), None);
    assert_eq!(err.api_errors()[1].meta().unwrap()["url"], "u");
    assert_eq!(first.code(), Some("0"));
    assert_eq!(first.detail(), Some(r#"["d",1]"#));
    assert!(
        err.to_string().contains(&format!("and {} more", n - 1)),
        "{err}"
    );
    assert!(
        peak < 4 * body.len(),
        "peak {peak} for {} bytes",
        body.len()
    );
    assert_eq!(err.kind(), ErrorKind::Api);
}
