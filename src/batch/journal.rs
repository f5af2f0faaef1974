//! The batch journal: a durable, append-only record of what a batch started and how each
//! request ended, so that a re-run after a crash, a kill or a power cut sends nothing twice,
//! whatever the server does with `Idempotency-Key`.
//!
//! The file is JSON Lines. The first line is the header (the format, the assistant id and the
//! random salt mixed into every derived key); then, appended by each run:
//!
//! ```text
//! {"journal":1,"assistant_id":"asst-1","salt":"9f2c…"}
//! {"event":"run","pid":4242}
//! {"event":"start","index":0,"key":"batch-1e5c…","body":"77a0…"}
//! {"event":"sent","index":0,"conversation_id":"conv-1","request_id":"req-9","attempts":1}
//! {"event":"start","index":1,"key":"batch-03b1…","body":"c4d2…"}
//! {"event":"failed","index":1,"may_have_been_sent":false,"attempts":3,"error":"…"}
//! ```
//!
//! A `start` is on disk (`fsync`) before the request's first byte goes out, and an outcome is
//! on disk before the caller hears of it. Writers share `fsync`s: a worker's outcome rides on
//! its next start's sync, and concurrent syncs are one commit for the file system. A torn last
//! line (a crash mid-write) is dropped when the journal is opened; damage anywhere else is an
//! error, and so is a file that does not begin as a journal (it is never truncated), or a
//! path that is not a regular file. The journal is locked (`flock`) while a batch runs, so
//! two runs cannot share it. A key an earlier run started at one position is not started at
//! another: a line that moved (lines inserted above it) is refused, not sent again.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::response::SendSmsResponse;

const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Header {
    journal: u32,
    assistant_id: String,
    salt: String,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
enum Record {
    Run {
        pid: u32,
    },
    Start {
        index: usize,
        key: String,
        body: String,
    },
    Sent {
        index: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        attempts: u32,
    },
    Failed {
        index: usize,
        may_have_been_sent: bool,
        attempts: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u16>,
        error: String,
    },
}

/// What earlier runs recorded for one request.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    /// The key and body digest its `start` recorded: the request as it was sent.
    pub(crate) key: String,
    pub(crate) body: String,
    /// An earlier run's attempt may have sent it, and no run has recorded it sent since.
    doubted: bool,
    pub(crate) state: State,
}

#[derive(Clone, Debug)]
pub(crate) enum State {
    /// Started, with no outcome: it may have been sent.
    Started,
    Sent {
        conversation_id: Option<String>,
        request_id: Option<String>,
        attempts: u32,
    },
    Failed {
        may_have_been_sent: bool,
        error: String,
    },
}

impl Entry {
    /// Whether the SMS may have been sent, with no proof that it was: a start with no
    /// outcome, or a failure after the request may have been written.
    pub(crate) fn in_doubt(&self) -> bool {
        matches!(
            self.state,
            State::Started
                | State::Failed {
                    may_have_been_sent: true,
                    ..
                }
        )
    }

    /// The response an earlier run recorded, for a request sent.
    pub(crate) fn response(&self) -> Option<SendSmsResponse> {
        let State::Sent {
            conversation_id,
            request_id,
            attempts,
        } = &self.state
        else {
            return None;
        };
        Some(SendSmsResponse {
            conversation_id: conversation_id.clone(),
            request_id: request_id.clone(),
            attempts: *attempts,
            elapsed: std::time::Duration::ZERO,
        })
    }

    /// What is known of a request in doubt, in one line.
    pub(crate) fn doubt(&self) -> String {
        match &self.state {
            State::Failed { error, .. } => format!(
                "an earlier run may have sent it: {}",
                crate::text::Clean(error, 400)
            ),
            _ => "an earlier run started sending it and recorded no outcome (it was stopped or \
                  crashed): it may have been sent"
                .to_owned(),
        }
    }
}

/// An open, locked journal: what earlier runs recorded, and the writer for this run.
pub(crate) struct Journal {
    path: PathBuf,
    salt: String,
    entries: HashMap<usize, Entry>,
    /// Where earlier runs started each key: a hash of the key -> its index. (A hash, not the
    /// key, to keep memory small; a hit is checked against the entry's key.)
    by_key: HashMap<u64, usize>,
    /// The writer (none for a journal only read).
    out: Option<Mutex<Out>>,
}

struct Out {
    file: File,
    /// Records written, and of those how many are known to be on disk.
    written: u64,
    synced: u64,
    /// The first write error: after it, nothing more is sent.
    broken: Option<String>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.path)
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

fn io_error(path: &Path, what: &str, e: &io::Error) -> Error {
    Error::config(format!(
        "the journal {}: {what}: {e}",
        crate::text::Clean(&path.display().to_string(), 200)
    ))
}

