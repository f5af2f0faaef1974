//! Configuration from the environment. The environment is process-wide, so each case runs
//! in a child process (this same test binary, filtered to one `child_` test) with exactly the
//! variables it needs.

use telnyx_assistant_sms::{ErrorKind, SendSmsRequest};

use crate::support::{ScriptServer, Step};
use crate::{is_child, run_child};

#[test]
fn free_function_uses_the_environment_and_one_connection() {
    let server = ScriptServer::start(vec![Step::ok()]);
    let out = run_child(
        "env::child_free_function_sends_twenty",
        &[
            ("TELNYX_API_KEY", crate::KEY),
            ("TELNYX_BASE_URL", &server.base_url()),
        ],
    );
    assert!(out.contains("sent 20"), "{out}");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 20);
    assert_eq!(
        server.connections(),
        1,
        "the free function must reuse its connection"
    );
    for r in &reqs {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {}", crate::KEY).as_str())
        );
        assert_eq!(r.path, "/v2/ai/assistants/asst-env/chat/sms");
    }
}

#[test]
#[ignore = "a helper: its parent test runs it in a child process"]
fn child_free_function_sends_twenty() {
    if !is_child("env::child_free_function_sends_twenty") {
        return;
    }
    for _ in 0..20 {
        let res =
            telnyx_assistant_sms::send_sms("asst-env", &SendSmsRequest::new("+1", "+2")).unwrap();
        assert_eq!(res.conversation_id.as_deref(), Some("conv-42"));
    }
    println!("sent 20");
}

#[test]
fn free_function_without_a_key_is_an_error_not_a_panic() {
    let out = run_child("env::child_free_function_without_key", &[]);
    assert!(out.contains("config error ok"), "{out}");
}

#[test]
#[ignore = "a helper: its parent test runs it in a child process"]
fn child_free_function_without_key() {
    if !is_child("env::child_free_function_without_key") {
        return;
    }
    let err = telnyx_assistant_sms::send_sms("a", &SendSmsRequest::new("+1", "+2")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert_eq!(
        err.to_string(),
        "invalid configuration: no api key: TELNYX_API_KEY is not set"
    );
    // Still an error (not a cached panic or a stale client) the second time.
    assert_eq!(
        telnyx_assistant_sms::send_sms("a", &SendSmsRequest::new("+1", "+2"))
            .unwrap_err()
            .kind(),
        ErrorKind::Config
    );
    println!("config error ok");
}

#[test]
fn bad_base_url_in_the_environment_is_named() {
    let out = run_child(
        "env::child_bad_base_url",
        &[
            ("TELNYX_API_KEY", crate::KEY),
            ("TELNYX_BASE_URL", "http://example.com/v2"),
        ],
    );
    assert!(out.contains("named ok"), "{out}");
}

#[test]
#[ignore = "a helper: its parent test runs it in a child process"]
fn child_bad_base_url() {
    if !is_child("env::child_bad_base_url") {
        return;
    }
    let err = telnyx_assistant_sms::Client::from_env().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(
        err.to_string()
            .starts_with("invalid configuration: the TELNYX_BASE_URL uses plain http"),
        "{err}"
    );
    println!("named ok");
}

#[test]
fn https_proxy_from_the_environment_is_used_and_no_proxy_is_honoured() {
    // The "proxy" is a scripted server: it sees the CONNECT, accepts it, and then cannot speak
    // TLS, so the send fails; what matters is where it went. No name is resolved: through a
    // proxy the target host is the proxy's to resolve.
    let connect_ok = Step::Respond {
        status: 200,
        headers: vec![],
        body: vec![],
    };
    let proxy = ScriptServer::start(vec![connect_ok, Step::Close]);
    let proxy_url = format!("http://{}", proxy.addr());
    let out = run_child(
        "env::child_send_fails_once",
        &[
            ("TELNYX_API_KEY", crate::KEY),
            ("TELNYX_BASE_URL", "https://api.example.test/v2"),
            ("HTTPS_PROXY", &proxy_url),
        ],
    );
    assert!(out.contains("failed as expected"), "{out}");
    let reqs = proxy.requests();
    assert_eq!(
        (reqs[0].method.as_str(), reqs[0].path.as_str()),
        ("CONNECT", "api.example.test:443")
    );

    // With NO_PROXY naming the host, the connection goes straight to it.
    let direct = ScriptServer::start(vec![Step::Close]);
    let before = proxy.connections();
    run_child(
        "env::child_send_fails_once",
        &[
            ("TELNYX_API_KEY", crate::KEY),
            ("TELNYX_BASE_URL", &format!("https://{}/v2", direct.addr())),
            ("ALL_PROXY", &proxy_url),
            ("NO_PROXY", "example.com,127.0.0.1"),
        ],
    );
    assert!(direct.connections() >= 1, "the send did not go direct");
    assert_eq!(proxy.connections(), before, "the proxy saw nothing more");
}

#[test]
#[ignore = "a helper: its parent test runs it in a child process"]
fn child_send_fails_once() {
    if !is_child("env::child_send_fails_once") {
        return;
    }
    let client = telnyx_assistant_sms::ClientBuilder::from_env()
        .max_retries(0)
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .unwrap();
    let err = client
        .send_sms("asst-env", &SendSmsRequest::new("+1", "+2"))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport, "{err}");
    println!("failed as expected");
}

