//! Which certificates a client trusts: the environment's (`SSL_CERT_FILE`, `SSL_CERT_DIR`), a
//! bundle given in code, the built-in Mozilla roots or the operating system's verifier; each
//! certificate read and counted once. (What a TLS failure means is told in `classify.rs`.)
//!
//! Trust is settled in two steps: [`plan_trust`] reads the environment (cheap: no file is
//! opened), and [`TrustPlan::load`] reads and checks the certificates. A client built with
//! `defer_trust` does the second step at its first send only, so a program that never sends
//! (a dry run) never pays for it.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::sync::Arc;

use crate::error::Error;
#[cfg(feature = "rustls")]
use crate::pem::{Scan, for_each_block};

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

/// How a client will verify servers, and how to show the choice in `Debug`.
pub(crate) struct Trust {
    #[cfg(feature = "rustls")]
    pub(crate) tls: Tls,
    pub(crate) shown: String,
}

/// Who does the TLS handshake, with what.
#[cfg(feature = "rustls")]
pub(crate) enum Tls {
    /// ureq's own TLS layer, with its built-in roots (`None`) or the platform verifier.
    Ureq(Option<ureq::tls::RootCerts>),
    /// The crate's own layer (`glue/tls.rs`), with roots it read and parsed once.
    Own(Arc<rustls::ClientConfig>),
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
                let what = "the root_certificates_pem bundle";
                c.add_bundle(&mut &pem[..], pem.len() as u64, what)?;
                c.into_trust("root_certificates_pem".to_owned(), None)
            }
            #[cfg(feature = "platform-verifier")]
            TrustPlan::Platform => Ok(Trust {
                tls: Tls::Ureq(Some(ureq::tls::RootCerts::PlatformVerifier)),
                shown: PLATFORM.to_owned(),
            }),
            TrustPlan::Env { file, dirs } => from_env(file.as_deref(), dirs.as_deref()),
        }
    }
}

