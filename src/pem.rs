//! The certificates of a PEM text: its `CERTIFICATE` blocks and their DER. (With the `rustls`
//! feature only: `trust.rs` hands the DER to rustls.)

/// The `-----BEGIN CERTIFICATE-----` ... `-----END CERTIFICATE-----` blocks of a PEM text,
/// markers included; `None` for a block that does not end.
pub(crate) fn certificate_blocks(pem: &[u8]) -> impl Iterator<Item = Option<&[u8]>> {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let mut rest = Some(pem);
    std::iter::from_fn(move || {
        let text = rest?;
        let Some(start) = find(text, BEGIN) else {
            rest = None;
            return None;
        };
        let body = &text[start..];
        match find(&body[BEGIN.len()..], END) {
            Some(end) => {
                let end = BEGIN.len() + end + END.len();
                rest = Some(&body[end..]);
                Some(Some(&body[..end]))
            }
            None => {
                rest = None;
                Some(None)
            }
        }
    })
}

/// The DER of a block from [`certificate_blocks`]: its base64 (line breaks and other
/// whitespace ignored, padding optional), or `None` if it is not base64.
///
/// Written here rather than taken from `rustls-pki-types`, whose constant-time decoder (made
/// for private keys) takes three quarters of the time a system bundle costs; a certificate is
/// public, and the DER is checked by rustls anyway.
pub(crate) fn decode_block(block: &[u8]) -> Option<Vec<u8>> {
    const BEGIN: usize = b"-----BEGIN CERTIFICATE-----".len();
    const END: usize = b"-----END CERTIFICATE-----".len();
    decode_base64(block.get(BEGIN..block.len().checked_sub(END)?)?)
}

/// Standard base64 (`A-Z a-z 0-9 + /`), whitespace ignored, `=` padding optional but only
/// at the end.
fn decode_base64(text: &[u8]) -> Option<Vec<u8>> {
    const SKIP: u8 = 0xFE;
    const BAD: u8 = 0xFF;
    const PAD: u8 = 0xFD;
    const TABLE: [u8; 256] = {
        let mut t = [BAD; 256];
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut i = 0;
        while i < 64 {
            t[alphabet[i] as usize] = i as u8;
            i += 1;
        }
        t[b' ' as usize] = SKIP;
        t[b'\t' as usize] = SKIP;
        t[b'\r' as usize] = SKIP;
        t[b'\n' as usize] = SKIP;
        t[b'=' as usize] = PAD;
        t
    };
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut n, mut pad) = (0u32, 0u8, 0u8);
    let mut i = 0;
    while i < text.len() {
        // The common case first: four base64 characters at a quantum's start (a PEM line
        // is 64 of them), decoded at once.
        if let (0, 0, Some(&[a, b, c, d])) = (n, pad, text.get(i..i + 4)) {
            let t = |x: u8| u32::from(TABLE[usize::from(x)]);
            let (a, b, c, d) = (t(a), t(b), t(c), t(d));
            if (a | b | c | d) < 64 {
                let quantum = a << 18 | b << 12 | c << 6 | d;
                out.extend_from_slice(&quantum.to_be_bytes()[1..]);
                i += 4;
                continue;
            }
        }
        let b = text[i];
        i += 1;
        match TABLE[usize::from(b)] {
            SKIP => {}
            PAD => pad += 1,
            BAD => return None,
            _ if pad > 0 => return None,
            v => {
                acc = acc << 6 | u32::from(v);
                n += 1;
                if n == 4 {
                    out.extend_from_slice(&acc.to_be_bytes()[1..]);
                    (acc, n) = (0, 0);
                }
            }
        }
    }
    match (n, pad) {
        (0, 0) => {}
        (2, 0 | 2) => out.push((acc >> 4) as u8),
        (3, 0 | 1) => out.extend_from_slice(&(acc >> 2).to_be_bytes()[2..]),
        _ => return None,
    }
    Some(out)
}

/// Where `needle` (which starts with `-`) first occurs in `hay`. PEM's base64 holds no `-`,
/// so the search skips through it a byte at a time without backing up.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = hay[from..].iter().position(|&b| b == needle[0]) {
        let at = from + i;
        if hay[at..].starts_with(needle) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain base64 encoder for the decoder's tests, wrapping at `wrap` characters.
    fn encode(bytes: &[u8], wrap: usize) -> String {
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let mut b = [0u8; 3];
            b[..chunk.len()].copy_from_slice(chunk);
            let n = u32::from_be_bytes([0, b[0], b[1], b[2]]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(alphabet[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        let wrapped: Vec<String> = out
            .as_bytes()
            .chunks(wrap)
            .map(|l| String::from_utf8(l.to_vec()).unwrap())
            .collect();
        wrapped.join("\r\n")
    }

    #[test]
    fn base64_decodes_what_it_should() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 37 % 251) as u8).collect();
        for len in 0..80 {
            for wrap in [4, 64, 76, 1000] {
                let text = encode(&data[..len], wrap);
                assert_eq!(
                    decode_base64(text.as_bytes()).as_deref(),
                    Some(&data[..len]),
                    "{len} {wrap}"
                );
                // Without padding too.
                let bare = text.trim_end_matches('=');
                assert_eq!(
                    decode_base64(bare.as_bytes()).as_deref(),
                    Some(&data[..len])
                );
            }
        }
        for bad in [
            "A", "AAAAA", "AB=C", "AB==C", "A===", "AB-C", "AB:C", "AAA\0",
        ] {
            assert_eq!(decode_base64(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(decode_base64(b" \tQUJD\n").as_deref(), Some(&b"ABC"[..]));
    }

    #[test]
    fn blocks_are_found_whatever_surrounds_them() {
        let cert = |b: &str| format!("-----BEGIN CERTIFICATE-----\n{b}\n-----END CERTIFICATE-----");
        let text = format!(
            "junk - with dashes ---\n{}\n-----BEGIN PRIVATE KEY-----\nQUJD\n-----END PRIVATE KEY-----\n{}\ntrailer",
            cert("QUJD"),
            cert("REVG")
        );
        let blocks: Vec<_> = certificate_blocks(text.as_bytes()).collect();
        assert_eq!(blocks.len(), 2);
        assert_eq!(
            decode_block(blocks[0].unwrap()).as_deref(),
            Some(&b"ABC"[..])
        );
        assert_eq!(
            decode_block(blocks[1].unwrap()).as_deref(),
            Some(&b"DEF"[..])
        );
        // A block that does not end is malformed; nothing at all is no block.
        let cut: Vec<_> = certificate_blocks(b"-----BEGIN CERTIFICATE-----\nQUJD").collect();
        assert_eq!(cut, [None]);
        assert_eq!(certificate_blocks(b"no pem here").count(), 0);
        assert_eq!(certificate_blocks(b"").count(), 0);
    }

    /// The system's bundle, where there is one, decodes exactly as rustls-pki-types decodes it.
    #[test]
    fn a_system_bundle_decodes_as_pki_types_decodes_it() {
        let Ok(pem) = std::fs::read("/etc/ssl/certs/ca-certificates.crt") else {
            return;
        };
        let ours: Vec<Vec<u8>> = certificate_blocks(&pem)
            .map(|b| decode_block(b.unwrap()).unwrap())
            .collect();
        let theirs: Vec<Vec<u8>> = ureq::tls::parse_pem(&pem)
            .filter_map(|i| match i.unwrap() {
                ureq::tls::PemItem::Certificate(c) => Some(c.der().to_vec()),
                _ => None,
            })
            .collect();
        assert!(!ours.is_empty());
        assert_eq!(ours, theirs);
    }
}
