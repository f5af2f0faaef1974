//! A randomized soak: 8 threads, 560 sends, against a server that honours idempotency keys
//! the way Telnyx does and injects a fault into most requests (drops before and after
//! performing, resets mid-answer, error statuses before and after performing, oversized
//! headers, stalls past the timeout). Whatever happened, the crate must tell the truth:
//!
//! - no key is performed twice, and no keyless message is performed twice;
//! - no success is reported for a send that was never performed (and its conversation id is
//!   the performed one);
//! - no "was not sent" is reported for a send that was performed.
//!
//! (Error statuses are injected before and after performing, except that a 429 or a 503 comes
//! only before: those statuses mean the server refused before acting, see `fault`.)
//!
//! The faults are drawn from a seeded generator: `SOAK_SEED=N` replays a run (the seed is in
//! every failure message). Waits are short (backoff 2-20 ms, timeout 250 ms), so it runs in a
//! few seconds.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use telnyx_assistant_sms::{Client, SendSmsRequest, SendSmsResponse};

use crate::support::telnyx::{Fault, Telnyx};
use crate::support::{Recorded, ScriptServer};

const THREADS: usize = 8;
const PER_THREAD: usize = 70;
const TIMEOUT: Duration = Duration::from_millis(250);

/// splitmix64: a small, good, seedable generator.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The fault for one request: a function of the seed, the message and the attempt only, so a
/// seed replays the same faults whatever the threads' timing.
fn fault(seed: u64, req: &Recorded, attempt: usize) -> Fault {
    // Later attempts are kinder, so most sends end one way or the other within 5 attempts.
    let r = mix(seed ^ fnv(&req.body) ^ (attempt as u64).wrapping_mul(0x51_7cc1)) % 100;
    let status = [409, 429, 500, 502, 503, 504][(mix(r ^ seed) % 6) as usize];
    // After performing, only a status that admits the server may have acted: a 429 or 503
    // says, by its meaning, that the server refused before acting (that is what makes them
    // safe to retry without a key), so a server that performs and then answers one of them
    // breaks the protocol, and no client could tell.
    let after = [409, 500, 502, 504][(mix(r ^ seed) % 4) as usize];
    let calm = 30 + 10 * attempt as u64;
    match r {
        r if r < calm => Fault::None,
        r if r % 10 == 0 => Fault::DropBefore,
        r if r % 10 == 1 => Fault::DropAfter,
        r if r % 10 == 2 => Fault::ResetAfter,
        r if r % 10 == 3 || r % 10 == 4 => Fault::before(status).retry_after_ms("3"),
        r if r % 10 == 5 || r % 10 == 6 => Fault::after(after),
        r if r % 10 == 7 => Fault::HugeHeaderAfter(200_000),
        r if r % 10 == 8 => Fault::StallAfter(TIMEOUT * 2),
        _ => Fault::before(status),
    }
}

struct Outcome {
    text: String,
    key: Option<String>,
    result: Result<SendSmsResponse, telnyx_assistant_sms::Error>,
}

#[test]
fn no_duplicate_no_false_success_no_false_not_sent() {
    let seed = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026_1126);
    let model = Telnyx::new().faults(move |req, attempt| fault(seed, req, attempt));
    let server = ScriptServer::builder().handler(model.handler()).start();
    let base = crate::builder(&server.base_url())
        .timeout(TIMEOUT)
        .max_retries(4)
        .retry_backoff(Duration::from_millis(2), Duration::from_millis(20));
    // The model honours keys as Telnyx documents, so the keyed clients opt in to retries in
    // doubt; the default policy is soaked against a server that ignores keys (policy.rs).
    let keyed = base.clone().retry_in_doubt(true).build().unwrap();
    // A quarter of the sends get one attempt only, so many end on their first fault.
    let once = base.clone().max_retries(0).build().unwrap();
    // A quarter carry no key: their ambiguous failures must not be retried.
    let keyless = base.auto_idempotency_key(false).build().unwrap();
    let clients = Arc::new([keyed.clone(), keyed, once, keyless]);

    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let clients = clients.clone();
            thread::spawn(move || {
                (0..PER_THREAD)
                    .map(|i| {
                        let text = format!("soak message {t}-{i}");
                        let req = SendSmsRequest::new("+15550001111", "+15550002222").text(&text);
                        let client: &Client = &clients[i % 4];
                        let prepared = client.prepare("asst-soak", &req).unwrap();
                        let key = prepared.idempotency_key().map(str::to_owned);
                        let result = client.send_prepared(&prepared);
                        Outcome { text, key, result }
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let outcomes: Vec<Outcome> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert_eq!(outcomes.len(), THREADS * PER_THREAD);

    // Which messages were performed, and how often (the text is unique per send).
    let mut performed: HashMap<String, Vec<String>> = HashMap::new();
    for p in model.performed() {
        let body: serde_json::Value = serde_json::from_slice(&p.body).unwrap();
        let text = body["text"].as_str().unwrap().to_owned();
        performed.entry(text).or_default().push(p.conversation_id);
    }
    let (mut ok, mut maybe, mut not_sent) = (0, 0, 0);
    for o in &outcomes {
        let ids = performed.get(&o.text).map(Vec::as_slice).unwrap_or(&[]);
        assert!(
            ids.len() <= 1,
            "seed {seed}: '{}' (key {:?}) performed {} times",
            o.text,
            o.key,
            ids.len()
        );
        match &o.result {
            Ok(res) => {
                ok += 1;
                assert_eq!(
                    ids.first().map(String::as_str),
                    res.conversation_id.as_deref(),
                    "seed {seed}: '{}' reported sent with the wrong or no performed send",
                    o.text
                );
            }
            Err(e) if e.may_have_been_sent() => maybe += 1,
            Err(e) => {
                not_sent += 1;
                assert!(
                    ids.is_empty(),
                    "seed {seed}: '{}' was performed but reported not sent: {e}",
                    o.text
                );
            }
        }
    }
    for (key, n) in model.performed_per_key() {
        assert_eq!(n, 1, "seed {seed}: key {key} performed {n} times");
    }
    let stats = model.stats();
    println!(
        "soak seed {seed}: {ok} sent, {maybe} may have been sent, {not_sent} not sent; \
         {} requests, {} performed, {} replays, {} in-progress 409s",
        stats.requests, stats.performed, stats.replays, stats.in_progress_409
    );
    // The run must have exercised every side of the line.
    assert!(
        ok > 200 && maybe > 10 && not_sent > 0,
        "seed {seed}: {ok}/{maybe}/{not_sent}"
    );
    assert!(stats.replays > 20, "seed {seed}: {stats:?}");
}
