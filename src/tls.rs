//! TLS: what a handshake or certificate failure means, in words a user can act on.

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
            _ => fixed("the server's certificate is invalid"),
        },
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
