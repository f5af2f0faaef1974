//! What the client costs over doing the same work by hand.
//!
//! `cargo bench` prints a table: each figure beside its baseline, measured in the same run
//! (alternating rounds, see `harness/mod.rs`) and given as a ratio. Every server is the test
//! suite's scripted responder on 127.0.0.1. `BENCH_SCALE=0.2 cargo bench` runs a shorter pass.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::TcpListener;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use telnyx_assistant_sms::{Client, SendSmsRequest};

#[path = "client/batch.rs"]
mod batch;
#[path = "client/cli.rs"]
mod cli;
mod harness;
#[path = "../tests/integration/support/mod.rs"]
mod support;
#[path = "client/tls.rs"]
mod tls;

use harness::{Comparison, compare, show_ns};
use support::{OK_BODY, ScriptServer, Step};

const KEY: &str = "bench-key-not-a-real-one";

/// The baseline's request: the same shape, plain serde, no validation.
#[derive(Serialize)]
struct PlainRequest {
    from: String,
    to: String,
    text: String,
    conversation_metadata: BTreeMap<String, serde_json::Value>,
    should_create_conversation: bool,
}

fn plain_request() -> PlainRequest {
    let mut m = BTreeMap::new();
    m.insert("ticket".to_owned(), serde_json::Value::from("T-1"));
    m.insert("attempt".to_owned(), serde_json::Value::from(3));
    m.insert("vip".to_owned(), serde_json::Value::from(true));
    PlainRequest {
        from: "+15550001111".to_owned(),
        to: "+15550002222".to_owned(),
        text: "Your table is ready".to_owned(),
        conversation_metadata: m,
        should_create_conversation: true,
    }
}

fn full_request() -> SendSmsRequest {
    SendSmsRequest::new("+15550001111", "+15550002222")
        .text("Your table is ready")
        .metadata("ticket", "T-1")
        .metadata("attempt", 3)
        .metadata("vip", true)
        .should_create_conversation(true)
}

