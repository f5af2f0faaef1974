//! TLS for real: full handshakes with the client, against the scripted server in TLS mode on
//! 127.0.0.1, with certificates made at test time. What is trusted, what a certificate
//! failure says, which side of the "not sent" line each TLS failure falls on, and what
//! keep-alive and reconnects cost in handshakes.

use std::time::Duration;

use telnyx_assistant_sms::{Client, ClientBuilder, ErrorKind, SendSmsRequest, SendSmsResponse};

use crate::support::tls::{CaFile, Leaf, Resumption, TlsConfig, ca_pem, pki};
use crate::support::{ScriptServer, Step, wait_until, within};
use crate::{KEY, is_child, run_child};

fn req() -> SendSmsRequest {
    SendSmsRequest::new("+15550001111", "+15550002222")
        .text("hi")
        .metadata("n", 3)
}

fn tls_server(config: TlsConfig, steps: Vec<Step>) -> ScriptServer {
    ScriptServer::builder().steps(steps).tls(config).start()
}

/// A builder for `base` that trusts the test CA.
fn trusting(base: &str) -> ClientBuilder {
    crate::builder(base).root_certificates_pem(ca_pem())
}

/// One send to `server`, trusting the test CA; it must succeed.
fn send_trusting(server: &ScriptServer) -> SendSmsResponse {
    trusting(&server.base_url())
        .build()
        .unwrap()
        .send_sms("asst-1", &req())
        .unwrap()
}

/// As [`send_trusting`], retrying failures in doubt under the key.
fn send_in_doubt(server: &ScriptServer) -> SendSmsResponse {
    trusting(&server.base_url())
        .retry_in_doubt(true)
        .build()
        .unwrap()
        .send_sms("asst-1", &req())
        .unwrap()
}

/// The request as the server saw it, less what differs by connection (`host`).
fn seen(server: &ScriptServer) -> (String, String, Vec<(String, String)>, Vec<u8>) {
    let r = server.requests().remove(0);
    let headers = r
        .headers
        .iter()
        .filter(|(n, _)| n != "host" && n != "idempotency-key")
        .cloned()
        .collect();
    (r.method, r.path, headers, r.body)
}

#[test]
fn a_send_over_tls_to_an_ip_address_puts_the_same_bytes_on_the_wire() {
    let tls = tls_server(TlsConfig::new(), vec![Step::ok()]);
    assert!(tls.base_url().starts_with("https://127.0.0.1:"));
    let res = send_trusting(&tls);
    assert_eq!(res.conversation_id.as_deref(), Some("conv-42"));
    assert_eq!(tls.full_handshakes(), 1);

    let clear = ScriptServer::start(vec![Step::ok()]);
    crate::builder(&clear.base_url())
        .build()
        .unwrap()
        .send_sms("asst-1", &req())
        .unwrap();
    assert_eq!(seen(&tls), seen(&clear));
    let r = &tls.requests()[0];
    assert_eq!(r.header("host"), Some(tls.addr().to_string().as_str()));
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
}

#[test]
fn a_send_over_tls_to_localhost_uses_the_name() {
    let tls = tls_server(TlsConfig::new(), vec![Step::ok()]);
    let base = tls.base_url_localhost();
    assert!(base.starts_with("https://localhost:"));
    trusting(&base)
        .build()
        .unwrap()
        .send_sms("asst-1", &req())
        .unwrap();
    assert_eq!(tls.request_count(), 1);
    // The leaf is valid for both, so check the name mattered: one valid for neither fails.
    let wrong = tls_server(TlsConfig::new().leaf(Leaf::WrongName), vec![Step::ok()]);
    let err = trusting(&wrong.base_url_localhost())
        .build()
        .unwrap()
        .send_sms("asst-1", &req())
        .unwrap_err();
    assert!(
        err.to_string().contains("not valid for this host name"),
        "{err}"
    );
}

