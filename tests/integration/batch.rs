//! The batch engine (`Client::send_batch`) against the Telnyx-like server on 127.0.0.1:
//! positions, concurrency, rate, shared back-off, keys, duplicates, re-runs, laziness.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use telnyx_assistant_sms::{
    BatchOptions, BatchOutcome, BatchResult, Client, ErrorKind, SendSmsRequest,
};

use crate::support::telnyx::Telnyx;
use crate::support::{Recorded, ScriptServer, Step};

fn request(i: usize) -> SendSmsRequest {
    SendSmsRequest::new("+15550001111", format!("+1555000{i:04}")).text(format!("message {i}"))
}

fn text_of(r: &Recorded) -> String {
    r.json()["text"].as_str().unwrap_or_default().to_owned()
}

fn run(
    client: &Client,
    requests: Vec<SendSmsRequest>,
    options: &BatchOptions,
) -> (Vec<BatchResult>, telnyx_assistant_sms::BatchSummary) {
    let mut results = Vec::new();
    let summary = client
        .send_batch("asst-batch", requests, options, |r| results.push(r))
        .unwrap();
    (results, summary)
}

fn telnyx_server(model: &Telnyx) -> ScriptServer {
    ScriptServer::builder().handler(model.handler()).start()
}

#[test]
fn results_carry_their_position_while_finishing_out_of_order() {
    // The first request is slow, the rest fast: it finishes last, yet is index 0.
    let server = ScriptServer::with_handler(|r: &Recorded| {
        if text_of(r) == "message 0" {
            Step::ok().delayed(Duration::from_millis(300))
        } else {
            Step::ok()
        }
    });
    let client = crate::builder(&server.base_url()).build().unwrap();
    let (results, summary) = run(
        &client,
        (0..12).map(request).collect(),
        &BatchOptions::new().concurrency(4),
    );
    assert_eq!((summary.total, summary.sent, summary.failed), (12, 12, 0));
    let order: Vec<usize> = results.iter().map(|r| r.index).collect();
    assert_eq!(order.last(), Some(&0), "finish order {order:?}");
    let indices: BTreeSet<usize> = order.iter().copied().collect();
    assert_eq!(indices, (0..12).collect());
    // Each result is the one for its own request.
    for r in &results {
        let BatchOutcome::Sent(res) = &r.outcome else {
            panic!("{r:?}")
        };
        assert_eq!(res.attempts, 1);
    }
}

#[test]
fn concurrency_is_never_exceeded_and_is_reached() {
    let model = Telnyx::new().delay(Duration::from_millis(30));
    let server = telnyx_server(&model);
    let client = crate::builder(&server.base_url()).build().unwrap();
    for n in [1, 4, 9] {
        let before = server.counts().requests;
        let (_, summary) = run(
            &client,
            (0..30).map(|i| request(i + 100 * n)).collect(),
            &BatchOptions::new().concurrency(n),
        );
        assert_eq!(summary.sent, 30);
        assert_eq!(server.counts().requests - before, 30);
        assert_eq!(server.max_in_flight(), n, "concurrency {n}");
        // (The high-water mark only grows, so the rounds go from low to high.)
    }
}

#[test]
fn the_rate_limit_spaces_starts_evenly() {
    let server = ScriptServer::start(vec![Step::ok()]);
    let client = crate::builder(&server.base_url()).build().unwrap();
    let (_, summary) = run(
        &client,
        (0..12).map(request).collect(),
        &BatchOptions::new().concurrency(4).rate_per_second(25.0),
    );
    assert_eq!(summary.sent, 12);
    // 25 per second: one start every 40 ms, even with 4 workers free at once (no burst).
    let at: Vec<_> = server.requests().iter().map(|r| r.at).collect();
    assert_paced(&at, 25.0);
}