fn built_in() -> Trust {
    Trust {
        #[cfg(feature = "rustls")]
        tls: Tls::Ureq(None),
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

/// The roots the environment names. With both variables set, only the bundle is read now:
/// the directories are read the first time the bundle cannot vouch for a server, as OpenSSL
/// looks in `SSL_CERT_DIR` only for an issuer its bundle lacks (see [`BundleFirst`]).
fn from_env(file: Option<&str>, dirs: Option<&str>) -> Result<Trust, Error> {
    let (c, from) = collect_env(file, dirs)?;
    if c.is_empty() {
        // `SSL_CERT_DIR=":"`, say: nothing named at all, so the built-in roots.
        return Ok(built_in());
    }
    let later = match (file, dirs) {
        (Some(_), Some(dirs)) => Some(Later::new(dirs, c.files.clone())),
        _ => None,
    };
    c.into_trust(from, later)
}

/// The certificates `from_env` reads now (the bundle, or without one the directories), and
/// the words for where they came from.
fn collect_env(file: Option<&str>, dirs: Option<&str>) -> Result<(Collector, String), Error> {
    let mut c = Collector::default();
    let mut from = Vec::new();
    if let Some(path) = file {
        let what = format!("{CERT_FILE_ENV} ({})", crate::text::clean(path, 200));
        let read = c.read(path.as_ref()).map_err(|words| words.error(&what))?;
        if let FileRead::Fresh(mut file, size, id) = read {
            let held = c.add_bundle(&mut file, size, &what)?;
            c.held(id, held);
        }
        from.push(format!("{CERT_FILE_ENV}={}", crate::text::clean(path, 200)));
    }
    if let (None, Some(dirs)) = (file, dirs) {
        // As OpenSSL reads it: every directory of the list that exists is searched (a missing
        // or empty one is passed over); the files are `*.pem`, `*.crt`, or the `HASH.N` names
        // `openssl rehash` makes. Only a list that yields no certificate at all is an error.
        let list: Vec<&str> = dirs.split(':').filter(|d| !d.is_empty()).collect();
        let mut found = 0;
        for dir in &list {
            let held = c.read_dir(Path::new(dir));
            if held > 0 {
                found += held;
                from.push(format!("{CERT_DIR_ENV}={}", crate::text::clean(dir, 200)));
            }
        }
        if found == 0 && !list.is_empty() {
            return Err(Error::config(format!(
                "{CERT_DIR_ENV} ({}) holds no certificate: no *.pem, *.crt or HASH.0 file with \
                 one in any of its directories",
                crate::text::clean(dirs, 200)
            )));
        }
    }
    Ok((c, from.join(" and ")))
}

/// `*.pem`, `*.crt`, or a [hash name](is_hash_name).
fn is_cert_file_name(name: &OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".pem") || lower.ends_with(".crt") || is_hash_name(name)
}

/// `HASH.N` (eight hex digits, a dot, a number), as `openssl rehash` names the links it makes.
fn is_hash_name(name: &str) -> bool {
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
#[cfg(feature = "rustls")]
const MAX_BUNDLE_BYTES: u64 = 16 * 1024 * 1024;

fn io_words(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory",
        std::io::ErrorKind::PermissionDenied => "permission denied",
        _ => "an i/o error",
    }
}

/// The certificates read so far, each once: a file is read once whatever its names (links),
/// and a root is kept once whatever its files. A system directory in `SSL_CERT_DIR` names
/// each root three times (`NAME.pem`, its `HASH.0` link and the bundle), and the bundle is
/// often `SSL_CERT_FILE` too.
///
/// What this costs in a new process is mostly fresh memory (every page touched is a page
/// fault) and system calls (a system directory is some 150 files). So each file is looked at
/// with as few calls as it takes and read through one reused buffer, each certificate is
/// decoded into one reused buffer, and only what rustls keeps of a root, its trust anchor
/// (subject, key and name constraints), is kept. Two certificates with the same anchor are
/// one root to rustls, and count as one here.
#[derive(Default)]
struct Collector {
    /// The usable roots, in the order met.
    #[cfg(feature = "rustls")]
    anchors: Vec<rustls::pki_types::TrustAnchor<'static>>,
    /// The DER of the certificates rustls cannot use (so that a repeat of one is known).
    #[cfg(feature = "rustls")]
    unusable_der: Vec<Vec<u8>>,
    /// Every root or unusable certificate met, by its hash: an index into `anchors` or
    /// `unusable_der`.
    #[cfg(feature = "rustls")]
    seen: Seen<Kept>,
    /// (device, inode) of every file read, and how many certificates it held.
    files: HashMap<(u64, u64), usize>,
    /// The buffer files are read through (see [`for_each_block`]).
    buf: Vec<u8>,
    /// The buffer each certificate is decoded into.
    #[cfg(feature = "rustls")]
    der: Vec<u8>,
    unusable: usize,
    duplicates: usize,
    /// How many paths were looked up (`stat`) and files opened (tests count them).
    #[cfg(test)]
    looked_up: usize,
    #[cfg(test)]
    opened: usize,
}

/// Where a certificate is kept: `anchors[index]`, or `unusable_der[index]`.
#[cfg(feature = "rustls")]
#[derive(Clone, Copy)]
struct Kept {
    index: usize,
    usable: bool,
}

/// What reading a file gave.
enum FileRead {
    /// The file, open, its size and its identity.
    Fresh(std::fs::File, u64, Option<(u64, u64)>),
    /// It was read before (under this name or another), and held this many certificates.
    Seen(usize),
}

/// Why a file could not be read, in words that follow its name.
struct Unreadable(String, Option<std::io::Error>);

impl Unreadable {
    fn cannot(e: std::io::Error) -> Unreadable {
        Unreadable(format!("cannot be read: {}", io_words(&e)), Some(e))
    }

    /// The configuration error, `what` naming the file.
    fn error(self, what: &str) -> Error {
        let err = Error::config(format!("{what} {}", self.0));
        match self.1 {
            Some(e) => err.with_source(e),
            None => err,
        }
    }
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

/// What a directory entry is, as far as reading it goes.
enum Entry {
    /// A file to read (or a link to follow to one).
    File,
    /// A symbolic link to another entry of the same directory (`HASH.0 -> NAME.pem`): it holds
    /// what that entry holds, and is not opened.
    Alias(usize),
}

/// The entry of `names` (sorted) that the symbolic link `path` names, if it names one of its
/// own directory's entries by its bare name. One `readlink`, where following the link to the
/// file would walk two links (`HASH.0 -> NAME.pem -> /usr/share/...`) once to look and once to
/// open.
fn sibling(path: &Path, names: &[(OsString, bool)]) -> Option<usize> {
    let target = std::fs::read_link(path).ok()?;
    let mut parts = target.components();
    let (Some(std::path::Component::Normal(name)), None) = (parts.next(), parts.next()) else {
        return None;
    };
    names
        .binary_search_by(|(n, _)| n.as_os_str().cmp(name))
        .ok()
}

impl Collector {
    /// Opens a PEM file: a regular file (not a FIFO, which could block forever, nor a device
    /// such as `/dev/zero`, which never ends), unless it was read already (under this name or
    /// another).
    fn read(&mut self, path: &Path) -> Result<FileRead, Unreadable> {
        #[cfg(test)]
        {
            self.looked_up += 1;
        }
        let meta = std::fs::metadata(path).map_err(Unreadable::cannot)?;
        if !meta.is_file() {
            return Err(Unreadable("is not a regular file".to_owned(), None));
        }
        let id = file_id(&meta);
        if let Some(held) = id.and_then(|id| self.files.get(&id)) {
            return Ok(FileRead::Seen(*held));
        }
        #[cfg(test)]
        {
            self.opened += 1;
        }
        let file = std::fs::File::open(path).map_err(Unreadable::cannot)?;
        Ok(FileRead::Fresh(file, meta.len(), id))
    }

    /// Reads the certificate files of one `SSL_CERT_DIR` directory (see
    /// [`is_cert_file_name`]); returns how many certificates they held, repeats included. A
    /// directory that cannot be listed holds none. A file that cannot be read or holds no
    /// certificate (a key, say) is skipped, as OpenSSL skips it; so is one already read under
    /// another name (the `HASH.0` link to a `*.pem`, or the bundle `SSL_CERT_FILE` names).
    fn read_dir(&mut self, dir: &Path) -> usize {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        // Sorted by name (one directory: no need to compare whole paths), with whether each
        // is a symbolic link (from the listing itself, where the file system tells).
        let mut names: Vec<(OsString, bool)> = entries
            .filter_map(Result::ok)
            .filter(|e| is_cert_file_name(&e.file_name()))
            .map(|e| {
                let link = e.file_type().is_ok_and(|t| t.is_symlink());
                (e.file_name(), link)
            })
            .collect();
        names.sort_unstable();
        let kinds: Vec<Entry> = names
            .iter()
            .enumerate()
            .map(|(i, (name, link))| {
                let hashed = *link && name.to_str().is_some_and(is_hash_name);
                match hashed.then(|| sibling(&dir.join(name), &names)).flatten() {
                    Some(j) if j != i => Entry::Alias(j),
                    _ => Entry::File,
                }
            })
            .collect();
        let mut held: Vec<Option<usize>> = vec![None; names.len()];
        for (i, (name, _)) in names.iter().enumerate() {
            if let Entry::File = kinds[i] {
                held[i] = match self.read(&dir.join(name)) {
                    Ok(FileRead::Fresh(mut file, size, id)) => {
                        let n = self.add_bundle(&mut file, size, "").unwrap_or(0);
                        self.held(id, n);
                        Some(n)
                    }
                    Ok(FileRead::Seen(n)) => Some(n),
                    Err(_) => None,
                };
            }
        }
        // A link holds what its target holds, through links to links: at most 40 of them,
        // as Linux follows (a loop holds nothing).
        let mut total = 0;
        for i in 0..names.len() {
            let mut at = i;
            for _ in 0..=40 {
                match kinds[at] {
                    Entry::Alias(j) => at = j,
                    Entry::File => {
                        total += held[at].unwrap_or(0);
                        break;
                    }
                }
            }
        }
        total
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
        return self.anchors.is_empty();
        #[cfg(not(feature = "rustls"))]
        true
    }

    /// Adds the roots of a PEM bundle that rustls can use and that are not in already;
    /// returns how many certificates the bundle held (repeats included). `size`: its length
    /// as its metadata gave it. `what` names the bundle in errors: one that cannot be read, is too large, is
    /// malformed, holds no certificate, or only unusable ones.
    ///
    /// Only `CERTIFICATE` blocks are read (a key beside them is passed over).
    #[cfg(feature = "rustls")]
    fn add_bundle(
        &mut self,
        source: &mut dyn std::io::Read,
        size: u64,
        what: &str,
    ) -> Result<usize, Error> {
        let (mut usable, mut unusable) = (0, 0);
        let mut buf = std::mem::take(&mut self.buf);
        let scan = for_each_block(source, Some(size), MAX_BUNDLE_BYTES, &mut buf, |block| {
            match self.add_block(block) {
                Some(true) => usable += 1,
                Some(false) => unusable += 1,
                None => return false,
            }
            true
        });
        self.buf = buf;
        match scan {
            Ok(()) => {}
            Err(Scan::Read(e)) => return Err(Unreadable::cannot(e).error(what)),
            Err(Scan::TooLarge) => {
                return Err(Error::config(format!(
                    "{what} is larger than {} MiB",
                    MAX_BUNDLE_BYTES >> 20
                )));
            }
            Err(Scan::Malformed) => {
                return Err(Error::config(format!(
                    "{what} cannot be parsed as PEM (a -----BEGIN CERTIFICATE----- block is \
                     malformed)"
                )));
            }
        }
        if usable == 0 {
            return Err(Error::config(if unusable > 0 {
                format!("{what} holds no usable certificate ({unusable} could not be parsed)")
            } else {
                format!("{what} holds no certificate (expected -----BEGIN CERTIFICATE----- blocks)")
            }));
        }
        Ok(usable + unusable)
    }

    /// Adds one certificate block unless its root is in already: whether rustls can use it,
    /// or `None` if it is not base64.
    #[cfg(feature = "rustls")]
    fn add_block(&mut self, block: &[u8]) -> Option<bool> {
        use rustls::pki_types::CertificateDer;
        let Collector {
            unusable_der,
            seen,
            der,
            unusable: unusable_total,
            ..
        } = self;
        if !crate::pem::decode_block_into(block, der) {
            return None;
        }
        // rustls skips certificates it cannot parse: count them, and keep only the usable
        // ones, as rustls keeps them.
        let mut store = rustls::RootCertStore::empty();
        let usable = store.add(CertificateDer::from(&der[..])).is_ok();
        let known = match store.roots.pop() {
            Some(anchor) => self.add_anchor(anchor),
            None => {
                let hash = seen_hash(der);
                let known = seen.find(hash, |k| !k.usable && unusable_der[k.index] == *der);
                if known.is_none() {
                    let index = unusable_der.len();
                    unusable_der.push(der.clone());
                    *unusable_total += 1;
                    seen.insert(hash, Kept { index, usable });
                }
                known.is_some()
            }
        };
        if known {
            self.duplicates += 1;
        }
        Some(usable)
    }

    /// Keeps a root unless it is in already; whether it was.
    #[cfg(feature = "rustls")]
    fn add_anchor(&mut self, anchor: rustls::pki_types::TrustAnchor<'static>) -> bool {
        // The key's bits end the anchor: as good as random.
        let hash = seen_hash(anchor.subject_public_key_info.as_ref());
        let anchors = &mut self.anchors;
        if self
            .seen
            .find(hash, |k| k.usable && anchors[k.index] == anchor)
            .is_some()
        {
            return true;
        }
        let index = anchors.len();
        anchors.push(anchor);
        self.seen.insert(
            hash,
            Kept {
                index,
                usable: true,
            },
        );
        false
    }

    #[cfg(not(feature = "rustls"))]
    fn add_bundle(
        &mut self,
        _: &mut dyn std::io::Read,
        _: u64,
        what: &str,
    ) -> Result<usize, Error> {
        let _ = (self.unusable, self.duplicates, &self.buf);
        Err(Error::config(format!(
            "{what} cannot be used: this build has no tls (enable the `rustls` feature)"
        )))
    }

    /// The roots read, as a client verifies with them; `later`: the directories to read if
    /// these cannot vouch for a server.
    fn into_trust(self, from: String, later: Option<Later>) -> Result<Trust, Error> {
        #[cfg(feature = "rustls")]
        let n = self.anchors.len();
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
        if let Some(later) = &later {
            shown.push_str(&format!(
                "; {CERT_DIR_ENV}={} is read if they cannot vouch for a server",
                crate::text::clean(&later.shown, 200)
            ));
        }
        #[cfg(feature = "rustls")]
        return Ok(Trust {
            tls: Tls::Own(client_config(self.anchors, later)?),
            shown,
        });
        #[cfg(not(feature = "rustls"))]
        {
            let _ = later;
            Ok(Trust { shown })
        }
    }
}

/// The directories of `SSL_CERT_DIR`, read only if the bundle of `SSL_CERT_FILE` cannot vouch
/// for a server (see [`BundleFirst`]): as they were named when the client was built (made
/// absolute then, so that a program that changes its directory later reads the same ones).
#[derive(Debug)]
#[cfg_attr(not(feature = "rustls"), allow(dead_code))]
pub(crate) struct Later {
    dirs: Vec<std::path::PathBuf>,
    /// The variable's value, for `Debug`.
    shown: String,
    /// The files read already (the bundle), which a directory may name again.
    files: HashMap<(u64, u64), usize>,
}

impl Later {
    /// Every root: the bundle's `roots` (not read again: the file may be gone) and the
    /// directories', each once.
    #[cfg(feature = "rustls")]
    fn collect(&self, roots: &rustls::RootCertStore) -> Collector {
        let mut c = Collector {
            files: self.files.clone(),
            ..Collector::default()
        };
        for anchor in &roots.roots {
            c.add_anchor(anchor.clone());
        }
        for dir in &self.dirs {
            c.read_dir(dir);
        }
        c
    }

    fn new(dirs: &str, files: HashMap<(u64, u64), usize>) -> Later {
        Later {
            dirs: dirs
                .split(':')
                .filter(|d| !d.is_empty())
                .map(|d| std::path::absolute(d).unwrap_or_else(|_| d.into()))
                .collect(),
            shown: dirs.to_owned(),
            files,
        }
    }
}

/// The crypto provider ureq would pick: the process's default if one was installed, else
/// ring (which the `rustls` feature builds in).
#[cfg(feature = "rustls")]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

/// A verifier of servers against `anchors`, then (see [`BundleFirst`]) those of `later`.
#[cfg(feature = "rustls")]
fn verifier(
    roots: Arc<rustls::RootCertStore>,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<rustls::client::WebPkiServerVerifier>, Error> {
    rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| Error::config(format!("the trusted roots cannot be used: {e}")))
}

/// The rustls configuration ureq's own layer would make (its protocol versions, SNI, no client
/// certificate, the same provider), with the crate's verifier.
#[cfg(feature = "rustls")]
fn client_config(
    anchors: Vec<rustls::pki_types::TrustAnchor<'static>>,
    later: Option<Later>,
) -> Result<Arc<rustls::ClientConfig>, Error> {
    let provider = provider();
    let verify = bundle_first(anchors, later, &provider)?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(|e| Error::config(format!("the tls configuration cannot be made: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verify)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The verifier of [`client_config`].
#[cfg(feature = "rustls")]
fn bundle_first(
    anchors: Vec<rustls::pki_types::TrustAnchor<'static>>,
    later: Option<Later>,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<BundleFirst>, Error> {
    let roots = Arc::new(rustls::RootCertStore { roots: anchors });
    Ok(Arc::new(BundleFirst {
        first: verifier(roots.clone(), provider)?,
        roots,
        later: later.map(|l| (l, std::sync::OnceLock::new())),
        provider: provider.clone(),
    }))
}

/// Verifies a server with the roots read at build (a bundle) and, only if they cannot vouch
/// for it, with every root the environment names (the bundle and the `SSL_CERT_DIR`
/// directories, read then, once per client). A directory of a system's trust store names
/// each root of its bundle again, two or three times, in some 150 files: reading them all
/// before every first send tripled a cold send's cost, for servers the bundle vouches for.
///
/// The answer is the one verifying with every root at once would give: a chain that the
/// bundle's roots accept is accepted by a superset of them, and any other answer is the
/// superset's own.
#[cfg(feature = "rustls")]
#[derive(Debug)]
struct BundleFirst {
    first: Arc<rustls::client::WebPkiServerVerifier>,
    /// The bundle's roots, which `first` verifies with.
    roots: Arc<rustls::RootCertStore>,
    /// The directories, and the verifier with every root.
    #[allow(clippy::type_complexity)]
    later: Option<(
        Later,
        std::sync::OnceLock<Option<Arc<rustls::client::WebPkiServerVerifier>>>,
    )>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

#[cfg(feature = "rustls")]
impl BundleFirst {
    /// The verifier with every root, made the first time it is needed.
    fn everything(&self) -> Option<&Arc<rustls::client::WebPkiServerVerifier>> {
        let (later, cell) = self.later.as_ref()?;
        cell.get_or_init(|| {
            log::debug!(
                "the {CERT_FILE_ENV} bundle cannot vouch for the server: reading {CERT_DIR_ENV}"
            );
            let roots = Arc::new(rustls::RootCertStore {
                roots: later.collect(&self.roots).anchors,
            });
            match verifier(roots, &self.provider) {
                Ok(v) => Some(v),
                Err(e) => {
                    log::warn!("{CERT_DIR_ENV} is not used: {e}");
                    None
                }
            }
        })
        .as_ref()
    }
}

#[cfg(feature = "rustls")]
impl rustls::client::danger::ServerCertVerifier for BundleFirst {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let verify = |v: &rustls::client::WebPkiServerVerifier| {
            v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        };
        match verify(&self.first) {
            Ok(v) => Ok(v),
            Err(e) => match self.everything() {
                Some(all) => verify(all),
                None => Err(e),
            },
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.first.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.first.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.first.supported_verify_schemes()
    }
}

/// The hash a certificate (as PEM text or DER) is filed under: that of its last 64 bytes and
/// its length. The end of a certificate is its signature (and in PEM, the signature's
/// base64), as good as random, and equal hashes are compared in full anyway.
#[cfg(feature = "rustls")]
fn seen_hash(bytes: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = QuickHasher::default();
    h.write(&bytes[bytes.len().saturating_sub(64)..]);
    h.write_usize(bytes.len());
    h.finish()
}

/// A set of certificates, each filed under its [`seen_hash`], computed once (growing the map
/// never hashes a certificate again), and told apart by a comparison the caller gives: the
/// entries point to where the certificate is kept, not to copies of it.
#[cfg(feature = "rustls")]
struct Seen<T> {
    /// The first entry under each hash.
    first: HashMap<u64, T, Quick>,
    /// The others (a hash shared by two certificates: next to never).
    more: Vec<(u64, T)>,
}

#[cfg(feature = "rustls")]
impl<T> Default for Seen<T> {
    fn default() -> Self {
        Seen {
            first: HashMap::default(),
            more: Vec::new(),
        }
    }
}

#[cfg(feature = "rustls")]
impl<T: Clone> Seen<T> {
    /// The entry under `hash` that `same` accepts.
    fn find(&self, hash: u64, same: impl Fn(&T) -> bool) -> Option<T> {
        let first = self.first.get(&hash)?;
        if same(first) {
            return Some(first.clone());
        }
        self.more
            .iter()
            .filter(|(h, _)| *h == hash)
            .map(|(_, t)| t)
            .find(|t| same(t))
            .cloned()
    }

    fn insert(&mut self, hash: u64, entry: T) {
        match self.first.entry(hash) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(entry);
            }
            std::collections::hash_map::Entry::Occupied(_) => self.more.push((hash, entry)),
        }
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

    /// A fresh certificate rustls accepts as a root, as PEM.
    fn cert() -> String {
        let made = rcgen::generate_simple_self_signed(vec!["root.example".to_owned()]).unwrap();
        crate::pem::tests::pem_of(made.cert.der())
    }

    /// A directory of its own under the temp directory, removed on drop.
    struct TempDir(std::path::PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir = std::env::temp_dir()
                .join(format!("telnyx-sms-trust-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_directorys_hash_links_are_counted_without_a_lookup() {
        use std::os::unix::fs::symlink;
        let dir = TempDir::new("links");
        let d = &dir.0;
        let (one, two) = (cert(), cert());
        std::fs::write(d.join("One.pem"), &one).unwrap();
        std::fs::write(d.join("Two.crt"), &two).unwrap();
        // The links `openssl rehash` makes, a link to a link, and a loop of links.
        symlink("One.pem", d.join("0000000a.0")).unwrap();
        symlink("Two.crt", d.join("0000000b.0")).unwrap();
        symlink("0000000a.0", d.join("0000000a.1")).unwrap();
        symlink("0000000c.1", d.join("0000000c.0")).unwrap();
        symlink("0000000c.0", d.join("0000000c.1")).unwrap();
        // A hash name linking out of the directory, or to a name that is not a certificate
        // file's: followed and read (once: it is the same file as `One.pem`).
        symlink(d.join("One.pem"), d.join("0000000d.0")).unwrap();
        std::fs::write(d.join("three.txt"), cert()).unwrap();
        symlink("three.txt", d.join("0000000e.0")).unwrap();
        let mut c = Collector::default();
        // One.pem, Two.crt, their links, the link to a link, the link out, the link to
        // three.txt; the loop holds nothing.
        assert_eq!(c.read_dir(d), 7);
        // Looked up: the four names that are not links to a sibling (One.pem, Two.crt,
        // 0000000d.0 and 0000000e.0); the other five are one `readlink` each. Opened: One.pem
        // (or 0000000d.0: one file), Two.crt and three.txt.
        assert_eq!((c.looked_up, c.opened), (4, 3));
        assert_eq!((c.anchors.len(), c.duplicates), (3, 0));
        let trust = c.into_trust("here".to_owned(), None).unwrap();
        assert_eq!(trust.shown, "3 certificates from here");
    }

    #[test]
    fn repeats_are_found_after_the_read_buffer_is_reused() {
        let dir = TempDir::new("repeats");
        let d = &dir.0;
        let (one, two) = (cert(), cert());
        // In name order: one, its repeat (nothing new: its buffer is reused), two (kept),
        // two's repeat, and a file with both, once more.
        std::fs::write(d.join("a.pem"), &one).unwrap();
        std::fs::write(d.join("b.pem"), &one).unwrap();
        std::fs::write(d.join("c.pem"), &two).unwrap();
        std::fs::write(d.join("d.pem"), &two).unwrap();
        std::fs::write(d.join("e.pem"), format!("{two}{one}")).unwrap();
        let mut c = Collector::default();
        assert_eq!(c.read_dir(d), 6);
        assert_eq!((c.anchors.len(), c.duplicates, c.opened), (2, 4, 5));
        // One buffer read every file, and one decoded every certificate.
        assert!(c.buf.capacity() < 64 * 1024, "{}", c.buf.capacity());
        assert!(c.der.capacity() < 4 * 1024, "{}", c.der.capacity());
    }

    /// A CA and a leaf it signed for `localhost`, as (CA PEM, leaf DER).
    fn ca_and_leaf(cn: &str) -> (String, Vec<u8>) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::default();
        ca.distinguished_name.push(rcgen::DnType::CommonName, cn);
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        (
            crate::pem::tests::pem_of(ca_cert.der()),
            leaf.der().to_vec(),
        )
    }

    #[cfg(unix)]
    #[test]
    fn ssl_cert_dir_is_read_only_for_a_server_the_bundle_cannot_vouch_for() {
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
        let dir = TempDir::new("later");
        let (in_bundle, leaf_a) = ca_and_leaf("bundle CA");
        let (in_dir, leaf_b) = ca_and_leaf("directory CA");
        let (_, leaf_c) = ca_and_leaf("unknown CA");
        let bundle = dir.0.join("ca-certificates.crt");
        std::fs::write(&bundle, &in_bundle).unwrap();
        let certs = dir.0.join("certs");
        std::fs::create_dir(&certs).unwrap();
        // A system directory's layout: each root by name and by a hash link, and the bundle.
        std::fs::write(certs.join("Directory_CA.pem"), &in_dir).unwrap();
        std::os::unix::fs::symlink("Directory_CA.pem", certs.join("0a1b2c3d.0")).unwrap();
        std::os::unix::fs::symlink(&bundle, certs.join("ca-certificates.crt")).unwrap();
        let (file, dirs) = (bundle.to_str().unwrap(), certs.to_str().unwrap());

        // Read now: the bundle alone, one file.
        let (c, from) = collect_env(Some(file), Some(dirs)).unwrap();
        assert_eq!((c.anchors.len(), c.opened), (1, 1));
        assert_eq!(from, format!("SSL_CERT_FILE={file}"));
        let later = Later::new(dirs, c.files.clone());
        let v = bundle_first(c.anchors, Some(later), &provider()).unwrap();
        let read = || v.later.as_ref().unwrap().1.get().is_some();
        let name = ServerName::try_from("localhost").unwrap();
        let verify = |leaf: &[u8]| {
            v.verify_server_cert(
                &CertificateDer::from(leaf),
                &[],
                &name,
                &[],
                UnixTime::now(),
            )
        };
        verify(&leaf_a).unwrap();
        assert!(!read(), "the bundle vouched: the directory is not read");
        // The bundle is not read again (here it is gone), nor needed: its roots are kept.
        let kept = std::fs::read(&bundle).unwrap();
        std::fs::remove_file(&bundle).unwrap();
        verify(&leaf_b).unwrap();
        std::fs::write(&bundle, kept).unwrap();
        assert!(
            read(),
            "the directory was read for the issuer the bundle lacks"
        );
        verify(&leaf_a).unwrap();
        let err = verify(&leaf_c).unwrap_err();
        assert_eq!(
            err,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
        );

        // What the fallback read, each root once: the bundle's root and the directory's
        // (the bundle, named again in the directory, is not read through its link, the hash
        // link is not opened: one file opened).
        let (c, _) = collect_env(Some(file), Some(dirs)).unwrap();
        let all =
            Later::new(dirs, c.files.clone()).collect(&rustls::RootCertStore { roots: c.anchors });
        assert_eq!((all.anchors.len(), all.duplicates, all.opened), (2, 0, 1));

        // A directory that cannot be read when it is needed: the bundle's answer stands.
        let (c, _) = collect_env(Some(file), Some(dirs)).unwrap();
        let later = Later::new("/nonexistent", c.files.clone());
        let v = bundle_first(c.anchors, Some(later), &provider()).unwrap();
        let err = v
            .verify_server_cert(
                &CertificateDer::from(&leaf_b[..]),
                &[],
                &name,
                &[],
                UnixTime::now(),
            )
            .unwrap_err();
        assert_eq!(
            err,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
        );
    }

    #[test]
    fn a_root_written_twice_or_reissued_with_its_key_counts_once() {
        use rcgen::{CertificateParams, KeyPair};
        let key = KeyPair::generate().unwrap();
        let make = |years: i32| {
            let mut p = CertificateParams::default();
            p.distinguished_name.push(rcgen::DnType::CommonName, "root");
            p.not_after = rcgen::date_time_ymd(2030 + years, 1, 1);
            crate::pem::tests::pem_of(p.self_signed(&key).unwrap().der())
        };
        // The same root twice, the same subject and key in a certificate of other dates (one
        // root to rustls), an unusable certificate twice, and another root.
        let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let bundle = format!(
            "{}{}{}{garbage}{garbage}{}",
            make(0),
            make(0),
            make(5),
            cert()
        );
        let mut c = Collector::default();
        let held = c
            .add_bundle(&mut bundle.as_bytes(), bundle.len() as u64, "it")
            .unwrap();
        assert_eq!(held, 6);
        assert_eq!((c.anchors.len(), c.unusable, c.duplicates), (2, 1, 3));
        let trust = c.into_trust("here".to_owned(), None).unwrap();
        assert_eq!(
            trust.shown,
            "2 certificates from here, 3 duplicates skipped, 1 unusable one skipped"
        );
    }

    #[test]
    fn a_bundle_too_large_or_unreadable_is_named() {
        let mut c = Collector::default();
        let mut endless = std::io::repeat(b'-');
        let e = c.add_bundle(&mut endless, 0, "it").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid configuration: it is larger than 16 MiB"
        );
        let e = c
            .add_bundle(&mut &b"-----BEGIN CERTIFICATE-----\nQUJD"[..], 31, "it")
            .unwrap_err();
        assert!(e.to_string().contains("it cannot be parsed as PEM"), "{e}");
    }

    #[test]
    fn the_quick_hasher_tells_lengths_and_tails_apart() {
        use std::hash::{BuildHasher, Hash};
        let h = |b: &[u8]| Quick::default().hash_one(b);
        assert_ne!(h(b"abcdefgh"), h(b"abcdefgh\0"));
        assert_ne!(h(b""), h(b"\0"));
        assert_ne!(h(b"abc"), h(b"abd"));
        b"".hash(&mut QuickHasher::default());
        // Equal ends, other starts: one hash, two entries, told apart by the comparison.
        let kept: [Vec<u8>; 3] = [
            vec![1u8; 100],
            [&[2u8; 36][..], &[1u8; 64]].concat(),
            vec![7],
        ];
        let mut seen = Seen::default();
        let find = |seen: &Seen<usize>, b: &[u8]| seen.find(seen_hash(b), |&i| kept[i] == b);
        assert_eq!(seen_hash(&kept[0]), seen_hash(&kept[1]));
        for (i, k) in kept.iter().enumerate() {
            assert_eq!(find(&seen, k), None);
            seen.insert(seen_hash(k), i);
        }
        for (i, k) in kept.iter().enumerate() {
            assert_eq!(find(&seen, k), Some(i));
        }
        assert_eq!(find(&seen, b"z"), None);
        assert_eq!(seen.more.len(), 1);
    }
}
