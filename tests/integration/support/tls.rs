//! TLS for the scripted server: certificates made at test time, and the rustls server side.
//!
//! [`pki`] makes (once per process) a test CA and leaves signed by it: a good one for the IP
//! `127.0.0.1` and the name `localhost`, an expired one, one for `wrong.example` only, and a
//! self-signed one nobody trusts. Nothing is committed: every key lives in memory for one run.
//! Clients trust the CA through [`TestPki::ca_pem`] (or a file, [`CaFile`], for
//! `SSL_CERT_FILE`-style tests). The server runs rustls with the ring provider (the provider
//! the library's ureq uses), configured by [`TlsConfig`].

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{NoServerSessionStorage, ServerConnection};
use rustls::{HandshakeKind, ServerConfig, StreamOwned};

use super::Counters;

/// Which certificate the server presents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leaf {
    /// Signed by the test CA, valid now, for `127.0.0.1` and `localhost`.
    Good,
    /// Signed by the test CA, for `127.0.0.1` and `localhost`, but valid only in 2000.
    Expired,
    /// Signed by the test CA, valid now, but for `wrong.example` only.
    WrongName,
    /// Valid now for `127.0.0.1` and `localhost`, but self-signed (no CA vouches for it).
    SelfSigned,
    /// Self-signed with `CA:TRUE`, for `127.0.0.1` and `localhost`: what `openssl req -x509`
    /// makes by default. Trusted as itself, it is still a CA used as a server's certificate.
    SelfSignedCa,
}

/// One leaf certificate with its key.
pub struct LeafCert {
    pub der: CertificateDer<'static>,
    pub pem: String,
    key: PrivatePkcs8KeyDer<'static>,
}

/// The test CA and its leaves, made once per process (see [`pki`]).
pub struct TestPki {
    /// The CA certificate, PEM (what a client trusts).
    pub ca_pem: String,
    pub ca_der: CertificateDer<'static>,
    good: LeafCert,
    expired: LeafCert,
    wrong_name: LeafCert,
    self_signed: LeafCert,
    self_signed_ca: LeafCert,
}

impl TestPki {
    pub fn leaf(&self, leaf: Leaf) -> &LeafCert {
        match leaf {
            Leaf::Good => &self.good,
            Leaf::Expired => &self.expired,
            Leaf::WrongName => &self.wrong_name,
            Leaf::SelfSigned => &self.self_signed,
            Leaf::SelfSignedCa => &self.self_signed_ca,
        }
    }
}

/// The process's test PKI (made on first use: a few milliseconds).
pub fn pki() -> &'static TestPki {
    static PKI: OnceLock<TestPki> = OnceLock::new();
    PKI.get_or_init(make_pki)
}

/// The test CA certificate, PEM.
pub fn ca_pem() -> &'static str {
    &pki().ca_pem
}

