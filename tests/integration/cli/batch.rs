//! `telnyx-sms send-batch` against the Telnyx-like server on 127.0.0.1: input order, keys,
//! validation before any send, duplicates, concurrency, rate, dry runs, and a batch killed
//! part-way and run again.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use telnyx_assistant_sms::{BatchOptions, SendSmsRequest};

use crate::cli::{Run, command, finish, results, run_with, temp_file};
use crate::support::telnyx::{Fault, Telnyx};
use crate::support::{Recorded, ScriptServer, Step};

fn telnyx_server(model: &Telnyx) -> ScriptServer {
    ScriptServer::builder().handler(model.handler()).start()
}

/// `send-batch --assistant-id asst-b --input INPUT --base-url URL` plus `extra`.
fn batch_args<'a>(input: &'a str, url: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "send-batch",
        "--assistant-id",
        "asst-b",
        "--input",
        input,
        "--base-url",
        url,
    ];
    args.extend_from_slice(extra);
    args
}

/// [`batch_args`] run with the key in the environment, the input written to a file named for
/// `name`.
fn batch(name: &str, url: &str, input: &str, extra: &[&str]) -> Run {
    let path = temp_file(name, input.as_bytes());
    // The default journal sits beside the input: none from an earlier run of the suite.
    let journal = format!("{}.journal", path.display());
    let _ = std::fs::remove_file(&journal);
    let r = run_with(&batch_args(path.to_str().unwrap(), url, extra), true, None);
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&journal);
    r
}

