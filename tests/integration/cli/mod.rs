//! The `telnyx-sms` binary, run as a script would run it, against servers on 127.0.0.1.
//!
//! `send`: what reaches the wire and what stdout gets; `usage`: everything refused before
//! sending (exit 2); `failures`: what the server or the network refuses, and how the output
//! survives closed pipes and hostile server text; `verbose`: `-v`, `-vv` and `TELNYX_LOG`.

mod batch;
mod failures;
mod journal;
mod probe_journal;
mod send;
mod tls;
mod usage;
mod verbose;

use std::ffi::OsStr;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use crate::KEY;

pub const BIN: &str = env!("CARGO_BIN_EXE_telnyx-sms");
pub const PATH: &str = "/v2/ai/assistants/asst-cli/chat/sms";

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The binary with `args`, no proxy, and the key in the environment when `with_key`.
pub fn command<S: AsRef<OsStr>>(args: &[S], with_key: bool) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for v in crate::support::SCRUBBED_ENV {
        cmd.env_remove(v);
    }
    // A developer's TELNYX_LOG would add records to stderr.
    cmd.env_remove("TELNYX_LOG");
    if with_key {
        cmd.env("TELNYX_API_KEY", KEY);
    }
    cmd
}

/// Checks what every run must satisfy (no panic, no key in any output, UTF-8 output) and
/// returns it.
pub fn finish(out: Output) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = out;
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8(stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(stderr).expect("stderr is UTF-8"),
    };
    for text in [&run.stdout, &run.stderr] {
        assert!(
            !text.contains(KEY) && !text.contains("secret0123"),
            "key leaked: {text}"
        );
    }
    assert!(
        run.code != 101 && !run.stderr.contains("panicked"),
        "panic: {}",
        run.stderr
    );
    run
}

/// Runs the binary with `args`, the key in the environment (when `with_key`) and optional
/// stdin.
pub fn run_with<S: AsRef<OsStr>>(args: &[S], with_key: bool, stdin: Option<&[u8]>) -> Run {
    let mut cmd = command(args, with_key);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            // The binary may exit before it reads its input (a usage error): a closed pipe
            // here is its answer, not the test's failure.
            let _ = input.write_all(s);
        }
    }
    finish(child.wait_with_output().unwrap())
}

pub fn run(args: &[&str]) -> Run {
    run_with(args, true, None)
}

/// `send --assistant-id ID --from +1 --to +2 --base-url URL` plus `extra`.
pub fn send_args<'a>(id: &'a str, url: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
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

pub fn send_to(id: &str, url: &str, extra: &[&str]) -> Run {
    run(&send_args(id, url, extra))
}

pub fn base(server: &mockito::Server) -> String {
    format!("{}/v2", server.url())
}

/// A file in the temp directory holding `content`, named for this process and `name`.
pub fn temp_file(name: &str, content: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("telnyx-sms-{}-{name}", std::process::id()));
    std::fs::write(&path, content).unwrap();
    path
}

/// The write end of a pipe whose read end is already closed, so every write to it fails
/// (EPIPE), whenever the child writes: the reader (another run of the binary, which never
/// reads its stdin) has exited before this returns.
pub fn broken_pipe() -> Stdio {
    let mut reader = Command::new(BIN)
        .arg("--version")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let write_end = reader.stdin.take().unwrap();
    assert!(reader.wait().unwrap().success());
    Stdio::from(write_end)
}

/// The keys every `--json` error object has, whatever failed.
pub const ERROR_KEYS: [&str; 10] = [
    "attempts",
    "errors",
    "idempotency_key",
    "kind",
    "may_have_been_sent",
    "message",
    "request_id",
    "retry_after_seconds",
    "status",
    "violations",
];

/// Parses a `--json` error from stderr and checks its shape; returns the inner object.
pub fn json_error(stderr: &str) -> serde_json::Value {
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    let v: serde_json::Value = serde_json::from_str(stderr).expect("stderr is JSON");
    let e = v["error"].as_object().expect("an error object").clone();
    let mut keys: Vec<&str> = e.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ERROR_KEYS, "{stderr}");
    serde_json::Value::Object(e)
}

/// The result lines a run printed (one JSON object a line).
pub fn results(r: &Run) -> Vec<serde_json::Value> {
    r.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// A journal's positions started, and those started with no outcome since (read by the
/// test's own parser, not the library's; a torn last line is passed over).
pub fn journal_state(
    journal: &std::path::Path,
) -> (
    std::collections::BTreeSet<u64>,
    std::collections::BTreeSet<u64>,
) {
    let (mut started, mut open) = (
        std::collections::BTreeSet::new(),
        std::collections::BTreeSet::new(),
    );
    let text = std::fs::read_to_string(journal).unwrap_or_default();
    for l in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(l) else {
            continue;
        };
        match (v["event"].as_str(), v["index"].as_u64()) {
            (Some("start"), Some(i)) => {
                started.insert(i);
                open.insert(i);
            }
            (Some("sent" | "failed"), Some(i)) => {
                open.remove(&i);
            }
            _ => {}
        }
    }
    (started, open)
}

/// splitmix64: moments and choices a seed replays.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Sends `sig` to `child` (not yet reaped).
#[cfg(unix)]
pub fn signal(child: &std::process::Child, sig: i32) {
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on our own child, not yet reaped (a zombie at worst).
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Sends `sig` to `child`, then waits until the child has taken it and its handler (if it
/// has one) has returned, so that what the handler does is done before the test goes on:
/// answers the test lets go next find the stop flag set, and a second signal cannot merge
/// with a first still pending.
///
/// On Linux this is read from `/proc`: the signal leaves the pending set when a thread takes
/// it, and that thread runs (state `R`) from then until its handler returns and it sleeps
/// again. So once the signal is pending nowhere and no thread of the child runs, the handler
/// is over (or the default action ended the child). The test's own handles (held answers,
/// blocked reads) keep every thread of the child asleep, so the wait ends. Elsewhere a pause
/// stands in for it.
#[cfg(unix)]
pub fn signal_and_wait_taken(child: &std::process::Child, sig: i32) {
    signal(child, sig);
    #[cfg(target_os = "linux")]
    {
        let pid = child.id();
        assert!(
            crate::support::wait_until(std::time::Duration::from_secs(30), || {
                signal_taken(pid, sig)
            }),
            "the child (process {pid}) did not take signal {sig}"
        );
    }
    #[cfg(not(target_os = "linux"))]
    std::thread::sleep(std::time::Duration::from_millis(300));
}

/// Whether process `pid` has taken `sig` and no thread of it is running (see
/// [`signal_and_wait_taken`]); `true` once it is gone or a zombie.
#[cfg(target_os = "linux")]
fn signal_taken(pid: u32, sig: i32) -> bool {
    let bit = 1u64 << (sig - 1);
    let pending = |status: &str, field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .is_some_and(|mask| mask & bit != 0)
    };
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return true;
    };
    if pending(&status, "ShdPnd:") {
        return false;
    }
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    for task in tasks.flatten() {
        let dir = task.path();
        // A thread that ended meanwhile has no files left: it runs no handler.
        let (Ok(status), Ok(stat)) = (
            std::fs::read_to_string(dir.join("status")),
            std::fs::read_to_string(dir.join("stat")),
        ) else {
            continue;
        };
        if pending(&status, "SigPnd:") {
            return false;
        }
        // `tid (comm) STATE ...`: the state follows the last `)` (comm may hold one).
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        if !matches!(state, Some('S' | 'Z' | 'X')) {
            return false;
        }
    }
    true
}
