//! The CLI's figures: a cold `telnyx-sms send` over TLS, a new process each time, as a cron
//! job or a shell script runs it. Needs the binary: `cargo bench --features cli` (without the
//! feature the group says so and is skipped).
//!
//! Issue 16's goal: with the system's trust store named in `SSL_CERT_FILE` and `SSL_CERT_DIR`
//! (as many containers and Nix shells set them), the send costs at most 1.2× one with the
//! bundled roots.

use std::path::Path;
use std::process::{Command, Stdio};

use super::support::tls::{CaFile, TlsConfig, ca_pem};
use super::support::{ScriptServer, Step};
use super::{Row, scaled};
use crate::harness::compare;

/// The binary under test, when the bench was built with the `cli` feature.
const BINARY: Option<&str> = option_env!("CARGO_BIN_EXE_telnyx-sms");

/// Where a Debian-style system keeps its bundle and its hashed directory.
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
const SYSTEM_DIR: &str = "/etc/ssl/certs";

/// One cold send: spawn the CLI, which builds its client (reading the trust the environment
/// names), connects, does a full TLS handshake, sends one request and exits 0.
fn send(binary: &str, base: &str, file: &Path, dir: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new(binary);
    cmd.args([
        "send",
        "--assistant-id",
        "assistant-1",
        "--from",
        "+15550001111",
        "--to",
        "+15550002222",
        "--text",
        "Your table is ready",
        "--base-url",
        base,
    ])
    .env("SSL_CERT_FILE", file)
    .env_remove("SSL_CERT_DIR")
    .stdin(Stdio::null());
    if let Some(dir) = dir {
        cmd.env("SSL_CERT_DIR", dir);
    }
    cmd.output().expect("run telnyx-sms")
}

fn checked(out: std::process::Output) {
    assert!(
        out.status.success(),
        "telnyx-sms failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn figures() -> Vec<Row> {
    let Some(binary) = BINARY else {
        eprintln!("  skipped: the CLI is built only with `cargo bench --features cli`");
        return Vec::new();
    };
    let Ok(system) = std::fs::read_to_string(SYSTEM_BUNDLE) else {
        eprintln!("  skipped: no system bundle at {SYSTEM_BUNDLE}");
        return Vec::new();
    };
    let server = ScriptServer::builder()
        .steps(vec![Step::ok()])
        .tls(TlsConfig::new())
        .counting()
        .start();
    let base = server.base_url();
    // (A) The system's bundle, with the test CA appended so that the local server is trusted,
    // in SSL_CERT_FILE, and the system's directory (`NAME.pem` and `HASH.0` links to
    // /usr/share/ca-certificates, and the bundle itself) in SSL_CERT_DIR.
    let bundle = CaFile::with_contents(&format!("{system}\n{}", ca_pem()));
    // (B) The bundled roots cannot vouch for the test CA, so the baseline trusts the test CA
    // alone, through the same variable: the same code path reading one certificate instead
    // of the built-in roots (which cost nothing to read: they are compiled in). This is as
    // close to "the bundled roots" as a send that succeeds can be; it costs a file read and
    // one parse more than them, some 20 µs of a few ms.
    let ca_only = CaFile::new();
    checked(send(binary, &base, bundle.path(), Some(SYSTEM_DIR)));
    checked(send(binary, &base, ca_only.path(), None));

    let c = compare(
        "cold CLI send over TLS (a new telnyx-sms process), SSL_CERT_FILE = the system bundle \
         + the test CA, SSL_CERT_DIR=/etc/ssl/certs",
        "the same, SSL_CERT_FILE = the test CA alone (the bundled roots cannot trust it)",
        scaled(40),
        scaled(5),
        || checked(send(binary, &base, ca_only.path(), None)),
        || checked(send(binary, &base, bundle.path(), Some(SYSTEM_DIR))),
    );
    let met = c.cost_ratio <= 1.2;
    vec![Row {
        c,
        goal: "≤ 1.2× time",
        met: Some(met),
        rate: false,
    }]
}
