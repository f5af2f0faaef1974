//! Integration tests: one binary (linking is the slow part), one module per concern.
//! Every server here listens on 127.0.0.1; nothing talks to the real API.

mod alloc;
mod support;

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

mod batch;
#[cfg(feature = "cli")]
mod cli;
mod config;
mod defects16;
mod diagnostics;
mod env;
mod errors;
mod glue;
mod hostile;
mod journal;
mod kill;
mod load;
mod phases;
mod policy;
mod probe14;
mod retries;
mod server_selftest;
mod soak;
mod tls;
mod tls_own;
mod validation;
mod wire;

use std::process::Command;
use std::time::Duration;

use telnyx_assistant_sms::{Client, ClientBuilder};

/// The key every test uses: distinctive, so a leak into any output is easy to spot.
pub const KEY: &str = "KEYsecret0123456789abcdefSECRET";

/// A builder aimed at `base`, with no proxy (a proxy in the environment must not redirect
/// tests) and short waits.
pub fn builder(base: &str) -> ClientBuilder {
    Client::builder()
        .api_key(KEY)
        .base_url(base)
        .no_proxy()
        .timeout(Duration::from_secs(5))
}

/// A builder whose https API (127.0.0.1:9) is never reached: every connection goes through
/// the CONNECT proxy at `proxy` (`host:port`, or a whole proxy URL).
pub fn through_proxy(proxy: impl std::fmt::Display) -> ClientBuilder {
    let proxy = proxy.to_string();
    Client::builder()
        .api_key(KEY)
        .base_url("https://127.0.0.1:9/v2")
        .proxy(if proxy.contains("://") {
            proxy
        } else {
            format!("http://{proxy}")
        })
}

/// A client for a mockito server: `{url}/v2`, retries off so counts are exact.
pub fn client(server: &mockito::Server) -> Client {
    builder(&format!("{}/v2", server.url()))
        .max_retries(0)
        .build()
        .unwrap()
}

const CHILD: &str = "TELNYX_TEST_CHILD";

/// Runs the helper `path` (such as `env::child_x`, an `#[ignore]`d test that returns at once
/// unless [`is_child`] says it is the one asked for) alone in a child process of this same
/// test binary, with the proxy and `TELNYX_` variables removed and `vars` set; asserts that it
/// ran and passed, and returns its output. For tests that need the process to themselves: the
/// environment, or steady memory and file-descriptor counts.
pub fn run_child(path: &str, vars: &[(&str, &str)]) -> String {
    let vars: Vec<(&str, &std::ffi::OsStr)> = vars.iter().map(|(k, v)| (*k, v.as_ref())).collect();
    run_child_os(path, &vars)
}

/// [`run_child`] with variables that need not be unicode.
pub fn run_child_os(path: &str, vars: &[(&str, &std::ffi::OsStr)]) -> String {
    let out = child_command(path, vars).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child {path} failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "child {path} did not run:\n{text}"
    );
    text
}

/// The command [`run_child_os`] runs: this test binary, for the test `path` alone.
fn child_command(path: &str, vars: &[(&str, &std::ffi::OsStr)]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    // The helpers are `#[ignore]`d, so that they do not count as tests of their own.
    cmd.args([
        "--exact",
        path,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    for v in support::SCRUBBED_ENV {
        cmd.env_remove(v);
    }
    cmd.env(CHILD, path);
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

/// Starts the test `path` alone in a child process, as [`run_child`] does, without waiting
/// for it (its output is discarded): for tests that kill it.
pub fn spawn_child(path: &str, vars: &[(&str, &str)]) -> std::process::Child {
    let vars: Vec<(&str, &std::ffi::OsStr)> = vars.iter().map(|(k, v)| (*k, v.as_ref())).collect();
    child_command(path, &vars)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// True only inside the child process [`run_child`] started for the test `path`.
pub fn is_child(path: &str) -> bool {
    std::env::var(CHILD).as_deref() == Ok(path)
}
