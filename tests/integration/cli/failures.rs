//! What the server or the network refuses (exits 3, 4, 1), and output that must survive
//! closed pipes and hostile server text.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

use super::{PATH, base, broken_pipe, command, finish, json_error, run, send_args, send_to};
use crate::support::{ScriptServer, Step};

#[test]
fn exit_code_3_when_the_api_refuses_with_json_details() {
    let mut server = mockito::Server::new();
    let m = server
        .mock("POST", PATH)
        .with_status(422)
        .with_header("x-request-id", "req-422")
        .with_body(
            r#"{"detail":[{"loc":["body","to"],"msg":"invalid number","type":"value_error"}]}"#,
        )
        .expect(1)
        .create();
    let url = base(&server);
    let r = send_to("asst-cli", &url, &["--idempotency-key", "k-422"]);
    assert_eq!(r.code, 3);
    assert_eq!(r.stdout, "");
    assert_eq!(
        r.stderr,
        "telnyx-sms: api error: http 422 unprocessable entity: body.to: invalid number \
         (request id req-422); idempotency key: k-422\n"
    );
    m.assert();

    let m = server
        .mock("POST", PATH)
        .with_status(401)
        .with_header("x-request-id", "req-401")
        .with_body(r#"{"errors":[{"code":"10009","title":"Authentication failed"}]}"#)
        .expect(1)
        .create();
    let r = send_to("asst-cli", &url, &["--json"]);
    assert_eq!(r.code, 3);
    let e = json_error(&r.stderr);
    assert_eq!(e["kind"], "api");
    assert_eq!(e["status"], 401);
    assert_eq!(e["request_id"], "req-401");
    assert_eq!(e["errors"][0]["code"], "10009");
    assert_eq!(e["errors"][0]["title"], "Authentication failed");
    assert_eq!(e["attempts"], 1);
    assert!(e["idempotency_key"].is_string(), "{e}");
    m.assert();
}

#[test]
fn exit_code_4_for_transport_failures_says_whether_it_was_sent() {
    let addr = crate::support::closed_port();
    let url = format!("http://{addr}/v2");
    let r = send_to("a", &url, &["--max-retries", "0"]);
    assert_eq!(r.code, 4);
    assert!(r.stderr.contains("the sms was not sent"), "{}", r.stderr);
    assert!(!r.stderr.contains("re-run"), "{}", r.stderr);

    let server = ScriptServer::start(vec![Step::Silent(Duration::from_secs(5))]);
    let url = server.base_url();
    let r = send_to("a", &url, &["--timeout", "0.5", "--max-retries", "0"]);
    assert_eq!(r.code, 4);
    assert!(
        r.stderr.contains("the sms may have been sent"),
        "{}",
        r.stderr
    );
    assert_eq!(server.request_count(), 1);
}

#[test]
fn a_may_have_been_sent_error_shows_the_key_to_resend_with() {
    let server = ScriptServer::start(vec![Step::Silent(Duration::from_secs(5))]);
    let url = server.base_url();
    let r = send_to("a", &url, &["--timeout", "0.3", "--max-retries", "0"]);
    assert_eq!(r.code, 4);
    let sent = server.requests()[0]
        .header("idempotency-key")
        .unwrap()
        .to_owned();
    assert!(
        r.stderr.ends_with(&format!(
            "; idempotency key: {sent} (check before sending again: a re-run with \
             --idempotency-key {sent} is replayed only by a server that honours keys and only \
             if this attempt succeeded; --journal records it)\n"
        )),
        "{}",
        r.stderr
    );

    let r = send_to(
        "a",
        &url,
        &["--timeout", "0.3", "--max-retries", "0", "--json"],
    );
    let e = json_error(&r.stderr);
    assert_eq!(e["kind"], "transport");
    assert_eq!(e["may_have_been_sent"], true);
    let sent = server.requests()[1]
        .header("idempotency-key")
        .unwrap()
        .to_owned();
    assert_eq!(e["idempotency_key"], sent.as_str());
}

#[test]
fn exit_code_1_for_an_unreadable_answer_to_an_accepted_request() {
    let mut server = mockito::Server::new();
    server
        .mock("POST", PATH)
        .with_body("<html>")
        .expect(1)
        .create();
    let r = send_to("asst-cli", &base(&server), &["--idempotency-key", "k1"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("accepted request"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("idempotency key: k1 (check before sending again"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_sent_sms_exits_0_even_when_stdout_is_closed() {
    for json in [false, true] {
        let server = ScriptServer::start(vec![Step::ok()]);
        let url = server.base_url();
        let mut args = send_args("a", &url, &["--idempotency-key", "job-1"]);
        if json {
            args.push("--json");
        }
        let mut cmd = command(&args, true);
        cmd.stdin(Stdio::null())
            .stdout(broken_pipe())
            .stderr(Stdio::piped());
        let r = finish(cmd.output().unwrap());
        assert_eq!(r.code, 0, "json {json}: {}", r.stderr);
        assert!(
            r.stderr
                .starts_with("telnyx-sms: note: the sms was sent, but stdout could not"),
            "{}",
            r.stderr
        );
        assert!(
            r.stderr
                .contains("conversation id: conv-42; idempotency key: job-1"),
            "{}",
            r.stderr
        );
        assert_eq!(server.request_count(), 1);

        // Nowhere to write at all: still sent, still 0.
        let mut cmd = command(&args, true);
        cmd.stdin(Stdio::null())
            .stdout(broken_pipe())
            .stderr(broken_pipe());
        let r = finish(cmd.output().unwrap());
        assert_eq!(r.code, 0);
        assert_eq!(server.request_count(), 2);
    }
}

#[test]
fn help_version_and_dry_run_to_a_closed_stdout_exit_1_without_panicking() {
    let dry = [
        "send",
        "--assistant-id",
        "a",
        "--from",
        "+1",
        "--to",
        "+2",
        "--dry-run",
    ];
    for args in [
        &["--help"][..],
        &["--version"],
        &["help"],
        &["send", "--help"],
        &dry,
    ] {
        let mut cmd = command(args, true);
        cmd.stdin(Stdio::null())
            .stdout(broken_pipe())
            .stderr(Stdio::piped());
        let r = finish(cmd.output().unwrap());
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("could not write to stdout"),
            "{}",
            r.stderr
        );
        assert!(r.stderr.contains("nothing was sent"), "{}", r.stderr);
    }
}

#[test]
fn errors_keep_their_exit_code_when_stderr_is_closed() {
    let addr = crate::support::closed_port();
    let url = format!("http://{addr}/v2");
    for (args, code) in [
        (vec!["frobnicate"], 2),
        (send_args("a", &url, &["--max-retries", "0"]), 4),
    ] {
        let mut cmd = command(&args, true);
        cmd.stdin(Stdio::null())
            .stdout(broken_pipe())
            .stderr(broken_pipe());
        let r = finish(cmd.output().unwrap());
        assert_eq!(r.code, code, "{args:?}");
    }
}

/// An error body full of what a terminal must never receive raw, and too much of it (within
/// the library's 1 MiB body cap): 150 error entries and 150 violations, the first entry long.
fn hostile_body() -> String {
    let evil = "\u{1b}[31mred\u{1b}[0m\nsecond line\r\u{9b}2J\u{202e}";
    let entry = |n: usize| {
        serde_json::json!({
            "code": evil, "title": evil, "detail": "d".repeat(if n == 0 { 10_000 } else { 10 }),
            "source": {"pointer": "/to"}, "meta": {"big": "m".repeat(if n == 0 { 3_000 } else { 1 })},
        })
    };
    let errors: Vec<Value> = (0..150).map(entry).collect();
    let detail: Vec<Value> = (0..150)
        .map(|_| serde_json::json!({"loc": ["body", evil], "msg": evil, "type": "x"}))
        .collect();
    serde_json::json!({"errors": errors, "detail": detail}).to_string()
}

#[test]
fn server_text_is_escaped_and_capped() {
    let server = ScriptServer::start(vec![Step::json(400, &hostile_body())]);
    let url = server.base_url();

    let r = send_to("a", &url, &["--max-retries", "0"]);
    assert_eq!(r.code, 3);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        !r.stderr.contains(['\u{1b}', '\r', '\u{9b}', '\u{202e}']),
        "{:?}",
        r.stderr
    );
    assert!(
        r.stderr.chars().count() < 1_500,
        "{} chars",
        r.stderr.chars().count()
    );
    assert!(
        r.stderr.contains("idempotency key: "),
        "the key survives the cap: {}",
        r.stderr
    );

    let r = send_to("a", &url, &["--max-retries", "0", "--json"]);
    assert_eq!(r.code, 3);
    assert!(
        !r.stderr.contains(['\u{1b}', '\r', '\u{9b}', '\u{202e}']),
        "{:?}",
        r.stderr
    );
    let e = json_error(&r.stderr);
    let errors = e["errors"].as_array().unwrap();
    let violations = e["violations"].as_array().unwrap();
    assert_eq!((errors.len(), violations.len()), (100, 100));
    assert_eq!(
        errors[0]["title"],
        "\u{1b}[31mred\u{1b}[0m\nsecond line\r\u{9b}2J\u{202e}"
    );
    assert_eq!(errors[0]["detail"].as_str().unwrap().chars().count(), 2_000);
    assert!(errors[0]["detail"].as_str().unwrap().ends_with('…'));
    let meta = errors[0]["meta"]
        .as_str()
        .expect("a long meta becomes cut JSON text");
    assert!(meta.starts_with(r#"{"big":"mmm"#) && meta.chars().count() == 2_000);
    assert!(e["message"].as_str().unwrap().chars().count() <= 2_000);
}

#[test]
fn a_conversation_id_with_control_characters_is_escaped_on_stdout() {
    let body = r#"{"conversation_id":"c-1\u001b[2J\nrm -rf"}"#;
    let server = ScriptServer::start(vec![Step::json(200, body)]);
    let r = send_to("a", &server.base_url(), &[]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "c-1\\u{1b}[2J\\nrm -rf\n"));

    let r = run(&send_args("a", &server.base_url(), &["--json"]));
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["conversation_id"], "c-1\u{1b}[2J\nrm -rf");
}
