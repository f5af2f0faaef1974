//! The `telnyx-sms` binary, run as a script would run it, against servers on 127.0.0.1.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use mockito::Matcher;
use serde_json::{Value, json};

use crate::KEY;
use crate::support::{ScriptServer, Step};

const PATH: &str = "/v2/ai/assistants/asst-cli/chat/sms";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the binary with `args`, the key in the environment (when `with_key`), no proxy and
/// optional stdin; asserts the key appears in no output.
fn run_with(args: &[&str], with_key: bool, stdin: Option<&str>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_telnyx-sms"));
    cmd.args(args);
    for v in crate::support::SCRUBBED_ENV {
        cmd.env_remove(v);
    }
    if with_key {
        cmd.env("TELNYX_API_KEY", KEY);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
    }
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    };
    for text in [&run.stdout, &run.stderr] {
        assert!(
            !text.contains(KEY) && !text.contains("secret0123"),
            "key leaked: {text}"
        );
    }
    run
}

fn run(args: &[&str]) -> Run {
    run_with(args, true, None)
}

/// `send --assistant-id ID --from +1 --to +2 --base-url URL` plus `extra`.
fn send_args<'a>(id: &'a str, url: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "send",
        "--assistant-id",
        id,
        "--from",
        "+1",
        "--to",
        "+2",
        "--base-url",
        url,
    ];
    args.extend_from_slice(extra);
    args
}

fn send_to(id: &str, url: &str, extra: &[&str]) -> Run {
    run(&send_args(id, url, extra))
}

fn base(server: &mockito::Server) -> String {
    format!("{}/v2", server.url())
}

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
fn stdout_is_an_empty_line_when_the_server_sends_no_id() {
    let mut server = mockito::Server::new();
    let m = server.mock("POST", PATH).with_body("{}").expect(1).create();
    let r = send_to("asst-cli", &base(&server), &[]);
    m.assert();
    assert_eq!((r.code, r.stdout.as_str()), (0, "\n"));
}

