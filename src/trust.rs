//! Which certificates a client trusts: the environment's (`SSL_CERT_FILE`, `SSL_CERT_DIR`), a
//! bundle given in code, the built-in Mozilla roots or the operating system's verifier; each
//! certificate read and counted once. (What a TLS failure means is told in `classify.rs`.)
//!
//! Trust is settled in two steps: [`plan_trust`] reads the environment (cheap: no file is
//! opened), and [`TrustPlan::load`] reads and checks the certificates. A client built with
//! `defer_trust` does the second step at its first send only, so a program that never sends
//! (a dry run) never pays for it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::error::Error;
#[cfg(feature = "rustls")]
use crate::pem::{certificate_blocks, decode_block};

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
#[cfg(feature = "platform-verifier")]
const PLATFORM: &str = "the operating system's trust store (platform verifier)";

/// A [`TrustChoice`] with the environment read: where the roots will be read from.
#[derive(Clone)]
pub(crate) enum TrustPlan {
    /// Mozilla's roots compiled into the crate: nothing to read.
    BuiltIn,
    /// The values of `SSL_CERT_FILE` and `SSL_CERT_DIR` (at least one set).
    Env {
        file: Option<String>,
        dirs: Option<String>,
    },
    /// A `root_certificates_pem` bundle.
    Pem(Arc<[u8]>),
    /// The operating system's verifier.
    #[cfg(feature = "platform-verifier")]
    Platform,
}

/// Reads what the choice depends on in the environment, and nothing else.
///
/// # Errors
///
/// A variable that is set but not unicode.
pub(crate) fn plan_trust(choice: &TrustChoice) -> Result<TrustPlan, Error> {
    Ok(match choice {
        TrustChoice::Pem(pem) => TrustPlan::Pem(pem.clone()),
        #[cfg(feature = "platform-verifier")]
        TrustChoice::Platform => TrustPlan::Platform,
        TrustChoice::FromEnv => match (env_path(CERT_FILE_ENV)?, env_path(CERT_DIR_ENV)?) {
            (None, None) => TrustPlan::BuiltIn,
            (file, dirs) => TrustPlan::Env { file, dirs },
        },
    })
}

impl TrustPlan {
    /// How `Debug` shows trust that is not read yet (`defer_trust`).
    pub(crate) fn unread(&self) -> String {
        match self {
            TrustPlan::BuiltIn => BUILT_IN.to_owned(),
            TrustPlan::Env { file, dirs } => {
                let mut from = Vec::new();
                if let Some(f) = file {
                    from.push(format!("{CERT_FILE_ENV}={}", crate::text::clean(f, 200)));
                }
                if let Some(d) = dirs {
                    from.push(format!("{CERT_DIR_ENV}={}", crate::text::clean(d, 200)));
                }
                format!("{}, read at the first send", from.join(" and "))
            }
            TrustPlan::Pem(pem) => format!(
                "root_certificates_pem ({} bytes), read at the first send",
                pem.len()
            ),
            #[cfg(feature = "platform-verifier")]
            TrustPlan::Platform => PLATFORM.to_owned(),
        }
    }

    /// Reads and checks the certificates.
    ///
    /// # Errors
    ///
    /// A bundle or directory that cannot be read or parsed, or holds no usable certificate.
    pub(crate) fn load(&self) -> Result<Trust, Error> {
        match self {
            TrustPlan::BuiltIn => Ok(built_in()),
            TrustPlan::Pem(pem) => {
                let mut c = Collector::default();
                c.add_bundle(pem, "the root_certificates_pem bundle")?;
                Ok(c.into_trust("root_certificates_pem".to_owned()))
            }
            #[cfg(feature = "platform-verifier")]
            TrustPlan::Platform => Ok(Trust {
                roots: Some(ureq::tls::RootCerts::PlatformVerifier),
                shown: PLATFORM.to_owned(),
            }),
            TrustPlan::Env { file, dirs } => from_env(file.as_deref(), dirs.as_deref()),
        }
    }
}