#[test]
fn ssl_cert_file_and_ssl_cert_dir_are_trusted() {
    let tls = tls_server(TlsConfig::new(), vec![Step::ok()]);
    let ca = CaFile::new();
    let out = run_child(
        "tls::child_sends_with_the_environments_roots",
        &[
            ("SSL_CERT_FILE", ca.path().to_str().unwrap()),
            ("TEST_BASE_URL", &tls.base_url()),
        ],
    );
    assert!(
        out.contains("sent with 1 certificate from SSL_CERT_FILE="),
        "{out}"
    );

    // A directory: the *.pem / *.crt files in it count, other files are ignored.
    let dir = std::env::temp_dir().join(format!("telnyx-sms-test-certdir-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("test-ca.crt"), ca_pem()).unwrap();
    std::fs::write(dir.join("notes.txt"), "not a certificate").unwrap();
    std::fs::write(
        dir.join("key.pem"),
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let out = run_child(
        "tls::child_sends_with_the_environments_roots",
        &[
            ("SSL_CERT_DIR", dir.to_str().unwrap()),
            ("TEST_BASE_URL", &tls.base_url()),
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.contains("sent with 1 certificate from SSL_CERT_DIR="),
        "{out}"
    );
    assert_eq!(tls.request_count(), 2);
}

#[test]
#[ignore = "a helper: its parent test runs it in a child process"]
fn child_sends_with_the_environments_roots() {
    if !is_child("tls::child_sends_with_the_environments_roots") {
        return;
    }
    let base = std::env::var("TEST_BASE_URL").unwrap();
    let client = crate::builder(&base).build().unwrap();
    let shown = format!("{client:?}");
    assert!(!shown.contains("BEGIN CERTIFICATE"), "{shown}");
    client.send_sms("asst-1", &req()).unwrap();
    let trust = shown
        .split("trust: \"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    println!("sent with {trust}");
}

#[test]
fn unusable_trust_settings_are_config_errors_naming_their_source() {
    let base = "https://127.0.0.1:9/v2";
    let config_error = |b: ClientBuilder| {
        let e = b.build().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        e.to_string()
    };
    assert_eq!(
        config_error(crate::builder(base).root_certificates_pem("")),
        "invalid configuration: the root_certificates_pem bundle holds no certificate \
         (expected -----BEGIN CERTIFICATE----- blocks)"
    );
    assert_eq!(
        config_error(crate::builder(base).root_certificates_pem(&pki().leaf(Leaf::Good).pem[..40])),
        "invalid configuration: the root_certificates_pem bundle cannot be parsed as PEM \
         (a -----BEGIN CERTIFICATE----- block is malformed)"
    );
    let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    assert_eq!(
        config_error(crate::builder(base).root_certificates_pem(garbage)),
        "invalid configuration: the root_certificates_pem bundle holds no usable certificate \
         (1 could not be parsed)"
    );
    // Given in code, it is checked even for a clear-text loopback base URL.
    let msg = config_error(crate::builder("http://127.0.0.1:9/v2").root_certificates_pem("x"));
    assert!(msg.contains("holds no certificate"), "{msg}");
    // Several certificates in one bundle are all trusted, garbage around them ignored.
    let two = format!("junk\n{}\n{}", ca_pem(), pki().leaf(Leaf::SelfSigned).pem);
    let client = crate::builder(base)
        .root_certificates_pem(two)
        .build()
        .unwrap();
    assert!(
        format!("{client:?}").contains("trust: \"2 certificates from root_certificates_pem\""),
        "{client:?}"
    );

    let out = run_child(
        "tls::child_bad_ssl_cert_file",
        &[("SSL_CERT_FILE", "/nonexistent/ca.pem")],
    );
    assert!(out.contains("checked"), "{out}");
}

#[test]
#[ignore = "a helper: its parent test runs it in a child process"]
fn child_bad_ssl_cert_file() {
    if !is_child("tls::child_bad_ssl_cert_file") {
        return;
    }
    let err = crate::builder("https://127.0.0.1:9/v2")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert_eq!(
        err.to_string(),
        "invalid configuration: SSL_CERT_FILE (/nonexistent/ca.pem) cannot be read: no such file or directory"
    );
    // An http (loopback) base URL does not need it, and is not stopped by it.
    crate::builder("http://127.0.0.1:9/v2").build().unwrap();
    // Roots given in code win over the variable.
    crate::builder("https://127.0.0.1:9/v2")
        .root_certificates_pem(ca_pem())
        .build()
        .unwrap();
    println!("checked");
}

/// A send that a certificate problem stops: exactly one attempt, nothing sent.
fn certificate_failure(leaf: Leaf, trust_ca: bool) -> String {
    let tls = tls_server(TlsConfig::new().leaf(leaf), vec![Step::ok()]);
    let b = crate::builder(&tls.base_url()).max_retries(2);
    let b = if trust_ca {
        b.root_certificates_pem(ca_pem())
    } else {
        b
    };
    let err = b.build().unwrap().send_sms("asst-1", &req()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport, "{err}");
    assert_eq!(
        err.attempts(),
        1,
        "a certificate failure is not retried: {err}"
    );
    assert!(!err.may_have_been_sent(), "{err}");
    assert_eq!(tls.request_count(), 0);
    assert!(wait_until(Duration::from_secs(2), || tls
        .counts()
        .failed_handshakes
        == 1));
    err.to_string()
}

#[test]
fn an_untrusted_certificate_says_what_to_do() {
    let shown = certificate_failure(Leaf::Good, false);
    let addr = shown
        .split("with ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(
        shown,
        format!(
            "transport error: the tls handshake with {addr} failed: the server's certificate is \
             not trusted (unknown issuer); if a proxy or a local server uses its own certificate \
             authority, trust it with SSL_CERT_FILE or ClientBuilder::root_certificates_pem; \
             the sms was not sent"
        )
    );
    let shown = certificate_failure(Leaf::SelfSigned, true);
    assert!(shown.contains("not trusted (unknown issuer)"), "{shown}");
}

#[test]
fn a_certificate_for_another_name_or_out_of_date_is_named() {
    let shown = certificate_failure(Leaf::WrongName, true);
    assert!(
        shown.contains(
            "failed: the server's certificate is not valid for this host name; the sms was not sent"
        ),
        "{shown}"
    );
    let shown = certificate_failure(Leaf::Expired, true);
    assert!(
        shown.contains("failed: the server's certificate has expired; the sms was not sent"),
        "{shown}"
    );
}

#[test]
fn a_handshake_cut_short_is_retried_as_not_delivered() {
    // Every handshake cut: three attempts, not sent, even without a key.
    let tls = tls_server(
        TlsConfig::new().close_during_handshake(usize::MAX),
        vec![Step::ok()],
    );
    let client = trusting(&tls.base_url())
        .auto_idempotency_key(false)
        .build()
        .unwrap();
    let err = client.send_sms("asst-1", &req()).unwrap_err();
    assert_eq!(err.attempts(), 3, "{err}");
    assert!(!err.may_have_been_sent(), "{err}");
    assert_eq!(tls.request_count(), 0);
    assert!(
        err.to_string().starts_with(&format!(
            "transport error: could not connect to {}: the connection closed while it was being opened",
            tls.addr()
        )),
        "{err}"
    );
    // The first cut, then a good handshake: sent on the second attempt.
    let tls = tls_server(TlsConfig::new().close_during_handshake(1), vec![Step::ok()]);
    let client = trusting(&tls.base_url())
        .auto_idempotency_key(false)
        .build()
        .unwrap();
    let res = client.send_sms("asst-1", &req()).unwrap();
    assert_eq!((res.attempts, tls.request_count()), (2, 1));
}

#[test]
fn a_tls_failure_after_the_request_was_written_may_have_been_sent() {
    // The server reads the request, then writes a TLS record of noise.
    let tls = tls_server(TlsConfig::new(), vec![Step::GarbageAfterRequest]);
    let client = trusting(&tls.base_url())
        .auto_idempotency_key(false)
        .build()
        .unwrap();
    let err = client.send_sms("asst-1", &req()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport);
    assert!(err.may_have_been_sent(), "{err}");
    assert_eq!((err.attempts(), tls.request_count()), (1, 1));
    assert_eq!(
        err.to_string(),
        "transport error: the tls connection failed after the request was sent; the sms may have been sent"
    );
    // Under a key it is retried in doubt: a server that honours the key replays.
    let tls = tls_server(
        TlsConfig::new(),
        vec![Step::GarbageAfterRequest, Step::ok()],
    );
    let res = send_in_doubt(&tls);
    assert_eq!(res.attempts, 2);
    let keys = tls.header_values("idempotency-key");
    assert_eq!(keys[0], keys[1]);
}

#[test]
fn keep_alive_over_tls_is_one_connection_and_one_handshake() {
    let tls = tls_server(TlsConfig::new(), vec![Step::ok()]);
    let client = trusting(&tls.base_url()).build().unwrap();
    for _ in 0..20 {
        client.send_sms("asst-1", &req()).unwrap();
    }
    assert_eq!(tls.request_count(), 20);
    assert_eq!(tls.connections(), 1);
    assert_eq!((tls.full_handshakes(), tls.resumed_handshakes()), (1, 0));
}

#[test]
fn after_the_server_closes_an_idle_connection_the_next_send_reconnects_and_resumes() {
    for (resumption, resumed) in [
        (Resumption::SessionCache, 1),
        (Resumption::Tickets, 1),
        (Resumption::Off, 0),
    ] {
        let tls = tls_server(
            TlsConfig::new().resumption(resumption),
            vec![Step::OkThenClose, Step::ok()],
        );
        let client = trusting(&tls.base_url()).build().unwrap();
        client.send_sms("asst-1", &req()).unwrap();
        // Let the close reach the client's pool before the next send.
        assert!(wait_until(Duration::from_secs(2), || tls.counts().closed == 1));
        let res = client.send_sms("asst-1", &req()).unwrap();
        assert_eq!(
            res.attempts, 1,
            "{resumption:?}: the stale connection was not used"
        );
        assert_eq!(tls.connections(), 2, "{resumption:?}");
        assert_eq!(
            (tls.full_handshakes(), tls.resumed_handshakes()),
            (2 - resumed, resumed),
            "{resumption:?}"
        );
    }
}

#[test]
fn retries_and_timeouts_hold_over_tls() {
    // 502 then 200: retried in doubt under the same key.
    let tls = tls_server(TlsConfig::new(), vec![Step::json(502, "{}"), Step::ok()]);
    let res = send_in_doubt(&tls);
    assert_eq!(res.attempts, 2);
    let keys = tls.header_values("idempotency-key");
    assert_eq!(keys[0], keys[1]);
    assert_eq!(tls.header_values("x-stainless-retry-count")[1], "1");

    // A server that reads the request and says nothing: the attempt times out, in doubt.
    let tls = tls_server(TlsConfig::new(), vec![Step::Silent(Duration::from_secs(3))]);
    let client = trusting(&tls.base_url())
        .timeout(Duration::from_millis(300))
        .max_retries(0)
        .build()
        .unwrap();
    let err = within(Duration::from_secs(2), || client.send_sms("asst-1", &req())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport);
    assert!(err.may_have_been_sent());
    assert_eq!(
        err.to_string(),
        "transport error: timed out waiting for the answer; the sms may have been sent"
    );
}

#[test]
fn debug_names_the_trust_source_without_certificates() {
    let b = crate::builder("https://127.0.0.1:9/v2").root_certificates_pem(ca_pem());
    let shown = format!("{b:?}");
    assert!(shown.contains("trust: Pem("), "{shown}");
    assert!(!shown.contains("BEGIN"), "{shown}");
    let client = b.build().unwrap();
    assert!(format!("{client:?}").contains("trust: \"1 certificate from root_certificates_pem\""));
    let client = Client::builder()
        .api_key(KEY)
        .base_url("http://127.0.0.1:9/v2")
        .no_proxy()
        .build()
        .unwrap();
    assert!(format!("{client:?}").contains("none needed (clear-text http to loopback)"));
}

#[cfg(feature = "platform-verifier")]
#[test]
fn platform_roots_verify_with_the_systems_store() {
    // The test CA is in no system store: the platform verifier refuses it, before sending.
    let tls = tls_server(TlsConfig::new(), vec![Step::ok()]);
    let client = crate::builder(&tls.base_url())
        .platform_roots()
        .build()
        .unwrap();
    assert!(format!("{client:?}").contains("operating system's trust store"));
    let err = client.send_sms("asst-1", &req()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport, "{err}");
    assert!(!err.may_have_been_sent());
    assert_eq!(err.attempts(), 1, "{err}");
    assert!(err.to_string().contains("certificate"), "{err}");
    assert_eq!(tls.request_count(), 0);
}

#[test]
fn special_files_in_the_trust_variables_neither_hang_nor_flood() {
    let out = run_child(
        "tls::child_ssl_cert_file_not_regular",
        &[("SSL_CERT_FILE", "/dev/zero")],
    );
    assert!(out.contains("refused"), "{out}");
    // A FIFO (which would block a read forever) beside a good certificate: skipped.
    let dir = std::env::temp_dir().join(format!("telnyx-sms-test-fifo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("good.pem"), ca_pem()).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(dir.join("blocking.pem"))
        .status()
        .is_ok_and(|s| s.success());
    let tls = tls_server(TlsConfig::new(), vec![Step::ok()]);
    let out = run_child(
        "tls::child_sends_with_the_environments_roots",
        &[
            ("SSL_CERT_DIR", dir.to_str().unwrap()),
            ("TEST_BASE_URL", &tls.base_url()),
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(made, "mkfifo failed");
    assert!(
        out.contains("sent with 1 certificate from SSL_CERT_DIR="),
        "{out}"
    );
}

#[test]
#[ignore = "a helper: its parent test runs it in a child process"]
fn child_ssl_cert_file_not_regular() {
    if !is_child("tls::child_ssl_cert_file_not_regular") {
        return;
    }
    let err = crate::builder("https://127.0.0.1:9/v2")
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid configuration: SSL_CERT_FILE (/dev/zero) is not a regular file"
    );
    println!("refused");
}

#[test]
fn a_ca_certificate_used_as_the_servers_own_is_explained() {
    // What `openssl req -x509` makes by default, trusted as itself.
    let tls = tls_server(TlsConfig::new().leaf(Leaf::SelfSignedCa), vec![Step::ok()]);
    let err = crate::builder(&tls.base_url())
        .root_certificates_pem(&pki().leaf(Leaf::SelfSignedCa).pem)
        .build()
        .unwrap()
        .send_sms("asst-1", &req())
        .unwrap_err();
    assert_eq!((err.attempts(), err.may_have_been_sent()), (1, false));
    assert!(
        err.to_string()
            .contains("the server presents a CA certificate as its own, which rustls refuses"),
        "{err}"
    );
}

#[test]
fn a_bundle_with_a_byte_order_mark_is_read() {
    let tls = tls_server(TlsConfig::new(), vec![Step::ok()]);
    let with_bom = format!("\u{feff}{}", ca_pem());
    crate::builder(&tls.base_url())
        .root_certificates_pem(with_bom)
        .build()
        .unwrap()
        .send_sms("asst-1", &req())
        .unwrap();
}

#[test]
fn ssl_cert_dir_is_read_as_openssl_reads_it() {
    let tls = tls_server(TlsConfig::new(), vec![Step::ok()]);
    // A rehashed directory (HASH.0 names only), after a missing directory and an empty one.
    let base = std::env::temp_dir().join(format!("telnyx-sms-test-rehash-{}", std::process::id()));
    let (hashed, empty) = (base.join("hashed"), base.join("empty"));
    std::fs::create_dir_all(&hashed).unwrap();
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(hashed.join("9d66eef0.0"), ca_pem()).unwrap();
    let list = format!(
        "{}:{}:{}",
        base.join("missing").display(),
        empty.display(),
        hashed.display()
    );
    let out = run_child(
        "tls::child_sends_with_the_environments_roots",
        &[("SSL_CERT_DIR", &list), ("TEST_BASE_URL", &tls.base_url())],
    );
    assert!(
        out.contains("sent with 1 certificate from SSL_CERT_DIR="),
        "{out}"
    );
    // A list with no certificate anywhere is an error; an empty list is no list.
    let out = run_child(
        "tls::child_ssl_cert_dir_empty",
        &[("SSL_CERT_DIR", empty.to_str().unwrap())],
    );
    assert!(out.contains("refused"), "{out}");
    let out = run_child("tls::child_ssl_cert_dir_empty", &[("SSL_CERT_DIR", ":")]);
    assert!(out.contains("built-in roots"), "{out}");
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
#[ignore = "a helper: its parent test runs it in a child process"]
fn child_ssl_cert_dir_empty() {
    if !is_child("tls::child_ssl_cert_dir_empty") {
        return;
    }
    match crate::builder("https://127.0.0.1:9/v2").build() {
        Ok(c) => {
            assert!(format!("{c:?}").contains("built-in Mozilla roots"), "{c:?}");
            println!("built-in roots");
        }
        Err(e) => {
            assert!(e.to_string().contains("holds no certificate"), "{e}");
            println!("refused");
        }
    }
}

/// `pem` with its base64 on one line: the same certificate, written differently.
fn unwrapped(pem: &str) -> String {
    let body: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    format!("-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n")
}

#[cfg(unix)]
#[test]
fn ssl_cert_dir_is_read_only_when_the_bundle_cannot_vouch_for_the_server() {
    // A system directory's layout: `NAME.pem`, a `HASH.0` link to it, and the bundle of all
    // of them, which SSL_CERT_FILE names too; here also a copy with other line breaks.
    let tls = tls_server(TlsConfig::new(), vec![Step::ok(), Step::ok()]);
    let dir = std::env::temp_dir().join(format!("telnyx-sms-test-dups-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("test-ca.pem"), ca_pem()).unwrap();
    std::os::unix::fs::symlink("test-ca.pem", dir.join("0a1b2c3d.0")).unwrap();
    let bundle = dir.join("ca-certificates.crt");
    std::fs::write(&bundle, ca_pem()).unwrap();
    std::fs::write(dir.join("rewrapped.crt"), unwrapped(ca_pem())).unwrap();
    let env = |bundle: &std::path::Path| {
        run_child(
            "tls::child_sends_with_the_environments_roots",
            &[
                ("SSL_CERT_FILE", bundle.to_str().unwrap()),
                ("SSL_CERT_DIR", dir.to_str().unwrap()),
                ("TEST_BASE_URL", &tls.base_url()),
            ],
        )
    };
    // The bundle vouches for the server: only the bundle is read (the trust shown counts it
    // alone, and says when the directory would be read).
    let out = env(&bundle);
    assert!(
        out.contains(&format!(
            "sent with 1 certificate from SSL_CERT_FILE={}; SSL_CERT_DIR={} is read if they \
             cannot vouch for a server",
            bundle.display(),
            dir.display()
        )),
        "{out}"
    );
    // A bundle without the server's CA: the directory is read at the handshake, and vouches.
    let other = dir.join("other-bundle.txt");
    std::fs::write(&other, &pki().leaf(Leaf::SelfSigned).pem).unwrap();
    let out = env(&other);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.contains("sent with 1 certificate from SSL_CERT_FILE="),
        "{out}"
    );
    assert_eq!(tls.request_count(), 2);
}

#[test]
fn a_bundle_that_repeats_a_certificate_counts_it_once() {
    let two = format!(
        "{}{}{}",
        ca_pem(),
        unwrapped(ca_pem()),
        pki().leaf(Leaf::Good).pem
    );
    let client = trusting("https://127.0.0.1:9/v2")
        .root_certificates_pem(two)
        .build()
        .unwrap();
    assert!(
        format!("{client:?}")
            .contains("trust: \"2 certificates from root_certificates_pem, 1 duplicate skipped\""),
        "{client:?}"
    );
}

#[test]
fn deferred_trust_is_read_at_the_first_send_only() {
    let tls = tls_server(TlsConfig::new(), vec![Step::ok()]);
    let out = run_child(
        "tls::child_deferred_trust",
        &[
            ("SSL_CERT_FILE", "/nonexistent/ca.pem"),
            ("TEST_BASE_URL", &tls.base_url()),
        ],
    );
    assert!(out.contains("deferred"), "{out}");
    // Nothing reached the server: the send stopped before connecting.
    assert_eq!((tls.connections(), tls.request_count()), (0, 0));

    // Deferred trust that is good sends as usual.
    let ca = CaFile::new();
    let out = run_child(
        "tls::child_sends_with_deferred_trust",
        &[
            ("SSL_CERT_FILE", ca.path().to_str().unwrap()),
            ("TEST_BASE_URL", &tls.base_url()),
        ],
    );
    assert!(out.contains("sent"), "{out}");
    assert_eq!(tls.request_count(), 1);
}

#[test]
#[ignore = "a helper: its parent test runs it in a child process"]
fn child_deferred_trust() {
    if !is_child("tls::child_deferred_trust") {
        return;
    }
    let base = std::env::var("TEST_BASE_URL").unwrap();
    let client = crate::builder(&base)
        .max_retries(3)
        .defer_trust(true)
        .build()
        .unwrap();
    assert!(
        format!("{client:?}")
            .contains("trust: \"SSL_CERT_FILE=/nonexistent/ca.pem, read at the first send\""),
        "{client:?}"
    );
    // A dry run needs no certificates.
    let prepared = client.prepare("asst-1", &req()).unwrap();
    // A send does: the same error build() gives without defer_trust, with nothing sent.
    let eager = crate::builder(&base).build().unwrap_err().to_string();
    for _ in 0..2 {
        let err = client.send_prepared(&prepared).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert_eq!(err.to_string(), eager);
        assert_eq!(err.attempts(), 0);
        assert!(!err.may_have_been_sent());
    }
    // An http base URL needs none, deferred or not.
    let clear = crate::builder("http://127.0.0.1:9/v2")
        .defer_trust(true)
        .build()
        .unwrap();
    assert!(format!("{clear:?}").contains("none needed"), "{clear:?}");
    println!("deferred");
}

#[test]
#[ignore = "a helper: its parent test runs it in a child process"]
fn child_sends_with_deferred_trust() {
    if !is_child("tls::child_sends_with_deferred_trust") {
        return;
    }
    let base = std::env::var("TEST_BASE_URL").unwrap();
    let client = crate::builder(&base).defer_trust(true).build().unwrap();
    let clone = client.clone();
    let res = std::thread::spawn(move || clone.send_sms("asst-1", &req()))
        .join()
        .unwrap()
        .unwrap();
    assert_eq!(res.attempts, 1);
    println!("sent");
}