#[test]
fn loopback_http_never_goes_through_an_environment_proxy() {
    let proxy = ScriptServer::start(vec![Step::ok()]);
    let direct = ScriptServer::start(vec![Step::ok()]);
    let proxy_url = format!("http://{}", proxy.addr());
    run_child(
        "env::child_sends_once",
        &[
            ("TELNYX_API_KEY", crate::KEY),
            ("TELNYX_BASE_URL", &direct.base_url()),
            ("http_proxy", &proxy_url),
            ("ALL_PROXY", &proxy_url),
        ],
    );
    assert_eq!(direct.request_count(), 1);
    assert_eq!(proxy.connections(), 0);
}

#[test]
#[ignore = "a helper: its parent test runs it in a child process"]
fn child_sends_once() {
    if !is_child("env::child_sends_once") {
        return;
    }
    let client = telnyx_assistant_sms::Client::from_env().unwrap();
    client
        .send_sms("asst-env", &SendSmsRequest::new("+1", "+2"))
        .unwrap();
}

#[test]
fn an_unreadable_variable_that_a_setter_overrides_is_no_error() {
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"http://\xff/v2");
    let out = crate::run_child_os(
        "env::child_non_unicode_base_url_overridden",
        &[
            ("TELNYX_API_KEY", crate::KEY.as_ref()),
            ("TELNYX_BASE_URL", bad),
        ],
    );
    assert!(out.contains("overridden ok"), "{out}");
}

#[test]
#[ignore = "a helper: its parent test runs it in a child process"]
fn child_non_unicode_base_url_overridden() {
    if !is_child("env::child_non_unicode_base_url_overridden") {
        return;
    }
    let err = telnyx_assistant_sms::ClientBuilder::from_env()
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid configuration: TELNYX_BASE_URL is not valid unicode"
    );
    telnyx_assistant_sms::ClientBuilder::from_env()
        .base_url("http://127.0.0.1:9/v2")
        .build()
        .unwrap();
    println!("overridden ok");
}

#[test]
fn a_non_unicode_proxy_variable_is_an_error_not_a_bypass() {
    use std::os::unix::ffi::OsStrExt;
    let bad = std::ffi::OsStr::from_bytes(b"http://127.0.0.1:1\xff");
    let out = crate::run_child_os(
        "env::child_non_unicode_proxy",
        &[
            ("TEST_VARIABLE", "HTTPS_PROXY".as_ref()),
            ("HTTPS_PROXY", bad),
        ],
    );
    assert!(out.contains("refused ok"), "{out}");
    // NO_PROXY matters (and is read) when a proxy is set.
    let out = crate::run_child_os(
        "env::child_non_unicode_proxy",
        &[
            ("TEST_VARIABLE", "NO_PROXY".as_ref()),
            ("HTTPS_PROXY", "http://127.0.0.1:3128".as_ref()),
            ("NO_PROXY", std::ffi::OsStr::from_bytes(b"\xff,127.0.0.1")),
        ],
    );
    assert!(out.contains("refused ok"), "{out}");
}

#[test]
#[ignore = "a helper: its parent test runs it in a child process"]
fn child_non_unicode_proxy() {
    if !is_child("env::child_non_unicode_proxy") {
        return;
    }
    let name = std::env::var("TEST_VARIABLE").unwrap();
    let err = telnyx_assistant_sms::Client::builder()
        .api_key(crate::KEY)
        .base_url("https://127.0.0.1:9/v2")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert_eq!(
        err.to_string(),
        format!("invalid configuration: {name} is not valid unicode")
    );
    println!("refused ok");
}

#[test]
fn a_forked_child_makes_other_keys_than_its_parent() {
    let out = run_child("env::child_forks_and_compares_keys", &[]);
    assert!(out.contains("keys differ"), "{out}");
}

#[test]
#[ignore = "a helper: its parent test runs it in a child process"]
fn child_forks_and_compares_keys() {
    if !is_child("env::child_forks_and_compares_keys") {
        return;
    }
    let client = telnyx_assistant_sms::Client::builder()
        .api_key(crate::KEY)
        .base_url("http://127.0.0.1:9/v2")
        .build()
        .unwrap();
    let req = SendSmsRequest::new("+1", "+2");
    // Warm the thread's RandomState, as a long-running parent would have.
    let _ = client.prepare("a", &req).unwrap();
    let mut fds = [0i32; 2];
    // SAFETY: a plain pipe(2) into a valid two-int array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: this child test process runs its one test on one thread (--test-threads=1),
    // and the forked child only prepares a key, writes it and exits.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    let key = client
        .prepare("a", &req)
        .unwrap()
        .idempotency_key()
        .unwrap()
        .to_owned();
    if pid == 0 {
        // SAFETY: writing a valid buffer to the pipe, then leaving without unwinding.
        unsafe {
            libc::write(fds[1], key.as_ptr().cast(), key.len());
            libc::_exit(0);
        }
    }
    let mut buf = [0u8; 64];
    // SAFETY: reading into a valid buffer from the pipe; waiting for the child we forked.
    let n = unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len()) };
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    let child_key = std::str::from_utf8(&buf[..n as usize]).unwrap();
    assert_eq!(child_key.len(), 32);
    assert_ne!(child_key, key, "parent and child made the same key");
    println!("keys differ");
}