impl Journal {
    /// Opens (or creates) the journal at `path` for `assistant_id`, locks it for this run,
    /// reads what earlier runs recorded, and records this run's start.
    ///
    /// `salt` makes a new journal's salt (only called when the file is new or empty).
    pub(crate) fn open(path: &Path, assistant_id: &str) -> Result<Journal, Error> {
        let shown = || crate::text::Clean(&path.display().to_string(), 200).to_string();
        // Before opening (a device or a pipe is not opened for writing) and after (the path
        // may have been replaced in between).
        match std::fs::metadata(path) {
            Ok(m) => regular_file(path, &m)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(path, "cannot be opened", &e)),
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| io_error(path, "cannot be opened", &e))?;
        let meta = file
            .metadata()
            .map_err(|e| io_error(path, "cannot be opened", &e))?;
        regular_file(path, &meta)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = last_pid(&mut file)
                    .map(|p| format!(" (process {p})"))
                    .unwrap_or_default();
                return Err(Error::config(format!(
                    "the journal {} is in use by another run{holder}: one run per journal; \
                     wait for it to finish or stop it",
                    shown()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(io_error(path, "cannot be locked", &e));
            }
        }
        let mut text = Vec::new();
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.read_to_end(&mut text))
            .map_err(|e| io_error(path, "cannot be read", &e))?;
        let (header, entries, good_len) = parse(&text, path)?;
        let by_key = index_keys(&entries);
        if good_len < text.len() as u64 {
            // A torn last record: the crash interrupted its write. Drop it.
            file.set_len(good_len)
                .map_err(|e| io_error(path, "cannot be repaired", &e))?;
        }
        let mut journal = Journal {
            path: path.to_owned(),
            salt: String::new(),
            entries,
            by_key,
            out: Some(Mutex::new(Out {
                file,
                written: 0,
                synced: 0,
                broken: None,
            })),
        };
        match header {
            Some(h) => {
                check_assistant(&h, path, assistant_id)?;
                journal.salt = h.salt;
            }
            None => {
                // 128 bits from the operating system's generator.
                journal.salt = crate::keys::hex(&crate::keys::random_bytes::<16>());
                let header = Header {
                    journal: FORMAT,
                    assistant_id: assistant_id.to_owned(),
                    salt: journal.salt.clone(),
                };
                journal.write_line(&serde_json::to_vec(&header).expect("a header serializes"))?;
                // A new file's name is in its directory, which must reach the disk too, or a
                // power cut could lose the whole journal.
                sync_dir(path).map_err(|e| io_error(path, "its directory cannot be synced", &e))?;
            }
        }
        journal.append(&Record::Run {
            pid: std::process::id(),
        })?;
        Ok(journal)
    }

    /// Reads the journal at `path` without locking or writing it (a missing file is an empty
    /// journal, with no salt yet), for checks and dry runs.
    pub(crate) fn read(path: &Path, assistant_id: &str) -> Result<Journal, Error> {
        let text = match std::fs::metadata(path) {
            Ok(m) => {
                regular_file(path, &m)?;
                std::fs::read(path).map_err(|e| io_error(path, "cannot be read", &e))?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_error(path, "cannot be read", &e)),
        };
        let (header, entries, _) = parse(&text, path)?;
        let by_key = index_keys(&entries);
        let salt = match header {
            Some(h) => {
                check_assistant(&h, path, assistant_id)?;
                h.salt
            }
            None => String::new(),
        };
        Ok(Journal {
            path: path.to_owned(),
            salt,
            entries,
            by_key,
            out: None,
        })
    }

    /// The random id mixed into every key this journal's batch derives.
    pub(crate) fn salt(&self) -> &str {
        &self.salt
    }

    /// What earlier runs recorded for request `index`.
    pub(crate) fn entry(&self, index: usize) -> Option<&Entry> {
        self.entries.get(&index)
    }

    /// Where an earlier run started `key`, if at another position than `index`: the input
    /// changed (lines were added or moved), and the request at `index` is the one an earlier
    /// run sent, or may have sent, from that position.
    pub(crate) fn recorded_elsewhere(&self, index: usize, key: &str) -> Option<usize> {
        let at = *self.by_key.get(&key_hash(key))?;
        (at != index && self.entries.get(&at).is_some_and(|e| e.key == key)).then_some(at)
    }

    /// Where an earlier run started `key` (for a journal of single sends, keyed by their own
    /// keys), or else the next free position.
    pub(crate) fn position_for(&self, key: &str) -> usize {
        match self.by_key.get(&key_hash(key)) {
            Some(&at) if self.entries.get(&at).is_some_and(|e| e.key == key) => at,
            _ => self.entries.keys().max().map_or(0, |m| m + 1),
        }
    }

    /// The refusal of a request at `index` that an earlier run started at another position
    /// (the same key): lines were added or moved.
    pub(crate) fn moved(&self, index: usize, key: &str) -> Option<Error> {
        let at = self.recorded_elsewhere(index, key)?;
        Some(Error::validation(vec![crate::violation::Violation::new(
            &["journal", &index.to_string()],
            format!(
                "is what the journal recorded as request {} of the input, counting from 1 \
                 (the same key): lines were added or moved since the journal's run",
                at + 1
            ),
            "journal_mismatch",
        )]))
    }

    /// Records, durably, that request `index` is about to be sent under `key`.
    ///
    /// Refuses (a `Validation` error, nothing written) a key an earlier run started at
    /// another position: the position's own check cannot see a line that moved to a position
    /// the journal has no record of.
    pub(crate) fn start(&self, index: usize, key: &str, body: &str) -> Result<(), Error> {
        if let Some(e) = self.moved(index, key) {
            return Err(e);
        }
        self.append(&Record::Start {
            index,
            key: key.to_owned(),
            body: body.to_owned(),
        })
    }

    /// Writes how request `index` ended without waiting for the disk; the caller must
    /// [`sync_upto`](Self::sync_upto) the returned sequence number before it tells anyone of
    /// the outcome (the next start's sync covers it, sparing an `fsync` per request).
    pub(crate) fn finish_unsynced(
        &self,
        index: usize,
        outcome: Result<&SendSmsResponse, &Error>,
    ) -> Result<u64, Error> {
        let record = match outcome {
            Ok(res) => Record::Sent {
                index,
                conversation_id: res.conversation_id.clone(),
                request_id: res.request_id.clone(),
                attempts: res.attempts,
            },
            Err(e) => Record::Failed {
                index,
                may_have_been_sent: e.may_have_been_sent(),
                attempts: e.attempts(),
                status: e.status(),
                error: e.to_string(),
            },
        };
        self.write_unsynced(&serde_json::to_vec(&record).expect("a record serializes"))
    }

    /// Whether a write failed: then no more requests are sent.
    pub(crate) fn broken(&self) -> Option<String> {
        let out = self.out.as_ref()?;
        out.lock().unwrap_or_else(|p| p.into_inner()).broken.clone()
    }

    fn append(&self, record: &Record) -> Result<(), Error> {
        let line = serde_json::to_vec(record).expect("a record serializes");
        self.write_line(&line)
    }

    /// Appends one line and returns once it is on disk.
    fn write_line(&self, line: &[u8]) -> Result<(), Error> {
        let seq = self.write_unsynced(line)?;
        self.sync_upto(seq)
    }

    /// Appends one line and returns its sequence number, without waiting for the disk: see
    /// [`sync_upto`](Self::sync_upto).
    fn write_unsynced(&self, line: &[u8]) -> Result<u64, Error> {
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line);
        buf.push(b'\n');
        let Some(lock) = &self.out else {
            return Err(Error::config("the journal was opened only to be read"));
        };
        let mut out = lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = &out.broken {
            return Err(Error::config(b.clone()));
        }
        // One write of the whole line (O_APPEND): a crash leaves at most a torn last line.
        if let Err(e) = out.file.write_all(&buf) {
            return Err(self.fail(&mut out, "cannot be written", &e));
        }
        out.written += 1;
        Ok(out.written)
    }

    /// Returns once every line up to `mine` (a sequence number) is on disk: at once when a
    /// sync since covered it, else after an `fdatasync` of everything written so far.
    pub(crate) fn sync_upto(&self, mine: u64) -> Result<(), Error> {
        let Some(lock) = &self.out else {
            return Err(Error::config("the journal was opened only to be read"));
        };
        let (upto, file) = {
            let out = lock.lock().unwrap_or_else(|p| p.into_inner());
            if out.synced >= mine {
                return Ok(());
            }
            if let Some(b) = &out.broken {
                return Err(Error::config(b.clone()));
            }
            (out.written, out.file.try_clone())
        };
        // Writers that need the disk at once each ask for it: the file system folds
        // concurrent syncs of one file into one commit (group commit by the kernel), with no
        // writer waiting for another's sync to end before its own starts.
        let result = file.and_then(|f| f.sync_data());
        let mut out = lock.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(()) => {
                out.synced = out.synced.max(upto);
                Ok(())
            }
            Err(e) => Err(self.fail(&mut out, "cannot be synced to disk", &e)),
        }
    }

    fn fail(&self, out: &mut Out, what: &str, e: &io::Error) -> Error {
        let err = io_error(&self.path, what, e);
        out.broken.get_or_insert_with(|| err.to_string());
        err
    }
}

