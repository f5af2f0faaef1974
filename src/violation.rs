//! One broken rule, the client's own or an entry of the server's 422, and how a list of them
//! reads in one line.

use std::fmt;

use crate::text::Clean;

/// One broken rule: the field it concerns and what is wrong with it.
///
/// Client-side violations (from [`SendSmsRequest::validate`](crate::SendSmsRequest::validate)
/// or a send) and the entries of the server's 422 body `{"detail":[{"loc","msg","type"}]}`
/// share this type, and name fields the same way: `["body", "conversation_metadata", "score"]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub(crate) path: Vec<String>,
    pub(crate) message: String,
    pub(crate) code: String,
}

impl Violation {
    pub(crate) fn new(path: &[&str], message: impl Into<String>, code: impl Into<String>) -> Self {
        Violation {
            path: path.iter().map(|s| (*s).to_owned()).collect(),
            message: message.into(),
            code: code.into(),
        }
    }

    /// A violation with nothing in it yet, for the parser of a server's 422 to fill.
    pub(crate) fn empty() -> Self {
        Violation {
            path: Vec::new(),
            message: String::new(),
            code: String::new(),
        }
    }

    /// Where the problem is, outermost first: `["body", "to"]`, `["path", "assistant_id"]`,
    /// `["header", "Idempotency-Key"]`. Integer positions from the server appear as text.
    pub fn path(&self) -> &[String] {
        &self.path
    }

    /// The path joined with dots, for messages: `body.conversation_metadata.score`.
    pub fn field(&self) -> String {
        self.path.join(".")
    }

    /// What is wrong, in words: `field required`, `must not be blank`.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// A machine-readable code: ours (`missing`, `blank`, `control_character`,
    /// `dot_segment`, `invalid_idempotency_key`) or the server's 422 `type`
    /// (`value_error.missing`).
    pub fn code(&self) -> &str {
        &self.code
    }
}

/// One line, control characters escaped and each part cut (the field at 100 characters, the
/// message at 200): a violation may come from a server. [`field`](Violation::field) and
/// [`message`](Violation::message) give the full text.
impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", Clean(&self.message, 200))
        } else {
            write!(
                f,
                "{}: {}",
                Clean(&self.field(), 100),
                Clean(&self.message, 200)
            )
        }
    }
}

/// At most this many violations are shown in one `Display` line.
const SHOWN_VIOLATIONS: usize = 3;

/// `a: x; b: y; c: z; and 4 more`
pub(crate) fn write_violations(
    f: &mut impl fmt::Write,
    violations: &[Violation],
    count: usize,
) -> fmt::Result {
    for (n, v) in violations.iter().take(SHOWN_VIOLATIONS).enumerate() {
        if n > 0 {
            f.write_str("; ")?;
        }
        write!(f, "{v}")?;
    }
    let shown = violations.len().min(SHOWN_VIOLATIONS);
    if count > shown {
        write!(f, "; and {} more", count - shown)?;
    }
    Ok(())
}
