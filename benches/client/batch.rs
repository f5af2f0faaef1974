//! Batch figures: how the engine scales with its workers against a server that takes 20 ms
//! per answer, and what it costs per message when the server answers at once.

use std::hint::black_box;
use std::time::{Duration, Instant};

use telnyx_assistant_sms::{BatchOptions, Client, SendSmsRequest};

use super::support::{ScriptServer, Step};
use super::{KEY, Row, scaled};
use crate::harness::{Comparison, compare};

fn requests(n: usize, tag: &str) -> Vec<SendSmsRequest> {
    (0..n)
        .map(|i| {
            SendSmsRequest::new("+15550001111", format!("+1555{i:07}"))
                .text(format!("{tag} message {i}"))
        })
        .collect()
}

fn client(base: &str) -> Client {
    Client::builder()
        .api_key(KEY)
        .base_url(base)
        .no_proxy()
        .build()
        .unwrap()
}

/// Runs one batch and returns how long it took; every message must be sent.
fn timed_batch(client: &Client, reqs: Vec<SendSmsRequest>, concurrency: usize) -> Duration {
    timed_with(client, reqs, &BatchOptions::new().concurrency(concurrency))
}

fn timed_with(client: &Client, reqs: Vec<SendSmsRequest>, options: &BatchOptions) -> Duration {
    let n = reqs.len();
    let started = Instant::now();
    let summary = client
        .send_batch("assistant-1", reqs, options, |r| {
            black_box(r);
        })
        .unwrap();
    assert_eq!(summary.sent, n, "{summary}");
    started.elapsed()
}

/// A comparison built from single timed runs (each run is long: seconds, not microseconds).
fn from_runs(
    name: &'static str,
    baseline: &'static str,
    messages: usize,
    base: Duration,
    subject: Duration,
) -> Comparison {
    let n = messages as f64;
    let ratio = subject.as_secs_f64() / base.as_secs_f64();
    eprintln!(
        "  {name}: {subject:?} vs {base:?} ({baseline}): {:.2}× rate",
        1.0 / ratio
    );
    Comparison {
        name,
        baseline,
        base_ns: base.as_nanos() as f64 / n,
        subject_ns: subject.as_nanos() as f64 / n,
        cost_ratio: ratio,
        cost_iqr: (ratio, ratio),
    }
}

pub fn figures() -> Vec<Row> {
    // 1. Scaling: 400 messages, 20 ms per answer. The sequential run is the baseline; the
    // concurrent runs are timed beside it (sequential, 8, 32, twice over, median kept).
    let slow = ScriptServer::builder()
        .steps(vec![Step::ok().delayed(Duration::from_millis(20))])
        .counting()
        .start();
    let to_slow = client(&slow.base_url());
    let messages = scaled(400).max(64);
    let mut seq = Vec::new();
    let mut c8 = Vec::new();
    let mut c32 = Vec::new();
    for round in 0..2 {
        let tag = format!("r{round}");
        seq.push(timed_batch(
            &to_slow,
            requests(messages, &format!("{tag}s")),
            1,
        ));
        c8.push(timed_batch(
            &to_slow,
            requests(messages, &format!("{tag}e")),
            8,
        ));
        c32.push(timed_batch(
            &to_slow,
            requests(messages, &format!("{tag}t")),
            32,
        ));
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    // The journal's cost: the same batch at concurrency 32 with and without one (a new
    // journal each run, in the temporary directory: an fsync per start and per outcome,
    // shared between workers).
    let dir = std::env::temp_dir().join(format!("telnyx-bench-journal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut plain = Vec::new();
    let mut journaled = Vec::new();
    // Five rounds: an fsync's latency varies run to run more than a send's does.
    for round in 0..5 {
        let tag = format!("j{round}");
        plain.push(timed_batch(
            &to_slow,
            requests(messages, &format!("{tag}p")),
            32,
        ));
        let options = BatchOptions::new()
            .concurrency(32)
            .journal(dir.join(format!("{tag}.journal")));
        journaled.push(timed_with(
            &to_slow,
            requests(messages, &format!("{tag}j")),
            &options,
        ));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let journal = from_runs(
        "send_batch with a journal, concurrency 32, server answers in 20 ms",
        "the same without a journal",
        messages,
        median(&mut plain),
        median(&mut journaled),
    );
    let (seq, c8, c32) = (median(&mut seq), median(&mut c8), median(&mut c32));
    let eight = from_runs(
        "send_batch, concurrency 8, server answers in 20 ms",
        "send_batch, concurrency 1 (sequential)",
        messages,
        seq,
        c8,
    );
    let thirty_two = from_runs(
        "send_batch, concurrency 32, server answers in 20 ms",
        "send_batch, concurrency 1 (sequential)",
        messages,
        seq,
        c32,
    );

    // 2. Per-message overhead: the engine against a plain loop of send_sms, server at once.
    let fast = ScriptServer::start_counting(vec![Step::ok()]);
    let to_fast = client(&fast.base_url());
    let per_round = scaled(200);
    let round = std::cell::Cell::new(0usize);
    let next = || {
        round.set(round.get() + 1);
        requests(per_round, &format!("o{}", round.get()))
    };
    // The same requests through a loop of send_sms and through the engine, per message.
    let against_loop = |name: &'static str, concurrency: usize| {
        let c = compare(
            name,
            "a loop of Client::send_sms over the same requests",
            scaled(20),
            1,
            || {
                for r in next() {
                    black_box(to_fast.send_sms("assistant-1", &r).unwrap());
                }
            },
            || {
                black_box(timed_batch(&to_fast, next(), concurrency));
            },
        );
        Comparison {
            base_ns: c.base_ns / per_round as f64,
            subject_ns: c.subject_ns / per_round as f64,
            ..c
        }
    };
    let overhead = against_loop("send_batch (default options), server answers at once", 4);
    let single = against_loop("send_batch, concurrency 1, server answers at once", 1);

    let mj = journal.cost_ratio <= 1.1;
    let (m8, m32, mo) = (
        eight.rate_ratio() >= 7.0,
        thirty_two.rate_ratio() >= 24.0,
        overhead.cost_ratio <= 1.1,
    );
    vec![
        Row {
            c: eight,
            goal: "≥ 7× rate",
            met: Some(m8),
            rate: true,
        },
        Row {
            c: thirty_two,
            goal: "≥ 24× rate",
            met: Some(m32),
            rate: true,
        },
        Row {
            c: journal,
            goal: "≤ 1.1× cost",
            met: Some(mj),
            rate: false,
        },
        Row {
            c: overhead,
            goal: "≤ 1.1× cost",
            met: Some(mo),
            rate: false,
        },
        Row {
            c: single,
            goal: "(informative: the engine alone)",
            met: None,
            rate: false,
        },
    ]
}
