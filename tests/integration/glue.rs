//! The ureq behaviours `src/glue` relies on, pinned: each test here fails if ureq stops
//! behaving the way the module header (`src/glue/mod.rs`, "ureq behaviours relied on")
//! says. Most drive bare ureq through a connector and resolver that only record what ureq
//! asks of them; the rest go through the client. Every server listens on 127.0.0.1.

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, ThreadId};
use std::time::Duration;

use telnyx_assistant_sms::{ErrorKind, SendSmsRequest};
use ureq::Agent;
use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, DefaultConnector, NextTimeout, Transport,
};

use crate::support::proxy::Proxy;
use crate::support::{ScriptServer, Step, wait_until};

/// What ureq asked of the recording connector, resolver and transports, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Event {
    /// The resolver was asked for this `host:port`.
    Resolve(String),
    /// The connector was called for this `host:port`.
    Connect(String),
    /// That call returned (`true`: with a transport).
    Connected(String, bool),
    /// A transport (numbered by connection) wrote bytes beginning with these; `opening`: while
    /// a connector call was still going on.
    Write {
        conn: usize,
        opening: bool,
        head: String,
    },
    /// A transport waited for input.
    Read { conn: usize, opening: bool },
    /// The pool asked a transport whether it is still open.
    IsOpen { conn: usize },
    /// A point in the test.
    Mark(&'static str),
}

#[derive(Debug, Default)]
struct Log {
    events: Mutex<Vec<Event>>,
    threads: Mutex<Vec<ThreadId>>,
    /// Connector calls going on now.
    depth: AtomicUsize,
    connections: AtomicUsize,
}

impl Log {
    fn push(&self, e: Event) {
        self.events.lock().unwrap().push(e);
        self.threads.lock().unwrap().push(thread::current().id());
    }

    fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    /// The events, with a run of writes on one connection (ureq writes a `CONNECT` head a
    /// piece at a time) as its first.
    fn writes_joined(&self) -> Vec<Event> {
        let mut out: Vec<Event> = Vec::new();
        for e in self.events() {
            if let (
                Event::Write { conn, opening, .. },
                Some(Event::Write {
                    conn: c,
                    opening: o,
                    ..
                }),
            ) = (&e, out.last())
            {
                if (conn, opening) == (c, o) {
                    continue;
                }
            }
            out.push(e);
        }
        out
    }

    fn opening(&self) -> bool {
        self.depth.load(Ordering::SeqCst) > 0
    }
}

fn authority(uri: &Uri) -> String {
    uri.authority().map(|a| a.to_string()).unwrap_or_default()
}

/// ureq's default connector, recording each call and wrapping each transport in a
/// [`Recording`].
#[derive(Debug)]
struct RecordingConnector(DefaultConnector, Arc<Log>);

impl Connector<()> for RecordingConnector {
    type Out = Recording;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<()>,
    ) -> Result<Option<Recording>, ureq::Error> {
        let log = &self.1;
        let at = authority(details.uri);
        log.push(Event::Connect(at.clone()));
        log.depth.fetch_add(1, Ordering::SeqCst);
        let result = self.0.connect(details, chained);
        log.depth.fetch_sub(1, Ordering::SeqCst);
        log.push(Event::Connected(at, matches!(result, Ok(Some(_)))));
        Ok(result?.map(|inner| Recording {
            inner,
            conn: log.connections.fetch_add(1, Ordering::SeqCst),
            log: log.clone(),
        }))
    }
}

#[derive(Debug)]
struct Recording {
    inner: Box<dyn Transport>,
    conn: usize,
    log: Arc<Log>,
}

impl Transport for Recording {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let out = &self.inner.buffers().output()[..amount];
        let head = String::from_utf8_lossy(&out[..amount.min(8)]).into_owned();
        self.log.push(Event::Write {
            conn: self.conn,
            opening: self.log.opening(),
            head,
        });
        self.inner.transmit_output(amount, timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.log.push(Event::Read {
            conn: self.conn,
            opening: self.log.opening(),
        });
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        self.log.push(Event::IsOpen { conn: self.conn });
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

/// ureq's default resolver, recording each call.
#[derive(Debug)]
struct RecordingResolver(DefaultResolver, Arc<Log>);

impl Resolver for RecordingResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        self.1.push(Event::Resolve(authority(uri)));
        self.0.resolve(uri, config, timeout)
    }
}

/// Bare ureq (no proxy from the environment, an attempt timeout as the client sets one)
/// with the recording parts, and their log.
fn recorded(proxy: Option<&Proxy>) -> (Agent, Arc<Log>) {
    let proxy = proxy.map(|p| ureq::Proxy::new(&format!("http://{}", p.addr)).unwrap());
    let config = Agent::config_builder()
        .proxy(proxy)
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build();
    let log = Arc::new(Log::default());
    let agent = Agent::with_parts(
        config,
        RecordingConnector(DefaultConnector::default(), log.clone()),
        RecordingResolver(DefaultResolver::default(), log.clone()),
    );
    (agent, log)
}