/// Syncs the directory holding `path` (on Unix; elsewhere a no-op).
fn sync_dir(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn check_assistant(h: &Header, path: &Path, assistant_id: &str) -> Result<(), Error> {
    if h.assistant_id == assistant_id {
        return Ok(());
    }
    Err(Error::config(format!(
        "the journal {} belongs to a batch for assistant {}, not {}: use another journal",
        crate::text::Clean(&path.display().to_string(), 200),
        crate::text::Clean(&h.assistant_id, 100),
        crate::text::Clean(assistant_id, 100)
    )))
}

/// Refuses what is not a regular file: a device would be read forever (`/dev/zero`), a pipe
/// or a terminal would block, and none of them keeps a record.
fn regular_file(path: &Path, meta: &std::fs::Metadata) -> Result<(), Error> {
    if meta.is_file() {
        return Ok(());
    }
    let what = if meta.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    };
    Err(Error::config(format!(
        "the journal {} is {what}: a journal must be a file of its own",
        crate::text::Clean(&path.display().to_string(), 200)
    )))
}

fn key_hash(key: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// Each key's position, from what earlier runs started.
fn index_keys(entries: &HashMap<usize, Entry>) -> HashMap<u64, usize> {
    entries
        .iter()
        .map(|(index, e)| (key_hash(&e.key), *index))
        .collect()
}

/// Whether `bytes`, the start of a file with no complete header, can be a header whose write
/// a crash cut short: the beginning of one, or the zeros a file system can leave where data
/// was not yet written. Anything else is not a journal, and must not be truncated as one.
fn torn_header(bytes: &[u8]) -> bool {
    const START: &[u8] = br#"{"journal":"#;
    let n = bytes.len().min(START.len());
    bytes[..n] == START[..n] || bytes.iter().all(|b| *b == 0)
}

/// The pid of the last run recorded (for naming who holds the lock).
fn last_pid(file: &mut File) -> Option<u32> {
    let mut text = Vec::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_end(&mut text).ok()?;
    text.split(|b| *b == b'\n')
        .rev()
        .find_map(|l| match serde_json::from_slice(l) {
            Ok(Record::Run { pid }) => Some(pid),
            _ => None,
        })
}

type Parsed = (Option<Header>, HashMap<usize, Entry>, u64);

/// Reads a journal's text: its header, each request's last state, and the length of the
/// part that parsed (a torn last line is left out).
fn parse(text: &[u8], path: &Path) -> Result<Parsed, Error> {
    let damaged = |line: usize, why: &str| {
        Error::config(format!(
            "the journal {} is damaged at line {line}: {why}; it is not the journal of a batch, \
             or was edited",
            crate::text::Clean(&path.display().to_string(), 200)
        ))
    };
    let mut header = None;
    let mut entries: HashMap<usize, Entry> = HashMap::new();
    let mut good = 0u64;
    let mut at = 0usize;
    let mut n = 0usize;
    while at < text.len() {
        n += 1;
        let end = text[at..].iter().position(|b| *b == b'\n');
        let (line, next) = match end {
            Some(e) => (&text[at..at + e], at + e + 1),
            // No newline: a torn last line (of a journal: not the first line of another file).
            None if header.is_some() || torn_header(&text[at..]) => break,
            None => return Err(damaged(n, "no journal header")),
        };
        let last = next >= text.len();
        if header.is_none() {
            match serde_json::from_slice::<Header>(line) {
                Ok(h) if h.journal == FORMAT => header = Some(h),
                Ok(h) => {
                    return Err(damaged(
                        n,
                        &format!("format {} is not known to this version", h.journal),
                    ));
                }
                Err(_) if last && torn_header(line) => break,
                Err(_) => return Err(damaged(n, "no journal header")),
            }
        } else {
            match serde_json::from_slice::<Record>(line) {
                Ok(r) => apply(&mut entries, r),
                Err(_) if last => break,
                Err(e) => return Err(damaged(n, &e.to_string())),
            }
        }
        at = next;
        good = next as u64;
    }
    Ok((header, entries, good))
}

fn apply(entries: &mut HashMap<usize, Entry>, r: Record) {
    match r {
        Record::Run { .. } => {}
        Record::Start { index, key, body } => {
            // A request once in doubt stays in doubt until it is sent: a later "not sent" of
            // a resend says nothing about the earlier attempt.
            let doubted = entries.get(&index).is_some_and(Entry::in_doubt);
            entries.insert(
                index,
                Entry {
                    key,
                    body,
                    doubted,
                    state: State::Started,
                },
            );
        }
        Record::Sent {
            index,
            conversation_id,
            request_id,
            attempts,
        } => {
            if let Some(e) = entries.get_mut(&index) {
                e.state = State::Sent {
                    conversation_id,
                    request_id,
                    attempts,
                };
            }
        }
        Record::Failed {
            index,
            may_have_been_sent,
            error,
            ..
        } => {
            if let Some(e) = entries.get_mut(&index) {
                e.state = State::Failed {
                    may_have_been_sent: may_have_been_sent || e.doubted,
                    error,
                };
            }
        }
    }
}
