//! Everything that leans on ureq's semver-exempt `unversioned` API, on particular behaviours of
//! ureq's pool and connector, or on the wording of another crate's messages. An upgrade of
//! ureq (pinned `~3.5.2`) is this folder and one test run: `cargo test --all-features glue`
//! (the unit tests here and `tests/integration/glue.rs`) fails on each behaviour below that
//! changed.
//!
//! # The pieces, and what each buys
//! Figures are ratios to bare ureq in the same bench run (README, "Performance").
//! - [`resolver::CachingResolver`]: no thread per send. ureq resolves before it looks in its
//!   pool, and with any whole-request timeout its default resolver spawns a thread per lookup:
//!   bare ureq with `timeout_global` runs at **0.50×** (0.46× against nginx in the original
//!   measurement). With this resolver the client, which always sets an attempt timeout, runs
//!   at 0.98× over HTTP keep-alive, and at 1.21× bare ureq to `http://localhost` (a cached
//!   name against a lookup per send).
//! - [`transport::StableTimeoutConnector`] and its transports:
//!   - socket timeouts kept within [`transport::SLACK`] of the deadline, so ureq's TCP
//!     transport does not call `setsockopt` before nearly every read and write (three system
//!     calls per kept-alive send, "a few percent of a loopback round trip");
//!   - the same under TLS (a layer between TCP and rustls): TLS keep-alive **0.94× → 0.99×**;
//!   - one liveness probe per reuse instead of two (three system calls saved per send; no
//!     figure of its own: it was measured together with the stable timeouts, the keep-alive
//!     row at 1.02× then);
//!   - phase marks ([`transport::unmark`], [`transport::progress`]): whether "the sms was not
//!     sent" is true. Not a speed-up: with the send's own clock and the fork guard it costs
//!     ~0.4 µs per send (callgrind: 815 instructions);
//!   - a connect deadline for the connection to a CONNECT proxy, so a proxy that drips its
//!     answer is cut off (correctness, no figure).
//! - [`tls::OwnTls`]: TLS with a rustls configuration the crate made, for the roots it reads
//!   itself (`SSL_CERT_FILE`, `SSL_CERT_DIR`, `root_certificates_pem`): parsed once, and a
//!   verifier that reads `SSL_CERT_DIR` only when the bundle cannot vouch for a server
//!   (`trust.rs`). ureq's `TlsConfig` takes a fixed list of roots, which it parses again, and
//!   no verifier. A cold CLI send with a system's trust store in both variables: **2.0× →
//!   1.1×** one trusting a single CA (bench group `cli`).
//! - The message-text checks below: unavoidable, named once, tested against the real text.
//!
//! # ureq items used (all `ureq::unversioned::*` unless a path is given)
//! - `transport::{Connector, Transport, Buffers, NextTimeout, Either}`; `Connector::chain` and
//!   `()` as the start of a chain; `Transport::{buffers, transmit_output, maybe_await_input,
//!   await_input, is_open, is_tls}`.
//! - `transport::{ConnectProxyConnector, TcpConnector, RustlsConnector}` (all `Default`):
//!   ureq's own chain, rebuilt with layers of ours between TCP and rustls. (Its socks
//!   layers are left out: the builder refuses socks proxies.)
//! - `transport::ConnectionDetails`: the fields `uri`, `timeout`, `now`, `current_time` and
//!   `config` (`input_buffer_size`, `output_buffer_size`) and `needs_tls()` are read, none is
//!   built (3.5 added a field, which broke code that builds one).
//! - `transport::{TransportAdapter, LazyBuffers}` (`TransportAdapter::{new, set_timeout,
//!   get_mut, inner}`, `LazyBuffers::new`) and `transport::time::Instant::Exact`: the TLS
//!   layer is ureq 3.5.2's `RustlsConnector`/`RustlsTransport`, line for line but for the
//!   configuration (`tls.rs`); `ureq::Error::{Tls, Rustls}` and its `From<rustls::Error>`.
//! - `transport::NextTimeout { after, reason }` and `transport::time::Duration::Exact`
//!   (`is_not_happening`, deref to `std::time::Duration`).
//! - `resolver::{Resolver, DefaultResolver, ResolvedSocketAddrs}`: `Resolver::resolve` and
//!   `Resolver::empty`; `ureq::config::Config` and `ureq::http::Uri` in its signature.
//! - `ureq::Agent::with_parts(config, connector, resolver)` (called in `agent.rs`).
//! - `ureq::Error::{Other, Timeout, Io, HostNotFound, ConnectProxyFailed}`, `ureq::Timeout`.
//!
//! # ureq behaviours relied on, and what pins each
//! Tests named `glue::*` are in `tests/integration/glue.rs`.
//! 1. Every request asks the resolver first, then the pool: a kept-alive connection still
//!    costs a lookup (why the resolver caches). `glue::every_request_asks_the_resolver_before_the_pool`.
//! 2. `DefaultResolver` looks up on a new thread whenever a resolve, global or per-call budget
//!    applies (why the cache pays). Not observable from outside; the bench's 0.50× "trap" row
//!    measures it on every run (it would move to ~1× if ureq stopped).
//! 3. The pool calls `Transport::is_open` twice per reuse: when a connection is returned,
//!    right after its response was read to the end, and when it is taken out, with no I/O in
//!    between; a connection that fails the second is dropped and another opened. The client
//!    answers the first without probing ("I/O since the last call" tells it apart); if ureq
//!    stopped probing on checkout, a dead connection would be written to.
//!    `glue::the_pool_asks_is_open_on_return_and_again_on_checkout`,
//!    `glue::a_connection_closed_while_idle_is_not_reused_by_the_client`.
//! 4. rustls' transport answers `is_open` with the TCP transport's probe
//!    (`tls::after_the_server_closes_an_idle_connection_the_next_send_reconnects_and_resumes`),
//!    and hands the TCP transport the time left afresh on every read and write; ureq's TCP
//!    transport calls `setsockopt` only when the timeout differs from the last one it set
//!    (speed only: the bench's keep-alive rows).
//! 5. A request runs on the calling thread: the connector and every read and write happen on
//!    the thread that called `send` (the phase marks are thread-locals).
//!    `glue::a_connect_proxy_is_opened_inside_the_outer_connector_call_on_the_calling_thread`.
//! 6. Opening a connection is one call of the connector: TCP, a proxy's `CONNECT` exchange and
//!    the TLS handshake happen inside it, and the request's first byte is written after it
//!    returned. Through a CONNECT proxy, ureq opens the connection to the proxy with the
//!    agent's own connector, nested inside the outer call, and a refused tunnel is an error
//!    of the outer call. The same test, and `glue::a_refused_tunnel_fails_the_outer_connector_call`.
//! 7. An error a connector returns reaches the caller of `send` unchanged, so a boxed
//!    `Error::Other` can be downcast again ([`transport::unmark`]).
//!    `glue::a_connectors_error_reaches_the_caller_unchanged`.
//! 8. While reading the proxy's answer to `CONNECT`, ureq hands the connect timeout afresh to
//!    every read: the connect deadline guards against it
//!    (`phases::a_proxy_that_drips_its_answer_is_cut_off_by_the_timeouts`).
//! 9. ureq's `RustlsConnector` passes on a connection that is TLS already (`is_tls()`), so
//!    the crate's layer before it does the handshake alone: were it wrapped twice, every
//!    send trusting roots the crate read would fail
//!    (`tls::ssl_cert_file_and_ssl_cert_dir_are_trusted` and the other `tls::` tests).
//!
//! Outside this module, `send.rs` (`read_capped`) relies on one more: a body read error
//! keeps the `ureq::Error` inside the `io::Error`. `glue::a_body_read_error_keeps_ureqs_error_inside`.
//!
//! # Message text
//! Three decisions are made on another crate's wording; each is a function here, tested
//! against the text the real library produces at run time: [`is_dns_failure`] (std),
//! [`proxy_wants_credentials`] (ureq), `is_ca_used_as_end_entity` (rustls).