#[test]
fn json_output_on_success() {
    let mut server = mockito::Server::new();
    server
        .mock("POST", PATH)
        .with_header("x-request-id", "req-cli")
        .with_body(r#"{"conversation_id":"conv-j"}"#)
        .expect(1)
        .create();
    let r = send_to("asst-cli", &base(&server), &["--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        v,
        json!({"conversation_id": "conv-j", "request_id": "req-cli"})
    );
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
        .expect(2)
        .create();
    let doc = r#"{"from":"+15550001111","to":"+15550002222","text":"from file","conversation_metadata":{"zip":"02134","n":1}}"#;
    let path = std::env::temp_dir().join(format!("telnyx-sms-req-{}.json", std::process::id()));
    std::fs::write(&path, doc).unwrap();
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
    let r = run_with(&args, true, Some(doc));
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
fn request_file_is_validated_like_the_library() {
    let mut server = mockito::Server::new();
    let any = server.mock("POST", Matcher::Any).expect(0).create();
    let url = base(&server);
    for (doc, want) in [
        (
            r#"{"from":"+1","to":"+2","conversation_metadata":{"score":1.5}}"#,
            "a string, an integer or a boolean",
        ),
        (
            r#"{"from":"+1","to":"+2","txt":"typo"}"#,
            "unknown field `txt`",
        ),
        (r#"{"from":"+1"}"#, "body.to: field required"),
        ("not json", "--request stdin"),
    ] {
        let r = run_with(
            &[
                "send",
                "--assistant-id",
                "asst-cli",
                "--request",
                "-",
                "--base-url",
                &url,
            ],
            true,
            Some(doc),
        );
        assert_eq!(r.code, 2, "{doc}: {}", r.stderr);
        assert!(r.stderr.contains(want), "{doc}: {}", r.stderr);
        assert_eq!(r.stdout, "");
    }
    any.assert();
}

#[test]
fn dry_run_sends_nothing_and_redacts_the_key() {
    let mut server = mockito::Server::new();
    let any = server.mock("POST", Matcher::Any).expect(0).create();
    let url = base(&server);
    let r = run(&[
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
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let want = format!(
        "POST {url}/ai/assistants/a%2Fb/chat/sms\nauthorization: Bearer [REDACTED]\n\
         content-type: application/json\naccept: application/json\nuser-agent: telnyx-assistant-sms/{}\n\
         x-stainless-retry-count: 0\nidempotency-key: k1\n\n{{\"from\":\"+1\",\"to\":\"+2\",\"text\":\"hi\"}}\n",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(r.stdout, want);

    let r = send_to("a", &url, &["--dry-run", "--json"]);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["headers"]["authorization"], "Bearer [REDACTED]");
    assert_eq!(v["body"], json!({"from": "+1", "to": "+2"}));
    any.assert();
}

#[test]
fn exit_code_2_for_usage_validation_and_configuration() {
    // Appended to a complete `send --assistant-id a --from +1 --to +2`.
    let after_complete: &[(&[&str], &str)] = &[
        (
            &["--bogus"],
            "unknown option '--bogus'; see 'telnyx-sms --help'",
        ),
        (
            &["--meta-int", "n=x"],
            "--meta-int n=x: 'x' is not an integer",
        ),
        (&["--meta-bool", "v=yes"], "expected true or false"),
        (&["--meta", "novalue"], "expected KEY=VALUE"),
        (
            &["--timeout", "0"],
            "--timeout 0: expected a number of seconds",
        ),
        (&["--max-retries", "-1"], "--max-retries -1"),
        (&["--api-key", "x"], "there is no --api-key"),
        (&["--text", ""], "body.text: must not be blank"),
        (&["--idempotency-key", "bad key"], "header.Idempotency-Key"),
        (
            &["--base-url", "http://example.com/v2"],
            "plain http to a host that is not loopback",
        ),
        (
            &["--to", " "],
            "invalid request, nothing was sent: body.to: must not be blank",
        ),
        (&["--assistant-id", ".."], "path.assistant_id"),
        (&["--to"], "--to needs a value"),
    ];
    let complete = ["send", "--assistant-id", "a", "--from", "+1", "--to", "+2"];
    let mut cases: Vec<(Vec<&str>, &str)> = after_complete
        .iter()
        .map(|(extra, want)| ([&complete[..], extra].concat(), *want))
        .collect();
    cases.extend([
        (
            vec!["send", "--from", "+1", "--to", "+2"],
            "missing --assistant-id; see 'telnyx-sms --help'",
        ),
        (
            vec!["send", "--assistant-id", "a", "--to", "+2"],
            "missing --from",
        ),
        (vec!["frobnicate"], "unknown command 'frobnicate'"),
        (vec![], "missing command 'send'"),
    ]);
    for (args, want) in &cases {
        let r = run(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(want), "{args:?}: {}", r.stderr);
        assert_eq!(r.stdout, "", "{args:?}");
        assert_eq!(r.stderr.lines().count(), 1, "one line: {}", r.stderr);
    }
    // No key at all: a configuration error, also 2.
    let r = run_with(&complete, false, None);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("TELNYX_API_KEY is not set"),
        "{}",
        r.stderr
    );
}

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
    let r = send_to("asst-cli", &url, &[]);
    assert_eq!(r.code, 3);
    assert_eq!(r.stdout, "");
    assert_eq!(
        r.stderr,
        "telnyx-sms: api error: http 422 unprocessable entity: body.to: invalid number (request id req-422)\n"
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
    let v: Value = serde_json::from_str(&r.stderr).unwrap();
    assert_eq!(v["error"]["kind"], "api");
    assert_eq!(v["error"]["status"], 401);
    assert_eq!(v["error"]["request_id"], "req-401");
    assert_eq!(v["error"]["errors"][0]["code"], "10009");
    assert_eq!(v["error"]["errors"][0]["title"], "Authentication failed");
    m.assert();
}

#[test]
fn exit_code_4_for_transport_failures_says_whether_it_was_sent() {
    let addr = crate::support::closed_port();
    let url = format!("http://{addr}/v2");
    let r = send_to("a", &url, &["--max-retries", "0"]);
    assert_eq!(r.code, 4);
    assert!(r.stderr.contains("the sms was not sent"), "{}", r.stderr);

    let server = ScriptServer::start(vec![Step::Silent(std::time::Duration::from_secs(5))]);
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
fn exit_code_1_for_an_unreadable_answer_to_an_accepted_request() {
    let mut server = mockito::Server::new();
    server
        .mock("POST", PATH)
        .with_body("<html>")
        .expect(1)
        .create();
    let r = send_to("asst-cli", &base(&server), &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("accepted request"), "{}", r.stderr);
}

#[test]
fn max_retries_flag_is_honoured() {
    let server = ScriptServer::start(vec![Step::json(503, "{}")]);
    let url = server.base_url();
    let r = send_to("a", &url, &["--max-retries", "1"]);
    assert_eq!(r.code, 3);
    assert_eq!(server.request_count(), 2);
    assert!(r.stderr.contains("after 2 attempts"), "{}", r.stderr);
}

#[test]
fn api_key_file_is_read_and_trimmed() {
    let mut server = mockito::Server::new();
    let m = server
        .mock("POST", PATH)
        .match_header("authorization", "Bearer FILEKEY123")
        .with_body("{}")
        .expect(1)
        .create();
    let path = std::env::temp_dir().join(format!("telnyx-sms-key-{}", std::process::id()));
    std::fs::write(&path, "FILEKEY123\n").unwrap();
    let url = base(&server);
    let args = send_args(
        "asst-cli",
        &url,
        &["--api-key-file", path.to_str().unwrap()],
    );
    let r = run_with(&args, false, None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    m.assert();
    std::fs::remove_file(path).ok();
}

#[test]
fn help_and_version() {
    let r = run(&["--help"]);
    assert_eq!(r.code, 0);
    for flag in [
        "--assistant-id",
        "--from",
        "--to",
        "--text",
        "--meta ",
        "--meta-int",
        "--meta-bool",
        "--create-conversation",
        "--request",
        "--idempotency-key",
        "--api-key-file",
        "--base-url",
        "--timeout",
        "--max-retries",
        "--json",
        "--dry-run",
        "TELNYX_API_KEY",
        "TELNYX_BASE_URL",
        "default: 60",
        "default: 2",
        "EXIT CODES",
    ] {
        assert!(r.stdout.contains(flag), "--help lacks {flag}");
    }
    assert_eq!(run(&["send", "--help"]).stdout, r.stdout);
    let r = run(&["--version"]);
    assert_eq!(
        r.stdout,
        format!("telnyx-sms {}\n", env!("CARGO_PKG_VERSION"))
    );
}
