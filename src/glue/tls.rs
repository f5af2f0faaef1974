//! TLS with a rustls configuration the crate made itself, for the roots it reads itself
//! (`SSL_CERT_FILE`, `SSL_CERT_DIR`, `root_certificates_pem`).
//!
//! ureq's own TLS layer takes its roots as a list of certificates, which it parses again
//! into a store the first time it connects, and it verifies with exactly that store. Roots
//! the crate read are parsed once (`trust.rs` builds the store and the verifier, which may
//! read `SSL_CERT_DIR` only when the bundle cannot vouch for a server), and this layer uses
//! the configuration made from them. It sits in ureq's chain just before ureq's own TLS
//! layer, which then finds the connection encrypted already and passes it on. With the
//! built-in roots or the platform verifier it has no configuration and does nothing: ureq's
//! layer does the work, as before.
//!
//! The handshake and the transport are ureq's `RustlsConnector` and `RustlsTransport` (3.5.2)
//! line for line, but for the configuration: the same errors (`Error::Rustls` from
//! `ClientConnection::new`, the handshake's `io::Error`, `Error::Tls` for a name rustls
//! cannot use), the same timeout (the connect budget, counted from the start of the
//! connection), the same buffers and the same liveness probe.

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use ureq::unversioned::transport::time::{Duration, Instant};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport,
    TransportAdapter,
};

/// Wraps a connection that needs TLS in rustls with `config`, when there is one.
#[derive(Debug, Default)]
pub(crate) struct OwnTls {
    pub(crate) config: Option<Arc<ClientConfig>>,
}

impl<In: Transport> Connector<In> for OwnTls {
    type Out = Either<In, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        let Some(config) = &self.config else {
            return Ok(Some(Either::A(transport)));
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = details
            .uri
            .authority()
            .map(|a| a.host())
            .ok_or(ureq::Error::Tls("Rustls invalid dns name error"))?;
        // An IPv6 literal without its brackets, as ureq's `host_bare` gives it.
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let name = ServerName::try_from(bare)
            .map_err(|_| ureq::Error::Tls("Rustls invalid dns name error"))?
            .to_owned();
        let mut conn = ClientConnection::new(config.clone(), name)?;
        let mut sock = TransportAdapter::new(
            Box::new(transport) as Box<dyn Transport>,
            details.current_time.clone(),
        );
        sock.set_timeout(left_of(details));
        conn.complete_io(&mut sock)?;
        Ok(Some(Either::B(TlsTransport {
            buffers: LazyBuffers::new(
                details.config.input_buffer_size(),
                details.config.output_buffer_size(),
            ),
            stream: StreamOwned { conn, sock },
        })))
    }
}

/// The connect budget less the time the connection has taken so far: ureq counts the
/// handshake's timeout from the start of the connection (`details.now`).
fn left_of(details: &ConnectionDetails) -> NextTimeout {
    let mut t = details.timeout;
    if let (Duration::Exact(budget), Instant::Exact(start), Instant::Exact(now)) =
        (t.after, details.now, (details.current_time)())
    {
        t.after = Duration::Exact(budget.saturating_sub(now.saturating_duration_since(start)));
    }
    t
}

/// A connection under rustls, as ureq's `RustlsTransport`.
pub(crate) struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl std::fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTransport")
            .field("chained", &self.stream.sock.inner())
            .finish()
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}
