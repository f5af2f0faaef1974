//! Untrusted text made safe to print: one line, no control characters, bounded length.
//!
//! Whatever a server says (error titles, details, 422 messages, a request id, a proxy's reason)
//! may hold line breaks, terminal escape sequences or megabytes. Everything of it that reaches a
//! `Display` or a log record goes through [`Clean`] first, so it can neither forge a log line
//! nor drive a terminal nor flood one. The full text stays available through the accessors.

use std::fmt::{self, Write};

/// Writes `text` on one line: control characters (C0, DEL, C1), line and paragraph separators
/// and bidirectional overrides escaped as `\n`, `\r`, `\t` or `\u{..}`, and the whole cut to at
/// most `max` characters (escapes counted as written) with a trailing `…`.
#[derive(Clone, Copy)]
pub(crate) struct Clean<'a>(pub(crate) &'a str, pub(crate) usize);

impl fmt::Display for Clean<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Clean(text, max) = *self;
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
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}'
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
        let long = "\n".repeat(100_000);
        let out = clean(&long, 999);
        assert!(out.chars().count() <= 999);
        assert!(!out.contains('\n'));
    }
}
