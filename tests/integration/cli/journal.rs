//! `send-batch` and `send` with a journal, as an operator runs them: killed again and again
//! and re-run against servers that ignore and honour keys, a changed input, two runs at once,
//! Ctrl-C, stdin, shards, and a cron job's single send.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::cli::{command, finish, mix, results, run_with, send_args};
use crate::support::telnyx::{Fault, Telnyx};
use crate::support::{Hold, ScriptServer, wait_until};

use crate::support::TempDir as Dir;

fn input(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(r#"{{"from":"+15550001111","to":"+1555{i:07}","text":"journal line {i}"}}"#)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn batch_args(input: &str, url: &str, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "send-batch",
        "--assistant-id",
        "asst-j",
        "--input",
        input,
        "--base-url",
        url,
    ]
    .map(str::to_owned)
    .to_vec();
    a.extend(extra.iter().map(|s| (*s).to_owned()));
    a
}

const LINES: usize = 120;
const KILLS: usize = 20;
const CONCURRENCY: [usize; KILLS] = [
    1, 64, 7, 32, 2, 16, 4, 48, 8, 24, 3, 12, 64, 1, 40, 5, 20, 10, 6, 33,
];

/// Runs the default command `KILLS` times, each SIGKILLed at a seeded moment, checking after
/// each that at most its concurrency of lines were left started with no outcome.
fn kill_again_and_again(model: &Telnyx, dir: &Dir) -> (String, String, ScriptServer) {
    let server = ScriptServer::builder().handler(model.handler()).start();
    let url = server.base_url();
    let path = dir.file("orders.jsonl");
    std::fs::write(&path, input(LINES)).unwrap();
    let journal = PathBuf::from(format!("{path}.journal"));
    let seed = std::env::var("KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6b11_2026_1203_u64);
    let mut doubt_before = crate::cli::journal_state(&journal).1.len();
    for (k, c) in CONCURRENCY.iter().enumerate() {
        let c = c.to_string();
        let mut child = command(&batch_args(&path, &url, &["--concurrency", &c]), true)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let wait = Duration::from_millis(5 + mix(seed ^ k as u64) % 120);
        std::thread::sleep(wait);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let doubt = crate::cli::journal_state(&journal).1.len();
        // Each run may leave at most its concurrency of new lines in doubt (it sends none of
        // the old ones again, so those stay as they were).
        assert!(
            doubt <= doubt_before + c.parse::<usize>().unwrap(),
            "seed {seed}, kill {k} (concurrency {c}, after {wait:?}): {doubt} in doubt, \
             {doubt_before} before"
        );
        doubt_before = doubt;
    }
    (path, url, server)
}

#[test]
fn killed_twenty_times_against_a_server_that_ignores_keys_no_line_is_sent_twice() {
    let model = Telnyx::new().ignore_keys().delay(Duration::from_millis(4));
    let dir = Dir::new("kill-ignore");
    let (path, url, _server) = kill_again_and_again(&model, &dir);
    // The same default command once more, to its end.
    let r = finish(
        command(&batch_args(&path, &url, &[]), true)
            .output()
            .unwrap(),
    );
    let res = results(&r);
    assert_eq!(res.len(), LINES, "{}", r.stderr);
    let in_doubt = res.iter().filter(|v| v["result"] == "in-doubt").count();
    for v in &res {
        assert!(
            ["sent", "in-doubt"].contains(&v["result"].as_str().unwrap()),
            "{v}"
        );
    }
    assert_eq!(r.code, if in_doubt > 0 { 5 } else { 0 }, "{}", r.stderr);
    // Whatever the kills did, the server performed no line twice.
    assert!(model.duplicate_bodies().is_empty(), "sent twice");
    // Every line sent was performed once; one in doubt at most once.
    let sent = res.iter().filter(|v| v["result"] == "sent").count();
    assert_eq!(sent + in_doubt, LINES);
    let performed = model.performed().len();
    assert!(
        (sent..=LINES).contains(&performed),
        "{performed} performed, {sent} sent"
    );
    let again = finish(
        command(&batch_args(&path, &url, &[]), true)
            .output()
            .unwrap(),
    );
    assert!(model.duplicate_bodies().is_empty());
    assert!(
        results(&again).iter().all(|v| v["from_journal"] == true),
        "{}",
        again.stdout
    );
}

#[test]
fn killed_twenty_times_against_a_server_that_honours_keys_then_resent_each_is_sent_once() {
    let model = Telnyx::new().delay(Duration::from_millis(4));
    let dir = Dir::new("kill-honour");
    let (path, url, _server) = kill_again_and_again(&model, &dir);
    let r = finish(
        command(&batch_args(&path, &url, &["--resend-in-doubt"]), true)
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let res = results(&r);
    assert_eq!(res.len(), LINES);
    assert!(res.iter().all(|v| v["result"] == "sent"), "{}", r.stdout);
    assert_eq!(model.performed().len(), LINES);
    assert!(model.performed_per_key().values().all(|&n| n == 1));
}

#[test]
fn a_changed_input_is_refused_before_any_send_naming_the_line() {
    let model = Telnyx::new().ignore_keys();
    let server = ScriptServer::builder().handler(model.handler()).start();
    let dir = Dir::new("changed");
    let path = dir.file("in.jsonl");
    std::fs::write(&path, input(4)).unwrap();
    let url = server.base_url();
    let r = run_with(&batch_args(&path, &url, &[]), true, None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Line 3 edited, a line 5 added.
    let mut lines: Vec<String> = input(5).lines().map(str::to_owned).collect();
    lines[2] = lines[2].replace("journal line 2", "journal line two");
    std::fs::write(&path, lines.join("\n")).unwrap();
    let r = run_with(&batch_args(&path, &url, &[]), true, None);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("telnyx-sms: line 3: differs from the request"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("nothing was sent"), "{}", r.stderr);
    assert_eq!(r.stdout, "");
    assert_eq!(model.performed().len(), 4);
}

#[test]
fn a_second_run_on_the_same_journal_is_refused_naming_the_first() {
    let model = Telnyx::new();
    let hold = Hold::closed();
    let server = hold.serve(model.handler());
    let dir = Dir::new("two");
    let path = dir.file("in.jsonl");
    std::fs::write(&path, input(2)).unwrap();
    let url = server.base_url();
    let mut first = command(&batch_args(&path, &url, &[]), true)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let journal = PathBuf::from(format!("{path}.journal"));
    // The first run's sends held mid-flight: it holds the journal while the second starts.
    assert!(wait_until(Duration::from_secs(20), || {
        hold.held() > 0 && !crate::cli::journal_state(&journal).1.is_empty()
    }));
    let r = run_with(&batch_args(&path, &url, &[]), true, None);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("in use by another run (process {})", first.id())),
        "{}",
        r.stderr
    );
    hold.open();
    assert!(first.wait().unwrap().success());
    assert_eq!(model.performed().len(), 2);
}

#[cfg(unix)]
#[test]
fn ctrl_c_lets_the_sends_in_flight_finish_records_them_and_exits_130() {
    let model = Telnyx::new().ignore_keys();
    let hold = Hold::closed();
    let server = hold.serve(model.handler());
    let dir = Dir::new("sigint");
    let path = dir.file("in.jsonl");
    std::fs::write(&path, input(20)).unwrap();
    let url = server.base_url();
    let child = command(&batch_args(&path, &url, &["--concurrency", "2"]), true)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Two sends performed and their answers held, then SIGINT; the answers go once the
    // child has taken it.
    assert!(wait_until(Duration::from_secs(20), || hold.held() == 2));
    crate::cli::signal_and_wait_taken(&child, libc::SIGINT);
    hold.open();
    let r = finish(child.wait_with_output().unwrap());
    assert_eq!(r.code, 130, "{}", r.stderr);
    let res = results(&r);
    // The two in flight finished, were printed and journaled; nothing else started.
    assert_eq!(res.len(), 2, "{}", r.stdout);
    assert!(res.iter().all(|v| v["result"] == "sent"));
    assert_eq!(model.performed().len(), 2);
    assert!(
        r.stderr
            .contains("stopped by a signal: 18 lines not started"),
        "{}",
        r.stderr
    );
    // The re-run reports those two from the journal and sends the other 18.
    let r = run_with(&batch_args(&path, &url, &[]), true, None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let res = results(&r);
    assert_eq!(res.iter().filter(|v| v["from_journal"] == true).count(), 2);
    assert_eq!(model.performed().len(), 20);
    assert!(model.duplicate_bodies().is_empty());
}

#[test]
fn no_journal_needs_a_key_prefix_and_resend_needs_a_journal() {
    let r = run_with(
        &batch_args("x.jsonl", "http://127.0.0.1:9/v2", &["--no-journal"]),
        true,
        None,
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("--no-journal needs an explicit --key-prefix"),
        "{}",
        r.stderr
    );
    let r = run_with(
        &batch_args(
            "x.jsonl",
            "http://127.0.0.1:9/v2",
            &["--no-journal", "--key-prefix", "j-", "--resend-in-doubt"],
        ),
        true,
        None,
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("--resend-in-doubt needs a journal"),
        "{}",
        r.stderr
    );
    for bad in ["3/3", "1", "a/b", "1/0"] {
        let r = run_with(
            &batch_args("x.jsonl", "http://127.0.0.1:9/v2", &["--shard", bad]),
            true,
            None,
        );
        assert_eq!(r.code, 2, "{bad}");
        assert!(
            r.stderr.contains("expected K/N with 0 <= K < N"),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn shards_on_one_machine_split_the_input_each_with_its_own_journal() {
    let model = Telnyx::new().ignore_keys();
    let server = ScriptServer::builder().handler(model.handler()).start();
    let dir = Dir::new("shards");
    let path = dir.file("in.jsonl");
    std::fs::write(&path, input(10)).unwrap();
    let url = server.base_url();
    let mut lines = Vec::new();
    for k in 0..3 {
        let shard = format!("{k}/3");
        let r = run_with(&batch_args(&path, &url, &["--shard", &shard]), true, None);
        assert_eq!(r.code, 0, "{}", r.stderr);
        lines.extend(results(&r).iter().map(|v| v["line"].as_u64().unwrap()));
        assert!(Path::new(&format!("{path}.shard-{k}-of-3.journal")).exists());
    }
    lines.sort_unstable();
    assert_eq!(lines, (1..=10).collect::<Vec<u64>>());
    assert_eq!(model.performed().len(), 10);
}

#[test]
fn a_cron_send_under_a_journal_runs_once_per_key() {
    let model = Telnyx::new().ignore_keys().faults(|req, attempt| {
        match (req.header("idempotency-key"), attempt) {
            (Some("cron-doubt"), 1) => Fault::DropAfter,
            _ => Fault::None,
        }
    });
    let server = ScriptServer::builder().handler(model.handler()).start();
    let dir = Dir::new("cron");
    let journal = dir.file("cron.journal");
    let url = server.base_url();
    let send = |key: &str, extra: &[&str]| {
        let mut args: Vec<&str> = send_args("asst-j", &url, &["--idempotency-key", key]);
        args.extend_from_slice(&["--journal", &journal, "--max-retries", "0"]);
        args.extend_from_slice(extra);
        run_with(&args, true, None)
    };
    let r = send("cron-1", &[]);
    assert_eq!((r.code, r.stdout.trim()), (0, "conv-1"), "{}", r.stderr);
    // The second run prints the recorded answer and sends nothing.
    let r = send("cron-1", &[]);
    assert_eq!((r.code, r.stdout.trim()), (0, "conv-1"), "{}", r.stderr);
    assert!(r.stderr.contains("an earlier run sent it"), "{}", r.stderr);
    assert_eq!(model.performed().len(), 1);
    // In doubt: exit 4 without sending, unless --resend-in-doubt.
    let r = send("cron-doubt", &[]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    let r = send("cron-doubt", &[]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.stderr.contains("shows this key in doubt"), "{}", r.stderr);
    assert_eq!(model.performed().len(), 2);
    let r = send("cron-doubt", &["--resend-in-doubt"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(model.performed().len(), 3);
    // --journal without a key is a usage error.
    let r = run_with(
        &send_args("asst-j", &url, &["--journal", &journal]),
        true,
        None,
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("--journal needs --idempotency-key"),
        "{}",
        r.stderr
    );
    assert_eq!(model.performed().len(), 3);
}
