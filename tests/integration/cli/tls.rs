//! The CLI over TLS: `--ca-file` and `SSL_CERT_FILE`, against the scripted server in TLS mode.

use crate::cli::{command, finish, send_to};
use crate::support::tls::{CaFile, TlsConfig};
use crate::support::{ScriptServer, Step};

fn tls_server() -> ScriptServer {
    ScriptServer::builder()
        .steps(vec![Step::ok()])
        .tls(TlsConfig::new())
        .start()
}

#[test]
fn ca_file_makes_a_local_https_server_trusted() {
    let server = tls_server();
    let ca = CaFile::new();
    let ca_path = ca.path().to_str().unwrap();
    let r = send_to("asst-cli", &server.base_url(), &["--ca-file", ca_path]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "conv-42\n"),
        "{}",
        r.stderr
    );
    assert_eq!(server.request_count(), 1);

    // Without it the built-in roots refuse the server, before anything is sent.
    let r = send_to("asst-cli", &server.base_url(), &[]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("certificate is not trusted (unknown issuer)")
            && r.stderr.contains("the sms was not sent"),
        "{}",
        r.stderr
    );
    assert_eq!(server.request_count(), 1);
}

#[test]
fn ssl_cert_file_is_honoured_and_ca_file_wins_over_it() {
    let server = tls_server();
    let ca = CaFile::new();
    let url = server.base_url();
    let args = crate::cli::send_args("asst-cli", &url, &[]);
    let r = finish(
        command(&args, true)
            .env("SSL_CERT_FILE", ca.path())
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    // A broken SSL_CERT_FILE is a configuration error naming it, unless --ca-file is given.
    let r = finish(
        command(&args, true)
            .env("SSL_CERT_FILE", "/nonexistent/bundle.pem")
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("SSL_CERT_FILE (/nonexistent/bundle.pem) cannot be read"),
        "{}",
        r.stderr
    );
    let mut with_ca = args.clone();
    let ca_path = ca.path().to_str().unwrap();
    with_ca.extend(["--ca-file", ca_path]);
    let r = finish(
        command(&with_ca, true)
            .env("SSL_CERT_FILE", "/nonexistent/bundle.pem")
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(server.request_count(), 2);
}

#[test]
fn a_ca_file_that_is_not_a_certificate_bundle_is_named() {
    let not_pem = CaFile::with_contents("hello, not a certificate\n");
    let path = not_pem.path().to_str().unwrap();
    let r = send_to(
        "asst-cli",
        "https://127.0.0.1:9/v2",
        &["--ca-file", path, "--dry-run"],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("--ca-file {path} holds no certificate")),
        "{}",
        r.stderr
    );
    let r = send_to(
        "asst-cli",
        "https://127.0.0.1:9/v2",
        &["--ca-file", "/nonexistent.pem"],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--ca-file"), "{}", r.stderr);
}
