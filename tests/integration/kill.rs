//! The kill test of issue 14: a batch with a journal runs in a child process (this same test
//! binary, see [`crate::spawn_child`]) against a Telnyx-like server in this process that takes
//! a while to perform each send, and is SIGKILLed at random moments, then run again with the
//! same journal, again and again, at concurrencies from 1 to 64.
//!
//! - Against a server that ignores `Idempotency-Key`: no line is ever performed twice, every
//!   line ends `sent`, `failed` or in doubt, and each kill leaves at most `concurrency` lines
//!   in doubt.
//! - Against a server that honours keys: the same, then one run with `resend_in_doubt`, after
//!   which every line was performed exactly once.
//!
//! The journal is read here with a parser of the test's own (not the library's), so a
//! journal the library would misread cannot hide a defect.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use telnyx_assistant_sms::{BatchOptions, BatchOutcome, BatchResult, SendSmsRequest};

use crate::support::ScriptServer;
use crate::support::telnyx::Telnyx;

const ASST: &str = "asst-kill";
const CHILD: &str = "kill::child_runs_the_batch";
/// How long the server takes to perform one send: long enough that kills land with sends in
/// flight, short enough that the test takes a few seconds.
const PERFORM: Duration = Duration::from_millis(8);
/// The concurrency of each child run, in turn (1 to 64).
const CONCURRENCY: [usize; 12] = [1, 64, 7, 32, 2, 16, 4, 48, 8, 24, 3, 12];
/// Kills per episode (two episodes: 24 in all).
const KILLS: usize = 12;

fn line(episode: &str, i: usize) -> SendSmsRequest {
    SendSmsRequest::new("+15550001111", format!("+1555200{i:04}"))
        .text(format!("kill {episode} line {i}"))
}

fn lines(episode: &str, n: usize) -> Vec<SendSmsRequest> {
    (0..n).map(|i| line(episode, i)).collect()
}

/// A small, seeded generator (xorshift64*), so a failing run can be repeated with `KILL_SEED`.
struct Rng(u64);

