//! `-v`, `-vv` and `TELNYX_LOG`: the library's records on stderr, as text lines or `--json`
//! objects, in order, with increasing timestamps, never a secret or a piece of personal data,
//! and no change at all without them.

use std::process::Stdio;

use serde_json::Value;

use super::{Run, broken_pipe, command, finish, send_args};
use crate::support::{ScriptServer, Step};

const KEY_ID: &str = "job-verbose-1";

/// 429 (`retry-after-ms: 50`), 503 (`retry-after-ms: 20`), then 200: two retries, no backoff
/// (both refusals, retried by default).
fn retried_server() -> ScriptServer {
    ScriptServer::start(vec![
        Step::json(429, r#"{"errors":[{"title":"slow down"}]}"#)
            .header("retry-after-ms", "50")
            .header("x-request-id", "req-a"),
        Step::json(503, r#"{"errors":[{"title":"oops"}]}"#)
            .header("retry-after-ms", "20")
            .header("x-request-id", "req-b"),
        Step::ok().header("x-request-id", "req-c"),
    ])
}

/// `send` to `server` with a fixed idempotency key, `extra` flags and `env` variables.
fn send(server: &ScriptServer, extra: &[&str], env: &[(&str, &str)]) -> Run {
    let url = server.base_url();
    let mut args = send_args("asst-7", &url, &["--idempotency-key", KEY_ID]);
    args.extend_from_slice(extra);
    let mut cmd = command(&args, true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null());
    finish(cmd.output().unwrap())
}

/// One text record: `[  0.052s] level: message`.
#[derive(Debug)]
struct Line {
    t: f64,
    level: String,
    message: String,
}

/// Every stderr line as a record; fails on a line that is not one (an error line is not).
fn records(stderr: &str) -> Vec<Line> {
    stderr
        .lines()
        .map(|l| {
            let (stamp, rest) = l
                .strip_prefix('[')
                .and_then(|l| l.split_once("s] "))
                .unwrap_or_else(|| panic!("not a record line: {l:?}"));
            assert_eq!(stamp.len(), 7, "timestamp width: {l:?}");
            let (level, message) = rest.split_once(": ").unwrap();
            assert!(["debug", "info", "warn"].contains(&level), "level of {l:?}");
            Line {
                t: stamp.trim().parse().unwrap(),
                level: level.to_owned(),
                message: message.to_owned(),
            }
        })
        .collect()
}

fn assert_increasing(ts: &[f64]) {
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "timestamps: {ts:?}");
}

/// A record without what changes from run to run: its time and an attempt's duration.
fn normalized(l: &Line) -> String {
    let message = match (l.message.rfind(" in "), l.message.rfind(" (request id ")) {
        (Some(a), Some(b)) if l.level == "debug" && a < b => {
            format!("{} in _{}", &l.message[..a], &l.message[b..])
        }
        _ => l.message.clone(),
    };
    format!("{}: {message}", l.level)
}

const RETRY_429: &str = "retrying in 50ms (asked by the server in retry-after-ms): api error: \
     http 429 too many requests: slow down (request id req-a); the server asked to retry \
     after 50ms";
const RETRY_503: &str = "retrying in 20ms (asked by the server in retry-after-ms): api error: \
     http 503 service unavailable: oops (request id req-b); the server asked to retry after 20ms";

#[test]
fn v_shows_the_two_retry_decisions_in_order_and_no_attempt() {
    let server = retried_server();
    let r = send(&server, &["-v"], &[]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "conv-42\n"),
        "{}",
        r.stderr
    );
    let lines = records(&r.stderr);
    let shown: Vec<String> = lines.iter().map(normalized).collect();
    assert_eq!(
        shown,
        [format!("info: {RETRY_429}"), format!("info: {RETRY_503}")]
    );
    assert_increasing(&lines.iter().map(|l| l.t).collect::<Vec<_>>());
    assert_eq!(server.request_count(), 3);
}