fn make_pki() -> TestPki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::default();
    ca.distinguished_name = name("telnyx-assistant-sms test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);

    let signed = |params: CertificateParams| {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        leaf_cert(cert.der().clone(), &key)
    };
    let mut expired = leaf_params(&["127.0.0.1", "localhost"]);
    expired.not_before = rcgen::date_time_ymd(2000, 1, 1);
    expired.not_after = rcgen::date_time_ymd(2001, 1, 1);
    let self_signed = {
        let key = KeyPair::generate().unwrap();
        let cert = leaf_params(&["127.0.0.1", "localhost"])
            .self_signed(&key)
            .unwrap();
        leaf_cert(cert.der().clone(), &key)
    };
    let self_signed_ca = {
        let key = KeyPair::generate().unwrap();
        let mut p = leaf_params(&["127.0.0.1", "localhost"]);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = p.self_signed(&key).unwrap();
        leaf_cert(cert.der().clone(), &key)
    };
    TestPki {
        ca_pem: pem("CERTIFICATE", ca_cert.der()),
        self_signed_ca,
        ca_der: ca_cert.der().clone(),
        good: signed(leaf_params(&["127.0.0.1", "localhost"])),
        expired: signed(expired),
        wrong_name: signed(leaf_params(&["wrong.example"])),
        self_signed,
    }
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

/// A server leaf for `names` (IP addresses become IP SANs), valid 1975..4096.
fn leaf_params(names: &[&str]) -> CertificateParams {
    let sans: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut p = CertificateParams::new(sans).unwrap();
    p.distinguished_name = name(names[0]);
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.use_authority_key_identifier_extension = true;
    p
}

fn leaf_cert(der: CertificateDer<'static>, key: &KeyPair) -> LeafCert {
    LeafCert {
        pem: pem("CERTIFICATE", &der),
        der,
        key: PrivatePkcs8KeyDer::from(key.serialize_der()),
    }
}

/// PEM armour for `der` (RFC 7468: base64, 64 columns).
pub fn pem(label: &str, der: &[u8]) -> String {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = Vec::with_capacity(der.len().div_ceil(3) * 4);
    for c in der.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                b64.push(B64[(n >> (18 - 6 * i)) as usize & 63]);
            } else {
                b64.push(b'=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Which session resumption the server offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resumption {
    /// None: no session cache, no tickets (every handshake is full).
    Off,
    /// rustls's default: a server-side session cache (TLS 1.2 session ids; TLS 1.3 tickets
    /// that name a cached session).
    SessionCache,
    /// The session cache plus stateless tickets (TLS 1.2 and 1.3).
    Tickets,
}

/// How the server does TLS. Build with [`TlsConfig::new`] and the methods below.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    leaf: Leaf,
    resumption: Resumption,
    close_handshakes: usize,
    tls12_only: bool,
}

impl Default for TlsConfig {
    fn default() -> TlsConfig {
        TlsConfig::new()
    }
}

impl TlsConfig {
    /// The good leaf, resumption through the session cache, TLS 1.2 and 1.3.
    pub fn new() -> TlsConfig {
        TlsConfig {
            leaf: Leaf::Good,
            resumption: Resumption::SessionCache,
            close_handshakes: 0,
            tls12_only: false,
        }
    }

    /// Present this certificate.
    pub fn leaf(mut self, leaf: Leaf) -> TlsConfig {
        self.leaf = leaf;
        self
    }

    pub fn resumption(mut self, r: Resumption) -> TlsConfig {
        self.resumption = r;
        self
    }

    /// On the first `n` connections (`usize::MAX`: all), read the ClientHello, then close the
    /// TCP connection without answering; later connections handshake normally.
    pub fn close_during_handshake(mut self, n: usize) -> TlsConfig {
        self.close_handshakes = n;
        self
    }

    /// Offer TLS 1.2 only (for session-id resumption; the default offers 1.3 and 1.2).
    pub fn tls12_only(mut self) -> TlsConfig {
        self.tls12_only = true;
        self
    }
}

/// The running server's TLS side.
pub(super) struct Server {
    config: Arc<ServerConfig>,
    close_handshakes: usize,
    /// Connections seen so far (to close the first `close_handshakes`).
    accepted: AtomicUsize,
}

impl Server {
    pub(super) fn new(c: TlsConfig) -> Server {
        let leaf = pki().leaf(c.leaf);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions = if c.tls12_only {
            &[&rustls::version::TLS12][..]
        } else {
            rustls::DEFAULT_VERSIONS
        };
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der.clone()],
                PrivateKeyDer::Pkcs8(leaf.key.clone_key()),
            )
            .unwrap();
        match c.resumption {
            Resumption::Off => {
                config.session_storage = Arc::new(NoServerSessionStorage {});
                config.send_tls13_tickets = 0;
            }
            Resumption::SessionCache => {}
            Resumption::Tickets => {
                config.ticketer = rustls::crypto::ring::Ticketer::new().unwrap();
            }
        }
        Server {
            config: Arc::new(config),
            close_handshakes: c.close_handshakes,
            accepted: AtomicUsize::new(0),
        }
    }

    /// The server side of the handshake on `tcp`, counted; `None` when it fails or was
    /// closed on purpose.
    pub(super) fn accept(
        &self,
        mut tcp: TcpStream,
        counters: &Counters,
    ) -> Option<StreamOwned<ServerConnection, TcpStream>> {
        if self.accepted.fetch_add(1, Ordering::SeqCst) < self.close_handshakes {
            // One TLS record: the ClientHello (bounded by the read timeout). All of it is
            // read, so the close is a FIN, not an RST.
            let mut header = [0u8; 5];
            if tcp.read_exact(&mut header).is_ok() {
                let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
                let _ = tcp.read_exact(&mut vec![0; len]);
            }
            let _ = tcp.shutdown(Shutdown::Both);
            counters.closed_handshakes.fetch_add(1, Ordering::SeqCst);
            return None;
        }
        let mut conn = ServerConnection::new(self.config.clone()).ok()?;
        while conn.is_handshaking() {
            // On an error, complete_io has already sent the alert.
            if conn.complete_io(&mut tcp).is_err() {
                counters.failed_handshakes.fetch_add(1, Ordering::SeqCst);
                let _ = tcp.shutdown(Shutdown::Both);
                return None;
            }
        }
        // TLS 1.3 session tickets follow the handshake.
        while conn.wants_write() {
            if conn.write_tls(&mut tcp).is_err() {
                break;
            }
        }
        let _ = tcp.flush();
        match conn.handshake_kind() {
            Some(HandshakeKind::Resumed) => &counters.resumed_handshakes,
            _ => &counters.full_handshakes,
        }
        .fetch_add(1, Ordering::SeqCst);
        Some(StreamOwned::new(conn, tcp))
    }
}

/// A PEM file under the temp directory (for `SSL_CERT_FILE`-style tests), with a name unique
/// to this process and call; removed on drop.
pub struct CaFile {
    path: PathBuf,
}

impl CaFile {
    /// The test CA's certificate.
    pub fn new() -> CaFile {
        CaFile::with_contents(ca_pem())
    }

    /// Any contents (another certificate, or garbage).
    pub fn with_contents(contents: &str) -> CaFile {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "telnyx-sms-test-ca-{}-{}-{nanos}.pem",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .expect("create the CA file");
        f.write_all(contents.as_bytes()).unwrap();
        CaFile { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for CaFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