impl Rng {
    fn seeded() -> (Rng, u64) {
        let seed = std::env::var("KILL_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        (Rng(seed), seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// What the journal says of one line, read by the test's own parser.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seen {
    Started,
    Sent,
    Failed { may_have_been_sent: bool },
}

/// Each line's last record, from the journal's complete lines (a torn last line is left out,
/// as a crash mid-write leaves it); and the pids of the runs recorded.
fn read_journal(path: &Path) -> (BTreeMap<usize, Seen>, Vec<u64>) {
    let text = std::fs::read(path).unwrap_or_default();
    let mut seen = BTreeMap::new();
    let mut pids = Vec::new();
    let mut records = text.split(|b| *b == b'\n').collect::<Vec<_>>();
    // The part after the last newline is a torn record (or empty).
    records.pop();
    for (n, rec) in records.iter().enumerate() {
        let v: serde_json::Value =
            serde_json::from_slice(rec).unwrap_or_else(|e| panic!("journal line {}: {e}", n + 1));
        if n == 0 {
            assert_eq!(v["journal"], 1, "the header");
            continue;
        }
        let index = v["index"].as_u64().map(|i| i as usize);
        match v["event"].as_str() {
            Some("run") => pids.push(v["pid"].as_u64().unwrap()),
            Some("start") => {
                seen.insert(index.unwrap(), Seen::Started);
            }
            Some("sent") => {
                seen.insert(index.unwrap(), Seen::Sent);
            }
            Some("failed") => {
                let may = v["may_have_been_sent"].as_bool().unwrap();
                seen.insert(
                    index.unwrap(),
                    Seen::Failed {
                        may_have_been_sent: may,
                    },
                );
            }
            other => panic!("journal line {}: event {other:?}", n + 1),
        }
    }
    (seen, pids)
}

fn in_doubt(seen: &BTreeMap<usize, Seen>) -> usize {
    seen.values()
        .filter(|s| {
            matches!(
                s,
                Seen::Started
                    | Seen::Failed {
                        may_have_been_sent: true
                    }
            )
        })
        .count()
}

/// The child: one run of the batch, as the environment says. Does nothing in the normal suite.
#[test]
#[ignore = "a helper: its parent test runs it in a child process"]
fn child_runs_the_batch() {
    if !crate::is_child(CHILD) {
        return;
    }
    let var = |k: &str| std::env::var(k).unwrap();
    let client = crate::builder(&var("KILL_BASE"))
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let options = BatchOptions::new()
        .concurrency(var("KILL_CONCURRENCY").parse().unwrap())
        .journal(var("KILL_JOURNAL"));
    let n = var("KILL_LINES").parse().unwrap();
    client
        .send_batch(ASST, lines(&var("KILL_EPISODE"), n), &options, |_| {})
        .unwrap();
}

/// Figures of one episode, for the report.
#[derive(Debug, Default)]
struct Figures {
    kills: usize,
    /// Kills that landed while the child was still running (the others found it done).
    landed: usize,
    /// Of those, kills before the child had recorded its run in the journal.
    before_open: usize,
    most_in_doubt_by_one_kill: usize,
    in_doubt_at_end: usize,
    performed: usize,
}

/// Runs and kills the batch `kills` times with the journal in `dir`, then lets `finish` run
/// it once more in this process; checks what each kill left in the journal.
fn episode(
    name: &str,
    model: &Telnyx,
    server: &ScriptServer,
    dir: &Path,
    n: usize,
    kills: usize,
    rng: &mut Rng,
) -> (PathBuf, Figures) {
    let journal = dir.join(format!("{name}.journal"));
    let mut figures = Figures::default();
    for k in 0..kills {
        let concurrency = CONCURRENCY[k % CONCURRENCY.len()];
        let (before, _) = read_journal(&journal);
        let base = server.base_url();
        let c = concurrency.to_string();
        let lines = n.to_string();
        let mut child = crate::spawn_child(
            CHILD,
            &[
                ("KILL_BASE", &base),
                ("KILL_JOURNAL", journal.to_str().unwrap()),
                ("KILL_CONCURRENCY", &c),
                ("KILL_LINES", &lines),
                ("KILL_EPISODE", name),
            ],
        );
        let pid = u64::from(child.id());
        if k % 3 == 2 {
            // Every third kill at any moment from the start: before the journal is opened,
            // while it is read, repaired, created.
            std::thread::sleep(Duration::from_micros(rng.below(40_000)));
        } else {
            // Otherwise once the child holds the journal (its run record is there), at a
            // random moment: while it starts sends, while they are in flight, while it records.
            let opened = crate::support::wait_until(Duration::from_secs(20), || {
                read_journal(&journal).1.contains(&pid) || child.try_wait().unwrap().is_some()
            });
            assert!(opened, "the child never opened the journal");
            std::thread::sleep(Duration::from_micros(rng.below(30_000)));
        }
        let running = child.try_wait().unwrap().is_none();
        child.kill().unwrap();
        let status = child.wait().unwrap();
        figures.kills += 1;
        if running {
            figures.landed += 1;
        } else {
            assert!(status.success(), "the child failed: {status}");
        }
        let (after, pids) = read_journal(&journal);
        if running && !pids.contains(&pid) {
            figures.before_open += 1;
        }
        // Nothing settled is ever lost or changed: a line sent stays sent.
        for (i, s) in &before {
            if *s == Seen::Sent {
                assert_eq!(after.get(i), Some(&Seen::Sent), "line {i} after kill {k}");
            }
        }
        let new = in_doubt(&after).saturating_sub(in_doubt(&before));
        assert!(
            new <= concurrency,
            "kill {k} at concurrency {concurrency} left {new} more lines in doubt"
        );
        figures.most_in_doubt_by_one_kill = figures.most_in_doubt_by_one_kill.max(new);
    }
    // Sends of the killed children may still be being performed: let them end, so every
    // count below is final.
    assert!(crate::support::wait_until(Duration::from_secs(20), || {
        server.in_flight() == 0 && model.in_progress() == 0
    }));
    (journal, figures)
}

fn final_run(
    server: &ScriptServer,
    journal: &Path,
    name: &str,
    n: usize,
    resend: bool,
) -> Vec<BatchResult> {
    let client = crate::builder(&server.base_url()).build().unwrap();
    let options = BatchOptions::new()
        .concurrency(8)
        .journal(journal)
        .resend_in_doubt(resend);
    let mut results = Vec::new();
    let summary = client
        .send_batch(ASST, lines(name, n), &options, |r| results.push(r))
        .unwrap();
    assert_eq!(summary.total, n, "{summary:?}");
    assert_eq!(
        summary.sent + summary.failed + summary.in_doubt,
        n,
        "{summary:?}"
    );
    assert_eq!(summary.duplicates, 0);
    results.sort_by_key(|r| r.index);
    results
}

/// How many times the server performed each line (found by its text).
fn performed_per_line(model: &Telnyx, name: &str, n: usize) -> Vec<usize> {
    let mut count: HashMap<String, usize> = HashMap::new();
    for p in model.performed() {
        let v: serde_json::Value = serde_json::from_slice(&p.body).unwrap();
        *count
            .entry(v["text"].as_str().unwrap().to_owned())
            .or_insert(0) += 1;
    }
    (0..n)
        .map(|i| {
            count
                .get(&format!("kill {name} line {i}"))
                .copied()
                .unwrap_or(0)
        })
        .collect()
}

#[test]
fn killed_again_and_again_against_a_server_that_ignores_keys_nothing_is_sent_twice() {
    let started = Instant::now();
    let (mut rng, seed) = Rng::seeded();
    let model = Telnyx::new().ignore_keys().delay(PERFORM);
    let server = ScriptServer::builder()
        .handler(model.handler())
        .counting()
        .start();
    let dir = crate::support::TempDir::new("kill-ignore");
    let (name, n) = ("ignore", 400);
    let (journal, mut figures) = episode(name, &model, &server, &dir.0, n, KILLS, &mut rng);
    let results = final_run(&server, &journal, name, n, false);
    let performed = performed_per_line(&model, name, n);
    for (r, times) in results.iter().zip(&performed) {
        let what = format!(
            "seed {seed}, line {}: {:?}, performed {times}",
            r.index, r.outcome
        );
        assert!(*times <= 1, "{what}");
        match &r.outcome {
            BatchOutcome::Sent(_) => assert_eq!(*times, 1, "{what}"),
            BatchOutcome::Failed(e) if !e.may_have_been_sent() => assert_eq!(*times, 0, "{what}"),
            BatchOutcome::Failed(_) | BatchOutcome::InDoubt { .. } => {}
            other => panic!("{what}: {other:?}"),
        }
    }
    figures.in_doubt_at_end = results
        .iter()
        .filter(|r| matches!(r.outcome, BatchOutcome::InDoubt { .. }))
        .count();
    figures.performed = performed.iter().sum();
    assert!(figures.in_doubt_at_end <= CONCURRENCY.iter().sum::<usize>());
    assert!(model.duplicate_bodies().is_empty(), "seed {seed}");
    eprintln!(
        "kill test (server ignores keys), seed {seed}: {figures:?}, {n} lines, {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn killed_again_and_again_against_a_server_that_honours_keys_then_resent_each_once() {
    let started = Instant::now();
    let (mut rng, seed) = Rng::seeded();
    let model = Telnyx::new().delay(PERFORM);
    let server = ScriptServer::builder()
        .handler(model.handler())
        .counting()
        .start();
    let dir = crate::support::TempDir::new("kill-honour");
    let (name, n) = ("honour", 400);
    let (journal, mut figures) = episode(name, &model, &server, &dir.0, n, KILLS, &mut rng);
    // Between the kills, the default runs sent nothing twice either.
    assert!(model.duplicate_bodies().is_empty(), "seed {seed}");
    let results = final_run(&server, &journal, name, n, true);
    for r in &results {
        assert!(
            matches!(r.outcome, BatchOutcome::Sent(_)),
            "seed {seed}, line {}: {:?}",
            r.index,
            r.outcome
        );
    }
    let performed = performed_per_line(&model, name, n);
    assert!(
        performed.iter().all(|t| *t == 1),
        "seed {seed}: {performed:?}"
    );
    figures.performed = performed.iter().sum();
    figures.in_doubt_at_end = 0;
    eprintln!(
        "kill test (server honours keys, then resend), seed {seed}: {figures:?}, {n} lines, {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_second_process_on_the_same_journal_is_refused_and_a_killed_one_lets_go() {
    let model = Telnyx::new().ignore_keys().delay(PERFORM);
    // The child's first send is held unanswered, so it still runs (and holds the journal)
    // however long this process takes to try the second run.
    let hold = crate::support::Hold::closed();
    let server = ScriptServer::builder()
        .handler(hold.handler(model.handler()))
        .counting()
        .start();
    let dir = crate::support::TempDir::new("kill-lock");
    let (name, n) = ("lock", 400);
    let journal = dir.0.join("lock.journal");
    let base = server.base_url();
    let count = n.to_string();
    let mut child = crate::spawn_child(
        CHILD,
        &[
            ("KILL_BASE", &base),
            ("KILL_JOURNAL", journal.to_str().unwrap()),
            ("KILL_CONCURRENCY", "1"),
            ("KILL_LINES", &count),
            ("KILL_EPISODE", name),
        ],
    );
    let pid = u64::from(child.id());
    assert!(crate::support::wait_until(Duration::from_secs(20), || {
        read_journal(&journal).1.contains(&pid) && hold.held() == 1
    }));
    let client = crate::builder(&base).build().unwrap();
    let options = BatchOptions::new().journal(&journal);
    let err = client
        .send_batch(ASST, lines(name, n), &options, |_| {})
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("in use by another run (process {pid})")),
        "{msg}"
    );
    // Killed, the holder lets go of the lock: the next run goes on where it stopped.
    child.kill().unwrap();
    child.wait().unwrap();
    hold.open();
    assert!(crate::support::wait_until(Duration::from_secs(20), || {
        server.in_flight() == 0
    }));
    let results = final_run(&server, &journal, name, n, false);
    assert!(
        results
            .iter()
            .filter(|r| matches!(r.outcome, BatchOutcome::InDoubt { .. }))
            .count()
            <= 1
    );
    assert!(model.duplicate_bodies().is_empty());
}