/// Asserts that the start times `at` (in any order) keep a limit of `per_second` with at most
/// 4 workers, in a way a busy machine cannot fail and a missing limit cannot pass.
///
/// The pacer hands out start slots one interval `I` apart. A request reaches the server at
/// its slot or later, by a delay `d` (scheduling, connecting), never earlier. So for the
/// sorted arrivals `at[i + m] - at[i] >= m * I - max(d)`. Allowing `max(d)` up to 3 intervals
/// (120 ms at 25 per second; one gap under 30 ms has been seen on a loaded 2-core machine):
/// - on average: the whole run spans at least `(n - 4) * I`;
/// - no burst: any 5 consecutive starts span at least `I`.
///
/// Without a limit, 4 free workers start together and each start follows the previous answer
/// (about a millisecond on 127.0.0.1), so both fail by far.
pub fn assert_paced(at: &[Instant], per_second: f64) {
    const WINDOW: usize = 4;
    let mut at = at.to_vec();
    at.sort();
    let n = at.len();
    assert!(n > 2 * WINDOW, "too few starts to judge a rate: {n}");
    let interval = Duration::from_secs_f64(1.0 / per_second);
    let gaps: Vec<u128> = at.windows(2).map(|w| (w[1] - w[0]).as_millis()).collect();
    let span = at[n - 1] - at[0];
    let least = interval * (n - WINDOW) as u32;
    assert!(
        span >= least,
        "{n} starts in {span:?}, expected at least {least:?} at {per_second}/s; gaps in ms: {gaps:?}"
    );
    for (i, w) in at.windows(WINDOW + 1).enumerate() {
        let took = w[WINDOW] - w[0];
        assert!(
            took >= interval,
            "a burst: starts {i} to {} within {took:?}; gaps in ms: {gaps:?}",
            i + WINDOW
        );
    }
}

#[test]
fn a_429_with_a_wait_pauses_every_worker() {
    // The first request read gets 429 Retry-After: 1; the others take 20 ms each, so three
    // free workers alone would keep sending all through that second.
    let model = Telnyx::new()
        .throttle_first(1, "1")
        .delay(Duration::from_millis(20));
    let server = telnyx_server(&model);
    let client = crate::builder(&server.base_url()).build().unwrap();
    let (results, summary) = run(
        &client,
        (0..40).map(request).collect(),
        &BatchOptions::new().concurrency(4),
    );
    assert_eq!(summary.sent, 40, "{results:?}");
    let mut at: Vec<_> = server.requests().iter().map(|r| r.at).collect();
    at.sort();
    let throttled = at[0];
    // Requests already on their way when the 429 came may still arrive just after it (on a
    // busy machine, a while after); after that, nothing until the second asked for. Without
    // the pause, the three free workers would send one every 20 ms all through it.
    let quiet = at
        .iter()
        .filter(|t| {
            let since = t.duration_since(throttled);
            since > Duration::from_millis(300) && since < Duration::from_millis(900)
        })
        .count();
    assert_eq!(quiet, 0, "requests during the pause: {at:?}");
    assert!(at.last().unwrap().duration_since(throttled) >= Duration::from_millis(950));
    assert_eq!(model.stats().throttled_429, 1);
}

#[test]
fn derived_keys_are_stable_and_a_re_run_sends_nothing_twice() {
    let model = Telnyx::new();
    let server = telnyx_server(&model);
    let client = crate::builder(&server.base_url()).build().unwrap();
    let options = BatchOptions::new().key_prefix("job-1-");
    let requests: Vec<_> = (0..20).map(request).collect();
    let (first, _) = run(&client, requests.clone(), &options);
    for r in &first {
        assert_eq!(
            r.idempotency_key,
            options
                .idempotency_key_for("asst-batch", &requests[r.index])
                .unwrap()
        );
        assert!(r.idempotency_key.starts_with("job-1-"));
    }
    // The same batch again (a re-run after a crash): replays only.
    let (second, summary) = run(&client, requests, &options);
    assert_eq!(summary.sent, 20);
    assert_eq!(model.performed().len(), 20);
    assert_eq!(model.stats().replays, 20);
    let id = |rs: &[BatchResult], i: usize| match &rs.iter().find(|r| r.index == i).unwrap().outcome
    {
        BatchOutcome::Sent(res) => res.conversation_id.clone(),
        other => panic!("{other:?}"),
    };
    for i in 0..20 {
        assert_eq!(id(&first, i), id(&second, i));
    }
    // Another prefix is another batch: sent again.
    run(
        &client,
        vec![request(0)],
        &BatchOptions::new().key_prefix("job-2-"),
    );
    assert_eq!(model.performed().len(), 21);
}

