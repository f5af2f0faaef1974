//! Everything refused before anything is sent: exit 2, one line on stderr, nothing on stdout,
//! no request on the wire.

use mockito::Matcher;

use super::{Run, base, json_error, run, run_with, send_args, temp_file};

/// A complete `send --assistant-id a --from +1 --to +2`.
const COMPLETE: [&str; 7] = ["send", "--assistant-id", "a", "--from", "+1", "--to", "+2"];

fn refused(args: &[&str], want: &str, r: &Run) {
    assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
    assert!(
        r.stderr.contains(want),
        "{args:?}: want {want:?} in {}",
        r.stderr
    );
    assert_eq!(r.stdout, "", "{args:?}");
    assert_eq!(r.stderr.lines().count(), 1, "one line: {}", r.stderr);
}

/// Runs each case against a server that must receive nothing.
fn all_refused(cases: &[(Vec<&str>, &str)]) {
    let mut server = mockito::Server::new();
    let any = server.mock("POST", Matcher::Any).expect(0).create();
    let url = base(&server);
    for (args, want) in cases {
        let mut args = args.clone();
        if args.first() == Some(&"send") && !args.contains(&"--base-url") {
            args.splice(1..1, ["--base-url", url.as_str()]);
        }
        refused(&args, want, &run(&args));
    }
    any.assert();
}

#[test]
fn exit_code_2_for_usage_validation_and_configuration() {
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
            "--timeout 0: expected a number of seconds from 0.001 to 86400",
        ),
        (
            &["--max-retries", "-1"],
            "--max-retries -1: expected a whole number from 0 to 10",
        ),
        (&["--api-key", "x"], "there is no --api-key"),
        (&["--to"], "--to needs a value"),
        (&["--json=yes"], "--json takes no value"),
        (
            &["hello", "world"],
            "unexpected argument 'hello' (every value follows its option",
        ),
        (&["--version"], "--version goes before the command"),
    ];
    let mut cases: Vec<(Vec<&str>, &str)> = after_complete
        .iter()
        .map(|(extra, want)| ([&COMPLETE[..], extra].concat(), *want))
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
        (vec!["help", "frobnicate"], "unknown command 'frobnicate'"),
        (vec![], "missing command"),
    ]);
    all_refused(&cases);
    // No key at all: a configuration error, also 2, that says how to give one.
    let r = run_with(&COMPLETE, false, None);
    refused(
        &COMPLETE,
        "TELNYX_API_KEY is not set; export it, or give --api-key-file",
        &r,
    );
}

