//! Random bits: idempotency keys (and salts) from the operating system's generator, and a
//! cheap source for backoff jitter.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// `N` random bytes from the operating system's generator (`getrandom`: `getrandom(2)` on
/// Linux, `getentropy` or `/dev/urandom` elsewhere). Never panics: should the generator fail
/// (a sandbox that forbids it, say), the bytes come from [`random_hasher`] instead, which is
/// seeded by the same generator through std but is not a cryptographic generator.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    if getrandom::getrandom(&mut out).is_err() {
        fallback_fill(&mut out);
    }
    out
}

/// Fills `out` from SipHash keyed by std's `RandomState`, a block of eight bytes per input.
fn fallback_fill(out: &mut [u8]) {
    let mut h = random_hasher();
    for chunk in out.chunks_mut(8) {
        let word = h.finish().to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
        h.write_u8(0xA5);
    }
}

/// A source of random bits without a randomness crate: SipHash keyed by std's `RandomState`,
/// whose 128-bit keys come from the operating system's generator, already fed a process-wide
/// counter (so no two calls in a process hash the same input). Cheap, and good enough for
/// jitter; keys use [`random_bytes`].
pub(crate) fn random_hasher() -> impl Hasher {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    // A forked child starts with its parent's `RandomState` keys and counter: its process id
    // keeps the two from making the same bits.
    h.write_u32(std::process::id());
    h
}

/// 64 cheap random bits, for backoff jitter.
pub(crate) fn random_u64() -> u64 {
    random_hasher().finish()
}

/// A fresh idempotency key: 128 bits from the operating system's generator as 32 lowercase
/// hex digits (within the server's `[A-Za-z0-9_-]{1,255}`).
pub(crate) fn new_idempotency_key() -> String {
    hex(&random_bytes::<16>())
}

/// Lowercase hex, two digits a byte.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_fresh_and_well_formed() {
        let keys: std::collections::HashSet<String> =
            (0..10_000).map(|_| new_idempotency_key()).collect();
        assert_eq!(keys.len(), 10_000);
        for k in keys.iter().take(50) {
            assert_eq!(k.len(), 32);
            assert!(
                k.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
                "{k}"
            );
            assert!(crate::request::idempotency_key_problem(k).is_none());
        }
    }

    #[test]
    fn random_bytes_of_any_length() {
        let a: [u8; 32] = random_bytes();
        let b: [u8; 32] = random_bytes();
        assert_ne!(a, b);
        assert_ne!(a, [0; 32]);
        let empty: [u8; 0] = random_bytes();
        assert_eq!(empty, [0u8; 0]);
        // The fallback fills every byte, whole blocks and a partial last one.
        for n in [1, 7, 8, 9, 33] {
            let mut buf = vec![0u8; n];
            let mut again = vec![0u8; n];
            fallback_fill(&mut buf);
            fallback_fill(&mut again);
            assert_ne!(buf, again, "{n}");
        }
        let mut long = [0u8; 64];
        fallback_fill(&mut long);
        // Each block of eight is different from the one before (no repeated word).
        assert!(
            long.chunks(8)
                .zip(long.chunks(8).skip(1))
                .all(|(a, b)| a != b)
        );
    }

    #[test]
    fn hex_is_two_lowercase_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
    }
}