#[test]
fn duplicates_are_sent_once_and_reported_against_the_first() {
    let model = Telnyx::new();
    let server = telnyx_server(&model);
    let client = crate::builder(&server.base_url()).build().unwrap();
    let keyed = request(7).idempotency_key("order-7");
    let requests = vec![
        request(1),
        request(2),
        request(1),                              // derives the same key as 0
        keyed.clone(),                           // an explicit key
        keyed.clone(),                           // the same again
        request(8).idempotency_key("order-7"),   // the same key, another message
        SendSmsRequest::new("", "+15550002222"), // invalid
    ];
    let (results, summary) = run(&client, requests, &BatchOptions::new().concurrency(3));
    let outcome = |i: usize| &results.iter().find(|r| r.index == i).unwrap().outcome;
    assert!(
        matches!(outcome(2), BatchOutcome::Duplicate { of: 0 }),
        "{:?}",
        outcome(2)
    );
    assert!(
        matches!(outcome(4), BatchOutcome::Duplicate { of: 3 }),
        "{:?}",
        outcome(4)
    );
    match outcome(5) {
        BatchOutcome::Failed(e) => {
            assert_eq!(e.kind(), ErrorKind::Validation);
            assert_eq!(e.violations()[0].code(), "duplicate_key");
            assert_eq!(e.violations()[0].field(), "header.Idempotency-Key");
        }
        other => panic!("{other:?}"),
    }
    match outcome(6) {
        BatchOutcome::Failed(e) => {
            assert_eq!(e.kind(), ErrorKind::Validation);
            assert_eq!(e.violations()[0].field(), "body.from");
            assert_eq!(e.attempts(), 0);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        (
            summary.total,
            summary.sent,
            summary.duplicates,
            summary.failed
        ),
        (7, 3, 2, 2)
    );
    assert_eq!(model.performed().len(), 3);
    assert_eq!(model.times_performed("order-7"), 1);
    assert_eq!(server.request_count(), 3);
}

#[test]
fn the_input_is_read_lazily_and_results_are_handed_over_at_once() {
    let server = ScriptServer::start(vec![Step::ok().delayed(Duration::from_millis(2))]);
    let client = crate::builder(&server.base_url()).build().unwrap();
    let pulled = AtomicUsize::new(0);
    let requests = (0..200).map(|i| {
        pulled.fetch_add(1, Ordering::SeqCst);
        request(i)
    });
    let mut handed = 0usize;
    let mut most_ahead = 0usize;
    client
        .send_batch(
            "asst-batch",
            requests,
            &BatchOptions::new().concurrency(4),
            |_| {
                handed += 1;
                most_ahead = most_ahead.max(pulled.load(Ordering::SeqCst) - handed);
            },
        )
        .unwrap();
    assert_eq!((pulled.load(Ordering::SeqCst), handed), (200, 200));
    // Read at most one request per worker ahead of the results: memory does not grow with
    // the batch.
    assert!(most_ahead <= 4, "{most_ahead} read ahead");
}

#[test]
fn bad_options_and_a_bad_assistant_id_send_nothing() {
    let server = ScriptServer::start(vec![Step::ok()]);
    let client = crate::builder(&server.base_url()).build().unwrap();
    let called = AtomicUsize::new(0);
    let on = |_: BatchResult| {
        called.fetch_add(1, Ordering::SeqCst);
    };
    let err = client
        .send_batch(
            "asst",
            vec![request(0)],
            &BatchOptions::new().concurrency(0),
            on,
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    let err = client
        .send_batch("..", vec![request(0)], &BatchOptions::new(), on)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Validation);
    assert_eq!(err.violations()[0].field(), "path.assistant_id");
    assert_eq!(
        (server.request_count(), called.load(Ordering::SeqCst)),
        (0, 0)
    );
    // An empty input is a batch of nothing.
    let summary = client
        .send_batch("asst", Vec::new(), &BatchOptions::new(), on)
        .unwrap();
    assert_eq!(summary.total, 0);
}

#[test]
fn failures_are_results_with_the_single_send_rules() {
    // Every request: 502 twice then a replayable success, under derived keys, retried in doubt.
    let attempts = Arc::new(Mutex::new(std::collections::HashMap::<String, usize>::new()));
    let a = attempts.clone();
    let server = ScriptServer::with_handler(move |r: &Recorded| {
        let key = r.header("idempotency-key").unwrap_or("").to_owned();
        let mut m = a.lock().unwrap();
        let n = m.entry(key).or_insert(0);
        *n += 1;
        if *n <= 2 {
            Step::json(502, "{}")
        } else {
            Step::ok()
        }
    });
    let client = crate::builder(&server.base_url())
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(5))
        .retry_in_doubt(true)
        .build()
        .unwrap();
    let (results, summary) = run(&client, (0..6).map(request).collect(), &BatchOptions::new());
    assert_eq!(summary.sent, 6);
    for r in &results {
        let BatchOutcome::Sent(res) = &r.outcome else {
            panic!("{r:?}")
        };
        assert_eq!(res.attempts, 3);
    }
    // With no retries left, the failure is the result: in doubt, with its key.
    let client = crate::builder(&server.base_url())
        .max_retries(0)
        .build()
        .unwrap();
    let (results, summary) = run(&client, vec![request(50)], &BatchOptions::new());
    assert_eq!(summary.failed, 1);
    let BatchOutcome::Failed(e) = &results[0].outcome else {
        panic!()
    };
    assert!(e.may_have_been_sent());
    assert_eq!(
        e.idempotency_key(),
        Some(results[0].idempotency_key.as_str())
    );
}

