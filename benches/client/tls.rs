//! TLS figures: the client against bare ureq with the same roots (the test CA), over full
//! handshakes with the test suite's TLS server on 127.0.0.1.

use std::hint::black_box;

use telnyx_assistant_sms::Client;
use ureq::tls::{Certificate, RootCerts, TlsConfig as UreqTls};

use super::support::tls::{Resumption, TlsConfig, ca_pem};
use super::support::{ScriptServer, Step};
use super::{KEY, Row, bare_ureq_send, full_request, scaled};
use crate::harness::compare;

/// Bare ureq trusting the test CA (the same roots as the client), otherwise ureq's defaults
/// and the client's User-Agent.
fn bare_tls_agent() -> ureq::Agent {
    let ca = Certificate::from_pem(ca_pem().as_bytes()).unwrap();
    ureq::Agent::config_builder()
        .user_agent(concat!("telnyx-assistant-sms/", env!("CARGO_PKG_VERSION")))
        .tls_config(
            UreqTls::builder()
                .root_certs(RootCerts::new_with_certs(&[ca]))
                .build(),
        )
        .proxy(None)
        .build()
        .into()
}

fn client_for(base: &str) -> Client {
    Client::builder()
        .api_key(KEY)
        .base_url(base)
        .no_proxy()
        .root_certificates_pem(ca_pem())
        .build()
        .unwrap()
}

pub fn figures() -> Vec<Row> {
    let server = ScriptServer::builder()
        .steps(vec![Step::ok()])
        .tls(TlsConfig::new())
        .counting()
        .start();
    let base = server.base_url();
    let url = format!("{base}/ai/assistants/assistant-1/chat/sms");
    let body = serde_json::to_vec(&full_request()).unwrap();
    let req = full_request();

    // 1. Keep-alive: one handshake each, then round trips on the open connection.
    let bare = bare_tls_agent();
    let client = client_for(&base);
    let keep_alive = compare(
        "Client::send_sms over TLS, keep-alive (https://127.0.0.1)",
        "bare ureq, same roots, same headers, pre-serialized body",
        scaled(40),
        scaled(200),
        || bare_ureq_send(&bare, &url, &body),
        || {
            black_box(client.send_sms("assistant-1", &req).unwrap());
        },
    );
    let handshakes_after_keep_alive = server.full_handshakes();

    // 2. Cold: a new client, a TCP connect, a full handshake and one request, each time.
    let cold = compare(
        "cold send: new Client, connect, full TLS handshake, one request",
        "bare ureq: new Agent with the same roots, the same",
        scaled(30),
        scaled(8),
        || bare_ureq_send(&bare_tls_agent(), &url, &body),
        || {
            black_box(client_for(&base).send_sms("assistant-1", &req).unwrap());
        },
    );

    // 3. What a handshake costs: a cold send against a warm one, both through the client.
    let handshake = compare(
        "a cold send (full handshake) through the client",
        "a warm send (kept-alive connection) through the client",
        scaled(30),
        scaled(8),
        || {
            black_box(client.send_sms("assistant-1", &req).unwrap());
        },
        || {
            black_box(client_for(&base).send_sms("assistant-1", &req).unwrap());
        },
    );

    // 4. What resumption saves: every answer says `connection: close`, so every send opens a
    // new connection (no pooled one to race with); one server offers resumption, the other
    // does not.
    let closing = || vec![Step::ok().header("connection", "close")];
    let resuming = ScriptServer::builder()
        .steps(closing())
        .tls(TlsConfig::new().resumption(Resumption::SessionCache))
        .counting()
        .start();
    let full_only = ScriptServer::builder()
        .steps(closing())
        .tls(TlsConfig::new().resumption(Resumption::Off))
        .counting()
        .start();
    let to_resuming = client_for(&resuming.base_url());
    let to_full = client_for(&full_only.base_url());
    let resumed = compare(
        "reconnect with a resumed TLS session (every answer closes the connection)",
        "reconnect with a full handshake (the server offers no resumption)",
        scaled(30),
        scaled(8),
        || {
            black_box(to_full.send_sms("assistant-1", &req).unwrap());
        },
        || {
            black_box(to_resuming.send_sms("assistant-1", &req).unwrap());
        },
    );
    eprintln!(
        "  resumption: {} resumed / {} full handshakes on the resuming server, {} full on the \
         other",
        resuming.resumed_handshakes(),
        resuming.full_handshakes(),
        full_only.full_handshakes(),
    );
    assert!(
        resuming.resumed_handshakes() > resuming.full_handshakes(),
        "the client should resume its TLS sessions"
    );
    eprintln!("  keep-alive used {handshakes_after_keep_alive} full handshakes (2: one per agent)");
    assert_eq!(
        handshakes_after_keep_alive, 2,
        "keep-alive must not reconnect"
    );

    let keep_alive_met = keep_alive.rate_ratio() >= 0.97;
    let cold_met = cold.cost_ratio <= 1.05;
    vec![
        Row {
            c: keep_alive,
            goal: "≥ 0.97× rate",
            met: Some(keep_alive_met),
            rate: true,
        },
        Row {
            c: cold,
            goal: "≤ 1.05× time",
            met: Some(cold_met),
            rate: false,
        },
        Row {
            c: handshake,
            goal: "(informative: the handshake's cost)",
            met: None,
            rate: false,
        },
        Row {
            c: resumed,
            goal: "(informative: what resumption saves)",
            met: None,
            rate: false,
        },
    ]
}