pub(crate) mod resolver;
#[cfg(feature = "rustls")]
pub(crate) mod tls;
pub(crate) mod transport;

/// A failed name lookup. ureq reports one as [`ureq::Error::HostNotFound`] only when the
/// lookup returned no usable address; a lookup that failed outright is std's `io::Error`,
/// whose kind is unstable (`Uncategorized`), so its message is the only stable handle:
/// "failed to lookup address information: ..." (std's wording for a `getaddrinfo` failure on
/// Unix; on Windows std reports the OS error, which this does not recognise: such a failure
/// is then told like any other that happened while opening a connection, still "not sent").
pub(crate) fn is_dns_failure(err: &ureq::Error) -> bool {
    match err {
        ureq::Error::HostNotFound | ureq::Error::Timeout(ureq::Timeout::Resolve) => true,
        ureq::Error::Io(e) => e
            .to_string()
            .starts_with("failed to lookup address information"),
        _ => false,
    }
}

/// A proxy that answered `407 Proxy Authentication Required` to `CONNECT`. ureq keeps only
/// text of it: `ConnectProxyFailed("proxy server responded 407/407")` (the status twice,
/// as number and as string); `reason` is that text.
pub(crate) fn proxy_wants_credentials(reason: &str) -> bool {
    reason.starts_with("proxy server responded 407/")
}