#[test]
fn a_given_key_equal_to_another_requests_derived_key_is_caught() {
    let model = Telnyx::new();
    let server = telnyx_server(&model);
    let client = crate::builder(&server.base_url()).build().unwrap();
    let options = BatchOptions::new();
    let first = request(1);
    let derived = options.idempotency_key_for("asst-batch", &first).unwrap();
    let requests = vec![
        first.clone(),
        request(2).idempotency_key(derived.clone()), // the same key, another message
        first.clone().idempotency_key(derived.clone()), // the same key, the same message
    ];
    let (results, _) = run(&client, requests, &BatchOptions::new().concurrency(1));
    let outcome = |i: usize| &results.iter().find(|r| r.index == i).unwrap().outcome;
    match outcome(1) {
        BatchOutcome::Failed(e) => assert_eq!(e.violations()[0].code(), "duplicate_key"),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(outcome(2), BatchOutcome::Duplicate { of: 0 }),
        "{:?}",
        outcome(2)
    );
    assert_eq!(model.performed().len(), 1);
}

#[test]
fn a_wait_longer_than_a_send_waits_stops_the_batch() {
    let server = ScriptServer::start(vec![Step::json(429, "{}").header("retry-after", "120")]);
    let client = crate::builder(&server.base_url()).build().unwrap();
    let started = std::time::Instant::now();
    let (results, summary) = run(
        &client,
        (0..20).map(request).collect(),
        &BatchOptions::new().concurrency(2),
    );
    // Nobody sat out the two minutes, and the server was not asked again and again.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!((summary.total, summary.failed), (20, 20));
    assert!(
        server.request_count() <= 2,
        "{} requests",
        server.request_count()
    );
    let not_attempted = results
        .iter()
        .filter_map(|r| match &r.outcome {
            BatchOutcome::Failed(e) if e.attempts() == 0 => Some(e),
            _ => None,
        })
        .collect::<Vec<_>>();
    assert_eq!(not_attempted.len(), 20 - server.request_count());
    let e = not_attempted[0];
    assert_eq!(e.kind(), ErrorKind::Transport);
    assert!(!e.may_have_been_sent());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(120)));
    assert!(
        e.to_string()
            .starts_with("transport error: not attempted: the batch stopped sending when the server asked every client to wait 120s"),
        "{e}"
    );
}
