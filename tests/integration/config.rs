//! Building a client: defaults, refusals, and the key kept out of every rendering.

use std::time::Duration;

use telnyx_assistant_sms::{Client, ErrorKind};

use crate::KEY;

fn config_error(b: telnyx_assistant_sms::ClientBuilder) -> String {
    let err = b.build().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    crate::errors::assert_no_key(&err);
    err.to_string()
}

#[test]
fn key_is_absent_from_debug_of_client_and_builder() {
    let b = Client::builder()
        .api_key(KEY)
        .proxy("http://user:proxypass@127.0.0.1:3128");
    let shown = format!("{b:?} {b:#?}");
    assert!(
        !shown.contains(KEY) && !shown.contains("proxypass"),
        "{shown}"
    );
    assert!(shown.contains("[REDACTED]"));
    let client = b.build().unwrap();
    let shown = format!("{client:?} {client:#?}");
    assert!(
        !shown.contains(KEY) && !shown.contains("proxypass"),
        "{shown}"
    );
    assert!(shown.contains("[REDACTED]"));
    assert!(shown.contains("http://***@127.0.0.1:3128"), "{shown}");
}

#[test]
fn missing_or_malformed_key() {
    assert_eq!(
        config_error(Client::builder()),
        "invalid configuration: no api key: set TELNYX_API_KEY or pass one to ClientBuilder::api_key"
    );
    assert_eq!(
        config_error(Client::builder().api_key("")),
        "invalid configuration: the api key is empty"
    );
    let msg = config_error(Client::builder().api_key(format!("{KEY}\n")));
    assert!(
        msg.starts_with("invalid configuration: the api key contains whitespace"),
        "{msg}"
    );
    assert_eq!(
        config_error(Client::builder().api_key(format!("Bearer {KEY}"))),
        "invalid configuration: the api key starts with `Bearer `: give the key alone (the client adds `Bearer`)"
    );
    let msg = config_error(Client::builder().api_key(format!("{KEY}\u{7}")));
    assert!(msg.contains("cannot be sent in an HTTP header"), "{msg}");
    assert_eq!(Client::new("").unwrap_err().kind(), ErrorKind::Config);
}

#[test]
fn http_to_a_remote_host_is_refused() {
    for url in [
        "http://api.telnyx.com/v2",
        "http://10.0.0.8/v2",
        "http://[2001:db8::1]/v2",
    ] {
        let msg = config_error(Client::builder().api_key(KEY).base_url(url));
        assert!(
            msg.contains("plain http to a host that is not loopback"),
            "{url}: {msg}"
        );
    }
    for url in [
        "http://127.0.0.1:9/v2",
        "http://localhost:9/v2",
        "http://[::1]:9/v2",
    ] {
        Client::builder()
            .api_key(KEY)
            .base_url(url)
            .build()
            .unwrap();
    }
}

#[test]
fn malformed_base_urls() {
    let cases = [
        ("not a url", "is not a valid absolute url"),
        ("/v2", "is not a valid absolute url"),
        ("ftp://example.com/v2", "has scheme `ftp`"),
        (
            "https://user:pw@api.telnyx.com/v2",
            "must not contain credentials",
        ),
        ("https://api.telnyx.com/v2?x=1", "must not contain a query"),
    ];
    for (url, want) in cases {
        let msg = config_error(Client::builder().api_key(KEY).base_url(url));
        assert!(msg.contains(want), "{url}: {msg}");
        assert!(!msg.contains("pw@"), "{msg}");
    }
}

#[test]
fn zero_timeouts_and_bad_proxies_are_refused() {
    let msg = config_error(Client::builder().api_key(KEY).timeout(Duration::ZERO));
    assert!(msg.contains("timeout must be greater than zero"), "{msg}");
    let msg = config_error(
        Client::builder()
            .api_key(KEY)
            .connect_timeout(Duration::ZERO),
    );
    assert!(msg.contains("connect timeout"), "{msg}");
    let msg = config_error(Client::builder().api_key(KEY).proxy("ftp://u:secretpw@x:1"));
    assert!(
        msg.contains("has an unknown scheme") && !msg.contains("secretpw"),
        "{msg}"
    );
}

#[test]
fn defaults() {
    let client = Client::new(KEY).unwrap();
    assert_eq!(client.base_url(), "https://api.telnyx.com/v2");
    let shown = format!("{client:?}");
    for want in [
        "timeout: 60s",
        "connect_timeout: 5s",
        "max_retries: 2",
        "auto_idempotency_key: true",
        "retry_ambiguous: false",
    ] {
        assert!(shown.contains(want), "{want} in {shown}");
    }
}

#[test]
fn proxies_that_would_expose_the_key_or_cannot_work_are_refused() {
    let msg = config_error(
        Client::builder()
            .api_key(KEY)
            .base_url("http://127.0.0.1:9/v2")
            .proxy("http://proxy.example.com:3128"),
    );
    assert!(msg.contains("not on loopback"), "{msg}");
    Client::builder()
        .api_key(KEY)
        .base_url("http://127.0.0.1:9/v2")
        .proxy("http://127.0.0.1:3128")
        .build()
        .unwrap();
    let msg = config_error(
        Client::builder()
            .api_key(KEY)
            .proxy("socks5://127.0.0.1:1080"),
    );
    assert!(msg.contains("socks proxy"), "{msg}");
    // https through a remote proxy is fine: the tunnel is end-to-end TLS.
    Client::builder()
        .api_key(KEY)
        .proxy("http://proxy.example.com:3128")
        .build()
        .unwrap();
}

#[test]
fn builder_debug_hides_credentials_in_the_base_url() {
    let b = Client::builder().base_url("https://user:basepass@api.telnyx.com/v2");
    let shown = format!("{b:?}");
    assert!(!shown.contains("basepass"), "{shown}");
}

#[test]
fn a_non_ascii_key_is_a_config_error_that_does_not_show_it() {
    // Byte 7 falls inside 'ä': checking for a `Bearer ` prefix must not slice there.
    for key in ["abcdefä1", "Bearerä xyz", "äääääääääää"] {
        let err = Client::builder().api_key(key).build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(key), "{shown}");
    }
}
