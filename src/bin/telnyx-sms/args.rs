//! Argument parsing every command shares: a lexer whose errors never echo raw bytes, flags
//! that may be given only once, value parsers with limits, the readers for input files and
//! the API-key file, and the connection and output flags ([`ClientFlags`]).

use std::ffi::OsString;
use std::io::Read;
use std::num::IntErrorKind;
use std::time::Duration;

use telnyx_assistant_sms::{
    API_KEY_ENV, Client, ClientBuilder, Printable, check_api_key, check_base_url,
};

use crate::output::{ECHO_CAP, Failure};

/// One command-line argument: an option (`--to`, `-h`) or a bare value.
pub enum Arg {
    Flag(String),
    Positional(OsString),
}

/// The remaining arguments of the process.
pub struct Args(lexopt::Parser);

impl Args {
    pub fn from_env() -> Args {
        Args(lexopt::Parser::from_env())
    }

    /// The next argument. An option's name is text even if the argument was not UTF-8 (the
    /// bad bytes read as U+FFFD), so it can be echoed safely.
    pub fn next(&mut self) -> Result<Option<Arg>, Failure> {
        match self.0.next() {
            Ok(None) => Ok(None),
            Ok(Some(lexopt::Arg::Long(l))) => Ok(Some(Arg::Flag(format!("--{l}")))),
            Ok(Some(lexopt::Arg::Short(c))) => Ok(Some(Arg::Flag(format!("-{c}")))),
            Ok(Some(lexopt::Arg::Value(v))) => Ok(Some(Arg::Positional(v))),
            Err(lexopt::Error::UnexpectedValue { option, .. }) => {
                Err(Failure::usage(format!("{} takes no value", shown(&option))))
            }
            Err(e) => Err(Failure::usage(shown(&e.to_string()))),
        }
    }

    /// The value of `flag` (the next argument, or what followed `=`), as UTF-8.
    pub fn value(&mut self, flag: &str) -> Result<String, Failure> {
        let v = self
            .0
            .value()
            .map_err(|_| Failure::usage(format!("{flag} needs a value")))?;
        v.into_string()
            .map_err(|_| Failure::usage(format!("the value of {flag} is not valid UTF-8")))
    }
}

/// An argument as it may be quoted in a message: escaped and at most [`ECHO_CAP`] characters.
pub fn shown(s: &str) -> String {
    Printable::new(s, ECHO_CAP).to_string()
}

/// A bare value where an option was expected.
pub fn unexpected(v: &OsString, hint: &str) -> Failure {
    Failure::usage(format!(
        "unexpected argument '{}'{hint}",
        shown(&v.to_string_lossy())
    ))
}

/// Stores `value` in `slot`, unless `flag` already did: an option that takes one value may
/// be given once, so an appended `--to` cannot silently replace the first.
pub fn once<T>(slot: &mut Option<T>, flag: &str, value: T) -> Result<(), Failure> {
    if slot.is_some() {
        return Err(repeated(flag));
    }
    *slot = Some(value);
    Ok(())
}

/// [`once`] for an option without a value.
pub fn once_switch(slot: &mut bool, flag: &str) -> Result<(), Failure> {
    if *slot {
        return Err(repeated(flag));
    }
    *slot = true;
    Ok(())
}

/// The error for an option given twice.
pub fn repeated(flag: &str) -> Failure {
    Failure::usage(format!("{flag} was given more than once; give it once"))
}

/// The options every command treats alike, once its own (`own`) are matched: `--version` in
/// the wrong place, the `--api-key` that does not exist, the connection flags, and anything
/// else (unknown, with the nearest option if it looks like a typo of one). `Ok(())` when
/// `flag` was one of the connection flags (taken).
pub fn common_flag(
    flag: &str,
    own: &[&str],
    client: &mut ClientFlags,
    args: &mut Args,
) -> Result<(), Failure> {
    match flag {
        "--api-key" => Err(Failure::usage(
            "there is no --api-key: a key on the command line shows in ps and shell history; \
             set TELNYX_API_KEY or use --api-key-file FILE",
        )),
        "--version" | "-V" => Err(Failure::usage(format!(
            "{flag} goes before the command: telnyx-sms {flag}"
        ))),
        _ if client.take(flag, args)? => Ok(()),
        _ => {
            let known = own.iter().chain(CLIENT_FLAGS).chain(&["--help"]).copied();
            Err(unknown_option(flag, known))
        }
    }
}

/// `unknown option '--txt' (did you mean --text?)`: the suggestion when one of `known` is
/// near enough to be what was meant.
pub fn unknown_option<'a>(flag: &str, known: impl IntoIterator<Item = &'a str>) -> Failure {
    let hint = closest(flag, known)
        .map(|k| format!(" (did you mean {k}?)"))
        .unwrap_or_default();
    Failure::usage(format!("unknown option '{}'{hint}", shown(flag)))
}