#[test]
fn a_backoff_wait_is_named_and_waited() {
    // No header on the second 429: the library's own backoff (1 s x 0.75..1 for a second
    // retry).
    let server = ScriptServer::start(vec![
        Step::json(429, "{}").header("retry-after-ms", "50"),
        Step::json(429, "{}"),
        Step::ok(),
    ]);
    let r = send(&server, &["-vv"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines = records(&r.stderr);
    assert_eq!(lines.len(), 5, "{}", r.stderr);
    let wait = lines[3]
        .message
        .strip_prefix("retrying in ")
        .and_then(|m| m.split_once(" (backoff): api error: http 429"))
        .map(|(w, _)| w)
        .unwrap_or_else(|| panic!("{}", r.stderr));
    let wait_ms: f64 = match wait.strip_suffix("ms") {
        Some(ms) => ms.parse().unwrap(),
        None => wait.strip_suffix('s').unwrap().parse::<f64>().unwrap() * 1000.0,
    };
    assert!((750.0..=1000.0).contains(&wait_ms), "{wait}");
    // The timestamps show the wait: the third attempt ends after it.
    let gap = lines[4].t - lines[3].t;
    assert!(gap * 1000.0 >= wait_ms - 1.0, "{gap} s for {wait}");
}

#[test]
fn vv_adds_each_attempt_interleaved_in_order() {
    let server = retried_server();
    let r = send(&server, &["-vv"], &[]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "conv-42\n"),
        "{}",
        r.stderr
    );
    let lines = records(&r.stderr);
    let shown: Vec<String> = lines.iter().map(normalized).collect();
    let attempt = |n: u32, what: &str, id: &str| {
        format!(
            "debug: attempt {n} to assistant asst-7: {what} in _ (request id {id}, \
             idempotency key {KEY_ID})"
        )
    };
    assert_eq!(
        shown,
        [
            attempt(1, "http 429 too many requests: slow down", "req-a"),
            format!("info: {RETRY_429}"),
            attempt(2, "http 503 service unavailable: oops", "req-b"),
            format!("info: {RETRY_503}"),
            attempt(3, "ok", "req-c"),
        ]
    );
    let ts: Vec<f64> = lines.iter().map(|l| l.t).collect();
    assert_increasing(&ts);
    // The waits happen between a retry line and the next attempt's end.
    assert!(ts[2] - ts[1] >= 0.048, "{ts:?}");
    assert!(ts[4] - ts[3] >= 0.018, "{ts:?}");
    // Counted from the start of the tool, not of the send or the epoch.
    assert!(ts[0] < 5.0, "{ts:?}");
}

#[test]
fn more_v_is_vv_and_v_v_is_vv() {
    let reference: Vec<String> = {
        let server = retried_server();
        let r = send(&server, &["-vv"], &[]);
        records(&r.stderr).iter().map(normalized).collect()
    };
    assert_eq!(reference.len(), 5);
    for flags in [
        &["-v", "-v"][..],
        &["-vvv"],
        &["-v", "--json", "-v"],
        &["--verbose", "--verbose"],
        &["--verbose", "-v"],
    ] {
        let server = retried_server();
        let r = send(&server, flags, &[]);
        assert_eq!(r.code, 0, "{flags:?}: {}", r.stderr);
        let got: Vec<String> = if flags.contains(&"--json") {
            json_records(&r.stderr)
                .iter()
                .map(|m| {
                    normalized(&Line {
                        t: 0.0,
                        level: m["level"].as_str().unwrap().to_owned(),
                        message: m["message"].as_str().unwrap().to_owned(),
                    })
                })
                .collect()
        } else {
            records(&r.stderr).iter().map(normalized).collect()
        };
        assert_eq!(got, reference, "{flags:?}");
    }
}

#[test]
fn telnyx_log_debug_is_vv_and_info_is_v_and_the_flag_wins() {
    let run = |extra: &[&str], env: &[(&str, &str)]| -> Vec<String> {
        let server = retried_server();
        let r = send(&server, extra, env);
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (0, "conv-42\n"),
            "{}",
            r.stderr
        );
        records(&r.stderr).iter().map(normalized).collect()
    };
    let vv = run(&["-vv"], &[]);
    let v = run(&["-v"], &[]);
    assert_eq!((vv.len(), v.len()), (5, 2));
    // --verbose is -v.
    assert_eq!(run(&["--verbose"], &[]), v);
    assert_eq!(run(&[], &[("TELNYX_LOG", "debug")]), vv);
    assert_eq!(run(&[], &[("TELNYX_LOG", "info")]), v);
    assert_eq!(run(&[], &[("TELNYX_LOG", " DEBUG ")]), vv);
    // The flag wins over the variable, whichever asks for more.
    assert_eq!(run(&["-v"], &[("TELNYX_LOG", "debug")]), v);
    assert_eq!(run(&["-vv"], &[("TELNYX_LOG", "off")]), vv);
    // No retry gave up: warn and error show nothing; off and empty nothing at all.
    for quiet in ["warn", "error", "off", ""] {
        assert_eq!(
            run(&[], &[("TELNYX_LOG", quiet)]),
            Vec::<String>::new(),
            "{quiet}"
        );
    }
}