fn post(agent: &Agent, url: &str) -> Result<String, ureq::Error> {
    agent
        .post(url)
        .send(&b"{}"[..])?
        .body_mut()
        .read_to_string()
}

/// Behaviour 1: a send on a kept-alive connection still asks the resolver, and first.
#[test]
fn every_request_asks_the_resolver_before_the_pool() {
    let server = ScriptServer::start(vec![Step::ok()]);
    let (agent, log) = recorded(None);
    let url = format!("{}/x", server.base_url());
    for _ in 0..3 {
        post(&agent, &url).unwrap();
        log.push(Event::Mark("sent"));
    }
    assert_eq!(server.connections(), 1, "one kept-alive connection");
    let at = server.addr().to_string();
    let events = log.events();
    let resolves: Vec<usize> = (0..events.len())
        .filter(|&i| events[i] == Event::Resolve(at.clone()))
        .collect();
    assert_eq!(resolves.len(), 3, "{events:#?}");
    // Each send's lookup comes before anything else of that send: its connector call or
    // the pool's probe of the kept-alive connection.
    assert_eq!(resolves[0], 0, "{events:#?}");
    for i in &resolves[1..] {
        assert_eq!(events[i - 1], Event::Mark("sent"), "{events:#?}");
        assert!(
            matches!(events[i + 1], Event::IsOpen { conn: 0 }),
            "{events:#?}"
        );
    }
}

/// Behaviour 3: two `is_open` calls per reuse, the first right after the answer was read, the
/// second on taking the connection out, with no I/O between them.
#[test]
fn the_pool_asks_is_open_on_return_and_again_on_checkout() {
    let server = ScriptServer::start(vec![Step::ok()]);
    let (agent, log) = recorded(None);
    let url = format!("{}/x", server.base_url());
    post(&agent, &url).unwrap();
    log.push(Event::Mark("first answer read"));
    post(&agent, &url).unwrap();
    let events = log.events();
    let mark = events
        .iter()
        .position(|e| *e == Event::Mark("first answer read"))
        .unwrap();
    let io = |e: &Event| matches!(e, Event::Write { .. } | Event::Read { .. });
    // On return: the last thing before the mark, after the answer's reads.
    let before: Vec<&Event> = events[..mark].iter().filter(|e| !io(e)).collect();
    assert_eq!(
        before.last(),
        Some(&&Event::IsOpen { conn: 0 }),
        "{events:#?}"
    );
    assert!(io(&events[mark - 2]), "I/O just before it: {events:#?}");
    // On checkout: the next send's first step after its lookup, before it writes.
    let after: Vec<&Event> = events[mark + 1..]
        .iter()
        .filter(|e| !matches!(e, Event::Resolve(_)))
        .take(2)
        .collect();
    assert_eq!(
        after,
        [
            &Event::IsOpen { conn: 0 },
            &Event::Write {
                conn: 0,
                opening: false,
                head: "POST /v2".to_owned()
            }
        ],
        "{events:#?}"
    );
    let probes = events.iter().filter(|e| matches!(e, Event::IsOpen { .. }));
    assert_eq!(probes.count(), 3, "return, checkout, return: {events:#?}");
}

/// Behaviour 3, through the client: the client answers the probe on return itself, so the
/// probe on checkout is the only one. A connection the server closed while idle must be
/// found dead there, and the send goes out on a new one (no key, no retries: a send written
/// on the dead connection would fail as "may have been sent").
#[test]
fn a_connection_closed_while_idle_is_not_reused_by_the_client() {
    let server = ScriptServer::start(vec![Step::OkThenClose, Step::ok()]);
    let client = crate::builder(&server.base_url())
        .auto_idempotency_key(false)
        .max_retries(0)
        .build()
        .unwrap();
    let req = SendSmsRequest::new("+15550001111", "+15550002222").text("hi");
    client.send_sms("asst-1", &req).unwrap();
    assert!(wait_until(Duration::from_secs(2), || server
        .counts()
        .closed
        == 1));
    let res = client.send_sms("asst-1", &req).unwrap();
    assert_eq!(res.attempts, 1);
    assert_eq!((server.connections(), server.request_count()), (2, 2));
}