/// The name in `known` nearest to `given` (ignoring case), if it is near enough to be a typo:
/// at most 1 edit for words up to 4 letters long, else 2. An edit inserts, deletes or
/// replaces a letter, or swaps two neighbours (`--form` is 1 edit from `--from`).
pub fn closest<'a>(given: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let given = given.to_lowercase();
    let letters = given.trim_start_matches('-').chars().count();
    let most = if letters <= 4 { 1 } else { 2 };
    known
        .into_iter()
        .map(|k| (edit_distance(&given, k), k))
        .filter(|(d, _)| *d <= most)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// The optimal string alignment distance between `a` and `b` (Levenshtein's, plus swaps of
/// two neighbouring letters), over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Cells outside the table (never read for in-range indices) count as far away.
    let at = |row: &[usize], k: usize| row.get(k).copied().unwrap_or(usize::MAX / 2);
    // Three rows of the table: two back, the last, and the one being filled.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut last: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut row = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            let mut d = (at(&last, j) + cost)
                .min(at(&last, j + 1) + 1)
                .min(at(&row, j) + 1);
            let swapped = i > 0 && j > 0 && a.get(i - 1) == Some(cb) && b.get(j - 1) == Some(ca);
            if swapped {
                d = d.min(at(&before, j - 1) + 1);
            }
            row.push(d);
        }
        before = std::mem::replace(&mut last, row);
    }
    last.last().copied().unwrap_or_default()
}

/// A number of seconds from `min` to `max`.
pub fn seconds(flag: &str, v: &str, min: f64, max: f64) -> Result<Duration, Failure> {
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= min && *s <= max)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            Failure::usage(format!(
                "{flag} {}: expected a number of seconds from {min} to {max}",
                shown(v)
            ))
        })
}

/// A whole number from 0 to `max`.
pub fn count(flag: &str, v: &str, max: u32) -> Result<u32, Failure> {
    v.trim()
        .parse::<u32>()
        .ok()
        .filter(|n| *n <= max)
        .ok_or_else(|| {
            Failure::usage(format!(
                "{flag} {}: expected a whole number from 0 to {max}",
                shown(v)
            ))
        })
}

/// An `i64`; `what` (such as `--meta-int n=x`) opens the message. Out of range is said apart
/// from not a number.
pub fn integer(what: &str, v: &str) -> Result<i64, Failure> {
    v.parse::<i64>().map_err(|e| {
        let why = match e.kind() {
            IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => format!(
                "out of range: an integer must be from {} to {} (i64)",
                i64::MIN,
                i64::MAX
            ),
            _ => format!("'{}' is not an integer", shown(v)),
        };
        Failure::usage(format!("{what}: {why}"))
    })
}

/// `true` or `false`.
pub fn boolean(what: &str, v: &str) -> Result<bool, Failure> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Failure::usage(format!("{what}: expected true or false"))),
    }
}

/// `KEY=VALUE`, split at the first `=`.
pub fn key_value<'a>(flag: &str, s: &'a str) -> Result<(&'a str, &'a str), Failure> {
    s.split_once('=')
        .ok_or_else(|| Failure::usage(format!("{flag} {}: expected KEY=VALUE", shown(s))))
}

/// The most an input file (`--request`) may hold.
pub const INPUT_CAP: u64 = 1 << 20;
/// The most an API-key file may hold.
const KEY_FILE_CAP: u64 = 4 << 10;
/// The byte-order mark some Windows editors put first; it is dropped.
const BOM: char = '\u{FEFF}';

/// Reads `path` (`-`: stdin) for `flag` as UTF-8 text of at most `limit` bytes, without a
/// leading byte-order mark. The error is a message that names `flag` and the file.
pub fn read_text(flag: &str, path: &str, limit: u64) -> Result<String, String> {
    let bytes = read_bytes(flag, path, limit)?;
    utf8_text(flag, path, bytes)
}

/// How messages name the file `path` (`-`: stdin).
fn file_name(path: &str) -> String {
    match path {
        "-" => "stdin".to_owned(),
        p => shown(p),
    }
}

fn read_bytes(flag: &str, path: &str, limit: u64) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    let read = if path == "-" {
        std::io::stdin()
            .lock()
            .take(limit + 1)
            .read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(limit + 1).read_to_end(&mut bytes))
    };
    let name = file_name(path);
    read.map_err(|e| format!("{flag} {name}: cannot read it: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!("{flag} {name}: larger than {limit} bytes"));
    }
    Ok(bytes)
}