#[test]
fn limits_are_enforced_at_their_edges() {
    let dry = |extra: &[&str]| run(&[&COMPLETE[..], extra, &["--dry-run"]].concat());
    for ok in [
        ["--max-retries", "10"],
        ["--timeout", "86400"],
        ["--timeout", "0.001"],
    ] {
        let r = dry(&ok);
        assert_eq!(r.code, 0, "{ok:?}: {}", r.stderr);
    }
    for bad in [
        ["--max-retries", "11"],
        ["--timeout", "86401"],
        ["--timeout", "0.0009"],
        ["--timeout", "nan"],
    ] {
        let r = dry(&bad);
        assert_eq!(r.code, 2, "{bad:?}: {}", r.stderr);
        assert!(r.stderr.contains(bad[0]), "{}", r.stderr);
    }
    let r = dry(&["--meta-int", "n=9223372036854775808"]);
    assert!(
        r.stderr
            .contains("--meta-int n=9223372036854775808: out of range"),
        "{}",
        r.stderr
    );
    assert_eq!(r.code, 2);
    let r = dry(&["--meta-int", "n=-9223372036854775808"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn an_option_given_twice_is_refused_naming_it() {
    let twice: &[(&[&str], &str)] = &[
        (&["--to", "+3"], "--to was given more than once"),
        (&["--from", "+3"], "--from was given more than once"),
        (
            &["--assistant-id", "b"],
            "--assistant-id was given more than once",
        ),
        (
            &["--text", "a", "--text", "b"],
            "--text was given more than once",
        ),
        (
            &["--request", "-", "--request", "-"],
            "--request was given more than once",
        ),
        (
            &["--idempotency-key", "a", "--idempotency-key", "b"],
            "--idempotency-key was given",
        ),
        (
            &["--timeout", "1", "--timeout", "2"],
            "--timeout was given more than once",
        ),
        (
            &["--max-retries", "1", "--max-retries", "2"],
            "--max-retries was given more than once",
        ),
        (
            &["--api-key-file", "k", "--api-key-file", "k"],
            "--api-key-file was given more than once",
        ),
        (&["--json", "--json"], "--json was given more than once"),
        (
            &["--dry-run", "--dry-run"],
            "--dry-run was given more than once",
        ),
        (
            &["--create-conversation", "--create-conversation"],
            "--create-conversation was given",
        ),
        (
            &["--create-conversation", "--no-create-conversation"],
            "contradict each other",
        ),
        (
            &["--meta", "k=1", "--meta", "k=2"],
            "the metadata key 'k' was already given by --meta",
        ),
        (
            &["--meta", "k=1", "--meta-int", "k=2"],
            "--meta-int k=2: the metadata key 'k' was",
        ),
        (
            &["--meta-bool", "k=true", "--meta", "k=x"],
            "already given by --meta-bool",
        ),
    ];
    let cases: Vec<(Vec<&str>, &str)> = twice
        .iter()
        .map(|(extra, want)| ([&COMPLETE[..], extra].concat(), *want))
        .collect();
    all_refused(&cases);
    // --base-url too (twice at the same server, which must still get nothing).
    let mut server = mockito::Server::new();
    let any = server.mock("POST", Matcher::Any).expect(0).create();
    let url = base(&server);
    let args = send_args("a", &url, &["--base-url", &url]);
    refused(&args, "--base-url was given more than once", &run(&args));
    any.assert();
}

#[test]
fn validation_errors_name_the_flag_that_gave_the_field() {
    let cases: &[(&[&str], &str)] = &[
        (&["--from", ""], "--from: must not be empty (body.from)"),
        (
            &["--to", " "],
            "invalid request, nothing was sent: --to: must not be blank (body.to)",
        ),
        (&["--text", ""], "--text: must not be blank"),
        (
            &["--assistant-id", ".."],
            "--assistant-id: must not be `.` or `..`",
        ),
        (
            &["--idempotency-key", "bad key"],
            "--idempotency-key: may only contain",
        ),
        (
            &["--meta", " =x"],
            "--meta: metadata keys must not be empty",
        ),
        (
            &["--base-url", "http://example.com/v2"],
            "--base-url: invalid configuration: the base url uses plain http",
        ),
    ];
    // Later flags override the complete command's: --from "" etc. replace nothing (the
    // complete command lacks them), so build each from scratch.
    let mut all = Vec::new();
    for (extra, want) in cases {
        let mut args = vec!["send"];
        for (flag, value) in [("--assistant-id", "a"), ("--from", "+1"), ("--to", "+2")] {
            if !extra.contains(&flag) {
                args.extend([flag, value]);
            }
        }
        args.extend(*extra);
        all.push((args, *want));
    }
    all_refused(&all);

    let mut args = vec![
        "send",
        "--assistant-id",
        "a",
        "--from",
        "",
        "--to",
        "+2",
        "--json",
    ];
    args.extend(["--base-url", "http://127.0.0.1:9/v2"]);
    let r = run(&args);
    assert_eq!(r.code, 2);
    let e = json_error(&r.stderr);
    assert_eq!(e["kind"], "validation");
    // One shape and one wording, on stderr and in JSON: the library's field names, and
    // "must not be empty" for a flag given empty.
    assert_eq!(
        e["violations"][0],
        serde_json::json!({
            "field": "body.from",
            "message": "must not be empty",
            "code": "blank",
            "flag": "--from",
        })
    );
    assert_eq!(
        e["message"],
        "invalid request, nothing was sent: --from: must not be empty (body.from)"
    );
    args.retain(|a| *a != "--json");
    let r = run(&args);
    assert_eq!(
        r.stderr,
        "telnyx-sms: invalid request, nothing was sent: --from: must not be empty (body.from)\n"
    );
}

#[test]
fn request_file_problems_say_what_is_wrong() {
    let cases: &[(&[u8], &str)] = &[
        (
            br#"{"from":"+1","to":"+2","conversation_metadata":{"score":1.5}}"#,
            "a string, an integer or a boolean",
        ),
        (
            br#"{"from":"+1","to":"+2","txt":"typo"}"#,
            "unknown field `txt`",
        ),
        (
            br#"{"from":"+1"}"#,
            "--request stdin: body.to: field required (or give --to)",
        ),
        // Given empty is not left out: no option is suggested.
        (
            br#"{"from":"","to":"+2"}"#,
            "--request stdin: body.from: must not be empty\n",
        ),
        (b"not json", "--request stdin: not valid JSON"),
        (b"", "--request stdin: empty; expected a JSON object"),
        (b" \n\t", "--request stdin: empty; expected a JSON object"),
        (b"\xEF\xBB\xBF", "--request stdin: empty"),
        (b"[]", "expected a JSON object such as {\"from\""),
        (b"[]", "found an array"),
        (b"\"x\"", "found a string"),
        (b"3", "found a number"),
        (b"null", "found null"),
        (b"{\"from\":\"\xff\"}", "--request stdin: not UTF-8 text"),
    ];
    let mut server = mockito::Server::new();
    let any = server.mock("POST", Matcher::Any).expect(0).create();
    let url = base(&server);
    let args = [
        "send",
        "--assistant-id",
        "a",
        "--request",
        "-",
        "--base-url",
        &url,
    ];
    for (doc, want) in cases {
        let r = run_with(&args, true, Some(doc));
        refused(&args, want, &r);
    }
    // A field the object leaves out, given empty by its flag: empty, not missing.
    let with_from = [&args[..], &["--from", ""]].concat();
    let r = run_with(&with_from, true, Some(br#"{"to":"+2"}"#));
    refused(&with_from, "--from: must not be empty (body.from)\n", &r);
    // A file, named by its path; a missing file.
    let path = temp_file("empty.json", b"");
    let p = path.to_str().unwrap();
    let args = [
        "send",
        "--assistant-id",
        "a",
        "--request",
        p,
        "--base-url",
        &url,
    ];
    refused(&args, &format!("--request {p}: empty"), &run(&args));
    std::fs::remove_file(&path).ok();
    refused(
        &args,
        &format!("--request {p}: cannot read it"),
        &run(&args),
    );
    any.assert();
}

#[test]
fn bad_api_key_files_name_the_file_and_the_fix_without_quoting_it() {
    // `run_with` checks that no output contains the key's text ("secret0123").
    // Trimmed, the key must pass the library's check_api_key, whose words these are.
    let cases: &[(&str, &[u8], &str)] = &[
        ("empty", b"", "invalid configuration: the api key is empty"),
        (
            "blank",
            b" \n",
            "invalid configuration: the api key is empty",
        ),
        (
            "bearer",
            b"Bearer KEYsecret0123\n",
            "invalid configuration: the api key starts with `Bearer `: give the key alone (the client adds `Bearer`)",
        ),
        (
            "twowords",
            b"KEYsecret0123 other\n",
            "invalid configuration: the api key contains whitespace",
        ),
        (
            "assign",
            b"TELNYX_API_KEY = KEYsecret0123\n",
            "invalid configuration: the api key contains `=`: it looks like a `.env` line",
        ),
        ("latin1", b"KEYsecret0123\xe9\n", "not UTF-8 text"),
        (
            "accent",
            "KEYsecret0123\u{e9}".as_bytes(),
            "invalid configuration: the api key contains characters that cannot be sent in an HTTP header",
        ),
        ("missing", b"", "cannot read it"),
    ];
    for (name, content, want) in cases {
        let path = temp_file(name, content);
        if *name == "missing" {
            std::fs::remove_file(&path).unwrap();
        }
        let p = path.to_str().unwrap();
        let want = format!("--api-key-file {p}: {want}");
        // Reported even by a dry run, which otherwise needs no key.
        for extra in [&[][..], &["--dry-run"]] {
            let args = [&COMPLETE[..], &["--api-key-file", p], extra].concat();
            let r = run_with(&args, false, None);
            refused(&args, &want, &r);
        }
        std::fs::remove_file(path).ok();
    }
}

#[cfg(unix)]
#[test]
fn non_utf8_arguments_are_usage_errors_that_do_not_echo_the_bytes() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;

    let bad = |b: &[u8]| OsString::from_vec(b.to_vec());
    let os = |s: &str| OsString::from(s);
    let complete: Vec<OsString> = COMPLETE.iter().map(|s| os(s)).collect();
    let cases: Vec<(Vec<OsString>, &str)> = vec![
        (vec![bad(b"\xff")], "unknown command"),
        (vec![bad(b"se\xffnd"), os("--json")], "unknown command"),
        (
            [&complete[..], &[os("--text"), bad(b"hi\xff")]].concat(),
            "the value of --text is not valid UTF-8",
        ),
        (
            [&complete[..], &[bad(b"--to=\xff")]].concat(),
            "the value of --to is not valid UTF-8",
        ),
        (
            [&complete[..], &[bad(b"--t\xff")]].concat(),
            "unknown option '--t\u{fffd}'",
        ),
        (
            [&complete[..], &[bad(b"\xff")]].concat(),
            "unexpected argument",
        ),
    ];
    for (args, want) in &cases {
        // `run_with` checks that stdout and stderr are UTF-8, so no raw byte got through.
        let r = run_with(args, true, None);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(want), "{args:?}: {}", r.stderr);
        if args.iter().any(|a| a == "--json") {
            assert_eq!(json_error(&r.stderr)["kind"], "usage");
        }
    }
}

#[test]
fn help_and_misplaced_options_say_where_things_go() {
    for (args, want) in [
        (
            vec!["--json", "send"],
            "--json is an option of 'send' and 'send-batch' and goes after the command: \
             telnyx-sms send ... --json",
        ),
        (
            vec!["--to", "+2", "send"],
            "--to is an option of 'send' and goes after it",
        ),
        (
            vec!["--concurrency", "2", "send-batch"],
            "--concurrency is an option of 'send-batch' and goes after it",
        ),
        (vec!["--bogus"], "unknown option '--bogus'"),
    ] {
        let r = run(&args);
        assert_eq!(r.code, 2, "{args:?}");
        assert!(r.stderr.contains(want), "{args:?}: {}", r.stderr);
    }
    // --json before the command still makes the error JSON.
    let r = run(&["--json", "send"]);
    assert_eq!(json_error(&r.stderr)["kind"], "usage");

    let help = run(&["--help"]).stdout;
    for args in [&["help"][..], &["-h"]] {
        let r = run(args);
        assert_eq!((r.code, &r.stdout), (0, &help), "{args:?}");
    }
}

#[test]
fn a_commands_help_shows_its_own_options_only() {
    let full = run(&["--help"]).stdout;
    for (command, own, other) in [
        ("send", "SEND OPTIONS:", "SEND-BATCH OPTIONS:"),
        ("send-batch", "SEND-BATCH OPTIONS:", "SEND OPTIONS:"),
    ] {
        let help = run(&["help", command]).stdout;
        for args in [[command, "--help"], [command, "-h"]] {
            let r = run(&args);
            assert_eq!((r.code, &r.stdout), (0, &help), "{args:?}");
        }
        assert!(
            help.starts_with(&format!("telnyx-sms {command}: ")),
            "{help}"
        );
        assert!(help.contains(own) && help.contains("CONNECTION AND OUTPUT OPTIONS:"));
        assert!(!help.contains(other), "{help}");
        assert!(!help.contains("EXIT CODES"), "{help}");
        assert!(help.ends_with("exit codes: telnyx-sms --help\n"), "{help}");
        assert!(
            help.lines().count() < full.lines().count() * 3 / 4,
            "{} lines",
            help.lines().count()
        );
    }
    let r = run(&["help", "sned"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("unknown command 'sned' (did you mean 'send'?)")
    );
}

#[test]
fn a_near_miss_option_or_command_gets_a_suggestion() {
    for (args, want) in [
        (
            &["send", "--txt", "hi"][..],
            "unknown option '--txt' (did you mean --text?)",
        ),
        (
            &["send", "--form", "+1"],
            "unknown option '--form' (did you mean --from?)",
        ),
        (
            &["send", "--assistant_id", "a"],
            "unknown option '--assistant_id' (did you mean --assistant-id?)",
        ),
        (
            &["send", "--verbos"],
            "unknown option '--verbos' (did you mean --verbose?)",
        ),
        (
            &["send-batch", "--concurency", "2"],
            "unknown option '--concurency' (did you mean --concurrency?)",
        ),
        (
            &["--verison"],
            "unknown option '--verison' (did you mean --version?)",
        ),
        (&["sned"], "unknown command 'sned' (did you mean 'send'?)"),
        (
            &["send-bacth"],
            "unknown command 'send-bacth' (did you mean 'send-batch'?)",
        ),
        // Nothing near: no guess.
        (&["send", "--colour"], "unknown option '--colour'; see"),
        (
            &["frobnicate"],
            "unknown command 'frobnicate' (the commands are",
        ),
    ] {
        let r = run(args);
        assert_eq!(r.code, 2, "{args:?}");
        assert!(r.stderr.contains(want), "{args:?}: {}", r.stderr);
    }
}

#[test]
fn usage_errors_in_json_mode_have_the_shape_of_every_error() {
    for args in [
        &["send", "--json", "--bogus"][..],
        &["send", "--json", "--to", "+1", "--to", "+2"],
        &["send", "--json", "--assistant-id", "a", "--from", "+1"],
        &["--json"],
        &["send", "--json", "--assistant-id", "a", "--request", "-"],
    ] {
        let r = run(args);
        assert_eq!(r.code, 2, "{args:?}");
        let e = json_error(&r.stderr);
        assert!(
            ["usage", "validation"].contains(&e["kind"].as_str().unwrap()),
            "{e}"
        );
        assert_eq!(e["attempts"], 0);
        assert_eq!(e["may_have_been_sent"], false);
        assert_eq!(e["errors"], serde_json::json!([]));
        assert!(
            e["status"].is_null() && e["idempotency_key"].is_null(),
            "{e}"
        );
    }
}

#[test]
fn echoed_arguments_are_escaped_and_capped() {
    let long = "x".repeat(5_000);
    for args in [
        vec![long.as_str()],
        vec!["send", long.as_str()],
        vec!["send", "--assistant-id", "a", "--timeout", long.as_str()],
        vec!["frob\u{1b}[2J\nnicate"],
        vec!["send", "--bo\u{1b}]0;title\u{7}gus"],
    ] {
        let r = run(&args);
        assert_eq!(r.code, 2);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(r.stderr.chars().count() < 400, "{} chars", r.stderr.len());
        assert!(!r.stderr.contains(['\u{1b}', '\u{7}']), "{:?}", r.stderr);
    }
    let r = run(&[long.as_str()]);
    assert!(
        // At most 200 characters, the ellipsis included.
        r.stderr.contains(&format!("'{}…'", "x".repeat(199))),
        "{}",
        r.stderr
    );
    let r = run(&["frob\u{1b}[2J\nnicate"]);
    assert!(
        r.stderr.contains(r"'frob\u{1b}[2J\nnicate'"),
        "{}",
        r.stderr
    );
}

#[test]
fn help_shows_every_option_default_and_limit() {
    let r = run(&["--help"]);
    assert_eq!(r.code, 0);
    for want in [
        "--assistant-id",
        "--from",
        "--to",
        "--text",
        "--meta ",
        "--meta-int",
        "--meta-bool",
        "--create-conversation",
        "--no-create-conversation",
        "--request",
        "--idempotency-key",
        "--api-key-file",
        "--base-url",
        "--timeout",
        "--max-retries",
        "--json",
        "--dry-run",
        "needs no API key",
        "TELNYX_API_KEY",
        "TELNYX_BASE_URL",
        "0.001 to 86400; default: 60",
        "0 to 10",
        "default: 2",
        "-9223372036854775808",
        "at most\n                              1 MiB",
        "1 to 255",
        "idempotency key: KEY",
        "200 characters",
        "2,000 characters",
        "at most 100",
        "EXIT CODES",
        "0  sent (also if stdout could not be written afterwards",
        "stdout could not be\n       written for --help, --version or --dry-run",
    ] {
        assert!(r.stdout.contains(want), "--help lacks {want:?}");
    }
    let r = run(&["--version"]);
    assert_eq!(
        r.stdout,
        format!("telnyx-sms {}\n", env!("CARGO_PKG_VERSION"))
    );
}
