//! The CLI's figures: a cold `telnyx-sms send` over TLS, a new process each time, as a cron
//! job or a shell script runs it. Needs the binary: `cargo bench --features cli` (without the
//! feature the group says so and is skipped).
//!
//! Issue 16's goal: with the system's trust store named in `SSL_CERT_FILE` and `SSL_CERT_DIR`
//! (as many containers and Nix shells set them), the send costs at most 1.2× one with the
//! bundled roots. The store is a system's as `update-ca-certificates` leaves it once a local
//! CA is installed: the CA is appended to the bundle and linked into the directory, as it is
//! for every root (api.telnyx.com's among them). A second row measures a server whose CA is
//! in a directory alone, not in the bundle: the rarer case in which the directories are read.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::support::tls::{CaFile, TlsConfig, ca_pem};
use super::support::{ScriptServer, Step};
use super::{Row, scaled};
use crate::harness::compare;

/// The binary under test, when the bench was built with the `cli` feature. (Cargo names the
/// path without the feature too, but then does not build it: a binary found there is stale.)
#[cfg(feature = "cli")]
const BINARY: Option<&str> = Some(env!("CARGO_BIN_EXE_telnyx-sms"));
#[cfg(not(feature = "cli"))]
const BINARY: Option<&str> = None;

/// Where a Debian-style system keeps its bundle and its hashed directory.
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
const SYSTEM_DIR: &str = "/etc/ssl/certs";

/// One cold send: spawn the CLI, which builds its client (reading the trust the environment
/// names), connects, does a full TLS handshake, sends one request and exits 0.
fn send(binary: &str, base: &str, file: &Path, dirs: Option<&str>) -> std::process::Output {
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
    if let Some(dirs) = dirs {
        cmd.env("SSL_CERT_DIR", dirs);
    }
    cmd.output().expect("run telnyx-sms")
}

/// A directory holding the test CA alone (`test-ca.pem`) and, beside it, a copy of the
/// system bundle with the test CA appended (`bundle.crt`, as `update-ca-certificates` appends
/// a local CA), removed on drop.
struct CaDir(PathBuf);

impl CaDir {
    fn new() -> CaDir {
        let dir = std::env::temp_dir().join(format!("telnyx-sms-bench-ca-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("certs")).unwrap();
        std::fs::write(dir.join("certs/test-ca.pem"), ca_pem()).unwrap();
        let mut bundle = std::fs::read(SYSTEM_BUNDLE).unwrap();
        bundle.extend_from_slice(ca_pem().as_bytes());
        std::fs::write(dir.join("bundle.crt"), bundle).unwrap();
        CaDir(dir)
    }

    fn certs(&self) -> PathBuf {
        self.0.join("certs")
    }

    fn bundle(&self) -> PathBuf {
        self.0.join("bundle.crt")
    }
}

impl Drop for CaDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
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
    // BENCH_CLI=PATH measures another build of the binary (an older one, say).
    let other = std::env::var("BENCH_CLI").ok();
    let Some(binary) = other.as_deref().or(BINARY) else {
        eprintln!("  skipped: the CLI is built only with `cargo bench --features cli`");
        return Vec::new();
    };
    eprintln!("  binary: {binary}");
    if !Path::new(SYSTEM_BUNDLE).is_file() {
        eprintln!("  skipped: no system bundle at {SYSTEM_BUNDLE}");
        return Vec::new();
    };
    let server = ScriptServer::builder()
        .steps(vec![Step::ok()])
        .tls(TlsConfig::new())
        .counting()
        .start();
    let base = server.base_url();
    // (A) The system's trust store as the issue found it set (many containers and Nix shells
    // set it so): SSL_CERT_FILE names the system bundle, and SSL_CERT_DIR the system's
    // directory (`NAME.pem` links to /usr/share/ca-certificates, a `HASH.0` link to each, and
    // the bundle itself), followed by a directory holding the test CA, which the bundle holds
    // too: the local server's CA is installed as every root is.
    let ca_dir = CaDir::new();
    let dirs = format!("{SYSTEM_DIR}:{}", ca_dir.certs().display());
    // (B) The bundled roots cannot vouch for the test CA, so the baseline trusts the test CA
    // alone, through the same variable: the same code path reading one certificate instead
    // of the built-in roots (which cost nothing to read: they are compiled in). This is as
    // close to "the bundled roots" as a send that succeeds can be; it costs a file read and
    // one parse more than them, some 20 µs of a few ms.
    let ca_only = CaFile::new();
    let system = Path::new(SYSTEM_BUNDLE);
    let installed = ca_dir.bundle();
    checked(send(binary, &base, &installed, Some(&dirs)));
    checked(send(binary, &base, system, Some(&dirs)));
    checked(send(binary, &base, ca_only.path(), None));

    let c = compare(
        "cold CLI send over TLS (a new telnyx-sms process), SSL_CERT_FILE = the system bundle, \
         SSL_CERT_DIR = the system directory + one holding the test CA (in the bundle too)",
        "the same, SSL_CERT_FILE = the test CA alone (the bundled roots cannot trust it)",
        scaled(40),
        scaled(5),
        || checked(send(binary, &base, ca_only.path(), None)),
        || checked(send(binary, &base, &installed, Some(&dirs))),
    );
    let met = c.cost_ratio <= 1.2;
    // (C) The test CA in the directory alone: the bundle cannot vouch for the server, so the
    // directories are read, all of them, at the handshake (the bundle's roots are kept).
    let fallback = compare(
        "the same, the test CA in SSL_CERT_DIR only: the directories are read at the handshake",
        "the same, SSL_CERT_FILE = the test CA alone",
        scaled(40),
        scaled(5),
        || checked(send(binary, &base, ca_only.path(), None)),
        || checked(send(binary, &base, system, Some(&dirs))),
    );
    vec![
        Row {
            c,
            goal: "≤ 1.2× time",
            met: Some(met),
            rate: false,
        },
        Row {
            c: fallback,
            goal: "",
            met: None,
            rate: false,
        },
    ]
}
