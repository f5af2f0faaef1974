//! Hostile operator probes of the CLI's journal (issue 14): `send-batch` and `send
//! --journal` killed, interrupted, re-run with changed inputs, odd paths, stdin, shards,
//! closed pipes, and servers that lie, stall or reset. Every server listens on 127.0.0.1.
//!
//! Tests marked `#[ignore = "defect: ..."]` fail until the defect they name is fixed; the
//! others pin behaviour that holds now.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cli::{
    Run, broken_pipe, command, finish, journal_state, mix, results, run_with, send_args,
};
#[cfg(unix)]
use crate::cli::{signal, signal_and_wait_taken};
use crate::support::telnyx::{Fault, Telnyx};
use crate::support::{Hold, ScriptServer, wait_until};

const ASST: &str = "asst-probe";

/// A directory of its own for one test, removed at the end.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d =
            std::env::temp_dir().join(format!("telnyx-cli-probe-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
    fn file(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_owned()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Input line `i` (its text names it, so the server can tell which line it performed).
fn line(i: usize) -> String {
    format!(r#"{{"from":"+15550001111","to":"+1555{i:07}","text":"probe line {i}"}}"#)
}

/// `n` lines, each ended by a newline.
fn input(n: usize) -> String {
    (0..n).map(|i| line(i) + "\n").collect()
}

/// The line a performed body was made from.
fn line_of(body: &[u8]) -> usize {
    let v: Value = serde_json::from_slice(body).unwrap();
    v["text"]
        .as_str()
        .and_then(|t| t.strip_prefix("probe line "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX)
}

/// How many times the server performed each line.
fn performed_lines(model: &Telnyx) -> BTreeMap<usize, usize> {
    let mut m = BTreeMap::new();
    for p in model.performed() {
        *m.entry(line_of(&p.body)).or_insert(0) += 1;
    }
    m
}

fn batch(input: &str, url: &str, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "send-batch",
        "--assistant-id",
        ASST,
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

fn run_batch(input: &str, url: &str, extra: &[&str]) -> Run {
    run_with(&batch(input, url, extra), true, None)
}

/// Runs the binary with `stdin`; a run that exits before reading it (a usage error) is fine.
fn run_stdin(args: &[String], with_key: bool, stdin: &[u8]) -> Run {
    use std::io::Write;
    let mut child = command(args, with_key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let _ = input.write_all(stdin);
    drop(input);
    finish(child.wait_with_output().unwrap())
}

/// Waits for `child` to exit, at most `limit`; past it, kills it and fails.
fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let end = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Until the server has no request in flight (a killed client's requests still run there).
fn settle(server: &ScriptServer) {
    assert!(wait_until(Duration::from_secs(20), || server.in_flight() == 0));
}

// ---------------------------------------------------------------------------------------
// 1. Kills and signals, against servers that ignore keys and misbehave after performing.
// ---------------------------------------------------------------------------------------

/// A server that ignores `Idempotency-Key`, takes 20 ms to perform, and, on the first
/// attempt of 11 lines in 24, does one of the hostile things a real path can do after (or
/// instead of) performing.
fn hostile_model() -> Telnyx {
    Telnyx::new()
        .ignore_keys()
        .delay(Duration::from_millis(20))
        .faults(|req, attempt| {
            let first = attempt == 1;
            match line_of(&req.body) % 24 {
                0 => Fault::fail_after(500),
                1 if first => Fault::after(502),
                2 if first => Fault::after(503),
                3 if first => Fault::after(504),
                4 if first => Fault::DropAfter,
                5 if first => Fault::ResetAfter,
                6 if first => Fault::StallAfter(Duration::from_millis(1500)),
                7 if first => Fault::before(429).retry_after_ms("20"),
                8 if first => Fault::HugeHeaderAfter(200_000),
                9 if first => Fault::DropBefore,
                10 if first => Fault::before(503).retry_after_ms("15"),
                _ => Fault::None,
            }
        })
}

#[cfg(unix)]
#[test]
fn probe_signals_at_random_moments_against_a_hostile_server_never_perform_a_line_twice() {
    const N: usize = 240;
    const CONCURRENCY: [usize; 16] = [1, 8, 3, 32, 2, 16, 4, 64, 6, 12, 5, 24, 1, 48, 7, 10];
    let model = hostile_model();
    let server = ScriptServer::builder().handler(model.handler()).start();
    let url = server.base_url();
    let dir = Dir::new("storm");
    let path = dir.file("in.jsonl");
    std::fs::write(&path, input(N)).unwrap();
    let journal = PathBuf::from(format!("{path}.journal"));
    let seed = std::env::var("KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5157_0a11_u64);
    use std::os::unix::process::ExitStatusExt;
    let mut open_before = 0;
    for (k, c) in CONCURRENCY.iter().enumerate() {
        let c = c.to_string();
        let args = batch(&path, &url, &["--concurrency", &c, "--timeout", "0.4"]);
        let mut child = command(&args, true)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let r = mix(seed ^ k as u64);
        std::thread::sleep(Duration::from_millis(20 + r % 200));
        let how = (r >> 20) % 4;
        match how {
            0 => signal(&child, libc::SIGKILL),
            1 => signal(&child, libc::SIGINT),
            2 => {
                signal(&child, libc::SIGINT);
                std::thread::sleep(Duration::from_millis(1 + (r >> 30) % 30));
                signal(&child, libc::SIGINT);
            }
            _ => signal(&child, libc::SIGTERM),
        }
        let status = wait_exit(&mut child, Duration::from_secs(30));
        let out = finish(child.wait_with_output().unwrap());
        let what = format!("seed {seed}, round {k} (signal {how}, concurrency {c})");
        if how == 1 || how == 3 {
            // One signal: the sends in flight finish and are printed, then 130 (or the run
            // was over before the signal, or still in its checks, before the handler).
            assert!(
                [0, 5, 130].contains(&out.code)
                    || [libc::SIGINT, libc::SIGTERM].contains(&status.signal().unwrap_or(0)),
                "{what}: {status:?} {}",
                out.stderr
            );
        }
        for v in results(&out) {
            let kind = v["result"].as_str().unwrap();
            assert!(
                ["sent", "failed", "in-doubt"].contains(&kind),
                "{what}: {v}"
            );
        }
        // Each run leaves at most its concurrency of new lines started with no outcome.
        let (_, open) = journal_state(&journal);
        assert!(
            open.len() <= open_before + c.parse::<usize>().unwrap(),
            "{what}: {} open, {open_before} before",
            open.len()
        );
        open_before = open.len();
    }
    settle(&server);
    eprintln!(
        "after the signals: {} performed, {} started, {} open",
        model.performed().len(),
        journal_state(&journal).0.len(),
        journal_state(&journal).1.len()
    );
    // The same default command, to its end, twice.
    for pass in 0..2 {
        let r = finish(
            command(&batch(&path, &url, &["--timeout", "0.4", "--json"]), true)
                .output()
                .unwrap(),
        );
        settle(&server);
        let res = results(&r);
        assert_eq!(res.len(), N, "pass {pass}: {}", r.stderr);
        let mut kinds = BTreeMap::new();
        for v in &res {
            *kinds
                .entry(v["result"].as_str().unwrap().to_owned())
                .or_insert(0) += 1;
        }
        let summary: Value = serde_json::from_str(r.stderr.lines().last().unwrap()).unwrap();
        let s = &summary["summary"];
        let count = |k: &str| s[k].as_u64().unwrap() as usize;
        assert_eq!(
            count("sent")
                + count("duplicate")
                + count("failed")
                + count("in_doubt")
                + count("invalid")
                + count("not_started"),
            count("lines"),
            "{}",
            r.stderr
        );
        assert_eq!(count("sent"), kinds.get("sent").copied().unwrap_or(0));
        assert_eq!(
            count("in_doubt"),
            kinds.get("in-doubt").copied().unwrap_or(0)
        );
        eprintln!("final pass {pass}: {kinds:?}");
        let expected = if count("sent") == N { 0 } else { 5 };
        assert_eq!(r.code, expected, "{}", r.stderr);
    }
    let twice: Vec<_> = performed_lines(&model)
        .into_iter()
        .filter(|&(_, n)| n > 1)
        .collect();
    assert!(
        twice.is_empty(),
        "seed {seed}: lines performed more than once: {twice:?}"
    );
}

/// A batch paced by `--rate` that takes a line, journals its start, then waits for its slot.
fn paced_run(lines: usize, rate: &str) -> (Telnyx, ScriptServer, Dir, String, Child) {
    let model = Telnyx::new().ignore_keys();
    let server = ScriptServer::builder().handler(model.handler()).start();
    let dir = Dir::new(&format!("rate-{lines}"));
    let path = dir.file("in.jsonl");
    std::fs::write(&path, input(lines)).unwrap();
    let url = server.base_url();
    let child = command(
        &batch(&path, &url, &["--concurrency", "1", "--rate", rate]),
        true,
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let journal = PathBuf::from(format!("{path}.journal"));
    // Line 1 sent, line 2 taken: now waiting for its rate slot (100 s at the callers' rate
    // of 0.01: however slow the machine, the signal comes before it), not yet journaled.
    assert!(wait_until(Duration::from_secs(20), || {
        model.performed().len() == 1 && journal_state(&journal).0.contains(&0)
    }));
    std::thread::sleep(Duration::from_millis(300));
    (model, server, dir, path, child)
}

#[cfg(unix)]
#[test]
fn probe_ctrl_c_during_a_rate_wait_sends_nothing_more() {
    let (model, server, _dir, _path, mut child) = paced_run(3, "0.01");
    signal(&child, libc::SIGINT);
    wait_exit(&mut child, Duration::from_secs(20));
    let r = finish(child.wait_with_output().unwrap());
    settle(&server);
    assert_eq!(r.code, 130, "{}", r.stderr);
    // The signal came while line 2 waited for its slot (100 s): it must not be sent.
    assert_eq!(
        model.performed().len(),
        1,
        "a line was sent after Ctrl-C: {}",
        r.stdout
    );
}

#[cfg(unix)]
#[test]
fn probe_a_kill_during_a_rate_wait_leaves_no_false_doubt() {
    let (model, server, _dir, path, mut child) = paced_run(2, "0.01");
    signal(&child, libc::SIGKILL);
    wait_exit(&mut child, Duration::from_secs(20));
    settle(&server);
    assert_eq!(model.performed().len(), 1);
    let r = run_batch(&path, &server.base_url(), &[]);
    let res = results(&r);
    assert_eq!(res[1]["result"], "sent", "{}", r.stdout);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(model.performed().len(), 2);
}

#[cfg(unix)]
#[test]
fn probe_a_second_ctrl_c_exits_at_once_and_the_re_run_holds_what_was_in_flight() {
    let model = Telnyx::new().ignore_keys();
    let hold = Hold::closed();
    let server = hold.serve(model.handler());
    let dir = Dir::new("sigint2");
    let path = dir.file("in.jsonl");
    std::fs::write(&path, input(6)).unwrap();
    let url = server.base_url();
    let mut child = command(&batch(&path, &url, &["--concurrency", "2"]), true)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Two sends performed, their answers held: the first SIGINT waits for them, the second
    // (once the first was taken) exits at once.
    assert!(wait_until(Duration::from_secs(20), || hold.held() == 2));
    signal_and_wait_taken(&child, libc::SIGINT);
    signal(&child, libc::SIGINT);
    let status = wait_exit(&mut child, Duration::from_secs(20));
    let r = finish(child.wait_with_output().unwrap());
    assert_eq!(status.code(), Some(130), "{}", r.stderr);
    hold.open();
    settle(&server);
    assert_eq!(model.performed().len(), 2);
    // The two in flight are in doubt, the other four are sent; nothing twice.
    let r = run_batch(&path, &url, &[]);
    assert_eq!(r.code, 5, "{}", r.stderr);
    let res = results(&r);
    let doubt: Vec<u64> = res
        .iter()
        .filter(|v| v["result"] == "in-doubt")
        .map(|v| v["line"].as_u64().unwrap())
        .collect();
    assert_eq!(doubt, [1, 2], "{}", r.stdout);
    assert_eq!(model.performed().len(), 6);
    assert!(model.duplicate_bodies().is_empty());
    assert!(r.stderr.contains("2 in doubt"), "{}", r.stderr);
}

#[cfg(unix)]
#[test]
fn probe_sigterm_is_ctrl_c() {
    let model = Telnyx::new().ignore_keys();
    let hold = Hold::closed();
    let server = hold.serve(model.handler());
    let dir = Dir::new("sigterm");
    let path = dir.file("in.jsonl");
    std::fs::write(&path, input(8)).unwrap();
    let url = server.base_url();
    let mut child = command(&batch(&path, &url, &["--concurrency", "3"]), true)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Three sends performed, their answers held until the signal was taken: then they
    // finish, and nothing else starts.
    assert!(wait_until(Duration::from_secs(20), || hold.held() == 3));
    signal_and_wait_taken(&child, libc::SIGTERM);
    hold.open();
    wait_exit(&mut child, Duration::from_secs(20));
    let r = finish(child.wait_with_output().unwrap());
    assert_eq!(r.code, 130, "{}", r.stderr);
    assert_eq!(results(&r).len(), 3, "{}", r.stdout);
    assert!(r.stderr.contains("5 lines not started"), "{}", r.stderr);
    let r = run_batch(&path, &url, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(model.performed().len(), 8);
}

#[cfg(unix)]
#[test]
fn probe_ctrl_c_during_the_pre_check_sends_nothing_and_creates_no_journal() {
    let model = Telnyx::new().ignore_keys();
    let server = ScriptServer::builder().handler(model.handler()).start();
    let dir = Dir::new("precheck");
    let path = dir.file("in.jsonl");
    // Enough lines that checking them all takes seconds in a debug build.
    std::fs::write(&path, input(60_000)).unwrap();
    let mut child = command(&batch(&path, &server.base_url(), &[]), true)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(150));
    let before_handler = child.try_wait().unwrap().is_none();
    signal(&child, libc::SIGINT);
    let status = wait_exit(&mut child, Duration::from_secs(60));
    settle(&server);
    use std::os::unix::process::ExitStatusExt;
    if status.signal() == Some(libc::SIGINT) {
        // Still in the checks: killed by the default action, nothing written or sent.
        assert!(before_handler);
        assert!(!Path::new(&format!("{path}.journal")).exists());
        assert_eq!(model.performed().len(), 0);
    } else {
        // (A fast machine got past the checks: the engine stopped at once.)
        assert_eq!(status.code(), Some(130));
        assert!(model.performed().len() <= 4);
    }
}

// ---------------------------------------------------------------------------------------
// 2. Odd inputs and paths.
// ---------------------------------------------------------------------------------------

#[test]
fn probe_formatting_changes_between_runs_are_the_same_input() {
    let model = Telnyx::new().ignore_keys();
    let server = ScriptServer::builder().handler(model.handler()).start();
    let dir = Dir::new("format");
    let path = dir.file("in.jsonl");
    std::fs::write(&path, input(5)).unwrap();
    let url = server.base_url();
    assert_eq!(run_batch(&path, &url, &[]).code, 0);
    // A BOM, blank and whitespace lines, CRLF, trailing spaces, fields reordered: every
    // request is the same, at the same position among the non-blank lines.
    let reordered = r#"{"text":"probe line 1","to":"+15550000001","from":"+15550001111"}"#;
    let changed = format!(
        "\u{feff}{}\r\n\r\n   \n{reordered}\n\n{}  \r\n\t\n{}\n{}\n\n",
        line(0),
        line(2),
        line(3),
        line(4)
    );
    std::fs::write(&path, changed).unwrap();
    let r = run_batch(&path, &url, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let res = results(&r);
    assert_eq!(res.len(), 5);
    assert!(
        res.iter().all(|v| v["from_journal"] == true),
        "{}",
        r.stdout
    );
    let lines: Vec<u64> = res.iter().map(|v| v["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [1, 4, 6, 8, 9]);
    assert_eq!(model.performed().len(), 5);
}

#[test]
fn probe_structural_changes_are_refused_before_any_send() {
    let model = Telnyx::new().ignore_keys();
    let server = ScriptServer::builder().handler(model.handler()).start();
    let dir = Dir::new("struct");
    let path = dir.file("in.jsonl");
    let url = server.base_url();
    std::fs::write(&path, input(5)).unwrap();
    assert_eq!(run_batch(&path, &url, &[]).code, 0);
    let l: Vec<String> = (0..5).map(line).collect();
    let new = r#"{"from":"+15550001111","to":"+15559999999","text":"probe line 99"}"#.to_owned();
    let cases: [(&str, Vec<String>, usize); 4] = [
        (
            "inserted at the top",
            [vec![new.clone()], l.clone()].concat(),
            1,
        ),
        (
            "line 2 deleted",
            vec![l[0].clone(), l[2].clone(), l[3].clone(), l[4].clone()],
            2,
        ),
        (
            "lines 2 and 3 swapped",
            vec![
                l[0].clone(),
                l[2].clone(),
                l[1].clone(),
                l[3].clone(),
                l[4].clone(),
            ],
            2,
        ),
        (
            "line 4 edited",
            vec![
                l[0].clone(),
                l[1].clone(),
                l[2].clone(),
                l[3].replace("probe line 3", "probe line 3!"),
                l[4].clone(),
            ],
            4,
        ),
    ];
    for (what, lines, first) in cases {
        std::fs::write(&path, lines.join("\n")).unwrap();
        let r = run_batch(&path, &url, &[]);
        assert_eq!(r.code, 2, "{what}: {}", r.stderr);
        assert_eq!(r.stdout, "", "{what}");
        assert!(
            r.stderr.contains(&format!("(line {first} first)")),
            "{what}: {}",
            r.stderr
        );
        assert_eq!(model.performed().len(), 5, "{what}");
    }
    // The last line deleted: accepted, nothing sent; then a line appended: only it is sent.
    std::fs::write(&path, l[..4].join("\n")).unwrap();
    let r = run_batch(&path, &url, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(model.performed().len(), 5);
    let mut lines = l.clone();
    lines.push(new);
    std::fs::write(&path, lines.join("\n")).unwrap();
    let r = run_batch(&path, &url, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(results(&r)[5]["from_journal"], Value::Null);
    assert_eq!(model.performed().len(), 6);
}

#[test]
fn probe_a_moved_line_is_named_where_the_journal_recorded_it() {
    let model = Telnyx::new().ignore_keys();
    let server = ScriptServer::builder().handler(model.handler()).start();
    let dir = Dir::new("moved");
    let path = dir.file("in.jsonl");
    let url = server.base_url();
    std::fs::write(&path, input(4)).unwrap();
    assert_eq!(run_batch(&path, &url, &[]).code, 0);
    let l: Vec<String> = (0..4).map(line).collect();
    std::fs::write(
        &path,
        [&l[0], &l[2], &l[1], &l[3]].map(|s| s.as_str()).join("\n"),
    )
    .unwrap();
    let r = run_batch(&path, &url, &[]);
    assert_eq!(r.code, 2);
    let two = r
        .stderr
        .lines()
        .find(|l| l.starts_with("telnyx-sms: line 2:"))
        .unwrap();
    assert!(
        ["line 3", "request 3", "3rd"]
            .iter()
            .any(|w| two.contains(w)),
        "line 2 of the new input was line 3 (the 3rd request) when the journal recorded it: {two}"
    );
}

#[test]
fn probe_the_changed_input_advice_does_not_lead_to_texting_everyone_again() {
    let model = Telnyx::new().ignore_keys();
    let server = ScriptServer::builder().handler(model.handler()).start();
    let dir = Dir::new("advice");
    let path = dir.file("in.jsonl");
    let url = server.base_url();
    std::fs::write(&path, input(3)).unwrap();
    assert_eq!(run_batch(&path, &url, &[]).code, 0);
    // The operator fixes a typo in line 2 and re-runs: refused.
    std::fs::write(&path, input(3).replace("probe line 1", "probe line 1.")).unwrap();
    let r = run_batch(&path, &url, &[]);
    assert_eq!(r.code, 2);
    // Follow the advice literally: a new journal.
    let advice = r.stderr.lines().last().unwrap();
    assert!(advice.contains("a new --journal"), "{advice}");
    let fresh = dir.file("new.journal");
    let followed = run_batch(&path, &url, &["--journal", &fresh]);
    assert_eq!(followed.code, 0);
    let twice = performed_lines(&model).values().filter(|&&n| n > 1).count();
    assert_eq!(twice, 2, "lines 1 and 3 were texted again");
    // So the advice must warn, in words, that every line would be sent again.
    assert!(
        advice.contains("again") && advice.contains("already sent"),
        "the advice does not warn that a new journal resends what was sent: {advice}"
    );
}

#[test]
fn probe_one_changed_line_is_grammatical() {
    let model = Telnyx::new().ignore_keys();
    let server = ScriptServer::builder().handler(model.handler()).start();
    let dir = Dir::new("grammar");
    let path = dir.file("in.jsonl");
    let url = server.base_url();
    std::fs::write(&path, input(2)).unwrap();
    assert_eq!(run_batch(&path, &url, &[]).code, 0);
    std::fs::write(&path, input(2).replace("probe line 1", "probe line one")).unwrap();
    let r = run_batch(&path, &url, &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("1 line of the input differs"),
        "{}",
        r.stderr
    );
}

#[test]
fn probe_journal_paths_that_cannot_be_journals_send_nothing_and_escape_the_path() {
    let model = Telnyx::new().ignore_keys();
    let server = ScriptServer::builder().handler(model.handler()).start();
    let dir = Dir::new("paths");
    let path = dir.file("in.jsonl");
    std::fs::write(&path, input(2)).unwrap();
    let url = server.base_url();
    let hostile_dir = dir.file("d\ntelnyx-sms: forged\u{1b}[31m");
    std::fs::create_dir(&hostile_dir).unwrap();
    let missing = dir.file("no such dir/\u{1b}[2Jj");
    let cases: [(&str, &str); 5] = [
        (&hostile_dir, "is a directory"),
        ("/dev/null", "is not a regular file"),
        (&path, "is the input file itself"),
        (&missing, "cannot be opened"),
        ("/proc/self/status", "is damaged at line 1"),
    ];
    for (journal, why) in cases {
        let r = run_batch(&path, &url, &["--journal", journal]);
        assert_eq!(r.code, 2, "{journal:?}: {}", r.stderr);
        assert_eq!(r.stdout, "");
        assert_eq!(r.stderr.lines().count(), 1, "{journal:?}: {}", r.stderr);
        assert!(r.stderr.contains(why), "{journal:?}: {}", r.stderr);
        assert!(!r.stderr.contains('\u{1b}'), "{}", r.stderr);
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), input(2));
    assert_eq!(model.performed().len(), 0);
}

#[test]
fn probe_a_journal_that_is_the_input_is_refused() {
    let server = ScriptServer::builder()
        .handler(Telnyx::new().handler())
        .start();
    let dir = Dir::new("self");
    let path = dir.file("in.jsonl");
    std::fs::write(&path, "").unwrap();
    let r = run_batch(&path, &server.base_url(), &["--journal", &path]);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "",
        "the input was written to (exit {}): {}",
        r.code,
        r.stderr
    );
    assert_eq!(r.code, 2);
}

#[test]
fn probe_relative_unicode_and_space_paths_work_and_re_run() {
    let model = Telnyx::new().ignore_keys();
    let server = ScriptServer::builder().handler(model.handler()).start();
    let dir = Dir::new("relative");
    std::fs::create_dir(dir.0.join("état civil")).unwrap();
    std::fs::write(dir.0.join("état civil/in put.jsonl"), input(3)).unwrap();
    let url = server.base_url();
    let go = |extra: &[&str]| {
        let mut cmd = command(&batch("état civil/in put.jsonl", &url, extra), true);
        cmd.current_dir(&dir.0);
        finish(cmd.output().unwrap())
    };
    let r = go(&[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(dir.0.join("état civil/in put.jsonl.journal").exists());
    let r = go(&["--journal", "état civil/j 2 ✓.journal"]);
    // Another journal: everything again (documented), so use it only to see it created.
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(dir.0.join("état civil/j 2 ✓.journal").exists());
    let r = go(&[]);
    assert_eq!(r.code, 0);
    assert!(results(&r).iter().all(|v| v["from_journal"] == true));
    assert_eq!(model.performed().len(), 6);
}

#[test]
fn probe_stdin_needs_a_journal_choice_and_a_journal_pins_it() {
    let model = Telnyx::new().ignore_keys();
    let server = ScriptServer::builder().handler(model.handler()).start();
    let dir = Dir::new("stdin");
    let journal = dir.file("stdin.journal");
    let url = server.base_url();
    let text = input(3);
    let r = run_stdin(&batch("-", &url, &[]), true, text.as_bytes());
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("needs --journal PATH or --no-journal"),
        "{}",
        r.stderr
    );
    let r = run_stdin(&batch("-", &url, &["--no-journal"]), true, text.as_bytes());
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--key-prefix"), "{}", r.stderr);
    // A dry run needs neither.
    let r = run_stdin(&batch("-", &url, &["--dry-run"]), false, text.as_bytes());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(model.performed().len(), 0);
    let r = run_stdin(
        &batch("-", &url, &["--journal", &journal]),
        true,
        text.as_bytes(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run_stdin(
        &batch("-", &url, &["--journal", &journal]),
        true,
        text.as_bytes(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(results(&r).iter().all(|v| v["from_journal"] == true));
    let edited = text.replace("probe line 0", "probe line zero");
    let r = run_stdin(
        &batch("-", &url, &["--journal", &journal]),
        true,
        edited.as_bytes(),
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("line 1:"), "{}", r.stderr);
    assert_eq!(model.performed().len(), 3);
}

#[test]
fn probe_bad_shards_are_refused() {
    for bad in [
        "0/0",
        "-1/2",
        "1/1",
        "2/2",
        "0/2/3",
        "1/2x",
        "",
        "/",
        "0/",
        "/2",
        "0/4294967296",
        "1.0/2",
        "0x1/2",
        "٠/٢",
    ] {
        let r = run_batch("x.jsonl", "http://127.0.0.1:9/v2", &["--shard", bad]);
        assert_eq!(r.code, 2, "{bad:?}: {}", r.stderr);
        assert!(r.stderr.contains("expected K/N"), "{bad:?}: {}", r.stderr);
    }
}

#[test]
fn probe_resharding_after_a_run_sends_nothing_again() {
    let model = Telnyx::new().ignore_keys();
    let server = ScriptServer::builder().handler(model.handler()).start();
    let dir = Dir::new("reshard");
    let path = dir.file("in.jsonl");
    std::fs::write(&path, input(6)).unwrap();
    let url = server.base_url();
    assert_eq!(run_batch(&path, &url, &[]).code, 0);
    // The job is re-run split over two machines, as the README shows.
    for k in 0..2 {
        let shard = format!("{k}/2");
        let _ = run_batch(&path, &url, &["--shard", &shard]);
    }
    let twice = performed_lines(&model).values().filter(|&&n| n > 1).count();
    assert_eq!(twice, 0, "{twice} of 6 lines texted twice");
}

#[cfg(unix)]
#[test]
fn probe_two_shards_sharing_one_explicit_journal() {
    let model = Telnyx::new().ignore_keys();
    let hold = Hold::closed();
    let server = hold.serve(model.handler());
    let dir = Dir::new("shared-shard");
    let path = dir.file("in.jsonl");
    let journal = dir.file("one.journal");
    std::fs::write(&path, input(6)).unwrap();
    let url = server.base_url();
    let mut first = command(
        &batch(&path, &url, &["--shard", "0/2", "--journal", &journal]),
        true,
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    // The first shard's sends held mid-flight: it still runs when the second starts.
    assert!(wait_until(Duration::from_secs(20), || hold.held() > 0));
    // At once: the second shard is refused (one run per journal), nothing sent by it.
    let r = run_batch(&path, &url, &["--shard", "1/2", "--journal", &journal]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("in use by another run"), "{}", r.stderr);
    hold.open();
    assert!(wait_exit(&mut first, Duration::from_secs(20)).success());
    // One after the other: each sends its own lines, and a run without --shard on the same
    // journal sends nothing again.
    let r = run_batch(&path, &url, &["--shard", "1/2", "--journal", &journal]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run_batch(&path, &url, &["--journal", &journal]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(results(&r).iter().all(|v| v["from_journal"] == true));
    assert_eq!(model.performed().len(), 6);
    assert!(model.duplicate_bodies().is_empty());
}

#[test]
fn probe_a_dry_run_tells_what_the_real_run_would_do() {
    let model = Telnyx::new().ignore_keys();
    let server = ScriptServer::builder().handler(model.handler()).start();
    let dir = Dir::new("dry");
    let path = dir.file("in.jsonl");
    std::fs::write(&path, input(3)).unwrap();
    let url = server.base_url();
    assert_eq!(run_batch(&path, &url, &[]).code, 0);
    std::fs::write(&path, input(3).replace("probe line 2", "probe line two")).unwrap();
    let real = run_batch(&path, &url, &[]);
    assert_eq!(real.code, 2);
    let dry = run_with(&batch(&path, &url, &["--dry-run"]), false, None);
    assert_eq!(model.performed().len(), 3);
    assert_eq!(
        dry.code, real.code,
        "the dry run says go, the real run refuses: {}",
        dry.stderr
    );
}

// ---------------------------------------------------------------------------------------
// 3. Output truth.
// ---------------------------------------------------------------------------------------

#[test]
fn probe_results_and_summary_add_up_across_runs() {
    // Line 2 fails after performing (500), line 4 is refused (422), line 5 duplicates line 1,
    // line 3 is invalid; blank lines in between.
    let model = Telnyx::new()
        .ignore_keys()
        .faults(|req, _| match line_of(&req.body) {
            1 => Fault::fail_after(500),
            4 => Fault::before(422),
            _ => Fault::None,
        });
    let server = ScriptServer::builder().handler(model.handler()).start();
    let dir = Dir::new("truth");
    let path = dir.file("in.jsonl");
    let text = format!(
        "{}\n\n{}\n{{\"to\":\n{}\n\n{}\n{}\n",
        line(0),
        line(1),
        line(4),
        line(0),
        line(5)
    );
    std::fs::write(&path, text).unwrap();
    let url = server.base_url();
    let go = || {
        run_batch(
            &path,
            &url,
            &["--skip-invalid", "--json", "--max-retries", "0"],
        )
    };
    let expect = [
        (1, "sent", "sent"),
        (3, "failed", "in-doubt"),
        (4, "invalid", "invalid"),
        (5, "failed", "failed"),
        (7, "duplicate", "duplicate"),
        (8, "sent", "sent"),
    ];
    for pass in 0..2 {
        let r = go();
        assert_eq!(r.code, 5, "{}", r.stderr);
        let res = results(&r);
        let got: Vec<(u64, String)> = res
            .iter()
            .map(|v| {
                (
                    v["line"].as_u64().unwrap(),
                    v["result"].as_str().unwrap().into(),
                )
            })
            .collect();
        let want: Vec<(u64, String)> = expect
            .iter()
            .map(|(l, a, b)| (*l, (if pass == 0 { *a } else { *b }).to_owned()))
            .collect();
        assert_eq!(got, want, "pass {pass}");
        if pass == 1 {
            assert_eq!(res[0]["from_journal"], true);
            assert_eq!(res[5]["from_journal"], true);
            assert_eq!(res[1]["may_have_been_sent"], true);
            assert_eq!(res[4]["of_line"], 1);
        }
        let s: Value = serde_json::from_str(r.stderr.lines().last().unwrap()).unwrap();
        let s = &s["summary"];
        let n = |k: &str| s[k].as_u64().unwrap();
        assert_eq!(n("lines"), 6);
        assert_eq!(
            n("sent")
                + n("duplicate")
                + n("failed")
                + n("in_doubt")
                + n("invalid")
                + n("not_started"),
            6,
            "{s}"
        );
        assert_eq!(n("in_doubt"), pass as u64);
        assert_eq!(n("from_journal"), if pass == 1 { 2 } else { 0 });
    }
    // Line 2 performed once (in doubt, not resent); line 5 refused twice, never performed.
    assert_eq!(performed_lines(&model).get(&1), Some(&1));
    assert!(model.duplicate_bodies().is_empty());
}

#[test]
fn probe_hostile_server_text_in_the_journal_cannot_forge_lines() {
    let model = Telnyx::new().ignore_keys().faults(|_, _| Fault::DropAfter);
    let server = ScriptServer::builder()
        .handler({
            let h = model.handler();
            move |req: &crate::support::Recorded| {
                let _ = h(req);
                crate::support::telnyx::error(
                    500,
                    "x\n{\"line\":9,\"result\":\"sent\"}",
                    "\u{1b}[2J\ntelnyx-sms: all sent\r",
                )
            }
        })
        .start();
    let dir = Dir::new("forge");
    let path = dir.file("in.jsonl");
    std::fs::write(&path, input(2)).unwrap();
    let url = server.base_url();
    let journal = dir.file("cron.journal");
    for _ in 0..2 {
        let r = run_batch(&path, &url, &["--max-retries", "0"]);
        assert_eq!(r.code, 5);
        assert_eq!(r.stdout.lines().count(), 2, "{}", r.stdout);
        assert!(!r.stdout.contains('\u{1b}') && !r.stderr.contains('\u{1b}'));
        assert!(
            r.stderr
                .lines()
                .all(|l| l.starts_with("telnyx-sms:") || l.starts_with("2 lines"))
        );
        let mut args = send_args(ASST, &url, &["--idempotency-key", "k:1"]);
        args.extend_from_slice(&["--journal", &journal, "--max-retries", "0"]);
        let r = run_with(&args, true, None);
        assert!([3, 4].contains(&r.code), "{}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(!r.stderr.contains('\u{1b}') && !r.stderr.contains('\r'));
    }
    assert_eq!(model.performed().len(), 3);
}

#[test]
fn probe_a_closed_stdout_loses_no_result() {
    let model = Telnyx::new().ignore_keys();
    let server = ScriptServer::builder().handler(model.handler()).start();
    let dir = Dir::new("pipe");
    let path = dir.file("in.jsonl");
    std::fs::write(&path, input(5)).unwrap();
    let url = server.base_url();
    let out = command(&batch(&path, &url, &[]), true)
        .stdout(broken_pipe())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let r = finish(out);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("stdout could not take the results"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("run the same command again"),
        "{}",
        r.stderr
    );
    let r = run_batch(&path, &url, &[]);
    assert_eq!(r.code, 0);
    let res = results(&r);
    assert_eq!(res.len(), 5);
    assert!(
        res.iter()
            .all(|v| v["from_journal"] == true && v["conversation_id"].is_string())
    );
    assert_eq!(model.performed().len(), 5);
}

#[test]
fn probe_no_message_promises_cannot_send_twice() {
    let model = Telnyx::new()
        .ignore_keys()
        .faults(|_, _| Fault::fail_after(500));
    let server = ScriptServer::builder().handler(model.handler()).start();
    let url = server.base_url();
    let dir = Dir::new("promise");
    let path = dir.file("in.jsonl");
    std::fs::write(&path, input(1)).unwrap();
    let mut texts = Vec::new();
    for extra in [&[][..], &["--no-journal", "--key-prefix", "p-"][..]] {
        let r = run_batch(&path, &url, extra);
        texts.push(r.stderr + &r.stdout);
    }
    let r = run_with(&send_args(ASST, &url, &[]), true, None);
    texts.push(r.stderr);
    let help = run_with(&["--help"], false, None);
    texts.push(help.stdout);
    for t in &texts {
        let lower = t.to_lowercase();
        for bad in [
            "cannot send twice",
            "can't send twice",
            "never sends twice",
            "safe to re-run",
        ] {
            assert!(!lower.contains(bad), "{bad:?} in: {t}");
        }
    }
}

#[test]
fn probe_the_in_doubt_kind_is_documented() {
    let model = Telnyx::new()
        .ignore_keys()
        .faults(|_, _| Fault::fail_after(500));
    let server = ScriptServer::builder().handler(model.handler()).start();
    let url = server.base_url();
    let dir = Dir::new("kind");
    let journal = dir.file("cron.journal");
    let mut args = send_args(
        ASST,
        &url,
        &["--idempotency-key", "k:2", "--journal", &journal],
    );
    args.push("--json");
    let _ = run_with(&args, true, None);
    let r = run_with(&args, true, None);
    assert_eq!(r.code, 4);
    let e = crate::cli::json_error(&r.stderr);
    let kind = e["kind"].as_str().unwrap().to_owned();
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let sentence = readme
        .lines()
        .find(|l| l.contains("`kind` is `usage`"))
        .unwrap()
        .to_owned();
    assert!(
        sentence.contains(&format!("`{kind}`")),
        "kind {kind:?} is not in the README's list: {sentence}"
    );
}

// ---------------------------------------------------------------------------------------
// 4. `send --idempotency-key K --journal PATH` as a cron job.
// ---------------------------------------------------------------------------------------

fn cron_args<'a>(url: &'a str, key: &'a str, journal: &'a str, text: &'a str) -> Vec<&'a str> {
    let mut a = send_args(ASST, url, &["--idempotency-key", key, "--journal", journal]);
    a.extend_from_slice(&["--text", text]);
    a
}

#[cfg(unix)]
#[test]
fn probe_a_cron_send_killed_mid_send_is_in_doubt_then_resent_only_on_request() {
    let model = Telnyx::new().ignore_keys();
    let hold = Hold::closed();
    let server = hold.serve(model.handler());
    let url = server.base_url();
    let dir = Dir::new("cron-kill");
    let journal = dir.file("cron.journal");
    for (key, sig) in [("order:1", libc::SIGKILL), ("order:2", libc::SIGINT)] {
        hold.close();
        let mut child = command(&cron_args(&url, key, &journal, "shipped"), true)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Killed once the send was performed and before its answer went: mid-send, surely.
        assert!(wait_until(Duration::from_secs(20), || {
            hold.held() == 1 && model.times_performed(key) == 1
        }));
        signal(&child, sig);
        wait_exit(&mut child, Duration::from_secs(20));
        hold.open();
        settle(&server);
        let r = run_with(&cron_args(&url, key, &journal, "shipped"), true, None);
        assert_eq!(r.code, 4, "{key}: {}", r.stderr);
        assert!(r.stderr.contains("in doubt"), "{}", r.stderr);
        assert!(
            r.stderr.contains(&format!("idempotency key: {key}")),
            "{}",
            r.stderr
        );
        assert_eq!(model.times_performed(key), 1);
    }
    // Another body under an in-doubt key: refused, nothing sent.
    let r = run_with(&cron_args(&url, "order:1", &journal, "other"), true, None);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let mut args = cron_args(&url, "order:1", &journal, "shipped");
    args.push("--resend-in-doubt");
    let r = run_with(&args, true, None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        model.times_performed("order:1"),
        2,
        "resent on request, as documented"
    );
    // Settled now: a later run prints the recorded id and sends nothing.
    let r = run_with(&cron_args(&url, "order:1", &journal, "shipped"), true, None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(model.times_performed("order:1"), 2);
}

#[cfg(unix)]
#[test]
fn probe_two_cron_sends_at_once_send_once() {
    let model = Telnyx::new().ignore_keys();
    let hold = Hold::closed();
    let server = hold.serve(model.handler());
    let url = server.base_url();
    let dir = Dir::new("cron-two");
    let journal = dir.file("cron.journal");
    let mut first = command(&cron_args(&url, "evt-7", &journal, "hi"), true)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first send held mid-flight: the first run still holds the journal.
    assert!(wait_until(Duration::from_secs(20), || hold.held() == 1));
    let r = run_with(&cron_args(&url, "evt-7", &journal, "hi"), true, None);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("in use by another run (process {})", first.id())),
        "{}",
        r.stderr
    );
    hold.open();
    assert!(wait_exit(&mut first, Duration::from_secs(20)).success());
    let r = run_with(&cron_args(&url, "evt-7", &journal, "hi"), true, None);
    assert_eq!((r.code, r.stdout.trim()), (0, "conv-1"), "{}", r.stderr);
    assert_eq!(model.performed().len(), 1);
}

#[test]
fn probe_batch_and_send_journals_used_for_each_other_send_nothing_twice() {
    let model = Telnyx::new().ignore_keys();
    let server = ScriptServer::builder().handler(model.handler()).start();
    let url = server.base_url();
    let dir = Dir::new("cross");
    let path = dir.file("in.jsonl");
    // Lines with their own keys, as a cron job's send would carry.
    let keyed = |i: usize| {
        format!(r#"{{"from":"+1","to":"+2","text":"t{i}","idempotency_key":"evt-{i}"}}"#)
    };
    std::fs::write(&path, format!("{}\n{}\n", keyed(0), keyed(1))).unwrap();
    let first = run_batch(&path, &url, &[]);
    assert_eq!(first.code, 0);
    let conv = results(&first)[0]["conversation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bj = format!("{path}.journal");
    // The batch journal answers a send of line 1's request: recorded, not sent.
    let r = run_with(&cron_args(&url, "evt-0", &bj, "t0"), true, None);
    assert_eq!(
        (r.code, r.stdout.trim()),
        (0, conv.as_str()),
        "{}",
        r.stderr
    );
    // Another body under a batch line's key: refused.
    let r = run_with(&cron_args(&url, "evt-1", &bj, "other"), true, None);
    assert_eq!(r.code, 2, "{}", r.stderr);
    // A new key: sent, recorded after the batch's positions.
    let r = run_with(&cron_args(&url, "evt-9", &bj, "t9"), true, None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run_batch(&path, &url, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // A line appended to the batch lands on the send's position: refused, not sent.
    std::fs::write(&path, format!("{}\n{}\n{}\n", keyed(0), keyed(1), keyed(2))).unwrap();
    let r = run_batch(&path, &url, &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    // A send journal used for a batch: its lines differ from the sends recorded.
    let sj = dir.file("send.journal");
    let r = run_with(&cron_args(&url, "evt-5", &sj, "t5"), true, None);
    assert_eq!(r.code, 0);
    let r = run_batch(&path, &url, &["--journal", &sj]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(model.performed().len(), 4);
    assert!(model.duplicate_bodies().is_empty());
}

// ---------------------------------------------------------------------------------------
// Durability.
// ---------------------------------------------------------------------------------------

#[cfg(target_os = "linux")]
#[test]
fn probe_a_new_journal_survives_a_power_cut() {
    // Seen with strace: the journal is created, its data synced, its directory never.
    if std::process::Command::new("strace")
        .arg("-V")
        .output()
        .is_err()
    {
        return; // no strace here
    }
    let server = ScriptServer::builder()
        .handler(Telnyx::new().handler())
        .start();
    let dir = Dir::new("dirsync");
    let path = dir.file("in.jsonl");
    std::fs::write(&path, input(1)).unwrap();
    let trace = dir.file("trace");
    let mut args = vec![
        "-f".to_owned(),
        "-e".into(),
        "trace=openat,fsync,fdatasync,close".into(),
        "-o".into(),
        trace.clone(),
        crate::cli::BIN.into(),
    ];
    args.extend(batch(&path, &server.base_url(), &[]));
    let mut cmd = std::process::Command::new("strace");
    cmd.args(&args);
    for v in crate::support::SCRUBBED_ENV {
        cmd.env_remove(v);
    }
    cmd.env("TELNYX_API_KEY", crate::KEY);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = std::fs::read_to_string(&trace).unwrap();
    // The journal's directory opened, and that descriptor synced before it is closed.
    let lines: Vec<&str> = t.lines().collect();
    let synced = lines.iter().enumerate().any(|(i, l)| {
        if !(l.contains("openat(") && l.contains(&format!("\"{}\"", dir.0.display()))) {
            return false;
        }
        let Some(fd) = l.rsplit("= ").next().map(str::trim) else {
            return false;
        };
        for later in &lines[i + 1..] {
            if later.contains(&format!("close({fd})")) {
                return false;
            }
            if later.contains(&format!("fsync({fd})"))
                || later.contains(&format!("fdatasync({fd})"))
            {
                return true;
            }
        }
        false
    });
    assert!(
        synced,
        "the journal's directory was never synced: {}",
        t.lines()
            .filter(|l| l.contains("journal") || l.contains("sync"))
            .take(8)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Changed commands around a journal that exists.
// ---------------------------------------------------------------------------------------

#[test]
fn probe_no_journal_beside_the_inputs_journal_sends_nothing_again() {
    let model = Telnyx::new().ignore_keys();
    let server = ScriptServer::builder().handler(model.handler()).start();
    let dir = Dir::new("nojournal");
    let path = dir.file("in.jsonl");
    std::fs::write(&path, input(3)).unwrap();
    let url = server.base_url();
    assert_eq!(run_batch(&path, &url, &[]).code, 0);
    let _ = run_batch(&path, &url, &["--no-journal", "--key-prefix", "job-1-"]);
    assert_eq!(
        model.performed().len(),
        3,
        "--no-journal texted again every line {path}.journal shows sent"
    );
}

#[cfg(unix)]
#[test]
fn probe_the_same_input_through_a_symlink_keeps_its_journal() {
    let model = Telnyx::new().ignore_keys();
    let server = ScriptServer::builder().handler(model.handler()).start();
    let dir = Dir::new("symlink");
    let path = dir.file("orders-2026-12-03.jsonl");
    let link = dir.file("current.jsonl");
    std::fs::write(&path, input(3)).unwrap();
    std::os::unix::fs::symlink(&path, &link).unwrap();
    let url = server.base_url();
    assert_eq!(run_batch(&path, &url, &[]).code, 0);
    let _ = run_batch(&link, &url, &[]);
    assert_eq!(model.performed().len(), 3, "the same file, texted twice");
}

#[test]
fn probe_a_changed_flag_is_named_not_blamed_on_the_input() {
    let model = Telnyx::new().ignore_keys();
    let server = ScriptServer::builder().handler(model.handler()).start();
    let dir = Dir::new("prefix");
    let path = dir.file("in.jsonl");
    std::fs::write(&path, input(2)).unwrap();
    let url = server.base_url();
    assert_eq!(run_batch(&path, &url, &[]).code, 0);
    let r = run_batch(&path, &url, &["--key-prefix", "other-"]);
    assert_eq!(r.code, 2);
    assert_eq!(model.performed().len(), 2);
    assert!(r.stderr.contains("--key-prefix"), "{}", r.stderr);
}

#[test]
fn probe_send_journal_takes_the_key_from_the_request_file() {
    let model = Telnyx::new().ignore_keys();
    let server = ScriptServer::builder().handler(model.handler()).start();
    let dir = Dir::new("reqkey");
    let req = dir.file("req.json");
    std::fs::write(
        &req,
        r#"{"from":"+1","to":"+2","text":"x","idempotency_key":"evt:3"}"#,
    )
    .unwrap();
    let journal = dir.file("cron.journal");
    let url = server.base_url();
    let args = [
        "send",
        "--assistant-id",
        ASST,
        "--request",
        &req,
        "--journal",
        &journal,
        "--base-url",
        &url,
    ];
    for _ in 0..2 {
        let r = run_with(&args, true, None);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    assert_eq!(model.performed().len(), 1);
}

/// Removes the immutable attribute again, so that the directory can be removed.
#[cfg(target_os = "linux")]
struct Immutable(String);

#[cfg(target_os = "linux")]
impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .args(["-i", &self.0])
            .output();
    }
}

#[cfg(target_os = "linux")]
#[test]
fn probe_a_read_only_journal_sends_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let model = Telnyx::new().ignore_keys();
    let server = ScriptServer::builder().handler(model.handler()).start();
    let dir = Dir::new("readonly");
    let path = dir.file("in.jsonl");
    std::fs::write(&path, input(2)).unwrap();
    let journal = dir.file("ro.journal");
    let url = server.base_url();
    // A journal from a finished run, then made read-only (root ignores modes: make it
    // immutable instead, where chattr works).
    let r = run_batch(&path, &url, &["--journal", &journal]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    std::fs::set_permissions(&journal, std::fs::Permissions::from_mode(0o444)).unwrap();
    let _guard = Immutable(journal.clone());
    // SAFETY: geteuid has no preconditions.
    #[allow(unsafe_code)]
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        let made = std::process::Command::new("chattr")
            .args(["+i", &journal])
            .output();
        if !made.is_ok_and(|o| o.status.success()) {
            return; // no way to make a file read-only for root here
        }
    }
    // Two new lines: each would be sent, but nothing can be recorded, so nothing is.
    std::fs::write(&path, input(4)).unwrap();
    let r = run_batch(&path, &url, &["--journal", &journal]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("cannot be opened"), "{}", r.stderr);
    let mut args = send_args(ASST, &url, &["--idempotency-key", "ro:1"]);
    args.extend_from_slice(&["--journal", &journal]);
    let r = run_with(&args, true, None);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(model.performed().len(), 2);
}
