//! TLS: which certificates are trusted, and what a handshake or certificate failure means,
//! in words a user can act on.

use std::sync::Arc;

use crate::error::Error;

/// Where the trusted roots come from, as the builder was told.
#[derive(Clone, Default)]
pub(crate) enum TrustChoice {
    /// `SSL_CERT_FILE` / `SSL_CERT_DIR` if set, else the built-in Mozilla roots.
    #[default]
    FromEnv,
    /// Exactly the certificates of this PEM bundle.
    Pem(Arc<[u8]>),
    /// The operating system's verifier.
    #[cfg(feature = "platform-verifier")]
    Platform,
}

impl std::fmt::Debug for TrustChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrustChoice::FromEnv => f.write_str("FromEnv"),
            TrustChoice::Pem(pem) => write!(f, "Pem({} bytes)", pem.len()),
            #[cfg(feature = "platform-verifier")]
            TrustChoice::Platform => f.write_str("Platform"),
        }
    }
}

/// The roots a client will verify with: `None` for ureq's default (the built-in Mozilla
/// roots), and how to show the choice in `Debug`.
pub(crate) struct Trust {
    #[cfg(feature = "rustls")]
    pub(crate) roots: Option<ureq::tls::RootCerts>,
    pub(crate) shown: String,
}

/// The PEM bundle variable, as OpenSSL, curl, Python and Go read it.
pub(crate) const CERT_FILE_ENV: &str = "SSL_CERT_FILE";
/// Directories (`:`-separated) whose `*.pem` and `*.crt` files are trusted.
pub(crate) const CERT_DIR_ENV: &str = "SSL_CERT_DIR";

const BUILT_IN: &str = "built-in Mozilla roots (webpki-roots)";

/// Settles the trusted roots for an `https` client.
pub(crate) fn resolve_trust(choice: &TrustChoice) -> Result<Trust, Error> {
    match choice {
        TrustChoice::Pem(pem) => {
            let (certs, skipped) = certificates(pem, "the root_certificates_pem bundle")?;
            Ok(specific(certs, skipped, "root_certificates_pem".to_owned()))
        }
        #[cfg(feature = "platform-verifier")]
        TrustChoice::Platform => Ok(Trust {
            roots: Some(ureq::tls::RootCerts::PlatformVerifier),
            shown: "the operating system's trust store (platform verifier)".to_owned(),
        }),
        TrustChoice::FromEnv => from_env(),
    }
}

fn env_path(name: &str) -> Result<Option<String>, Error> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(Some(v)),
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(Error::config(format!("{name} is not valid unicode")))
        }
    }
}

fn from_env() -> Result<Trust, Error> {
    let file = env_path(CERT_FILE_ENV)?;
    let dirs = env_path(CERT_DIR_ENV)?;
    if file.is_none() && dirs.is_none() {
        return Ok(Trust {
            #[cfg(feature = "rustls")]
            roots: None,
            shown: BUILT_IN.to_owned(),
        });
    }
    let mut all = Vec::new();
    let mut skipped = 0;
    let mut from = Vec::new();
    if let Some(path) = &file {
        let what = format!("{CERT_FILE_ENV} ({})", crate::text::clean(path, 200));
        let pem = read_bundle(path.as_ref()).map_err(|(words, e)| {
            let err = Error::config(format!("{what} {words}"));
            match e {
                Some(e) => err.with_source(e),
                None => err,
            }
        })?;
        let (certs, s) = certificates(&pem, &what)?;
        all.extend(certs);
        skipped += s;
        from.push(format!("{CERT_FILE_ENV}={}", crate::text::clean(path, 200)));
    }
    if let Some(dirs) = &dirs {
        // As OpenSSL reads it: every directory of the list that exists is searched (a missing
        // or empty one is passed over); the files are `*.pem`, `*.crt`, or the `HASH.N` names
        // `openssl rehash` makes. Only a list that yields no certificate at all is an error.
        let list: Vec<&str> = dirs.split(':').filter(|d| !d.is_empty()).collect();
        let mut found = 0;
        for dir in &list {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut paths: Vec<_> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| is_cert_file_name(p))
                .collect();
            paths.sort();
            let before = found;
            for path in paths {
                // A file that cannot be read or holds no certificate (a key, say) is skipped,
                // as OpenSSL skips it.
                let Ok(pem) = read_bundle(&path) else {
                    continue;
                };
                if let Ok((certs, s)) = certificates(&pem, "") {
                    found += certs.len();
                    all.extend(certs);
                    skipped += s;
                }
            }
            if found > before {
                from.push(format!("{CERT_DIR_ENV}={}", crate::text::clean(dir, 200)));
            }
        }
        if found == 0 && file.is_none() && !list.is_empty() {
            return Err(Error::config(format!(
                "{CERT_DIR_ENV} ({}) holds no certificate: no *.pem, *.crt or HASH.0 file with \
                 one in any of its directories",
                crate::text::clean(dirs, 200)
            )));
        }
    }
    if all.is_empty() {
        // `SSL_CERT_DIR=":"`, say: nothing named at all, so the built-in roots.
        return Ok(Trust {
            #[cfg(feature = "rustls")]
            roots: None,
            shown: BUILT_IN.to_owned(),
        });
    }
    Ok(specific(all, skipped, from.join(" and ")))
}

