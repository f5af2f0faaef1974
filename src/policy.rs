//! The retry policy: a failure's class in, "may it be sent again?" out. Pure, one screen, and
//! tested as the table the README shows.
//!
//! The server's idempotency contract (Telnyx, "Idempotency"): a key is honoured only on
//! endpoints whose reference declares it (this one does not), and only a *successful* answer is
//! replayed. So a retry under a key is protected at best when the first attempt succeeded and
//! its answer was lost; after an error answer it executes again; on a server that ignores keys
//! every retry of something that may have been performed can text someone again. Hence the
//! default retries only what provably was not performed.

/// What a failed attempt tells about the SMS, decided by the phase it failed in and the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// Provably not performed, and may go through if tried again: no connection, a failure
    /// before a byte of the request was written, `408`, `429`, a `503` with a wait.
    NotSent,
    /// Provably not performed, and trying again cannot help: a `4xx` refusal, a certificate
    /// or protocol mismatch, a proxy that wants credentials.
    Rejected,
    /// May have been performed, and a success would be replayed under the key: no (readable)
    /// answer after the request was written, `502`, `504`, a bare `503`, `409`.
    InDoubt,
    /// The application answered an error after it may have acted (`500`, other `5xx`): the
    /// server replays only successes, so a retry under the same key executes again.
    Failed,
    /// May have been performed, and retrying makes no sense: a redirect, or a `2xx` whose
    /// body could not be read (the SMS is on its way).
    Final,
}

impl Class {
    /// Whether the SMS may have been sent: `false` only when that is proven.
    pub(crate) fn may_have_been_sent(self) -> bool {
        !matches!(self, Class::NotSent | Class::Rejected)
    }
}

/// The caller's choice: see `ClientBuilder::retry_in_doubt` and `retry_ambiguous`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Policy {
    /// Retry [`Class::InDoubt`] under the same key (never without one).
    pub(crate) in_doubt: bool,
    /// Retry [`Class::InDoubt`] and [`Class::Failed`], with or without a key: accepts a risk
    /// of duplicates, as the official SDKs do.
    pub(crate) ambiguous: bool,
}

/// Whether a failure of this class may be sent again under this policy; `keyed` says the
/// attempts carry an `Idempotency-Key`.
pub(crate) fn may_retry(class: Class, policy: Policy, keyed: bool) -> bool {
    match class {
        Class::NotSent => true,
        Class::Rejected | Class::Final => false,
        Class::InDoubt => policy.ambiguous || (policy.in_doubt && keyed),
        Class::Failed => policy.ambiguous,
    }
}

/// Classifies an HTTP answer that is not a success. `has_wait`: it carried `Retry-After` or
/// `retry-after-ms`. `x-should-retry` can make a refusal retryable or stop a retry; it never
/// changes whether the SMS may have been sent, nor makes retryable what may have been.
pub(crate) fn classify_status(status: u16, has_wait: bool, should_retry: Option<bool>) -> Class {
    let class = match status {
        408 | 429 => Class::NotSent,
        // A 503 with a wait is a deliberate refusal; a bare one is what a gateway answers when
        // the upstream failed, maybe after acting.
        503 if has_wait => Class::NotSent,
        409 | 502 | 503 | 504 => Class::InDoubt,
        400..=499 => Class::Rejected,
        500..=599 => Class::Failed,
        _ => Class::Final,
    };
    match (should_retry, class) {
        (Some(false), c) if c.may_have_been_sent() => Class::Final,
        (Some(false), _) => Class::Rejected,
        (Some(true), Class::Rejected) => Class::NotSent,
        (_, c) => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: Policy = Policy {
        in_doubt: false,
        ambiguous: false,
    };
    const IN_DOUBT: Policy = Policy {
        in_doubt: true,
        ambiguous: false,
    };
    const AMBIGUOUS: Policy = Policy {
        in_doubt: false,
        ambiguous: true,
    };

    #[test]
    fn the_table() {
        use Class::*;
        // class, may have been sent, then retried under: default, retry_in_doubt (keyed),
        // retry_in_doubt (no key), retry_ambiguous (no key).
        let table = [
            (NotSent, false, [true, true, true, true]),
            (Rejected, false, [false, false, false, false]),
            (InDoubt, true, [false, true, false, true]),
            (Failed, true, [false, false, false, true]),
            (Final, true, [false, false, false, false]),
        ];
        for (class, sent, want) in table {
            assert_eq!(class.may_have_been_sent(), sent, "{class:?}");
            let got = [
                may_retry(class, DEFAULT, true),
                may_retry(class, IN_DOUBT, true),
                may_retry(class, IN_DOUBT, false),
                may_retry(class, AMBIGUOUS, false),
            ];
            assert_eq!(got, want, "{class:?}");
        }
    }

    #[test]
    fn statuses() {
        use Class::*;
        for (status, wait, want) in [
            (408, false, NotSent),
            (429, false, NotSent),
            (429, true, NotSent),
            (503, true, NotSent),
            (503, false, InDoubt),
            (502, false, InDoubt),
            (504, true, InDoubt),
            (409, false, InDoubt),
            (400, false, Rejected),
            (401, false, Rejected),
            (404, false, Rejected),
            (422, false, Rejected),
            (500, false, Failed),
            (500, true, Failed),
            (501, false, Failed),
            (599, false, Failed),
            (301, false, Final),
            (307, false, Final),
        ] {
            assert_eq!(classify_status(status, wait, None), want, "{status} {wait}");
        }
    }

    #[test]
    fn x_should_retry_never_hides_a_possible_send() {
        use Class::*;
        assert_eq!(classify_status(400, false, Some(true)), NotSent);
        assert_eq!(classify_status(500, false, Some(true)), Failed);
        assert_eq!(classify_status(502, false, Some(true)), InDoubt);
        assert_eq!(classify_status(429, false, Some(false)), Rejected);
        assert_eq!(classify_status(503, false, Some(false)), Final);
        assert_eq!(classify_status(500, false, Some(false)), Final);
    }
}