fn line(to: &str, text: &str) -> String {
    format!(r#"{{"from":"+15550001111","to":"{to}","text":"{text}"}}"#)
}

#[test]
fn results_come_in_input_order_with_derived_keys() {
    // The first line is slow: it finishes last, yet its result is printed first.
    let server = ScriptServer::with_handler(|r: &Recorded| {
        if r.json()["text"] == "first" {
            Step::ok().delayed(Duration::from_millis(300))
        } else {
            Step::ok()
        }
    });
    let input = [
        line("+15550000001", "first"),
        String::new(), // blank lines are skipped, their numbers kept
        line("+15550000002", "second"),
        line("+15550000003", "third"),
    ]
    .join("\n");
    let r = batch("order", &server.base_url(), &input, &["--concurrency", "3"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let res = results(&r);
    let lines: Vec<u64> = res.iter().map(|v| v["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [1, 3, 4]);
    // Keys are derived with the journal's random id: not the digest of the request alone.
    let unsalted = BatchOptions::new();
    for (v, (to, text)) in res.iter().zip([
        ("+15550000001", "first"),
        ("+15550000002", "second"),
        ("+15550000003", "third"),
    ]) {
        assert_eq!(v["result"], "sent", "{v}");
        assert_eq!(v["conversation_id"], "conv-42");
        assert_eq!(v["attempts"], 1);
        let req = SendSmsRequest::new("+15550001111", to).text(text);
        let plain = unsalted.idempotency_key_for("asst-b", &req).unwrap();
        let key = v["idempotency_key"].as_str().unwrap();
        assert!(
            key.starts_with("batch-") && key.len() == plain.len(),
            "{key}"
        );
        assert_ne!(key, plain);
    }
    // The server saw exactly those keys.
    let mut seen: Vec<String> = server
        .requests()
        .iter()
        .map(|q| q.header("idempotency-key").unwrap().to_owned())
        .collect();
    let mut printed: Vec<String> = res
        .iter()
        .map(|v| v["idempotency_key"].as_str().unwrap().to_owned())
        .collect();
    seen.sort();
    printed.sort();
    assert_eq!(seen, printed);
    let last = r.stderr.lines().last().unwrap();
    assert!(
        last.starts_with("3 lines: 3 sent, 0 failed, 0 invalid in "),
        "{}",
        r.stderr
    );
    assert_eq!(
        r.stderr.lines().count(),
        1,
        "no progress noise off a terminal"
    );
}

#[test]
fn an_invalid_line_stops_the_batch_before_any_send() {
    let server = ScriptServer::start(vec![Step::ok()]);
    let input = [
        line("+15550000001", "ok"),
        r#"{"from":"+15550001111","to":"","text":"no recipient"}"#.to_owned(),
        "not json at all".to_owned(),
        r#"{"from":"+15550001111","to":"+15550000004","txt":"typo"}"#.to_owned(),
        "[1, 2]".to_owned(),
        line("+15550000006", "ok"),
    ]
    .join("\n");
    let r = batch("invalid", &server.base_url(), &input, &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(server.request_count(), 0);
    assert_eq!(r.stdout, "");
    let err: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(err.len(), 5, "{}", r.stderr);
    // Given, but empty: said so (as `send --to ""` says it).
    assert_eq!(err[0], "telnyx-sms: line 2: body.to: must not be empty");
    assert!(
        err[1].starts_with("telnyx-sms: line 3: not valid JSON"),
        "{}",
        err[1]
    );
    assert!(
        err[2].starts_with("telnyx-sms: line 4: unknown field `txt`"),
        "{}",
        err[2]
    );
    assert!(
        err[3].starts_with("telnyx-sms: line 5: expected a JSON object"),
        "{}",
        err[3]
    );
    assert_eq!(
        err[4],
        "telnyx-sms: 4 of 6 lines are invalid, so nothing was sent (--skip-invalid sends the \
         valid lines and reports the invalid ones)"
    );

    // --skip-invalid sends the rest and reports the invalid ones as results: exit 5.
    let r = batch("skip", &server.base_url(), &input, &["--skip-invalid"]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert_eq!(server.request_count(), 2);
    let res = results(&r);
    let kinds: Vec<(u64, &str)> = res
        .iter()
        .map(|v| (v["line"].as_u64().unwrap(), v["result"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            (1, "sent"),
            (2, "invalid"),
            (3, "invalid"),
            (4, "invalid"),
            (5, "invalid"),
            (6, "sent")
        ]
    );
    assert_eq!(res[1]["violations"][0]["field"], "body.to");
    assert!(
        r.stderr
            .contains("6 lines: 2 sent, 0 failed, 4 invalid in "),
        "{}",
        r.stderr
    );
}

#[test]
fn from_fills_lines_without_one_and_json_mode_reports_in_json() {
    let model = Telnyx::new();
    let server = telnyx_server(&model);
    let input = [
        r#"{"to":"+15550000001","text":"a"}"#,
        r#"{"from":"+15559999999","to":"+15550000002","text":"b"}"#,
        r#"{"to":"+15550000003"}"#,
    ]
    .join("\r\n");
    let r = batch(
        "from",
        &server.base_url(),
        &input,
        &["--from", "+15550001111", "--json"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let froms: Vec<String> = model
        .performed()
        .iter()
        .map(|p| {
            let v: Value = serde_json::from_slice(&p.body).unwrap();
            v["from"].as_str().unwrap().to_owned()
        })
        .collect();
    let mut froms = froms;
    froms.sort();
    assert_eq!(froms, ["+15550001111", "+15550001111", "+15559999999"]);
    let summary: Value = serde_json::from_str(r.stderr.trim()).unwrap();
    assert_eq!(summary["summary"]["lines"], 3);
    assert_eq!(summary["summary"]["sent"], 3);
    assert_eq!(summary["summary"]["dry_run"], false);
}

#[test]
fn duplicates_are_sent_once_and_failures_exit_5() {
    let model = Telnyx::new().faults(|r, _| {
        if r.json()["text"] == "refused" {
            Fault::before(422)
        } else {
            Fault::None
        }
    });
    let server = telnyx_server(&model);
    let input = [
        line("+15550000001", "hello"),
        line("+15550000001", "hello"),
        r#"{"from":"+15550001111","to":"+15550000002","text":"refused","idempotency_key":"my-key-1"}"#
            .to_owned(),
    ]
    .join("\n");
    let r = batch("dup", &server.base_url(), &input, &["--max-retries", "0"]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    let res = results(&r);
    assert_eq!(res[0]["result"], "sent");
    assert_eq!(res[1]["result"], "duplicate");
    assert_eq!(res[1]["of_line"], 1);
    assert_eq!(res[1]["idempotency_key"], res[0]["idempotency_key"]);
    assert_eq!(res[2]["result"], "failed");
    assert_eq!(res[2]["kind"], "api");
    assert_eq!(res[2]["status"], 422);
    assert_eq!(res[2]["idempotency_key"], "my-key-1");
    assert_eq!(res[2]["may_have_been_sent"], false);
    assert_eq!(res[2]["attempts"], 1);
    assert_eq!(model.performed().len(), 1);
    assert!(
        r.stderr
            .contains("3 lines: 1 sent, 1 duplicate, 1 failed, 0 invalid in "),
        "{}",
        r.stderr
    );
}

/// The keys of a JSON object's text, in the order written (a `Value` would sort them).
fn keys_in_order(json: &str) -> Vec<String> {
    struct Keys;
    impl<'de> serde::de::Visitor<'de> for Keys {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut m: A,
        ) -> Result<Vec<String>, A::Error> {
            let mut keys = Vec::new();
            while let Some((k, _)) = m.next_entry::<String, serde::de::IgnoredAny>()? {
                keys.push(k);
            }
            Ok(keys)
        }
    }
    let mut de = serde_json::Deserializer::from_str(json);
    serde::Deserializer::deserialize_map(&mut de, Keys).unwrap()
}

#[test]
fn result_lines_put_line_result_and_key_first_in_a_fixed_order() {
    let model = Telnyx::new().faults(|r, _| {
        if r.json()["text"] == "refused" {
            Fault::before(422)
        } else {
            Fault::None
        }
    });
    let server = telnyx_server(&model);
    let input = [
        line("+15550000001", "hello"),
        line("+15550000001", "hello"),
        line("+15550000002", "refused"),
        r#"{"from":"+15550001111","text":"no to"}"#.to_owned(),
    ]
    .join("\n");
    let r = batch(
        "order",
        &server.base_url(),
        &input,
        &["--max-retries", "0", "--skip-invalid"],
    );
    assert_eq!(r.code, 5, "{}", r.stderr);
    let keys: Vec<Vec<String>> = r.stdout.lines().map(keys_in_order).collect();
    let want: [&[&str]; 4] = [
        &[
            "line",
            "result",
            "idempotency_key",
            "conversation_id",
            "request_id",
            "attempts",
        ],
        &["line", "result", "idempotency_key", "of_line"],
        &[
            "line",
            "result",
            "idempotency_key",
            "kind",
            "status",
            "message",
            "request_id",
            "attempts",
            "may_have_been_sent",
        ],
        &["line", "result", "idempotency_key", "violations"],
    ];
    assert_eq!(keys, want, "{}", r.stdout);
    // A violation has the same fields in the same order everywhere.
    let invalid = r.stdout.lines().nth(3).unwrap();
    let v = invalid.split("\"violations\":[").nth(1).unwrap();
    assert_eq!(
        keys_in_order(v.trim_end_matches("]}")),
        ["field", "message", "code", "flag"]
    );
    assert!(
        r.stdout
            .starts_with("{\"line\":1,\"result\":\"sent\",\"idempotency_key\":\"batch-")
    );

    // A dry run: the body exactly as it would be sent (its own field order), after the key.
    let r = batch(
        "order-dry",
        &server.base_url(),
        &line("+15550000003", "x"),
        &["--dry-run"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out = r.stdout.trim_end();
    assert_eq!(
        keys_in_order(out),
        ["line", "result", "idempotency_key", "method", "url", "body"]
    );
    assert!(
        out.ends_with(r#""body":{"from":"+15550001111","to":"+15550000003","text":"x"}}"#),
        "{out}"
    );
}

#[test]
fn an_invalid_line_reports_the_key_it_gave() {
    let server = ScriptServer::start(vec![Step::ok()]);
    let input = [
        // Invalid in itself, with its own key.
        r#"{"from":"+15550001111","to":"","idempotency_key":"own-key-1"}"#.to_owned(),
        // Valid, and its key is reused by the next line with another request.
        r#"{"from":"+15550001111","to":"+15550000002","text":"a","idempotency_key":"own-key-2"}"#
            .to_owned(),
        r#"{"from":"+15550001111","to":"+15550000003","text":"b","idempotency_key":"own-key-2"}"#
            .to_owned(),
        // Not a request at all, yet its key can be read.
        r#"{"to":"+15550000004","txt":"typo","idempotency_key":"own-key-4"}"#.to_owned(),
        // No key of its own: none to report.
        r#"{"from":"+15550001111"}"#.to_owned(),
    ]
    .join("\n");
    let r = batch("own-key", &server.base_url(), &input, &["--skip-invalid"]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    let res = results(&r);
    let got: Vec<(&str, &Value)> = res
        .iter()
        .map(|v| (v["result"].as_str().unwrap(), &v["idempotency_key"]))
        .collect();
    assert_eq!(
        got,
        [
            ("invalid", &Value::from("own-key-1")),
            ("sent", &Value::from("own-key-2")),
            ("invalid", &Value::from("own-key-2")),
            ("invalid", &Value::from("own-key-4")),
            ("invalid", &Value::Null),
        ],
        "{}",
        r.stdout
    );
    assert_eq!(res[2]["violations"][0]["code"], "duplicate_key");
}

#[test]
fn a_byte_order_mark_starting_a_later_line_is_dropped() {
    // Two files saved by a Windows editor, joined with cat: each starts with a BOM.
    let server = ScriptServer::start(vec![Step::ok()]);
    let input = format!(
        "\u{feff}{}\n\u{feff}{}\n",
        line("+15550000001", "a"),
        line("+15550000002", "b")
    );
    let r = batch("bom", &server.base_url(), &input, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(server.request_count(), 2);
    assert_eq!(results(&r)[1]["line"], 2);

    // Anywhere else in a line, it is named.
    let input = format!("{}\n[\u{feff}]\n", line("+15550000001", "a"));
    let r = batch("bom-mid", &server.base_url(), &input, &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.starts_with(
            "telnyx-sms: line 2: not valid JSON: expected value at line 1 column 2 (column 2 \
             holds a byte-order mark, U+FEFF"
        ),
        "{}",
        r.stderr
    );
}

#[test]
fn lines_without_from_get_one_hint_about_from() {
    let server = ScriptServer::start(vec![Step::ok()]);
    let input = [
        r#"{"to":"+15550000001","text":"a"}"#,
        r#"{"to":"+15550000002","text":"b"}"#,
        r#"{"from":"","to":"+15550000003","text":"c"}"#,
    ]
    .join("\n");
    let r = batch("no-from", &server.base_url(), &input, &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(server.request_count(), 0);
    let err: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(
        err,
        [
            "telnyx-sms: line 1: body.from: field required",
            "telnyx-sms: line 2: body.from: field required",
            "telnyx-sms: line 3: body.from: must not be empty",
            "telnyx-sms: 3 of 3 lines are invalid, so nothing was sent; 2 lines have no \
             \"from\": give --from NUMBER to send them from your number (--skip-invalid sends \
             the valid lines and reports the invalid ones)",
        ]
    );
    let r = batch("no-from-json", &server.base_url(), &input, &["--json"]);
    let e = crate::cli::json_error(&r.stderr);
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("give --from NUMBER"),
        "{e}"
    );
    // With --skip-invalid, a note says it once before the summary.
    let r = batch(
        "no-from-skip",
        &server.base_url(),
        &input,
        &["--skip-invalid"],
    );
    assert_eq!(r.code, 5, "{}", r.stderr);
    assert_eq!(
        r.stderr.lines().next().unwrap(),
        "telnyx-sms: note: 2 lines have no \"from\": give --from NUMBER to send them from your \
         number"
    );
    // With --from, every line has one; an empty --from is refused once, in send's words.
    let r = batch(
        "no-from-ok",
        &server.base_url(),
        &input,
        &["--from", "+15550001111"],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(!r.stderr.contains("give --from"), "{}", r.stderr);
    let r = batch("no-from-empty", &server.base_url(), &input, &["--from", ""]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (
            2,
            "telnyx-sms: invalid request, nothing was sent: --from: must not be empty \
             (body.from)\n"
        )
    );
}

#[test]
fn an_invalid_line_has_the_violation_shape_of_send() {
    let server = ScriptServer::start(vec![Step::ok()]);
    let r = batch(
        "shape",
        &server.base_url(),
        r#"{"to":""}"#,
        &["--from", "", "--skip-invalid", "--json"],
    );
    // (--from "" is refused before any line is read, as `send --from ""` is refused.)
    assert_eq!(r.code, 2, "{}", r.stderr);
    let batch_err = crate::cli::json_error(&r.stderr);
    let send = crate::cli::run(&[
        "send",
        "--assistant-id",
        "asst-b",
        "--from",
        "",
        "--to",
        "+2",
        "--base-url",
        "http://127.0.0.1:9/v2",
        "--json",
    ]);
    let send_err = crate::cli::json_error(&send.stderr);
    assert_eq!(batch_err["violations"], send_err["violations"]);
    assert_eq!(batch_err["message"], send_err["message"]);

    let r = batch(
        "shape-line",
        &server.base_url(),
        r#"{"from":"+15550001111","to":""}"#,
        &["--skip-invalid"],
    );
    assert_eq!(
        results(&r)[0]["violations"],
        serde_json::json!([{
            "field": "body.to", "message": "must not be empty", "code": "blank", "flag": null
        }])
    );
}

#[test]
fn concurrency_and_rate_are_kept() {
    let model = Telnyx::new().delay(Duration::from_millis(40));
    let server = telnyx_server(&model);
    let input: Vec<String> = (0..12)
        .map(|i| line(&format!("+155500{i:05}"), "c"))
        .collect();
    let r = batch(
        "conc",
        &server.base_url(),
        &input.join("\n"),
        &["--concurrency", "3"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(server.max_in_flight(), 3);

    let server = ScriptServer::start(vec![Step::ok()]);
    let r = batch(
        "rate",
        &server.base_url(),
        &input.join("\n"),
        &["--concurrency", "4", "--rate", "25"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let at: Vec<_> = server.requests().iter().map(|q| q.at).collect();
    crate::batch::assert_paced(&at, 25.0);
}

#[test]
fn a_dry_run_checks_everything_and_sends_nothing() {
    let server = ScriptServer::start(vec![Step::ok()]);
    let input = [line("+15550000001", "a"), line("+15550000002", "b")].join("\n");
    let path = temp_file("dry", input.as_bytes());
    let url = server.base_url();
    let args = batch_args(
        path.to_str().unwrap(),
        &url,
        &["--dry-run", "--key-prefix", "job-9-", "--no-journal"],
    );
    // No API key needed.
    let r = run_with(&args, false, None);
    let _ = std::fs::remove_file(&path);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(server.request_count(), 0);
    let res = results(&r);
    assert_eq!(res.len(), 2);
    assert_eq!(res[0]["result"], "dry-run");
    assert_eq!(res[0]["method"], "POST");
    assert_eq!(
        res[0]["url"],
        format!("{url}/ai/assistants/asst-b/chat/sms")
    );
    assert_eq!(res[1]["body"]["text"], "b");
    let key = BatchOptions::new()
        .key_prefix("job-9-")
        .idempotency_key_for(
            "asst-b",
            &SendSmsRequest::new("+15550001111", "+15550000001").text("a"),
        )
        .unwrap();
    assert_eq!(res[0]["idempotency_key"], key.as_str());
    assert!(
        r.stderr.contains("2 lines: 2 checked, 0 invalid in ") && r.stderr.contains("dry run"),
        "{}",
        r.stderr
    );
}

#[test]
fn stdin_and_empty_input() {
    let server = ScriptServer::start(vec![Step::ok()]);
    let url = server.base_url();
    // Without a journal or --no-journal, stdin is refused: the journal has no default name.
    let r = run_with(&batch_args("-", &url, &[]), true, None);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("needs --journal PATH or --no-journal"),
        "{}",
        r.stderr
    );
    let args = batch_args("-", &url, &["--no-journal", "--key-prefix", "stdin-"]);
    let input = line("+15550000001", "from stdin");
    let r = run_with(&args, true, Some(input.as_bytes()));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(results(&r).len(), 1);
    assert_eq!(server.request_count(), 1);
    let r = run_with(&args, true, Some(b"\n  \n"));
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stderr);
    assert!(r.stderr.starts_with("0 lines: 0 sent"), "{}", r.stderr);
}

#[test]
fn records_name_the_input_line() {
    let server = ScriptServer::start(vec![
        Step::json(503, "{}").header("retry-after-ms", "10"),
        Step::ok(),
    ]);
    let input = ["", &line("+15550000001", "x")].join("\n");
    let r = batch(
        "verbose",
        &server.base_url(),
        &input,
        &["-vv", "--concurrency", "1"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let records: Vec<&str> = r.stderr.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(records.len(), 3, "{}", r.stderr);
    for rec in &records {
        assert!(
            rec.contains("] debug: line=2: attempt ") || rec.contains("] info: line=2: retrying"),
            "{rec}"
        );
        assert!(!rec.contains("request 0"), "{rec}");
    }
}

#[test]
fn odd_lines_are_invalid_not_quietly_changed() {
    let server = ScriptServer::start(vec![Step::ok()]);
    let input = [
        // A repeated field: which "to" was meant?
        r#"{"from":"+15550001111","to":"+15550000001","to":"+15550009999"}"#.to_owned(),
        // An empty "from" is blank, not left out: --from does not fill it.
        r#"{"from":"","to":"+15550000002"}"#.to_owned(),
        line("+15550000003", "fine"),
    ]
    .join("\n");
    let r = batch(
        "odd",
        &server.base_url(),
        &input,
        &["--from", "+15550001111"],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(server.request_count(), 0);
    let err: Vec<&str> = r.stderr.lines().collect();
    assert!(
        err[0].starts_with("telnyx-sms: line 1: duplicate field `to`"),
        "{}",
        err[0]
    );
    assert_eq!(err[1], "telnyx-sms: line 2: body.from: must not be empty");
}

#[test]
fn a_given_key_that_another_line_derives_is_a_conflict_found_before_sending() {
    let server = ScriptServer::start(vec![Step::ok()]);
    let derived = BatchOptions::new()
        .idempotency_key_for(
            "asst-b",
            &SendSmsRequest::new("+15550001111", "+15550000001").text("one"),
        )
        .unwrap();
    let input = [
        line("+15550000001", "one"),
        format!(
            r#"{{"from":"+15550001111","to":"+15550000002","text":"two","idempotency_key":"{derived}"}}"#
        ),
    ]
    .join("\n");
    let r = batch("conflict", &server.base_url(), &input, &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(server.request_count(), 0);
    assert!(
        r.stderr.starts_with(
            "telnyx-sms: line 2: header.Idempotency-Key: is also the key of line 1, with another request"
        ),
        "{}",
        r.stderr
    );
}

#[test]
fn a_dry_run_to_a_closed_stdout_exits_1() {
    let input = line("+15550000001", "a");
    let path = temp_file("dry-closed", input.as_bytes());
    let args = batch_args(
        path.to_str().unwrap(),
        "http://127.0.0.1:9/v2",
        &["--dry-run"],
    );
    let r = finish(
        command(&args, false)
            .stdout(crate::cli::broken_pipe())
            .stderr(Stdio::piped())
            .output()
            .unwrap(),
    );
    let _ = std::fs::remove_file(&path);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("nothing was sent"), "{}", r.stderr);
}

/// Runs the binary with `args` (stdout discarded) and returns its exit code and peak RSS in
/// KiB, read from the kernel as the child is reaped.
///
/// Linux counts into a process's peak the peak of the process that spawned it (exec keeps
/// the larger): run from the test process, which other tests fill, this would measure them.
/// So it runs in a small helper process of its own ([`child_peak_rss`]), and is compared with
/// the peak of `--version` spawned the same way.
#[cfg(target_os = "linux")]
// Reaped by `wait4` below, which std's `wait` cannot do (it gives no resource usage).
#[allow(clippy::zombie_processes)]
fn peak_rss(args: &[&str]) -> (i32, i64) {
    // With a key, so that a run that needs one checks its input (and does not stop before).
    let child = command(args, true)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid value; wait4 fills it for the child we spawned (std
    // never waits for it, so it is ours to reap).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid);
    (libc::WEXITSTATUS(status), usage.ru_maxrss)
}

const PEAK_HELPER: &str = "cli::batch::child_peak_rss";
const PEAK_INPUT: &str = "TELNYX_TEST_PEAK_INPUT";

#[cfg(target_os = "linux")]
#[test]
fn a_large_input_costs_about_its_size_in_memory() {
    // 100,000 short lines (about 3 MB), then an invalid one: read, checked, and (with
    // --skip-invalid --dry-run) read and printed again, holding no request but the current.
    let mut input = String::new();
    for i in 0..100_000u32 {
        input.push_str(&format!("{{\"to\":\"+1555{i:07}\"}}\n"));
    }
    input.push_str("{\"to\":\"\"}\n");
    let path = temp_file("large", input.as_bytes());
    let out = crate::run_child(PEAK_HELPER, &[(PEAK_INPUT, path.to_str().unwrap())]);
    let _ = std::fs::remove_file(&path);
    let figures: Vec<i64> = out
        .lines()
        .find_map(|l| l.split_once("peak KiB:").map(|(_, f)| f))
        .expect("the helper reports its figures")
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    let [floor, checked, dry_rss] = figures[..] else {
        panic!("{out}")
    };
    // Parsing every line into a request kept (as before) took about 20 times the input.
    let input_kib = (input.len() / 1024) as i64;
    eprintln!(
        "peak RSS: {checked} KiB checking, {dry_rss} KiB dry run, {floor} KiB for --version, \
         input {input_kib} KiB"
    );
    for rss in [checked, dry_rss] {
        assert!(
            rss < floor + 8_192 + 2 * input_kib,
            "peak {rss} KiB for a {input_kib} KiB input (--version: {floor} KiB)"
        );
    }
}

/// [`a_large_input_costs_about_its_size_in_memory`]'s measurements, in a process that holds
/// nothing else: the peaks of `--version`, of checking the input and of a dry run.
#[cfg(target_os = "linux")]
#[test]
#[ignore = "a helper: its parent test runs it in a child process"]
fn child_peak_rss() {
    if !crate::is_child(PEAK_HELPER) {
        return;
    }
    let path = std::env::var(PEAK_INPUT).unwrap();
    let (code, floor) = peak_rss(&["--version"]);
    assert_eq!(code, 0);
    let base = batch_args(&path, "http://127.0.0.1:9/v2", &["--from", "+15550001111"]);
    let (code, checked) = peak_rss(&base);
    assert_eq!(code, 2);
    let mut dry = base.clone();
    dry.extend(["--dry-run", "--skip-invalid"]);
    let (code, dry_rss) = peak_rss(&dry);
    assert_eq!(code, 5);
    println!("peak KiB: {floor} {checked} {dry_rss}");
}