/// `*.pem`, `*.crt`, or `HASH.N` (eight hex digits, a dot, a number), as `openssl rehash`
/// names the links it makes.
fn is_cert_file_name(path: &std::path::Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".pem") || lower.ends_with(".crt") {
        return true;
    }
    match name.split_once('.') {
        Some((hash, n)) => {
            hash.len() == 8
                && hash.bytes().all(|b| b.is_ascii_hexdigit())
                && !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// The most of a certificate file that is read: far more than any real bundle (a system's
/// whole CA bundle is about 200 KiB).
const MAX_BUNDLE_BYTES: u64 = 16 * 1024 * 1024;

/// Reads a PEM file: a regular file (not a FIFO, which could block forever, nor a device such
/// as `/dev/zero`, which never ends) of at most [`MAX_BUNDLE_BYTES`]. The error is in words
/// that follow the file's name.
fn read_bundle(path: &std::path::Path) -> Result<Vec<u8>, (String, Option<std::io::Error>)> {
    use std::io::Read;
    let cannot = |e: std::io::Error| (format!("cannot be read: {}", io_words(&e)), Some(e));
    let meta = std::fs::metadata(path).map_err(cannot)?;
    if !meta.is_file() {
        return Err(("is not a regular file".to_owned(), None));
    }
    let mut pem = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_BUNDLE_BYTES + 1).read_to_end(&mut pem))
        .map_err(cannot)?;
    if pem.len() as u64 > MAX_BUNDLE_BYTES {
        return Err((
            format!("is larger than {} MiB", MAX_BUNDLE_BYTES >> 20),
            None,
        ));
    }
    Ok(pem)
}

fn io_words(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory",
        std::io::ErrorKind::PermissionDenied => "permission denied",
        _ => "an i/o error",
    }
}

#[cfg(feature = "rustls")]
type Cert = ureq::tls::Certificate<'static>;
#[cfg(not(feature = "rustls"))]
type Cert = ();

/// The certificates of a PEM bundle that rustls can use, and how many it cannot (skipped).
/// `what` names the bundle in errors.
#[cfg(feature = "rustls")]
fn certificates(pem: &[u8], what: &str) -> Result<(Vec<Cert>, usize), Error> {
    use ureq::tls::PemItem;
    // A byte-order mark from a Windows editor is not part of the PEM.
    let pem = pem.strip_prefix(b"\xef\xbb\xbf").unwrap_or(pem);
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        match item {
            Ok(PemItem::Certificate(c)) => certs.push(c),
            Ok(_) => {}
            Err(e) => {
                return Err(Error::config(format!(
                    "{what} cannot be parsed as PEM (a -----BEGIN CERTIFICATE----- block is \
                     malformed)"
                ))
                .with_source(e));
            }
        }
    }
    // rustls skips certificates it cannot parse: count them, and keep only the usable ones.
    let mut store = rustls::RootCertStore::empty();
    let mut usable = Vec::new();
    let mut skipped = 0;
    for c in certs {
        let (added, _) =
            store.add_parsable_certificates([rustls::pki_types::CertificateDer::from(c.der())]);
        if added == 1 {
            usable.push(c);
        } else {
            skipped += 1;
        }
    }
    if usable.is_empty() {
        return Err(Error::config(if skipped > 0 {
            format!("{what} holds no usable certificate ({skipped} could not be parsed)")
        } else {
            format!("{what} holds no certificate (expected -----BEGIN CERTIFICATE----- blocks)")
        }));
    }
    Ok((usable, skipped))
}

#[cfg(not(feature = "rustls"))]
fn certificates(pem: &[u8], what: &str) -> Result<(Vec<Cert>, usize), Error> {
    let _ = pem;
    Err(Error::config(format!(
        "{what} cannot be used: this build has no tls (enable the `rustls` feature)"
    )))
}