fn built_in() -> Trust {
    Trust {
        #[cfg(feature = "rustls")]
        roots: None,
        shown: BUILT_IN.to_owned(),
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

fn from_env(file: Option<&str>, dirs: Option<&str>) -> Result<Trust, Error> {
    let mut c = Collector::default();
    let mut from = Vec::new();
    if let Some(path) = file {
        let what = format!("{CERT_FILE_ENV} ({})", crate::text::clean(path, 200));
        let read = c.read(path.as_ref()).map_err(|(words, e)| {
            let err = Error::config(format!("{what} {words}"));
            match e {
                Some(e) => err.with_source(e),
                None => err,
            }
        })?;
        if let FileRead::Fresh(pem, id) = read {
            let held = c.add_bundle(&pem, &what)?;
            c.held(id, held);
        }
        from.push(format!("{CERT_FILE_ENV}={}", crate::text::clean(path, 200)));
    }
    if let Some(dirs) = dirs {
        // As OpenSSL reads it: every directory of the list that exists is searched (a missing
        // or empty one is passed over); the files are `*.pem`, `*.crt`, or the `HASH.N` names
        // `openssl rehash` makes. Only a list that yields no certificate at all is an error.
        let list: Vec<&str> = dirs.split(':').filter(|d| !d.is_empty()).collect();
        let mut found = 0;
        for dir in &list {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            // Sorted by name (one directory: no need to compare whole paths).
            let mut names: Vec<_> = entries
                .filter_map(Result::ok)
                .map(|e| e.file_name())
                .filter(|n| is_cert_file_name(n.as_ref()))
                .collect();
            names.sort_unstable();
            let paths = names.into_iter().map(|n| Path::new(dir).join(n));
            let before = found;
            for path in paths {
                // A file that cannot be read or holds no certificate (a key, say) is skipped,
                // as OpenSSL skips it; so is one already read under another name (the
                // `HASH.0` link to a `*.pem`, or the bundle `SSL_CERT_FILE` names).
                match c.read(&path) {
                    Ok(FileRead::Fresh(pem, id)) => {
                        let held = c.add_bundle(&pem, "").unwrap_or(0);
                        c.held(id, held);
                        found += held;
                    }
                    Ok(FileRead::Seen(held)) => found += held,
                    Err(_) => {}
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
    if c.is_empty() {
        // `SSL_CERT_DIR=":"`, say: nothing named at all, so the built-in roots.
        return Ok(built_in());
    }
    Ok(c.into_trust(from.join(" and ")))
}

/// `*.pem`, `*.crt`, or `HASH.N` (eight hex digits, a dot, a number), as `openssl rehash`
/// names the links it makes.
fn is_cert_file_name(path: &Path) -> bool {
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

fn io_words(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory",
        std::io::ErrorKind::PermissionDenied => "permission denied",
        _ => "an i/o error",
    }
}

#[cfg(feature = "rustls")]
type Cert = ureq::tls::Certificate<'static>;

/// The certificates read so far, each once: a file is read once whatever its names (links),
/// and a certificate is kept once whatever its files. A system directory in `SSL_CERT_DIR`
/// names each root three times (`NAME.pem`, its `HASH.0` link and the bundle), and the bundle
/// is often `SSL_CERT_FILE` too.
#[derive(Default)]
struct Collector {
    #[cfg(feature = "rustls")]
    certs: Vec<Cert>,
    /// The PEM text of every certificate block met, and whether rustls can use it.
    #[cfg(feature = "rustls")]
    seen_text: Seen,
    /// The same by DER, for a repeat written differently (other line breaks, say).
    #[cfg(feature = "rustls")]
    seen_der: Seen,
    /// (device, inode) of every file read, and how many certificates it held.
    files: HashMap<(u64, u64), usize>,
    unusable: usize,
    duplicates: usize,
}

/// What reading a file gave.
enum FileRead {
    /// Its bytes, and its identity.
    Fresh(Vec<u8>, Option<(u64, u64)>),
    /// It was read before (under this name or another), and held this many certificates.
    Seen(usize),
}

/// A file's identity, where the platform gives one cheaply.
fn file_id(meta: &std::fs::Metadata) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((meta.dev(), meta.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        None
    }
}

impl Collector {
    /// Reads a PEM file: a regular file (not a FIFO, which could block forever, nor a device
    /// such as `/dev/zero`, which never ends) of at most [`MAX_BUNDLE_BYTES`], unless it was
    /// read already (under this name or another). The error is in words that follow the
    /// file's name.
    fn read(&mut self, path: &Path) -> Result<FileRead, (String, Option<std::io::Error>)> {
        use std::io::Read;
        let cannot = |e: std::io::Error| (format!("cannot be read: {}", io_words(&e)), Some(e));
        let meta = std::fs::metadata(path).map_err(cannot)?;
        if !meta.is_file() {
            return Err(("is not a regular file".to_owned(), None));
        }
        let id = file_id(&meta);
        if let Some(held) = id.and_then(|id| self.files.get(&id)) {
            return Ok(FileRead::Seen(*held));
        }
        // Sized from the metadata, so that a small file takes one read and one for its end.
        let mut pem = Vec::with_capacity(meta.len().min(MAX_BUNDLE_BYTES) as usize + 1);
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_BUNDLE_BYTES + 1).read_to_end(&mut pem))
            .map_err(cannot)?;
        if pem.len() as u64 > MAX_BUNDLE_BYTES {
            return Err((
                format!("is larger than {} MiB", MAX_BUNDLE_BYTES >> 20),
                None,
            ));
        }
        Ok(FileRead::Fresh(pem, id))
    }

    /// Records how many certificates the file `id` held, so that its other names count them
    /// without reading it again.
    fn held(&mut self, id: Option<(u64, u64)>, held: usize) {
        if let Some(id) = id {
            self.files.insert(id, held);
        }
    }

    fn is_empty(&self) -> bool {
        #[cfg(feature = "rustls")]
        return self.certs.is_empty();
        #[cfg(not(feature = "rustls"))]
        true
    }

    /// Adds the certificates of a PEM bundle that rustls can use and that are not in already;
    /// returns how many certificates the bundle held (repeats included). `what` names the
    /// bundle in errors: one that is malformed, holds no certificate, or only unusable ones.
    ///
    /// Only `CERTIFICATE` blocks are read (a key beside them is passed over), and a block
    /// whose text was met before is not decoded again: a system directory repeats every
    /// root of the bundle byte for byte, and decoding is most of the cost.
    #[cfg(feature = "rustls")]
    fn add_bundle(&mut self, pem: &[u8], what: &str) -> Result<usize, Error> {
        use rustls::pki_types::CertificateDer;
        let malformed = || {
            Error::config(format!(
                "{what} cannot be parsed as PEM (a -----BEGIN CERTIFICATE----- block is \
                 malformed)"
            ))
        };
        // A byte-order mark from a Windows editor is not part of the PEM.
        let pem = pem.strip_prefix(b"\xef\xbb\xbf").unwrap_or(pem);
        let (mut held, mut usable, mut unusable) = (0, 0, 0);
        // rustls skips certificates it cannot parse: count them, and keep only the usable
        // ones. Only a certificate not met before is parsed.
        let mut store = rustls::RootCertStore::empty();
        for block in certificate_blocks(pem) {
            let block = block.ok_or_else(malformed)?;
            held += 1;
            let ok = match self.seen_text.get(block) {
                Ok(ok) => {
                    self.duplicates += 1;
                    ok
                }
                Err(text_hash) => {
                    let der = CertificateDer::from(decode_block(block).ok_or_else(malformed)?);
                    let ok = match self.seen_der.get(der.as_ref()) {
                        Ok(ok) => {
                            self.duplicates += 1;
                            ok
                        }
                        Err(der_hash) => {
                            let ok = store.add_parsable_certificates([der.clone()]).0 == 1;
                            self.seen_der.insert(der_hash, der.as_ref(), ok);
                            if ok {
                                self.certs.push(
                                    ureq::tls::Certificate::from_der(der.as_ref()).to_owned(),
                                );
                            } else {
                                self.unusable += 1;
                            }
                            ok
                        }
                    };
                    self.seen_text.insert(text_hash, block, ok);
                    ok
                }
            };
            if ok {
                usable += 1;
            } else {
                unusable += 1;
            }
        }
        if usable == 0 {
            return Err(Error::config(if unusable > 0 {
                format!("{what} holds no usable certificate ({unusable} could not be parsed)")
            } else {
                format!("{what} holds no certificate (expected -----BEGIN CERTIFICATE----- blocks)")
            }));
        }
        Ok(held)
    }

    #[cfg(not(feature = "rustls"))]
    fn add_bundle(&mut self, pem: &[u8], what: &str) -> Result<usize, Error> {
        let _ = (pem, self.unusable, self.duplicates);
        Err(Error::config(format!(
            "{what} cannot be used: this build has no tls (enable the `rustls` feature)"
        )))
    }

    fn into_trust(self, from: String) -> Trust {
        #[cfg(feature = "rustls")]
        let n = self.certs.len();
        #[cfg(not(feature = "rustls"))]
        let n = 0;
        let plural = if n == 1 { "" } else { "s" };
        let mut shown = format!("{n} certificate{plural} from {from}");
        match self.duplicates {
            0 => {}
            1 => shown.push_str(", 1 duplicate skipped"),
            d => shown.push_str(&format!(", {d} duplicates skipped")),
        }
        match self.unusable {
            0 => {}
            1 => shown.push_str(", 1 unusable one skipped"),
            u => shown.push_str(&format!(", {u} unusable ones skipped")),
        }
        Trust {
            #[cfg(feature = "rustls")]
            roots: Some(ureq::tls::RootCerts::from(self.certs)),
            shown,
        }
    }
}

/// A set of byte strings (certificates, as PEM text or DER), each with a flag: keyed by a
/// quick hash computed once, so that growing the map never hashes a certificate again.
#[cfg(feature = "rustls")]
#[derive(Default)]
struct Seen(HashMap<u64, Vec<Flagged>, Quick>);

/// A certificate's bytes, and whether rustls can use it.
#[cfg(feature = "rustls")]
type Flagged = (Box<[u8]>, bool);

#[cfg(feature = "rustls")]
impl Seen {
    /// The hash of a certificate's last 64 bytes and its length: the end of a certificate is
    /// its signature (and in PEM, the signature's base64), as good as random, and equal
    /// hashes are compared in full anyway.
    fn hash(bytes: &[u8]) -> u64 {
        use std::hash::Hasher;
        let mut h = QuickHasher::default();
        h.write(&bytes[bytes.len().saturating_sub(64)..]);
        h.write_usize(bytes.len());
        h.finish()
    }

    /// Whether `bytes` was met, and its flag; else a note of where it goes.
    fn get(&self, bytes: &[u8]) -> Result<bool, u64> {
        let hash = Self::hash(bytes);
        self.0
            .get(&hash)
            .and_then(|same| same.iter().find(|(b, _)| **b == *bytes))
            .map(|(_, ok)| *ok)
            .ok_or(hash)
    }

    /// Notes `bytes` under the hash [`get`](Self::get) gave.
    fn insert(&mut self, hash: u64, bytes: &[u8], ok: bool) {
        self.0.entry(hash).or_default().push((bytes.into(), ok));
    }
}

/// A quick hasher for the certificate maps (FxHash's mixing, eight bytes at a time): their
/// keys come from the machine's own trust files, so flooding is no concern, and SipHash over
/// a few hundred KiB of PEM costs more than the rest of the bookkeeping.
#[cfg(feature = "rustls")]
type Quick = std::hash::BuildHasherDefault<QuickHasher>;

#[cfg(feature = "rustls")]
#[derive(Default)]
struct QuickHasher(u64);

#[cfg(feature = "rustls")]
impl QuickHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

#[cfg(feature = "rustls")]
impl std::hash::Hasher for QuickHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().unwrap_or_default()));
        }
        let mut last = [0u8; 8];
        let tail = chunks.remainder();
        last[..tail.len()].copy_from_slice(tail);
        self.add(u64::from_le_bytes(last) ^ tail.len() as u64);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(all(test, feature = "rustls"))]
