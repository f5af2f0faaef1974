//! Load: a shared client under 8 threads, and 20,000 sequential sends with steady resources.

use std::collections::HashSet;
use std::thread;

use telnyx_assistant_sms::SendSmsRequest;

use crate::support::{ScriptServer, Step};
use crate::{builder, is_child, run_child};

#[test]
fn eight_threads_share_one_client() {
    let server = ScriptServer::start(vec![Step::ok()]);
    let client = builder(&server.base_url()).build().unwrap();
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let client = client.clone();
            thread::spawn(move || {
                for i in 0..250 {
                    let req = SendSmsRequest::new("+15550001111", "+15550002222")
                        .text(format!("t{t} m{i}"));
                    let res = client.send_sms("asst-load", &req).unwrap();
                    assert_eq!(res.conversation_id.as_deref(), Some("conv-42"));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let reqs = server.requests();
    assert_eq!(reqs.len(), 2000);
    // Each message was received exactly once...
    let texts: HashSet<String> = reqs
        .iter()
        .map(|r| r.json()["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts.len(), 2000);
    // ...under its own key.
    let keys: HashSet<&str> = reqs
        .iter()
        .map(|r| r.header("idempotency-key").unwrap())
        .collect();
    assert_eq!(keys.len(), 2000);
    // And the pool was shared: far fewer connections than sends.
    assert!(
        server.connections() <= 16,
        "{} connections",
        server.connections()
    );
}

// Counts descriptors in /proc/self/fd and reads VmRSS from /proc/self/status: skipped (and
// shown as ignored) where there is no /proc.
#[cfg_attr(not(target_os = "linux"), ignore = "needs Linux's /proc")]
#[test]
fn twenty_thousand_sends_keep_descriptors_and_memory_flat() {
    if !std::path::Path::new("/proc/self/fd").exists() {
        // Linux without /proc mounted: nothing can be measured, and the run says so.
        eprintln!(
            "skipped: load::twenty_thousand_sends_keep_descriptors_and_memory_flat needs /proc"
        );
        return;
    }
    let out = run_child("load::child_twenty_thousand_sends", &[]);
    let line = out
        .lines()
        .find_map(|l| l.split_once("flat:"))
        .map(|(_, m)| m);
    println!("flat:{}", line.expect("the child reports its figures"));
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// In a process of its own, so that no other test's threads or allocations move the numbers.
///
/// The bounds: after 1,000 warm-up sends (pool, buffers and allocator arenas settled), 19,000
/// more may open at most 2 more descriptors (a reconnect in progress) and grow the resident
/// set by at most 2 MiB. A leak of one descriptor per send would add 19,000; a leak of just
/// 128 bytes per send would add 2.4 MiB, so both bounds catch per-send leaks while leaving room
/// for allocator noise.
#[test]
#[ignore = "a helper: its parent test runs it in a child process"]
fn child_twenty_thousand_sends() {
    if !is_child("load::child_twenty_thousand_sends") {
        return;
    }
    // (Its parent runs it only where /proc exists.)
    let server = ScriptServer::start_counting(vec![Step::ok()]);
    let client = builder(&server.base_url()).build().unwrap();
    let req = SendSmsRequest::new("+15550001111", "+15550002222").text("steady");
    for _ in 0..1_000 {
        client.send_sms("asst-steady", &req).unwrap();
    }
    let (fds0, rss0) = (open_fds(), rss_kib());
    for _ in 1_000..20_000 {
        client.send_sms("asst-steady", &req).unwrap();
    }
    let (fds1, rss1) = (open_fds(), rss_kib());
    assert_eq!(server.request_count(), 20_000);
    assert!(fds1 <= fds0 + 2, "descriptors grew from {fds0} to {fds1}");
    assert!(
        rss1 <= rss0 + 2048,
        "resident memory grew from {rss0} KiB to {rss1} KiB"
    );
    println!(
        "flat: fds {fds0} -> {fds1}, rss {rss0} KiB -> {rss1} KiB, {} connection(s)",
        server.connections()
    );
}
