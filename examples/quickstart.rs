//! Send one assistant SMS.
//!
//! With no arguments this needs no account and no network: it starts a stand-in of the
//! endpoint on 127.0.0.1, sends a full request to it through the real client, and prints the
//! conversation id and the request the stand-in received (key redacted).
//!
//! To send for real, give a key and the assistant id and numbers:
//!
//! ```sh
//! TELNYX_API_KEY=KEY... cargo run -p quickstart -- ASSISTANT_ID +15550001111 +15550002222 "Hello"
//! ```
//!
//! (or set `TELNYX_ASSISTANT_ID`, `TELNYX_FROM`, `TELNYX_TO` and optionally `TELNYX_TEXT`).
//!
//! `cargo run -p quickstart` runs it as the small package in `examples/quickstart/`, which
//! builds only the crate and what it needs; `cargo run --example quickstart` runs the same
//! file as the crate's example, which also builds the test dependencies (and works from the
//! published package, which holds no `examples/quickstart/`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::ExitCode;
use std::thread;

use telnyx_assistant_sms::{Client, Error, SendSmsRequest};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut arg = |env: &str| args.next().or_else(|| std::env::var(env).ok());
    let (id, from, to, text) = (
        arg("TELNYX_ASSISTANT_ID"),
        arg("TELNYX_FROM"),
        arg("TELNYX_TO"),
        arg("TELNYX_TEXT"),
    );
    let result = match (std::env::var_os("TELNYX_API_KEY"), id, from, to) {
        (Some(_), Some(id), Some(from), Some(to)) => send_for_real(&id, &from, &to, text),
        _ => demo(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn send_for_real(id: &str, from: &str, to: &str, text: Option<String>) -> Result<(), Error> {
    let client = Client::from_env()?;
    let mut req = SendSmsRequest::new(from, to);
    req.text = text;
    let res = client.send_sms(id, &req)?;
    println!(
        "sent; conversation id: {}",
        res.conversation_id.as_deref().unwrap_or("(none)")
    );
    Ok(())
}

fn demo() -> Result<(), Error> {
    println!("No TELNYX_API_KEY and assistant id/numbers given: using a local stand-in.\n");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let base_url = format!("http://{}/v2", listener.local_addr().unwrap());
    let stand_in = thread::spawn(move || serve_one(&listener));

    let client = Client::builder()
        .api_key("demo-key-not-a-real-one")
        .base_url(&base_url)
        .no_proxy() // a proxy in the environment must not see the demo
        .build()?;
    let req = SendSmsRequest::new("+15550001111", "+15550002222")
        .text("Hello from telnyx-assistant-sms")
        .metadata("ticket", "T-1")
        .metadata("attempt", 3)
        .metadata("vip", true)
        .should_create_conversation(true);
    let res = client.send_sms("assistant-demo", &req)?;

    println!(
        "conversation id: {}",
        res.conversation_id.as_deref().unwrap_or("(none)")
    );
    println!("\nThe stand-in received:\n{}", stand_in.join().unwrap());
    Ok(())
}

/// Answers one request like the real endpoint; returns it as text, the key redacted.
fn serve_one(listener: &TcpListener) -> String {
    let (stream, _) = listener.accept().expect("accept");
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut seen = String::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
        if lower.starts_with("authorization:") {
            seen.push_str("authorization: Bearer [REDACTED]\n");
        } else {
            seen.push_str(line);
            seen.push('\n');
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    seen.push('\n');
    seen.push_str(&String::from_utf8_lossy(&body));

    let answer = r#"{"conversation_id":"conv-demo-0001"}"#;
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-request-id: req-demo\r\ncontent-length: {}\r\n\r\n{answer}",
        answer.len()
    )
    .unwrap();
    seen
}