fn utf8_text(flag: &str, path: &str, bytes: Vec<u8>) -> Result<String, String> {
    let text = String::from_utf8(bytes).map_err(|e| {
        format!(
            "{flag} {}: not UTF-8 text (invalid byte at offset {})",
            file_name(path),
            e.utf8_error().valid_up_to()
        )
    })?;
    Ok(match text.strip_prefix(BOM) {
        Some(rest) => rest.to_owned(),
        None => text,
    })
}

/// The key in `path`: the file must hold the key alone; whitespace around it (a final
/// newline) and a byte-order mark are dropped, and what is left must pass the library's
/// [`check_api_key`]. Nothing of the file's content is ever quoted.
pub fn read_api_key_file(path: &str) -> Result<String, Failure> {
    let flag = "--api-key-file";
    let bytes = read_bytes(flag, path, KEY_FILE_CAP).map_err(Failure::config)?;
    let text = utf8_text(flag, path, bytes).map_err(|m| {
        Failure::config(format!(
            "{m}: the file must hold the key alone, as plain text"
        ))
    })?;
    let key = text.trim();
    check_api_key(key).map_err(|e| Failure::config(format!("{flag} {}: {e}", shown(path))))?;
    Ok(key.to_owned())
}

/// The most of a `--ca-file` that is read: far more than any real bundle (the system's whole
/// CA bundle is about 200 KiB).
const CA_FILE_CAP: u64 = 16 * 1024 * 1024;

/// The PEM bundle in `path`, checked the way the library checks it, with errors that name
/// the flag and the file.
fn read_ca_file(path: &str) -> Result<Vec<u8>, Failure> {
    let flag = "--ca-file";
    let pem = read_bytes(flag, path, CA_FILE_CAP).map_err(Failure::config)?;
    let probe = ClientBuilder::new()
        .api_key(PLACEHOLDER_KEY)
        .base_url("https://127.0.0.1/v2")
        .no_proxy()
        .root_certificates_pem(&pem);
    if let Err(e) = probe.build() {
        let named = format!("{flag} {}", shown(path));
        let text = e
            .to_string()
            .replace("the root_certificates_pem bundle", &named);
        return Err(Failure::from_error(&e).with_text(text));
    }
    Ok(pem)
}

/// `--timeout` limits, in seconds.
const TIMEOUT_MIN: f64 = 0.001;
const TIMEOUT_MAX: f64 = 86_400.0;
/// `--max-retries` limit: each retry may wait up to 60 s for the server, so more would only
/// stretch a failure out.
const MAX_RETRIES_MAX: u32 = 10;
/// The key a dry run without one uses. It is never sent (a dry run sends nothing) and it is
/// shown redacted like any key.
const PLACEHOLDER_KEY: &str = "dry-run-placeholder-never-sent";

/// The help lines of [`ClientFlags`].
pub const CLIENT_HELP: &str = "\
CONNECTION AND OUTPUT OPTIONS:
    --api-key-file FILE       read the API key from FILE, which holds the key alone
                              (surrounding whitespace is ignored; at most 4 KiB);
                              default: $TELNYX_API_KEY
    --base-url URL            https, or http to a loopback host only;
                              default: $TELNYX_BASE_URL, else https://api.telnyx.com/v2
    --timeout SECONDS         the most one attempt may take, 0.001 to 86400; default: 60
    --max-retries N           retries of failures that provably were not performed (no
                              connection, 429, 408, a 503 asking for a wait), 0 to 10;
                              default: 2
    --retry-in-doubt          also retry, under the same idempotency key, failures that
                              may have been sent where a server that honours keys would
                              replay a success (no answer, 502, 504, a bare 503, 409):
                              against one that ignores keys each may text again; this
                              endpoint does not declare keys; default: off
    --retry-ambiguous         also retry those and 500s, with or without a key, as the
                              official SDKs do: accepts duplicates; default: off
    --ca-file FILE            trust exactly the certificates in this PEM file (a corporate
                              proxy's or a local server's CA), at most 16 MiB;
                              default: $SSL_CERT_FILE / $SSL_CERT_DIR, else the built-in
                              Mozilla roots
    --json                    print {\"conversation_id\", \"request_id\", \"idempotency_key\"} on
                              success, errors as a JSON object on stderr, and -v's records
                              as JSON objects, one per line, on stderr; default: off
    -v, -vv, --verbose        -v (or --verbose): log each retry decision and a give-up
                              on stderr; -vv: each attempt too.
                              The one flag that may be repeated: -v -v is -vv, more
                              counts as -vv. Wins over $TELNYX_LOG; default: off
";

/// Whether a command needs a real API key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum KeyNeed {
    /// It sends: no key is an error.
    Required,
    /// It only shows what it would send: without a key it uses a placeholder (a key that is
    /// given and bad is still reported).
    PlaceholderIfNone,
}