fn specific(certs: Vec<Cert>, skipped: usize, from: String) -> Trust {
    let n = certs.len();
    let plural = if n == 1 { "" } else { "s" };
    let skipped = match skipped {
        0 => String::new(),
        1 => ", 1 unusable one skipped".to_owned(),
        n => format!(", {n} unusable ones skipped"),
    };
    Trust {
        #[cfg(feature = "rustls")]
        roots: Some(ureq::tls::RootCerts::new_with_certs(&certs)),
        shown: format!("{n} certificate{plural} from {from}{skipped}"),
    }
}

/// A TLS failure, read out of a ureq error.
pub(crate) struct TlsProblem {
    /// Our words for it: "the server's certificate has expired".
    pub(crate) words: String,
    /// Trying again cannot help: the certificate or the server's TLS configuration is the
    /// problem, not the network.
    pub(crate) deterministic: bool,
}

/// What TLS went wrong in `err`, if it is a TLS failure: rustls reports its errors inside an
/// `InvalidData` I/O error, or (building a connection) as ureq's own TLS variants.
pub(crate) fn problem(err: &ureq::Error) -> Option<TlsProblem> {
    match err {
        ureq::Error::Io(e) => {
            let inner = e.get_ref()?;
            #[cfg(feature = "rustls")]
            if let Some(r) = inner.downcast_ref::<rustls::Error>() {
                return Some(from_rustls(r));
            }
            let _ = inner;
            None
        }
        #[cfg(feature = "rustls")]
        ureq::Error::Rustls(r) => Some(from_rustls(r)),
        ureq::Error::Tls(what) => Some(TlsProblem {
            words: crate::text::clean(what, 100).to_lowercase(),
            deterministic: true,
        }),
        ureq::Error::TlsRequired => Some(TlsProblem {
            words: "the connection could not be secured".to_owned(),
            deterministic: true,
        }),
        _ => None,
    }
}

#[cfg(feature = "rustls")]
fn from_rustls(e: &rustls::Error) -> TlsProblem {
    use rustls::{CertificateError as C, Error as R};
    let fixed = |words: &str| TlsProblem {
        words: words.to_owned(),
        deterministic: true,
    };
    match e {
        R::InvalidCertificate(c) => match c {
            C::UnknownIssuer => fixed(
                "the server's certificate is not trusted (unknown issuer); if a proxy or a \
                 local server uses its own certificate authority, trust it with SSL_CERT_FILE \
                 or ClientBuilder::root_certificates_pem",
            ),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                fixed("the server's certificate is not valid for this host name")
            }
            C::Expired | C::ExpiredContext { .. } => fixed("the server's certificate has expired"),
            C::NotValidYet | C::NotValidYetContext { .. } => {
                fixed("the server's certificate is not valid yet (is this machine's clock right?)")
            }
            C::Revoked => fixed("the server's certificate has been revoked"),
            C::BadSignature
            | C::UnsupportedSignatureAlgorithmContext { .. }
            | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
                fixed("the server's certificate has a bad or unsupported signature")
            }
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
                fixed("the server's certificate is not meant for a tls server")
            }
            C::Other(other) if other.to_string().contains("CaUsedAsEndEntity") => fixed(
                "the server presents a CA certificate as its own, which rustls refuses (make the \
                 server's certificate with basicConstraints CA:FALSE, signed by that CA, and \
                 trust the CA)",
            ),
            other => fixed(&format!(
                "the server's certificate is invalid ({})",
                crate::text::clean(&format!("{other:?}"), 120)
            )),
        },
        // The first bytes back were no TLS record at all: an HTTP answer ("HTTP/1.1 400") to
        // the ClientHello, most likely. The port speaks another protocol, and asking again
        // cannot change that.
        R::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType
            | rustls::InvalidMessage::UnknownProtocolVersion,
        ) => fixed(
            "the server did not answer in tls (is this a plain-http port? the base url is https)",
        ),
        R::NoCertificatesPresented => fixed("the server presented no certificate"),
        R::AlertReceived(alert) => fixed(&format!(
            "the server refused the handshake ({})",
            crate::text::clean(&format!("{alert:?}"), 40).to_lowercase()
        )),
        R::PeerIncompatible(_) => {
            fixed("the server and this client share no tls version or cipher suite")
        }
        _ => TlsProblem {
            words: "the server's tls messages were not valid".to_owned(),
            deterministic: false,
        },
    }
}
