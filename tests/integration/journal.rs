//! The batch journal (`BatchOptions::journal`): re-runs that send nothing twice against a
//! server that ignores `Idempotency-Key`, requests in doubt, a torn tail, a changed input, two
//! runs at once, salted keys, shards, the throttle budget and the stop flag.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use telnyx_assistant_sms::{
    BatchOptions, BatchOutcome, BatchResult, BatchSummary, Client, ErrorKind, SendSmsRequest,
};

use crate::support::telnyx::{Fault, Telnyx};
use crate::support::{ScriptServer, Step};

const ASST: &str = "asst-journal";

fn request(i: usize) -> SendSmsRequest {
    SendSmsRequest::new("+15550001111", format!("+1555000{i:04}")).text(format!("journal {i}"))
}

fn requests(n: usize) -> Vec<SendSmsRequest> {
    (0..n).map(request).collect()
}

use crate::support::TempDir as Dir;

/// A client to `server` with no retries and a short timeout, so counts are exact.
pub fn client(server: &ScriptServer) -> Client {
    crate::builder(&server.base_url())
        .max_retries(0)
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

fn run(
    client: &Client,
    reqs: Vec<SendSmsRequest>,
    options: &BatchOptions,
) -> (Vec<BatchResult>, BatchSummary) {
    run_as(ASST, client, reqs, options)
}

/// A batch through `assistant`, its results in input order, and its summary.
pub fn run_as(
    assistant: &str,
    client: &Client,
    reqs: Vec<SendSmsRequest>,
    options: &BatchOptions,
) -> (Vec<BatchResult>, BatchSummary) {
    let mut results = Vec::new();
    let summary = client
        .send_batch(assistant, reqs, options, |r| results.push(r))
        .unwrap();
    results.sort_by_key(|r| r.index);
    (results, summary)
}

#[test]
fn a_rerun_reports_what_was_sent_from_the_journal_and_sends_nothing_again() {
    let model = Telnyx::new().ignore_keys();
    let server = ScriptServer::builder().handler(model.handler()).start();
    let dir = Dir::new("rerun");
    let options = BatchOptions::new()
        .concurrency(4)
        .journal(dir.path("batch.journal"));
    let (first, summary) = run(&client(&server), requests(20), &options);
    assert_eq!((summary.sent, summary.from_journal), (20, 0));
    assert_eq!(model.performed().len(), 20);
    let (again, summary) = run(&client(&server), requests(20), &options);
    assert_eq!((summary.sent, summary.from_journal), (20, 20));
    assert_eq!(model.performed().len(), 20, "nothing sent again");
    for (a, b) in first.iter().zip(&again) {
        assert!(b.from_journal && !a.from_journal);
        assert_eq!(a.idempotency_key, b.idempotency_key);
        let (BatchOutcome::Sent(x), BatchOutcome::Sent(y)) = (&a.outcome, &b.outcome) else {
            panic!("{b:?}")
        };
        assert_eq!(x.conversation_id, y.conversation_id);
        assert!(y.conversation_id.is_some());
        assert_eq!(y.attempts, 1);
    }
}

#[test]
fn failed_and_not_sent_is_sent_again_in_doubt_is_not_unless_resent() {
    // Request 0: refused (400, not sent). Request 1: performed, then the connection dropped
    // (in doubt). Request 2: sent.
    let model = Telnyx::new().ignore_keys().faults(|req, attempt| {
        let text = req.json()["text"].as_str().unwrap_or("").to_owned();
        match (text.as_str(), attempt) {
            ("journal 0", 1) => Fault::before(400),
            ("journal 1", 1) => Fault::DropAfter,
            _ => Fault::None,
        }
    });
    let server = ScriptServer::builder().handler(model.handler()).start();
    let dir = Dir::new("doubt");
    let options = BatchOptions::new()
        .concurrency(1)
        .journal(dir.path("batch.journal"));
    let (r, s) = run(&client(&server), requests(3), &options);
    assert_eq!((s.sent, s.failed, s.in_doubt), (1, 2, 0));
    assert!(matches!(&r[1].outcome, BatchOutcome::Failed(e) if e.may_have_been_sent()));
    assert_eq!(model.performed().len(), 2);

    let (r2, s) = run(&client(&server), requests(3), &options);
    assert_eq!((s.sent, s.in_doubt, s.from_journal), (2, 1, 1));
    assert!(matches!(&r2[0].outcome, BatchOutcome::Sent(_)) && !r2[0].from_journal);
    let BatchOutcome::InDoubt { reason } = &r2[1].outcome else {
        panic!("{:?}", r2[1])
    };
    assert!(reason.contains("may have sent"), "{reason}");
    assert_eq!(r2[1].idempotency_key, r[1].idempotency_key);
    assert!(r2[2].from_journal);
    // Request 0 performed now, request 1 still once.
    assert_eq!(model.performed().len(), 3);

    // Resent on request, under the same key.
    let (r3, s) = run(
        &client(&server),
        requests(3),
        &options.clone().resend_in_doubt(true),
    );
    assert_eq!((s.sent, s.in_doubt, s.from_journal), (3, 0, 2));
    assert!(!r3[1].from_journal);
    let performed = model.performed();
    assert_eq!(performed.len(), 4, "the documented risk of resending");
    assert_eq!(
        performed[3].key.as_deref(),
        Some(r[1].idempotency_key.as_str())
    );
}

#[test]
fn a_resend_that_fails_before_sending_stays_in_doubt() {
    // In doubt (performed, then dropped); resent into a closed port (not sent): the earlier
    // attempt may still have sent it, so a later default run must not send it.
    let model = Telnyx::new().ignore_keys().faults(|_, attempt| {
        if attempt == 1 {
            Fault::DropAfter
        } else {
            Fault::None
        }
    });
    let server = ScriptServer::builder().handler(model.handler()).start();
    let dir = Dir::new("stays");
    let options = BatchOptions::new().journal(dir.path("batch.journal"));
    run(&client(&server), requests(1), &options);
    let closed = crate::builder(&format!("http://{}/v2", crate::support::closed_port()))
        .max_retries(0)
        .build()
        .unwrap();
    let (r, _) = run(&closed, requests(1), &options.clone().resend_in_doubt(true));
    assert!(matches!(&r[0].outcome, BatchOutcome::Failed(e) if !e.may_have_been_sent()));
    let (r, s) = run(&client(&server), requests(1), &options);
    assert_eq!(s.in_doubt, 1, "{r:?}");
    assert_eq!(model.performed().len(), 1);
}

#[test]
fn a_torn_last_record_is_dropped_and_damage_elsewhere_is_an_error() {
    let model = Telnyx::new().ignore_keys();
    let server = ScriptServer::builder().handler(model.handler()).start();
    let dir = Dir::new("torn");
    let options = BatchOptions::new().journal(dir.path("batch.journal"));
    run(&client(&server), requests(3), &options);
    // A crash mid-write leaves half a record with no newline.
    let mut text = std::fs::read(dir.path("batch.journal")).unwrap();
    text.extend_from_slice(br#"{"event":"start","index":7,"ke"#);
    std::fs::write(dir.path("batch.journal"), &text).unwrap();
    let (_, s) = run(&client(&server), requests(3), &options);
    assert_eq!((s.sent, s.from_journal), (3, 3));
    assert_eq!(model.performed().len(), 3);
    let after = std::fs::read_to_string(dir.path("batch.journal")).unwrap();
    assert!(
        after.ends_with('\n') && !after.contains(r#""ke{"#),
        "{after}"
    );
    // Damage in the middle is not a crash: refused, naming the line.
    let mut lines: Vec<&str> = after.lines().collect();
    lines[2] = "this is not json";
    std::fs::write(dir.path("batch.journal"), lines.join("\n") + "\n").unwrap();
    let err = client(&server)
        .send_batch(ASST, requests(3), &options, |_| {})
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("damaged at line 3"), "{err}");
    assert_eq!(model.performed().len(), 3);
}

#[test]
fn a_changed_input_is_found_before_sending_and_never_sent() {
    let model = Telnyx::new().ignore_keys();
    let server = ScriptServer::builder().handler(model.handler()).start();
    let dir = Dir::new("changed");
    let options = BatchOptions::new().journal(dir.path("batch.journal"));
    run(&client(&server), requests(3), &options);
    let mut changed = requests(4);
    changed[1] = changed[1].clone().text("another text");
    let check = client(&server)
        .check_batch(ASST, changed.clone(), &options)
        .unwrap();
    assert_eq!(
        (
            check.total,
            check.to_send,
            check.sent_before,
            check.refused_count
        ),
        (4, 1, 2, 1)
    );
    assert_eq!(check.refused[0].0, 1);
    assert!(
        check.refused[0]
            .1
            .to_string()
            .contains("differs from the request the journal"),
        "{}",
        check.refused[0].1
    );
    let (r, _) = run(&client(&server), changed, &options);
    assert!(matches!(&r[1].outcome, BatchOutcome::Failed(e) if e.kind() == ErrorKind::Validation));
    // Only the new request 3 was sent.
    assert_eq!(model.performed().len(), 4);
    // Another assistant's journal is refused whole.
    let err = client(&server)
        .send_batch("asst-other", requests(1), &options, |_| {})
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("belongs to a batch for assistant asst-journal"),
        "{err}"
    );
}

#[test]
fn two_runs_on_one_journal_are_refused_naming_the_process() {
    let model = Telnyx::new();
    // The first run's sends are held unanswered, so it still holds the journal however long
    // the second takes to start.
    let hold = crate::support::Hold::closed();
    let server = hold.serve(model.handler());
    let dir = Dir::new("lock");
    let options = BatchOptions::new().journal(dir.path("batch.journal"));
    let c = client(&server);
    std::thread::scope(|s| {
        let first = s.spawn(|| run(&c, requests(2), &options));
        // Wait until the first run holds the journal (its run record is written) and a send
        // of it is held.
        assert!(crate::support::wait_until(Duration::from_secs(20), || {
            hold.held() > 0
                && std::fs::read_to_string(dir.path("batch.journal"))
                    .is_ok_and(|t| t.contains(r#""event":"start""#))
        }));
        let err = c
            .send_batch(ASST, requests(2), &options, |_| {})
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        let msg = err.to_string();
        assert!(msg.contains("in use by another run"), "{msg}");
        assert!(
            msg.contains(&format!("process {}", std::process::id())),
            "{msg}"
        );
        hold.open();
        assert_eq!(first.join().unwrap().1.sent, 2);
    });
}

#[test]
fn keys_are_salted_per_journal() {
    let model = Telnyx::new();
    let server = ScriptServer::builder().handler(model.handler()).start();
    let (a, b) = (Dir::new("salt-a"), Dir::new("salt-b"));
    let plain = BatchOptions::new().key_prefix("job-");
    let unsalted = plain.idempotency_key_for(ASST, &request(0)).unwrap();
    let (ra, _) = run(
        &client(&server),
        requests(1),
        &plain.clone().journal(a.path("batch.journal")),
    );
    let (rb, _) = run(
        &client(&server),
        requests(1),
        &plain.clone().journal(b.path("batch.journal")),
    );
    let (ka, kb) = (&ra[0].idempotency_key, &rb[0].idempotency_key);
    assert!(ka.starts_with("job-") && kb.starts_with("job-"));
    assert_ne!(ka, kb);
    assert_ne!(ka, &unsalted);
    // Two jobs never share a key, so the second is performed, not replayed.
    assert_eq!(model.performed().len(), 2);
    // The key a dry run computes is the one the journal's batch uses.
    let with_journal = plain.clone().journal(a.path("batch.journal"));
    assert_eq!(
        &with_journal.idempotency_key_for(ASST, &request(0)).unwrap(),
        ka
    );
}

#[test]
fn shards_split_the_input_with_nothing_sent_twice_or_left_out() {
    let model = Telnyx::new().ignore_keys();
    let server = ScriptServer::builder().handler(model.handler()).start();
    let dirs: Vec<Dir> = (0..3).map(|k| Dir::new(&format!("shard-{k}"))).collect();
    let mut seen = Vec::new();
    for (k, dir) in dirs.iter().enumerate() {
        let options = BatchOptions::new()
            .shard(k as u32, 3)
            .journal(dir.path("batch.journal"));
        let (r, s) = run(&client(&server), requests(30), &options);
        assert!(s.total > 0 && s.total < 30, "shard {k}: {}", s.total);
        seen.extend(r.iter().map(|r| r.index));
        // Stable: the same shard again sends nothing and reports the same requests.
        let (again, _) = run(&client(&server), requests(30), &options);
        let idx: Vec<usize> = again.iter().map(|r| r.index).collect();
        assert_eq!(idx, r.iter().map(|r| r.index).collect::<Vec<_>>());
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..30).collect::<Vec<_>>());
    assert_eq!(model.performed().len(), 30);
    // A request identical to one in another shard is still one message.
    let mut reqs = requests(3);
    reqs[1] = reqs[0].clone();
    let dir = Dir::new("shard-dup");
    let (r, _) = run(
        &client(&server),
        reqs,
        &BatchOptions::new()
            .shard(1, 3)
            .journal(dir.path("batch.journal")),
    );
    assert_eq!(r.len(), 1);
    assert!(
        matches!(r[0].outcome, BatchOutcome::Duplicate { of: 0 }),
        "{r:?}"
    );
    assert_eq!(model.performed().len(), 30);
}

#[test]
fn a_server_that_throttles_every_answer_ends_the_batch_within_its_budget() {
    let server = ScriptServer::start(vec![Step::json(429, "{}").header("retry-after-ms", "40")]);
    let client = crate::builder(&server.base_url())
        .max_retries(2)
        .build()
        .unwrap();
    let options = BatchOptions::new()
        .concurrency(2)
        .throttle_budget(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let (r, s) = run(&client, requests(40), &options);
    assert_eq!(s.failed, 40);
    let not_attempted = r
        .iter()
        .filter(|r| matches!(&r.outcome, BatchOutcome::Failed(e) if e.attempts() == 0))
        .count();
    assert!(not_attempted > 20, "{not_attempted} not attempted");
    for r in &r {
        let BatchOutcome::Failed(e) = &r.outcome else {
            panic!()
        };
        assert!(!e.may_have_been_sent());
    }
    let first = r
        .iter()
        .find_map(|r| match &r.outcome {
            BatchOutcome::Failed(e) if e.attempts() == 0 => Some(e.to_string()),
            _ => None,
        })
        .unwrap();
    assert!(first.contains("budget of pauses"), "{first}");
    // Far fewer requests than 40 lines x 3 attempts.
    assert!(server.request_count() < 40, "{}", server.request_count());
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn the_stop_flag_lets_sends_in_flight_finish_and_starts_no_more() {
    let model = Telnyx::new()
        .ignore_keys()
        .delay(Duration::from_millis(100));
    let server = ScriptServer::builder().handler(model.handler()).start();
    let dir = Dir::new("stop");
    let flag = Arc::new(AtomicBool::new(false));
    let options = BatchOptions::new()
        .concurrency(2)
        .journal(dir.path("batch.journal"))
        .stop_flag(flag.clone());
    let mut results = Vec::new();
    let summary = client(&server)
        .send_batch(ASST, requests(50), &options, |r| {
            results.push(r);
            flag.store(true, Ordering::SeqCst);
        })
        .unwrap();
    // The first result set the flag: the other worker's send in flight finished too; a
    // request taken but not started is reported as not attempted, not sent.
    assert!(summary.total <= 4 && summary.sent <= 3, "{summary:?}");
    assert_eq!(model.performed().len(), summary.sent);
    for r in &results {
        if let BatchOutcome::Failed(e) = &r.outcome {
            assert!(e.attempts() == 0 && !e.may_have_been_sent(), "{e}");
            assert!(e.to_string().contains("was stopped"), "{e}");
        }
    }
    // The journal has every outcome: a re-run reports them and sends the rest.
    let (r, s) = run(
        &client(&server),
        requests(50),
        &BatchOptions::new().journal(dir.path("batch.journal")),
    );
    assert_eq!((s.sent, s.from_journal, s.in_doubt), (50, summary.sent, 0));
    assert_eq!(r.len(), 50);
    assert_eq!(model.performed().len(), 50);
}

#[test]
fn a_single_send_under_a_journal_runs_once_per_key_whatever_the_server_does() {
    let model = Telnyx::new().ignore_keys().faults(|req, attempt| {
        match (req.header("idempotency-key"), attempt) {
            (Some("cron-doubt"), 1) => Fault::DropAfter,
            _ => Fault::None,
        }
    });
    let server = ScriptServer::builder().handler(model.handler()).start();
    let dir = Dir::new("single");
    let options = BatchOptions::new().journal(dir.path("batch.journal"));
    let req = |key: &str| request(1).idempotency_key(key);
    let c = client(&server);
    let first = c.send_journaled(ASST, &req("cron-1"), &options).unwrap();
    assert!(matches!(first.outcome, BatchOutcome::Sent(_)) && !first.from_journal);
    // The cron job runs again: the recorded result, nothing sent.
    let again = c.send_journaled(ASST, &req("cron-1"), &options).unwrap();
    let (BatchOutcome::Sent(a), BatchOutcome::Sent(b)) = (&first.outcome, &again.outcome) else {
        panic!("{again:?}")
    };
    assert!(again.from_journal);
    assert_eq!(a.conversation_id, b.conversation_id);
    assert_eq!(model.performed().len(), 1);
    // Another key is another message, in the same journal.
    c.send_journaled(ASST, &request(2).idempotency_key("cron-2"), &options)
        .unwrap();
    assert_eq!(model.performed().len(), 2);
    // In doubt: not sent again unless asked.
    let r = c
        .send_journaled(ASST, &req("cron-doubt"), &options)
        .unwrap();
    assert!(matches!(&r.outcome, BatchOutcome::Failed(e) if e.may_have_been_sent()));
    let r = c
        .send_journaled(ASST, &req("cron-doubt"), &options)
        .unwrap();
    assert!(matches!(r.outcome, BatchOutcome::InDoubt { .. }), "{r:?}");
    assert_eq!(model.performed().len(), 3);
    let r = c
        .send_journaled(
            ASST,
            &req("cron-doubt"),
            &options.clone().resend_in_doubt(true),
        )
        .unwrap();
    assert!(matches!(r.outcome, BatchOutcome::Sent(_)));
    assert_eq!(model.performed().len(), 4);
    // The same key with another request is refused; no key at all too.
    let err = c
        .send_journaled(ASST, &request(9).idempotency_key("cron-1"), &options)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    let err = c.send_journaled(ASST, &request(9), &options).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert_eq!(model.performed().len(), 4);
}