/// The options every command that talks to the API takes.
#[derive(Default)]
pub struct ClientFlags {
    api_key_file: Option<String>,
    base_url: Option<String>,
    ca_file: Option<String>,
    timeout: Option<Duration>,
    max_retries: Option<u32>,
    retry_in_doubt: bool,
    retry_ambiguous: bool,
    pub json: bool,
    /// How many times `-v` was given (`-vv` is twice); capped, since more means the same.
    pub verbose: u8,
}

/// The options of [`ClientFlags`].
pub const CLIENT_FLAGS: &[&str] = &[
    "--api-key-file",
    "--base-url",
    "--ca-file",
    "--timeout",
    "--max-retries",
    "--retry-in-doubt",
    "--retry-ambiguous",
    "--json",
    "-v",
    "--verbose",
];

impl ClientFlags {
    /// Whether `flag` is one of these.
    pub fn accepts(flag: &str) -> bool {
        CLIENT_FLAGS.contains(&flag)
    }

    /// Takes `flag` (and its value) if it is one of these; `Ok(false)` if it is not.
    pub fn take(&mut self, flag: &str, args: &mut Args) -> Result<bool, Failure> {
        match flag {
            "--api-key-file" => once(&mut self.api_key_file, flag, args.value(flag)?)?,
            "--base-url" => once(&mut self.base_url, flag, args.value(flag)?)?,
            "--ca-file" => once(&mut self.ca_file, flag, args.value(flag)?)?,
            "--timeout" => {
                let t = seconds(flag, &args.value(flag)?, TIMEOUT_MIN, TIMEOUT_MAX)?;
                once(&mut self.timeout, flag, t)?;
            }
            "--max-retries" => {
                let n = count(flag, &args.value(flag)?, MAX_RETRIES_MAX)?;
                once(&mut self.max_retries, flag, n)?;
            }
            "--retry-in-doubt" => once_switch(&mut self.retry_in_doubt, flag)?,
            "--retry-ambiguous" => once_switch(&mut self.retry_ambiguous, flag)?,
            "--json" => once_switch(&mut self.json, flag)?,
            // The exception to "each flag once": -v -v (-vv) asks for more.
            "-v" | "--verbose" => self.verbose = self.verbose.saturating_add(1).min(2),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The client these options (and the environment) describe. Problems name the option
    /// or the variable at fault.
    pub fn client(&self, need: KeyNeed) -> Result<Client, Failure> {
        if let Some(url) = &self.base_url {
            // Checked alone first, so that its error can name the flag.
            check_base_url(url)
                .map_err(|e| Failure::from_error(&e).with_text(format!("--base-url: {e}")))?;
        }
        let mut b = ClientBuilder::from_env();
        let no_key = std::env::var_os(API_KEY_ENV).is_none();
        match &self.api_key_file {
            Some(path) => b = b.api_key(read_api_key_file(path)?),
            None if no_key && need == KeyNeed::PlaceholderIfNone => {
                b = b.api_key(PLACEHOLDER_KEY);
            }
            None if no_key => {
                return Err(Failure::config(format!(
                    "no api key: {API_KEY_ENV} is not set; export it, or give --api-key-file \
                     FILE (--dry-run needs neither)"
                )));
            }
            None => {}
        }
        if let Some(url) = &self.base_url {
            b = b.base_url(url);
        }
        if let Some(path) = &self.ca_file {
            b = b.root_certificates_pem(read_ca_file(path)?);
        }
        if let Some(t) = self.timeout {
            b = b.timeout(t);
        }
        if let Some(n) = self.max_retries {
            b = b.max_retries(n);
        }
        b = b
            .retry_in_doubt(self.retry_in_doubt)
            .retry_ambiguous(self.retry_ambiguous)
            // A dry run opens no connection: it neither pays for the certificates nor fails
            // on a broken SSL_CERT_FILE it does not need.
            .defer_trust(need == KeyNeed::PlaceholderIfNone);
        b.build().map_err(|e| Failure::from_error(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_are_matched_and_other_words_are_not() {
        let known = [
            "--text",
            "--to",
            "--from",
            "--dry-run",
            "--verbose",
            "--assistant-id",
        ];
        for (typo, want) in [
            ("--txt", Some("--text")),
            ("--TEXT", Some("--text")),
            ("--form", Some("--from")),
            ("--dryrun", Some("--dry-run")),
            ("--verbos", Some("--verbose")),
            ("--assistant_id", Some("--assistant-id")),
            ("--assistantid", Some("--assistant-id")),
            ("--t", Some("--to")),
            ("--tx", Some("--to")),
            ("--color", None),
            ("--input", None),
            ("--fr", None),
        ] {
            assert_eq!(closest(typo, known), want, "{typo}");
        }
        assert_eq!(edit_distance("abc", "acb"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
