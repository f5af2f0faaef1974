//! What `send` puts on the wire and on stdout.

use mockito::Matcher;
use serde_json::{Value, json};

use super::{PATH, base, run, run_with, send_args, send_to, temp_file};
use crate::KEY;
use crate::support::{ScriptServer, Step};

#[test]
fn every_flag_reaches_the_wire() {
    let mut server = mockito::Server::new();
    let m = server
        .mock("POST", PATH)
        .match_header("authorization", format!("Bearer {KEY}").as_str())
        .match_header("content-type", "application/json")
        .match_header("idempotency-key", "job-7_run")
        .match_header("x-stainless-retry-count", "0")
        .match_body(Matcher::Json(json!({
            "from": "+15550001111",
            "to": "+15550002222",
            "text": "Your table is ready",
            "conversation_metadata": {"zip": "02134", "party": 4, "vip": true, "note": "a=b"},
            "should_create_conversation": true
        })))
        .with_body(r#"{"conversation_id":"conv-cli"}"#)
        .expect(1)
        .create();
    let r = run(&[
        "send",
        "--assistant-id",
        "asst-cli",
        "--from",
        "+15550001111",
        "--to",
        "+15550002222",
        "--text",
        "Your table is ready",
        "--meta",
        "zip=02134",
        "--meta",
        "note=a=b",
        "--meta-int",
        "party=4",
        "--meta-bool",
        "vip=true",
        "--create-conversation",
        "--idempotency-key",
        "job-7_run",
        "--base-url",
        &base(&server),
        "--timeout",
        "5",
        "--max-retries",
        "0",
    ]);
    m.assert();
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (0, "conv-cli\n", "")
    );
}

#[test]
fn no_create_conversation_sends_false_and_overrides_the_request_file() {
    let mut server = mockito::Server::new();
    let m = server
        .mock("POST", PATH)
        .match_body(Matcher::Json(
            json!({"from": "+1", "to": "+2", "should_create_conversation": false}),
        ))
        .with_body("{}")
        .expect(2)
        .create();
    let url = base(&server);
    let r = send_to("asst-cli", &url, &["--no-create-conversation"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc = br#"{"from":"+1","to":"+2","should_create_conversation":true}"#;
    let args = [
        "send",
        "--assistant-id",
        "asst-cli",
        "--request",
        "-",
        "--no-create-conversation",
        "--base-url",
        &url,
    ];
    let r = run_with(&args, true, Some(doc));
    assert_eq!(r.code, 0, "{}", r.stderr);
    m.assert();
}

#[test]
fn stdout_is_an_empty_line_when_the_server_sends_no_id() {
    let mut server = mockito::Server::new();
    let m = server.mock("POST", PATH).with_body("{}").expect(1).create();
    let r = send_to("asst-cli", &base(&server), &[]);
    m.assert();
    assert_eq!((r.code, r.stdout.as_str()), (0, "\n"));
}

#[test]
fn json_output_on_success_has_the_idempotency_key_that_was_sent() {
    let mut server = mockito::Server::new();
    server
        .mock("POST", PATH)
        .with_header("x-request-id", "req-cli")
        .with_body(r#"{"conversation_id":"conv-j"}"#)
        .expect(1)
        .create();
    let r = send_to(
        "asst-cli",
        &base(&server),
        &["--json", "--idempotency-key", "job-9"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        v,
        json!({"conversation_id": "conv-j", "request_id": "req-cli", "idempotency_key": "job-9"})
    );

    // Without --idempotency-key: the fresh key, exactly as the server received it.
    let server = ScriptServer::start(vec![Step::ok()]);
    let r = send_to("a", &server.base_url(), &["--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let sent = server.requests()[0]
        .header("idempotency-key")
        .unwrap()
        .to_owned();
    assert_eq!(v["idempotency_key"], sent.as_str());
    assert_eq!(v["conversation_id"], "conv-42");
}

#[test]
fn request_file_with_flags_overriding_it() {
    let mut server = mockito::Server::new();
    let m = server
        .mock("POST", PATH)
        .match_body(Matcher::Json(json!({
            "from": "+15550001111", "to": "+15559999999", "text": "from file",
            "conversation_metadata": {"zip": "02134", "n": 5}
        })))
        .with_body(r#"{"conversation_id":"conv-file"}"#)
        .expect(3)
        .create();
    let doc = r#"{"from":"+15550001111","to":"+15550002222","text":"from file","conversation_metadata":{"zip":"02134","n":1}}"#;
    let path = temp_file("req.json", doc.as_bytes());
    let url = base(&server);
    let overrides = [
        "--to",
        "+15559999999",
        "--meta-int",
        "n=5",
        "--base-url",
        url.as_str(),
    ];

    let mut args = vec![
        "send",
        "--assistant-id",
        "asst-cli",
        "--request",
        path.to_str().unwrap(),
    ];
    args.extend(overrides);
    let r = run(&args);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "conv-file\n"),
        "{}",
        r.stderr
    );

    let mut args = vec!["send", "--assistant-id", "asst-cli", "--request", "-"];
    args.extend(overrides);
    let r = run_with(&args, true, Some(doc.as_bytes()));
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "conv-file\n"),
        "{}",
        r.stderr
    );

    // A UTF-8 byte-order mark first (as some Windows editors write) is dropped.
    let with_bom = [&b"\xEF\xBB\xBF"[..], doc.as_bytes()].concat();
    let r = run_with(&args, true, Some(&with_bom));
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "conv-file\n"),
        "{}",
        r.stderr
    );
    m.assert();
    std::fs::remove_file(path).ok();
}

#[test]
fn dry_run_sends_nothing_and_redacts_the_key() {
    let mut server = mockito::Server::new();
    let any = server.mock("POST", Matcher::Any).expect(0).create();
    let url = base(&server);
    let args = [
        "send",
        "--assistant-id",
        "a/b",
        "--from",
        "+1",
        "--to",
        "+2",
        "--text",
        "hi",
        "--idempotency-key",
        "k1",
        "--base-url",
        &url,
        "--dry-run",
    ];
    let want = format!(
        "POST {url}/ai/assistants/a%2Fb/chat/sms\nauthorization: Bearer [REDACTED]\n\
         content-type: application/json\naccept: application/json\nuser-agent: telnyx-assistant-sms/{}\n\
         x-stainless-retry-count: 0\nidempotency-key: k1\n\n{{\"from\":\"+1\",\"to\":\"+2\",\"text\":\"hi\"}}\n",
        env!("CARGO_PKG_VERSION")
    );
    let r = run(&args);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, want.as_str()),
        "{}",
        r.stderr
    );

    // No key anywhere: a dry run still works (a placeholder, never sent, shown redacted).
    let r = run_with(&args, false, None);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, want.as_str()),
        "{}",
        r.stderr
    );

    let r = send_to("a", &url, &["--dry-run", "--json"]);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["headers"]["authorization"], "Bearer [REDACTED]");
    assert_eq!(v["body"], json!({"from": "+1", "to": "+2"}));
    any.assert();
}