#[test]
fn an_unknown_telnyx_log_is_noted_once_and_the_sms_still_goes() {
    let server = retried_server();
    let r = send(&server, &[], &[("TELNYX_LOG", "verbose\u{1b}[2J")]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "conv-42\n"));
    let lines = records(&r.stderr);
    assert_eq!(lines.len(), 1, "{}", r.stderr);
    assert_eq!(lines[0].level, "warn");
    assert_eq!(
        lines[0].message,
        "TELNYX_LOG='verbose\\u{1b}[2J' is not one of off, error, warn, info, debug: ignored, \
         so nothing is logged (or give -v / -vv)"
    );
    assert_eq!(server.request_count(), 3);

    let server = retried_server();
    let r = send(&server, &["--json"], &[("TELNYX_LOG", "loud")]);
    assert_eq!(r.code, 0);
    let recs = json_records(&r.stderr);
    assert_eq!(recs.len(), 1, "{}", r.stderr);
    assert_eq!(recs[0]["level"], "warn");
    assert!(
        recs[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("TELNYX_LOG='loud' is not one of"),
        "{}",
        r.stderr
    );
}

/// Every stderr line as a JSON object.
fn json_records(stderr: &str) -> Vec<serde_json::Map<String, Value>> {
    stderr
        .lines()
        .map(|l| {
            assert!(l.starts_with(r#"{"t":"#), "t first: {l}");
            match serde_json::from_str::<Value>(l) {
                Ok(Value::Object(m)) => m,
                other => panic!("not a JSON object: {l}: {other:?}"),
            }
        })
        .collect()
}

fn keys(m: &serde_json::Map<String, Value>) -> Vec<&str> {
    let mut k: Vec<&str> = m.keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

#[test]
fn json_vv_gives_one_object_per_record_with_typed_fields() {
    let server = retried_server();
    let r = send(&server, &["--json", "-vv"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(out["conversation_id"], "conv-42");
    let recs = json_records(&r.stderr);
    let levels: Vec<&str> = recs.iter().map(|m| m["level"].as_str().unwrap()).collect();
    assert_eq!(levels, ["debug", "info", "debug", "info", "debug"]);
    let debug_keys = [
        "assistant_id",
        "attempt",
        "duration_ms",
        "idempotency_key",
        "level",
        "message",
        "outcome",
        "request_id",
        "t",
    ];
    let info_keys = [
        "assistant_id",
        "attempt",
        "level",
        "message",
        "t",
        "wait_ms",
        "wait_source",
    ];
    for (i, m) in recs.iter().enumerate() {
        let expected: &[&str] = if i % 2 == 0 { &debug_keys } else { &info_keys };
        assert_eq!(keys(m), expected, "{m:?}");
        assert_eq!(m["assistant_id"], "asst-7");
        assert!(m["t"].is_f64(), "{m:?}");
        assert!(m["attempt"].is_u64(), "attempt is a number: {m:?}");
    }
    for (m, n, outcome, id) in [
        (
            &recs[0],
            1,
            "http 429 too many requests: slow down",
            "req-a",
        ),
        (&recs[2], 2, "http 503 service unavailable: oops", "req-b"),
        (&recs[4], 3, "ok", "req-c"),
    ] {
        assert_eq!(m["attempt"], n);
        assert_eq!(m["outcome"], outcome);
        assert_eq!(m["request_id"], id);
        assert_eq!(m["idempotency_key"], KEY_ID);
        assert!(m["duration_ms"].is_u64(), "{m:?}");
    }
    for (m, next, wait, msg) in [(&recs[1], 2, 50, RETRY_429), (&recs[3], 3, 20, RETRY_503)] {
        assert_eq!(m["attempt"], next);
        assert_eq!(m["wait_ms"], wait);
        assert_eq!(m["wait_source"], "retry-after-ms");
        assert_eq!(m["message"], msg);
    }
    let ts: Vec<f64> = recs.iter().map(|m| m["t"].as_f64().unwrap()).collect();
    assert_increasing(&ts);
    assert!(ts[2] - ts[1] >= 0.0499, "{ts:?}");
}

#[test]
fn a_give_up_shows_the_warn_line_with_the_errors_words() {
    let server = ScriptServer::start(vec![
        Step::json(503, r#"{"errors":[{"title":"down for a bit"}]}"#)
            .header("retry-after-ms", "10"),
    ]);
    let r = send(&server, &["-v", "--max-retries", "2"], &[]);
    assert_eq!(r.code, 3);
    assert_eq!(r.stdout, "");
    let mut lines: Vec<&str> = r.stderr.lines().collect();
    let error = lines.pop().unwrap();
    let recs = records(&(lines.join("\n") + "\n"));
    let levels: Vec<&str> = recs.iter().map(|l| l.level.as_str()).collect();
    assert_eq!(levels, ["info", "info", "warn"], "{}", r.stderr);
    let words = recs[2].message.strip_prefix("giving up: ").unwrap();
    let error_words = error
        .strip_prefix("telnyx-sms: ")
        .and_then(|e| e.split_once("; idempotency key: "))
        .map(|(w, _)| w)
        .unwrap_or_else(|| panic!("{error}"));
    assert_eq!(words, error_words);
    assert!(
        words.starts_with("api error: http 503 service unavailable"),
        "{words}"
    );
    assert_eq!(server.request_count(), 3);

    // --json: the records, then the error object last, with the same words.
    let r = send(&server, &["-v", "--json", "--max-retries", "2"], &[]);
    assert_eq!(r.code, 3);
    let (records_part, error) = r.stderr.trim_end().rsplit_once('\n').unwrap();
    let recs = json_records(records_part);
    let e = super::json_error(error);
    let levels: Vec<&str> = recs.iter().map(|m| m["level"].as_str().unwrap()).collect();
    assert_eq!(levels, ["info", "info", "warn"], "{}", r.stderr);
    let warn = &recs[2];
    assert_eq!(
        keys(warn),
        [
            "assistant_id",
            "attempts",
            "elapsed_ms",
            "level",
            "may_have_been_sent",
            "message",
            "t"
        ]
    );
    assert_eq!(warn["attempts"], 3);
    assert_eq!(warn["may_have_been_sent"], false);
    assert!(warn["elapsed_ms"].as_u64().unwrap() >= 20, "{warn:?}");
    assert_eq!(
        warn["message"].as_str().unwrap(),
        format!("giving up: {}", e["message"].as_str().unwrap())
    );
    assert_eq!(e["attempts"], 3);
}

#[test]
fn without_v_the_output_is_unchanged() {
    let server = retried_server();
    let r = send(&server, &[], &[]);
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (0, "conv-42\n", "")
    );
    assert_eq!(server.request_count(), 3);

    let server = retried_server();
    let r = send(&server, &["--json"], &[]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));

    // A give-up: the error line alone, no warn record beside it.
    let server = ScriptServer::start(vec![Step::json(503, "{}").header("retry-after-ms", "0")]);
    let r = send(&server, &["--max-retries", "2"], &[]);
    assert_eq!(r.code, 3);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr.starts_with("telnyx-sms: api error: http 503"),
        "{}",
        r.stderr
    );
    let r = send(&server, &["--max-retries", "2", "--json"], &[]);
    assert_eq!(r.code, 3);
    super::json_error(&r.stderr);
}

#[test]
fn no_key_text_number_or_metadata_value_in_any_record() {
    let secrets = [
        "+15557654321",
        "+15558765432",
        "SECRETTEXTquokka",
        "metaValueZebra",
        "918273645501",
        "secret0123",
    ];
    for flags in [&["-vv"][..], &["-vv", "--json"]] {
        // A failure too: the give-up and the error's echo of the server must not carry them.
        for server in [
            retried_server(),
            ScriptServer::start(vec![Step::json(503, "{}").header("retry-after-ms", "0")]),
        ] {
            let url = server.base_url();
            let mut args = vec![
                "send",
                "--assistant-id",
                "asst-7",
                "--from",
                secrets[0],
                "--to",
                secrets[1],
                "--text",
                secrets[2],
                "--meta",
                "note=metaValueZebra",
                "--meta-int",
                "order=918273645501",
                "--meta-bool",
                "vip=true",
                "--base-url",
                &url,
            ];
            args.extend_from_slice(flags);
            let r = finish(command(&args, true).stdin(Stdio::null()).output().unwrap());
            assert!(r.stderr.lines().count() >= 4, "{flags:?}: {}", r.stderr);
            for s in secrets {
                assert!(!r.stderr.contains(s), "{s} in {flags:?}: {}", r.stderr);
            }
            // The request did carry them (so their absence means something).
            let sent = String::from_utf8_lossy(&server.requests()[0].body).into_owned();
            for s in &secrets[..5] {
                assert!(sent.contains(s), "{s} not sent: {sent}");
            }
        }
    }
}

#[test]
fn ureq_records_are_not_shown() {
    // ureq logs each request at debug under its own targets; -vv must show only ours, which
    // `records` checks line by line (every line is a record, in our format).
    let server = ScriptServer::start(vec![Step::ok()]);
    let r = send(&server, &["-vv"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines = records(&r.stderr);
    assert_eq!(lines.len(), 1, "{}", r.stderr);
    assert!(
        lines[0]
            .message
            .starts_with("attempt 1 to assistant asst-7: ok in ")
    );
    assert!(!r.stderr.to_lowercase().contains("ureq"), "{}", r.stderr);
}

#[test]
fn a_closed_stderr_does_not_fail_a_sent_sms() {
    for flags in [&["-vv"][..], &["-vv", "--json"]] {
        let server = retried_server();
        let url = server.base_url();
        let mut args = send_args("asst-7", &url, flags);
        args.push("--max-retries");
        args.push("2");
        let mut cmd = command(&args, true);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(broken_pipe());
        let r = finish(cmd.output().unwrap());
        assert_eq!(r.code, 0, "{flags:?}");
        assert!(r.stdout.contains("conv-42"), "{flags:?}: {}", r.stdout);
        assert_eq!(server.request_count(), 3);
    }
    // And with no stderr at all (closed descriptor).
    let server = retried_server();
    let url = server.base_url();
    let args = send_args("asst-7", &url, &["-vv"]);
    let mut cmd = command(&args, true);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let r = finish(cmd.output().unwrap());
    assert_eq!((r.code, r.stdout.as_str()), (0, "conv-42\n"));
}

#[test]
fn v_goes_after_the_command_and_help_says_it_may_repeat() {
    let r = super::run(&["-v", "send"]);
    assert_eq!(r.code, 2);
    assert_eq!(
        r.stderr,
        "telnyx-sms: -v is an option of 'send' and 'send-batch' and goes after the command: \
         telnyx-sms send ... -v; see 'telnyx-sms --help'\n"
    );
    let r = super::run(&["--help"]);
    assert!(r.stdout.contains("-v, -vv, --verbose "), "{}", r.stdout);
    assert!(
        r.stdout.contains("The one flag that may be repeated"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("TELNYX_LOG "), "{}", r.stdout);
}