mod tests {
    use super::*;

    #[test]
    fn the_quick_hasher_tells_lengths_and_tails_apart() {
        use std::hash::{BuildHasher, Hash};
        let h = |b: &[u8]| Quick::default().hash_one(b);
        assert_ne!(h(b"abcdefgh"), h(b"abcdefgh\0"));
        assert_ne!(h(b""), h(b"\0"));
        assert_ne!(h(b"abc"), h(b"abd"));
        let mut seen = Seen::default();
        for (bytes, ok) in [(&b"x"[..], true), (b"y", false)] {
            let hash = seen.get(bytes).unwrap_err();
            seen.insert(hash, bytes, ok);
        }
        assert_eq!(seen.get(b"x"), Ok(true));
        assert_eq!(seen.get(b"y"), Ok(false));
        assert!(seen.get(b"z").is_err());
        // Equal ends, other starts: both kept apart.
        let (a, b) = ([1u8; 100], [&[2u8; 36][..], &[1u8; 64]].concat());
        let hash = seen.get(&a).unwrap_err();
        seen.insert(hash, &a, true);
        let hash_b = seen.get(&b).unwrap_err();
        assert_eq!(hash, hash_b);
        seen.insert(hash_b, &b, false);
        assert_eq!((seen.get(&a), seen.get(&b)), (Ok(true), Ok(false)));
        b"".hash(&mut QuickHasher::default());
    }
}