#[test]
fn dry_run_shows_control_characters_as_json_escapes() {
    // DEL, a C1 control (CSI) and a right-to-left override: JSON leaves them raw, the dry run
    // must not.
    let r = send_to(
        "a",
        "http://127.0.0.1:9/v2",
        &["--text", "a\u{7f}b\u{9b}c\u{202e}d", "--dry-run"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let body = r.stdout.lines().last().unwrap();
    assert_eq!(
        body,
        r#"{"from":"+1","to":"+2","text":"a\u007fb\u009bc\u202ed"}"#
    );
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["text"], "a\u{7f}b\u{9b}c\u{202e}d");
}

#[test]
fn max_retries_flag_is_honoured() {
    let server = ScriptServer::start(vec![Step::json(503, "{}").header("retry-after-ms", "1")]);
    let url = server.base_url();
    let r = send_to("a", &url, &["--max-retries", "1"]);
    assert_eq!(r.code, 3);
    assert_eq!(server.request_count(), 2);
    assert!(r.stderr.contains("after 2 attempts"), "{}", r.stderr);
}

#[test]
fn api_key_file_is_read_trimmed_and_its_bom_dropped() {
    let mut server = mockito::Server::new();
    let m = server
        .mock("POST", PATH)
        .match_header("authorization", "Bearer FILEKEY123")
        .with_body("{}")
        .expect(2)
        .create();
    let url = base(&server);
    for (name, content) in [
        ("key-plain", &b"FILEKEY123\n"[..]),
        ("key-bom", &b"\xEF\xBB\xBF  FILEKEY123\r\n"[..]),
    ] {
        let path = temp_file(name, content);
        let args = send_args(
            "asst-cli",
            &url,
            &["--api-key-file", path.to_str().unwrap()],
        );
        let r = run_with(&args, false, None);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        std::fs::remove_file(path).ok();
    }
    m.assert();
}

#[test]
fn a_dry_run_neither_reads_nor_fails_on_a_broken_ssl_cert_file() {
    let args = send_args(
        "asst-cli",
        "https://127.0.0.1:9/v2",
        &["--dry-run", "--text", "hi"],
    );
    let run_env = |args: &[&str]| {
        let mut cmd = crate::cli::command(args, true);
        cmd.env("SSL_CERT_FILE", "/nonexistent/broken-ca.pem");
        crate::cli::finish(cmd.output().unwrap())
    };
    let r = run_env(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("POST https://127.0.0.1:9/v2/ai/assistants/asst-cli/chat/sms"),
        "{}",
        r.stdout
    );
    // A real send needs the certificates: the same variable is a configuration error, before
    // anything is sent (nothing listens at that loopback port anyway).
    let args = send_args("asst-cli", "https://127.0.0.1:9/v2", &["--text", "hi"]);
    let r = run_env(&args);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("SSL_CERT_FILE"), "{}", r.stderr);
}