#[derive(Deserialize)]
#[allow(dead_code)] // Fields are read by serde only: the baseline is the parse itself.
struct PlainResponse {
    conversation_id: Option<String>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct PlainDetail {
    loc: Vec<serde_json::Value>,
    msg: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Plain422 {
    detail: Vec<PlainDetail>,
}

const BODY_422: &str = r#"{"detail":[{"loc":["body","to"],"msg":"field required","type":"value_error.missing"},{"loc":["body","conversation_metadata","score"],"msg":"value is not a valid string","type":"type_error"}]}"#;

struct Row {
    c: Comparison,
    goal: &'static str,
    met: Option<bool>,
    rate: bool,
}

fn scaled(n: usize) -> usize {
    let scale: f64 = std::env::var("BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    ((n as f64 * scale) as usize).max(4)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too: keep that quick.
    if !std::env::args().any(|a| a == "--bench") {
        println!("bench harness: run with `cargo bench` (skipped under cargo test)");
        return;
    }

    // The free function reads its configuration from the environment: set it before any
    // thread exists (the listener is bound first, so its port is known).
    let free_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let free_base = format!("http://{}/v2", free_listener.local_addr().unwrap());
    // SAFETY: single-threaded here: no other thread can be reading the environment.
    unsafe {
        for v in support::SCRUBBED_ENV {
            std::env::remove_var(v);
        }
        std::env::set_var("TELNYX_API_KEY", KEY);
        std::env::set_var("TELNYX_BASE_URL", &free_base);
    }

    match harness::pin_to_one_cpu() {
        Some(cpu) => eprintln!("pinned to CPU {cpu}: client and server share one core"),
        None => eprintln!("not pinned: loopback figures will be noisier"),
    }

    // `BENCH_ONLY=tls,batch cargo bench` runs only those groups (`cli` needs `--features cli`).
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let wanted = |group: &str| only.is_empty() || only.split(',').any(|g| g.trim() == group);
    let mut rows = Vec::new();
    if wanted("cpu") {
        eprintln!("cpu: per-call CPU work");
        rows.push(cpu_build_validate_serialize());
        rows.push(cpu_validate_serialize());
        rows.push(cpu_prepare());
        rows.extend(response_parsing());
    }
    if wanted("http") {
        eprintln!("http: loopback round trips and connection reuse");
        rows.extend(round_trips());
        rows.push(free_function(free_listener));
    }
    if wanted("tls") {
        eprintln!("tls: handshakes and round trips over TLS");
        rows.extend(tls::figures());
    }
    if wanted("batch") {
        eprintln!("batch: the batch engine");
        rows.extend(batch::figures());
    }
    if wanted("cli") {
        eprintln!("cli: a cold telnyx-sms send over TLS (`--features cli`)");
        rows.extend(cli::figures());
    }
    if wanted("log") {
        eprintln!("log: what enabled log records cost");
        rows.push(logging());
    }

    println!();
    println!("| figure | baseline | per call (figure / baseline) | ratio | goal | met |");
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        let (ratio, kind) = if r.rate {
            (r.c.rate_ratio(), "× rate")
        } else {
            (r.c.cost_ratio, "× cost")
        };
        println!(
            "| {} | {} | {} / {} | {ratio:.2}{kind} | {} | {} |",
            r.c.name,
            r.c.baseline,
            show_ns(r.c.subject_ns),
            show_ns(r.c.base_ns),
            r.goal,
            match r.met {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "-",
            }
        );
    }
}

fn cpu_build_validate_serialize() -> Row {
    let c = compare(
        "build + validate + serialize a full request",
        "build + serde_json::to_vec of a plain struct",
        scaled(60),
        scaled(20_000),
        || {
            let r = plain_request();
            black_box(serde_json::to_vec(black_box(&r)).unwrap());
        },
        || {
            let r = full_request();
            r.validate().unwrap();
            black_box(serde_json::to_vec(black_box(&r)).unwrap());
        },
    );
    let met = c.cost_ratio <= 1.5 && c.subject_ns < 2000.0;
    Row {
        c,
        goal: "≤ 1.5× and < 2 µs",
        met: Some(met),
        rate: false,
    }
}

fn cpu_validate_serialize() -> Row {
    let plain = plain_request();
    let full = full_request();
    let c = compare(
        "validate + serialize (request built once)",
        "serde_json::to_vec of the plain struct",
        scaled(60),
        scaled(20_000),
        || black_box(serde_json::to_vec(black_box(&plain)).unwrap()).truncate(0),
        || {
            black_box(&full).validate().unwrap();
            black_box(serde_json::to_vec(black_box(&full)).unwrap()).truncate(0);
        },
    );
    let met = c.cost_ratio <= 1.5 && c.subject_ns < 2000.0;
    Row {
        c,
        goal: "≤ 1.5× and < 2 µs",
        met: Some(met),
        rate: false,
    }
}

fn cpu_prepare() -> Row {
    let client = Client::builder().api_key(KEY).no_proxy().build().unwrap();
    let plain = plain_request();
    let full = full_request();
    let c = compare(
        "Client::prepare (validate, serialize, URL, idempotency key)",
        "serde_json::to_vec of the plain struct",
        scaled(60),
        scaled(20_000),
        || black_box(serde_json::to_vec(black_box(&plain)).unwrap()).truncate(0),
        || {
            black_box(
                client
                    .prepare(black_box("assistant-1"), black_box(&full))
                    .unwrap(),
            );
        },
    );
    Row {
        c,
        goal: "(informative)",
        met: None,
        rate: false,
    }
}

fn response_parsing() -> Vec<Row> {
    let ok = compare(
        "parse a 200 body into SendSmsResponse",
        "serde_json::from_str into a plain struct",
        scaled(60),
        scaled(50_000),
        || {
            black_box(serde_json::from_str::<PlainResponse>(black_box(OK_BODY)).unwrap());
        },
        || {
            black_box(
                telnyx_assistant_sms::__bench::parse_success_body(black_box(OK_BODY)).unwrap(),
            );
        },
    );
    let unprocessable = compare(
        "parse a 422 body into violations (and envelope entries)",
        "serde_json::from_str into a plain struct",
        scaled(60),
        scaled(20_000),
        || {
            black_box(serde_json::from_str::<Plain422>(black_box(BODY_422)).unwrap());
        },
        || {
            black_box(telnyx_assistant_sms::__bench::parse_error_body(black_box(
                BODY_422,
            )));
        },
    );
    vec![
        Row {
            c: ok,
            goal: "(informative)",
            met: None,
            rate: false,
        },
        Row {
            c: unprocessable,
            goal: "(informative)",
            met: None,
            rate: false,
        },
    ]
}

/// Bare ureq as a user would write it: default configuration (no timeouts), the body
/// serialized once up front, and the same request on the wire as the client sends (the same
/// headers, a fixed idempotency key of the same length), the answer read to the end.
fn bare_ureq_send(agent: &ureq::Agent, url: &str, body: &[u8]) {
    let mut resp = agent
        .post(url)
        .header(
            "authorization",
            concat!("Bearer ", "bench-key-not-a-real-one"),
        )
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .header("x-stainless-retry-count", "0")
        .header("idempotency-key", "0123456789abcdef0123456789abcdef")
        .send(body)
        .unwrap();
    black_box(resp.body_mut().read_to_vec().unwrap());
}

/// ureq's default configuration, with the client's User-Agent so both send the same bytes.
fn bare_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .user_agent(concat!("telnyx-assistant-sms/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

fn round_trips() -> Vec<Row> {
    let server = ScriptServer::start_counting(vec![Step::ok()]);
    let base = server.base_url();
    let url = format!("{base}/ai/assistants/assistant-1/chat/sms");
    let body = serde_json::to_vec(&full_request()).unwrap();
    let bare = bare_agent();
    let req = full_request();
    let rounds = scaled(40);
    let iters = scaled(250);

    // Default configuration: 60 s attempt timeout, 5 s connect timeout, 2 retries, a fresh
    // idempotency key per send. (no_proxy only keeps a stray proxy variable out of the bench.)
    let client = Client::builder()
        .api_key(KEY)
        .base_url(&base)
        .no_proxy()
        .build()
        .unwrap();
    let ours = compare(
        "Client::send_sms, default configuration, no logger installed (127.0.0.1)",
        "bare ureq, default configuration, pre-serialized body",
        rounds,
        iters,
        || bare_ureq_send(&bare, &url, &body),
        || {
            black_box(client.send_sms("assistant-1", &req).unwrap());
        },
    );

    // The same through a host name: the resolver's cache instead of the IP-literal path.
    let port = server.addr().port();
    let by_name = Client::builder()
        .api_key(KEY)
        .base_url(format!("http://localhost:{port}/v2"))
        .no_proxy()
        .build()
        .unwrap();
    let name_url = format!("http://localhost:{port}/v2/ai/assistants/assistant-1/chat/sms");
    let named = compare(
        "Client::send_sms to http://localhost (cached lookup)",
        "bare ureq to http://localhost",
        rounds,
        iters,
        || bare_ureq_send(&bare, &name_url, &body),
        || {
            black_box(by_name.send_sms("assistant-1", &req).unwrap());
        },
    );

    // The trap this crate avoids: ureq with a whole-request timeout and its default resolver
    // spawns a thread for the lookup on every request.
    let naive: ureq::Agent = ureq::Agent::config_builder()
        .user_agent(concat!("telnyx-assistant-sms/", env!("CARGO_PKG_VERSION")))
        .timeout_global(Some(Duration::from_secs(60)))
        .timeout_connect(Some(Duration::from_secs(5)))
        .proxy(None)
        .build()
        .into();
    let trap = compare(
        "ureq + timeout_global, default resolver (for contrast)",
        "bare ureq, default configuration",
        rounds,
        iters,
        || bare_ureq_send(&bare, &url, &body),
        || bare_ureq_send(&naive, &url, &body),
    );
    assert!(
        server.connections() <= 8,
        "{} connections",
        server.connections()
    );
    let met = ours.rate_ratio() >= 0.97;
    vec![
        Row {
            c: ours,
            goal: "≥ 0.97× rate",
            met: Some(met),
            rate: true,
        },
        Row {
            c: named,
            goal: "(informative)",
            met: None,
            rate: true,
        },
        Row {
            c: trap,
            goal: "(what is avoided)",
            met: None,
            rate: true,
        },
    ]
}

/// Logging: with no logger installed the records cost a level check each (the round-trip
/// rows above run that way). This row shows what enabling them costs: a logger that takes
/// every record at debug level and discards it, against the same with the level set to off.
fn logging() -> Row {
    struct Discard;
    impl log::Log for Discard {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            black_box(record.args().to_string());
        }
        fn flush(&self) {}
    }
    let _ = log::set_logger(&Discard);
    let server = ScriptServer::start_counting(vec![Step::ok()]);
    let client = Client::builder()
        .api_key(KEY)
        .base_url(server.base_url())
        .no_proxy()
        .build()
        .unwrap();
    let req = full_request();
    let c = compare(
        "Client::send_sms with debug records on (a logger that formats and drops them)",
        "the same with logging off",
        scaled(40),
        scaled(250),
        || {
            log::set_max_level(log::LevelFilter::Off);
            black_box(client.send_sms("assistant-1", &req).unwrap());
        },
        || {
            log::set_max_level(log::LevelFilter::Debug);
            black_box(client.send_sms("assistant-1", &req).unwrap());
        },
    );
    log::set_max_level(log::LevelFilter::Off);
    Row {
        c,
        goal: "(informative)",
        met: None,
        rate: true,
    }
}

fn free_function(listener: TcpListener) -> Row {
    let server = ScriptServer::launch(listener, vec![Step::ok()], false);
    let base = server.base_url();
    let client = Client::builder()
        .api_key(KEY)
        .base_url(&base)
        .no_proxy()
        .build()
        .unwrap();
    let req = full_request();
    let c = compare(
        "free send_sms (process-wide client)",
        "a held Client",
        scaled(40),
        scaled(250),
        || {
            black_box(client.send_sms("assistant-1", &req).unwrap());
        },
        || {
            black_box(telnyx_assistant_sms::send_sms("assistant-1", &req).unwrap());
        },
    );
    // One connection for the held client and one for the free function: nothing reconnects.
    assert_eq!(
        server.connections(),
        2,
        "the free function must reuse its connection"
    );
    let met = (c.rate_ratio() - 1.0).abs() <= 0.05;
    Row {
        c,
        goal: "within 5 %",
        met: Some(met),
        rate: true,
    }
}