/// Behaviours 5 and 6: through a CONNECT proxy, one connector call for the target with the
/// call for the proxy nested in it, the CONNECT written inside it, the request only after it,
/// and all of it on the calling thread.
#[test]
fn a_connect_proxy_is_opened_inside_the_outer_connector_call_on_the_calling_thread() {
    let server = ScriptServer::start(vec![Step::ok()]);
    let proxy = Proxy::start(None);
    let (agent, log) = recorded(Some(&proxy));
    let target = server.addr().to_string();
    let at_proxy = proxy.addr.to_string();
    post(&agent, &format!("{}/x", server.base_url())).unwrap();
    let events = log.writes_joined();
    let opening: Vec<Event> = events
        .iter()
        .take_while(|e| **e != Event::Connected(target.clone(), true))
        .filter(|e| !matches!(e, Event::Read { .. }))
        .cloned()
        .collect();
    assert_eq!(
        opening,
        [
            // The target is not looked up when a proxy is used (the proxy is).
            Event::Connect(target.clone()),
            Event::Resolve(at_proxy.clone()),
            Event::Connect(at_proxy.clone()),
            Event::Connected(at_proxy, true),
            Event::Write {
                conn: 0,
                opening: true,
                head: "CONNECT ".to_owned()
            },
        ],
        "{events:#?}"
    );
    let first_after = events
        .iter()
        .skip_while(|e| **e != Event::Connected(target.clone(), true))
        .find(|e| matches!(e, Event::Write { .. }));
    assert_eq!(
        first_after,
        Some(&Event::Write {
            conn: 1,
            opening: false,
            head: "POST /v2".to_owned()
        }),
        "{events:#?}"
    );
    let me = thread::current().id();
    assert!(log.threads.lock().unwrap().iter().all(|t| *t == me));
    assert_eq!(proxy.heads().len(), 1);
}

/// Behaviour 6: a refused tunnel is an error of the connector call for the target, which
/// the client therefore reports as "not sent", naming both ends.
#[test]
fn a_refused_tunnel_fails_the_outer_connector_call() {
    let proxy = Proxy::start(Some("HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n"));
    let (agent, log) = recorded(Some(&proxy));
    let err = post(&agent, "http://127.0.0.1:9/x").unwrap_err();
    assert!(matches!(err, ureq::Error::ConnectProxyFailed(_)), "{err:?}");
    let events = log.events();
    assert_eq!(
        events.last(),
        Some(&Event::Connected("127.0.0.1:9".to_owned(), false)),
        "{events:#?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::Write { opening: false, .. })),
        "{events:#?}"
    );

    let client = crate::through_proxy(proxy.addr)
        .max_retries(0)
        .build()
        .unwrap();
    let req = SendSmsRequest::new("+15550001111", "+15550002222").text("hi");
    let err = client.send_sms("asst-1", &req).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transport);
    assert!(!err.may_have_been_sent(), "{err}");
    assert!(
        err.to_string().starts_with(&format!(
            "transport error: the proxy {} would not open a tunnel to 127.0.0.1:9: ",
            proxy.addr
        )),
        "{err}"
    );
}

/// Behaviour 7: a connector's error reaches the caller of `send` as it was returned.
#[test]
fn a_connectors_error_reaches_the_caller_unchanged() {
    #[derive(Debug)]
    struct Mark(u32);
    impl std::fmt::Display for Mark {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "mark {}", self.0)
        }
    }
    impl std::error::Error for Mark {}

    #[derive(Debug)]
    struct Failing;
    impl Connector<()> for Failing {
        type Out = Box<dyn Transport>;
        fn connect(
            &self,
            _: &ConnectionDetails,
            _: Option<()>,
        ) -> Result<Option<Self::Out>, ureq::Error> {
            Err(ureq::Error::Other(Box::new(Mark(7))))
        }
    }

    let config = Agent::config_builder().proxy(None).build();
    let agent = Agent::with_parts(config, Failing, DefaultResolver::default());
    match post(&agent, "http://127.0.0.1:9/x").unwrap_err() {
        ureq::Error::Other(b) => assert_eq!(b.downcast::<Mark>().unwrap().0, 7),
        other => panic!("{other:?}"),
    }
}

/// `send.rs` (`read_capped`): a body read that fails on ureq's side keeps the
/// `ureq::Error` inside the `io::Error`, so a timeout is still told as one.
#[test]
fn a_body_read_error_keeps_ureqs_error_inside() {
    let server = ScriptServer::start(vec![Step::Drip {
        len: 100,
        every: Duration::from_millis(200),
    }]);
    let config = Agent::config_builder()
        .proxy(None)
        .timeout_global(Some(Duration::from_millis(500)))
        .build();
    let agent = Agent::new_with_config(config);
    let mut res = agent
        .post(format!("{}/x", server.base_url()))
        .send(&b"{}"[..])
        .unwrap();
    let mut body = Vec::new();
    let err = res
        .body_mut()
        .as_reader()
        .read_to_end(&mut body)
        .unwrap_err();
    match err.downcast::<ureq::Error>() {
        Ok(ureq::Error::Timeout(ureq::Timeout::Global)) => {}
        other => panic!("{other:?}"),
    }
}
