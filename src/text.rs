//! Untrusted text made safe to print: one line, no control characters, bounded length.
//!
//! Whatever a server says (error titles, details, 422 messages, a request id, a proxy's reason)
//! may hold line breaks, terminal escape sequences or megabytes. Everything of it that reaches a
//! `Display` or a log record goes through [`Printable`] first (`Clean` inside the crate), so it
//! can neither forge a log line nor drive a terminal nor flood one. The full text stays
//! available through the accessors. The `telnyx-sms` tool prints through the same type.

use std::borrow::Cow;
use std::fmt::{self, Write};

/// Text made safe to print on one line: control characters (C0, DEL, C1), the line and
/// paragraph separators, and the invisible characters that reorder or hide text
/// (bidirectional marks, embeddings, overrides and isolates, zero-width spaces and joiners,
/// the byte-order mark) escaped as `\n`, `\r`, `\t` or `\u{..}`; the whole cut to at most
/// `max_chars` characters, escapes counted as written and never split, the last one a `…`
/// when anything was cut. Text with nothing to escape that fits comes out unchanged.
///
/// For a log line, a terminal, or any message that quotes a server or a user. The crate's own
/// `Display`s already print a server's text through it.
///
/// ```
/// use telnyx_assistant_sms::Printable;
///
/// let from_server = "bad gateway\n\u{1b}[2J\u{202e}txt.exe";
/// assert_eq!(
///     Printable::new(from_server, 100).to_string(),
///     r"bad gateway\n\u{1b}[2J\u{202e}txt.exe"
/// );
/// // Cut at 10 characters, the ellipsis included.
/// assert_eq!(Printable::new("0123456789abc", 10).to_string(), "012345678…");
/// // For a serializer that escapes by itself (JSON): the same cut, nothing escaped.
/// assert_eq!(Printable::new("0123456789abc", 10).truncated(), "012345678…");
/// assert!(Printable::escapes('\u{9b}') && !Printable::escapes('é'));
/// ```
#[derive(Clone, Copy)]
pub struct Printable<'a>(pub(crate) &'a str, pub(crate) usize);

/// The crate's short name for [`Printable`].
pub(crate) use Printable as Clean;

impl<'a> Printable<'a> {
    /// `text`, to be printed in at most `max_chars` characters.
    #[must_use]
    pub fn new(text: &'a str, max_chars: usize) -> Self {
        Printable(text, max_chars)
    }

    /// The text cut as `Display` cuts it (at most `max_chars` characters, the last a `…` when
    /// anything was cut) but not escaped: for a serializer that escapes it itself, such as
    /// JSON, where the escaped form would change the value. Borrowed when nothing was cut.
    #[must_use]
    pub fn truncated(&self) -> Cow<'a, str> {
        let Printable(text, max) = *self;
        match text.char_indices().nth(max) {
            None => Cow::Borrowed(text),
            Some(_) => {
                let keep = max.saturating_sub(1);
                let end = text.char_indices().nth(keep).map_or(text.len(), |(i, _)| i);
                let mut out = String::with_capacity(end + '…'.len_utf8());
                out.push_str(&text[..end]);
                out.push('…');
                Cow::Owned(out)
            }
        }
    }

    /// Whether `Display` escapes `c`: for output that must escape the same characters its own
    /// way (`\u00XX` in a JSON string).
    #[must_use]
    pub fn escapes(c: char) -> bool {
        needs_escape(c)
    }
}

impl fmt::Debug for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Printable").field(&self.to_string()).finish()
    }
}

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Printable(text, max) = *self;
        // Does it all fit? (Stops counting as soon as it does not.)
        let mut total = 0;
        let fits = text.chars().all(|c| {
            total += escaped_len(c);
            total <= max
        });
        // Otherwise keep one character for the ellipsis.
        let budget = if fits { max } else { max.saturating_sub(1) };
        let mut written = 0;
        let mut buf = String::new();
        for c in text.chars() {
            let n = escaped_len(c);
            if written + n > budget {
                break;
            }
            buf.clear();
            push_escaped(&mut buf, c);
            f.write_str(&buf)?;
            written += n;
        }
        if !fits {
            f.write_char('…')?;
        }
        Ok(())
    }
}

fn escaped_len(c: char) -> usize {
    match c {
        '\n' | '\r' | '\t' => 2,
        // `\u{` + hex digits + `}`
        c if needs_escape(c) => 4 + ((32 - (c as u32).leading_zeros()).div_ceil(4).max(1) as usize),
        _ => 1,
    }
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            // Arabic letter mark; zero-width space, non-joiner, joiner; left-to-right and
            // right-to-left marks; line and paragraph separators; embeddings and overrides;
            // isolates; the byte-order mark (zero-width no-break space).
            '\u{61c}' | '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}' | '\u{feff}'
        )
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if needs_escape(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// `text` cleaned into an owned string (see [`Clean`]).
pub(crate) fn clean(text: &str, max: usize) -> String {
    Clean(text, max).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_cuts() {
        assert_eq!(clean("plain", 10), "plain");
        assert_eq!(clean("a\nb\r\tc", 20), "a\\nb\\r\\tc");
        assert_eq!(clean("\u{1b}[2J", 20), "\\u{1b}[2J");
        assert_eq!(clean("x\u{202e}y\u{85}", 30), "x\\u{202e}y\\u{85}");
        assert_eq!(clean("abcdef", 4), "abc…");
        assert_eq!(clean("abcd", 4), "abcd");
        assert_eq!(clean("ééééé", 3), "éé…");
        // An escape is never cut in half.
        assert_eq!(clean("ab\n", 4), "ab\\n");
        assert_eq!(clean("ab\n", 3), "ab…");
        // Zero-width and bidirectional characters hide or reorder text: escaped.
        assert_eq!(
            clean("a\u{200b}b\u{200d}c\u{61c}d\u{2067}", 60),
            "a\\u{200b}b\\u{200d}c\\u{61c}d\\u{2067}"
        );
        let long = "\n".repeat(100_000);
        let out = clean(&long, 999);
        assert!(out.chars().count() <= 999);
        assert!(!out.contains('\n'));
    }

    #[test]
    fn truncated_cuts_as_display_does_without_escaping() {
        for (text, max) in [("abcdef", 4), ("abcd", 4), ("ééééé", 3), ("", 0), ("ab", 0)] {
            let p = Printable::new(text, max);
            assert_eq!(p.truncated(), p.to_string(), "{text:?} {max}");
        }
        assert_eq!(Printable::new("a\nbcdef", 4).truncated(), "a\nb…");
        assert!(matches!(
            Printable::new("abc", 3).truncated(),
            Cow::Borrowed("abc")
        ));
    }
}