/// A CA certificate presented as the server's own. rustls has no variant for webpki's
/// `CaUsedAsEndEntity`: it passes the webpki error on inside `CertificateError::Other`, whose
/// text is the variant's name.
#[cfg(feature = "rustls")]
pub(crate) fn is_ca_used_as_end_entity(e: &rustls::CertificateError) -> bool {
    matches!(e, rustls::CertificateError::Other(other) if other.to_string() == "CaUsedAsEndEntity")
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::time::Duration;

    use ureq::unversioned::resolver::Resolver;
    use ureq::unversioned::transport::NextTimeout;

    use super::*;

    #[test]
    fn a_failed_lookup_is_told_by_stds_own_words() {
        // "-" is no valid host name, so glibc's resolver refuses it before building a DNS
        // query: the lookup fails on this machine, with no packet sent (checked with strace:
        // no AF_INET socket is opened, only nscd's Unix socket is tried). The error is the one
        // the real resolver chain returns ("...: Name or service not known" with glibc).
        let uri = "http://-:80/".parse().unwrap();
        let err = resolver::CachingResolver::default()
            .resolve(
                &uri,
                &ureq::config::Config::default(),
                NextTimeout::default(),
            )
            .unwrap_err();
        assert!(is_dns_failure(&err), "{err:?}");
        assert!(matches!(err, ureq::Error::Io(_)), "{err:?}");
        // Not the other io errors a connection can end with.
        for kind in [
            std::io::ErrorKind::ConnectionRefused,
            std::io::ErrorKind::UnexpectedEof,
        ] {
            let other = ureq::Error::Io(std::io::Error::from(kind));
            assert!(!is_dns_failure(&other));
        }
    }

    /// A CONNECT proxy on 127.0.0.1 that answers one request with `answer`.
    fn refusing_proxy(answer: &'static str) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut head = Vec::new();
                let mut byte = [0u8];
                while !head.ends_with(b"\r\n\r\n") && matches!(s.read(&mut byte), Ok(1)) {
                    head.push(byte[0]);
                }
                let _ = s.write_all(answer.as_bytes());
            }
        });
        addr
    }

    /// The error ureq's own CONNECT code makes of `answer`, through the client's own parts.
    fn tunnel_refused(answer: &'static str) -> String {
        let proxy = refusing_proxy(answer);
        let config = ureq::Agent::config_builder()
            .proxy(Some(ureq::Proxy::new(&format!("http://{proxy}")).unwrap()))
            .timeout_global(Some(Duration::from_secs(5)))
            .build();
        let agent = ureq::Agent::with_parts(
            config,
            transport::StableTimeoutConnector::default(),
            resolver::CachingResolver::default(),
        );
        let err = agent.get("http://127.0.0.1:9/").call().unwrap_err();
        match transport::unmark(err) {
            (ureq::Error::ConnectProxyFailed(reason), Some(_)) => reason,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_407_is_told_by_ureqs_own_words() {
        let reason = tunnel_refused(
            "HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n",
        );
        assert!(proxy_wants_credentials(&reason), "{reason}");
        let reason = tunnel_refused("HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n");
        assert!(!proxy_wants_credentials(&reason), "{reason}");
    }

    #[cfg(feature = "rustls")]
    #[test]
    fn a_ca_as_the_servers_own_certificate_is_told_by_rustls_own_words() {
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::{ServerName, UnixTime};
        use std::sync::Arc;

        // The error rustls' own verifier (the one ureq uses) makes of a self-signed CA
        // certificate presented as the server's.
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let err = verifier
            .verify_server_cert(
                ca.der(),
                &[],
                &ServerName::try_from("localhost").unwrap(),
                &[],
                UnixTime::now(),
            )
            .unwrap_err();
        let rustls::Error::InvalidCertificate(c) = err else {
            panic!("{err:?}");
        };
        assert!(is_ca_used_as_end_entity(&c), "{c:?}");
        assert!(!is_ca_used_as_end_entity(
            &rustls::CertificateError::UnknownIssuer
        ));
    }
}
