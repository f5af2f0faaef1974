//! The certificates of a PEM text: its `CERTIFICATE` blocks and their DER. (With the `rustls`
//! feature only: `trust.rs` hands the DER to rustls.)

const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
const END: &[u8] = b"-----END CERTIFICATE-----";

/// Why [`for_each_block`] stopped early.
#[derive(Debug)]
pub(crate) enum Scan {
    /// Reading failed.
    Read(std::io::Error),
    /// The text is longer than the limit.
    TooLarge,
    /// A block does not end, or `each` found it malformed.
    Malformed,
}

/// How much of a text is read at a time. In a new process every page of fresh memory costs a
/// page fault (some 2.5 µs each where this was measured), so a 200 KiB system bundle is read
/// through one 32 KiB buffer rather than into memory of its own size: 8 pages, not 54.
const CHUNK: usize = 32 * 1024;

/// Reads `source` a chunk at a time into `buf` (its contents overwritten; kept to be
/// reused), and hands each `-----BEGIN CERTIFICATE-----` ... `-----END CERTIFICATE-----`
/// block, markers included, to `each` as soon as it is whole; `each` returns `false` for a
/// malformed one. Text around the blocks (a byte-order mark, a key) is passed over. `size`, if known (a regular file's metadata), saves
/// the last read: a short read that reaches it is the end. Stops past `limit` bytes.
pub(crate) fn for_each_block(
    source: &mut dyn std::io::Read,
    size: Option<u64>,
    limit: u64,
    buf: &mut Vec<u8>,
    mut each: impl FnMut(&[u8]) -> bool,
) -> Result<(), Scan> {
    // `buf[..filled]` is text read and not handed over yet; past it, room to read into
    // (zeroed once, when the buffer grows).
    let mut filled = 0;
    let mut total = 0u64;
    let mut eof = false;
    // Where the search for the end of an unfinished block at the start of `buf` resumes: a
    // block longer than a chunk is not searched from its start after every read.
    let mut resume = 0;
    loop {
        let text = &buf[..filled];
        let mut at = 0;
        loop {
            let rest = &text[at..];
            let Some(begin) = find(rest, BEGIN) else {
                // A marker may be cut by the chunk's end: its start is kept.
                at = filled.saturating_sub(BEGIN.len() - 1).max(at);
                break;
            };
            let from = (begin + BEGIN.len()).max(if at + begin == 0 { resume } else { 0 });
            match find(&rest[from..], END) {
                Some(e) => {
                    let end = from + e + END.len();
                    if !each(&rest[begin..end]) {
                        return Err(Scan::Malformed);
                    }
                    at += end;
                    resume = 0;
                }
                None => {
                    // Searched up to the end but for a marker that may be cut there; the
                    // block is moved to the start of the buffer next.
                    resume = rest
                        .len()
                        .saturating_sub(END.len() - 1)
                        .saturating_sub(begin);
                    at += begin;
                    break;
                }
            }
        }
        if eof {
            return match find(&text[at..], BEGIN) {
                Some(_) => Err(Scan::Malformed),
                None => Ok(()),
            };
        }
        buf.copy_within(at..filled, 0);
        filled -= at;
        if buf.len() < filled + CHUNK {
            buf.resize(filled + CHUNK, 0);
        }
        let room = buf.len() - filled;
        let n = loop {
            match source.read(&mut buf[filled..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Scan::Read(e)),
            }
        };
        filled += n;
        total += n as u64;
        if total > limit {
            return Err(Scan::TooLarge);
        }
        eof = n == 0 || (n < room && size == Some(total));
    }
}

/// The DER of a block from [`for_each_block`], into `out` (emptied first; kept to be
/// reused): its base64 (line breaks and other whitespace ignored, padding optional); `false`
/// if it is not base64.
///
/// Written here rather than taken from `rustls-pki-types`, whose constant-time decoder (made
/// for private keys) takes three quarters of the time a system bundle costs; a certificate is
/// public, and the DER is checked by rustls anyway.
pub(crate) fn decode_block_into(block: &[u8], out: &mut Vec<u8>) -> bool {
    let body = block
        .len()
        .checked_sub(END.len())
        .and_then(|end| block.get(BEGIN.len()..end));
    body.is_some_and(|b| decode_base64(b, out))
}

/// The DER of a block, in a new vector.
#[cfg(test)]
pub(crate) fn decode_block(block: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    decode_block_into(block, &mut out).then_some(out)
}

/// Standard base64 (`A-Z a-z 0-9 + /`), whitespace ignored, `=` padding optional but only
/// at the end, into `out`.
fn decode_base64(text: &[u8], out: &mut Vec<u8>) -> bool {
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
    // Sized for the most the text can hold (whitespace makes it less), cut to size at the end.
    out.clear();
    out.resize(text.len() / 4 * 3 + 3, 0);
    let mut o = 0;
    let (mut acc, mut n, mut pad) = (0u32, 0u8, 0u8);
    let mut i = 0;
    while i < text.len() {
        // The common case first: eight base64 characters at a quantum's start (a PEM line
        // is 64 of them), decoded at once into six bytes.
        if n == 0 && pad == 0 {
            if let Some(chunk) = text.get(i..i + 8) {
                let mut word = 0u64;
                let mut all = 0u8;
                for &c in chunk {
                    let v = TABLE[usize::from(c)];
                    all |= v;
                    word = word << 6 | u64::from(v);
                }
                if all < 64 && o + 8 <= out.len() {
                    out[o..o + 8].copy_from_slice(&(word << 16).to_be_bytes());
                    o += 6;
                    i += 8;
                    continue;
                }
            }
        }
        let b = text[i];
        i += 1;
        match TABLE[usize::from(b)] {
            SKIP => {}
            PAD => pad += 1,
            BAD => return false,
            _ if pad > 0 => return false,
            v => {
                acc = acc << 6 | u32::from(v);
                n += 1;
                if n == 4 {
                    out[o..o + 3].copy_from_slice(&acc.to_be_bytes()[1..]);
                    o += 3;
                    (acc, n) = (0, 0);
                }
            }
        }
    }
    match (n, pad) {
        (0, 0) => {}
        (2, 0 | 2) => {
            out[o] = (acc >> 4) as u8;
            o += 1;
        }
        (3, 0 | 1) => {
            out[o..o + 2].copy_from_slice(&(acc >> 2).to_be_bytes()[2..]);
            o += 2;
        }
        _ => return false,
    }
    out.truncate(o);
    true
}

/// Where `needle` (which starts with `-`) first occurs in `hay`. PEM's base64 holds no `-`,
/// so the search skips through it without backing up.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = find_byte(&hay[from..], needle[0]) {
        let at = from + i;
        if hay[at..].starts_with(needle) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Where `byte` first occurs in `hay`, eight bytes at a time: a byte equal to it is a zero
/// byte of the word xor'd with it, which the classic test (`x - 0x01.. & !x & 0x80..`) finds.
/// Five times a byte-at-a-time search, on a system bundle.
fn find_byte(hay: &[u8], byte: u8) -> Option<usize> {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let spread = LOW * u64::from(byte);
    let mut at = 0;
    for word in hay.chunks_exact(8) {
        let x = u64::from_le_bytes(word.try_into().unwrap_or_default()) ^ spread;
        if x.wrapping_sub(LOW) & !x & HIGH != 0 {
            break;
        }
        at += 8;
    }
    hay[at..].iter().position(|&b| b == byte).map(|i| at + i)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A certificate's PEM text, lines of 64 characters (for other modules' tests).
    pub(crate) fn pem_of(der: &[u8]) -> String {
        format!(
            "-----BEGIN CERTIFICATE-----\r\n{}\r\n-----END CERTIFICATE-----\r\n",
            encode(der, 64)
        )
    }

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

    fn b64(text: &[u8]) -> Option<Vec<u8>> {
        let mut out = b"left over".to_vec();
        decode_base64(text, &mut out).then_some(out)
    }

    #[test]
    fn base64_decodes_what_it_should() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 37 % 251) as u8).collect();
        for len in 0..80 {
            for wrap in [4, 64, 76, 1000] {
                let text = encode(&data[..len], wrap);
                assert_eq!(
                    b64(text.as_bytes()).as_deref(),
                    Some(&data[..len]),
                    "{len} {wrap}"
                );
                // Without padding too.
                let bare = text.trim_end_matches('=');
                assert_eq!(b64(bare.as_bytes()).as_deref(), Some(&data[..len]));
            }
        }
        for bad in [
            "A", "AAAAA", "AB=C", "AB==C", "A===", "AB-C", "AB:C", "AAA\0",
        ] {
            assert_eq!(b64(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(b64(b" \tQUJD\n").as_deref(), Some(&b"ABC"[..]));
    }

    #[test]
    fn the_byte_search_finds_the_first_one_anywhere() {
        // Bytes around `-` (0x2d) and above 0x7f, which a word-at-a-time test could confuse.
        let filler = [0x2c, 0x2e, 0xad, 0xff, 0x00, 0x01, b'A', 0x2d ^ 0x80];
        for len in 0..40 {
            let hay: Vec<u8> = (0..len).map(|i| filler[i % filler.len()]).collect();
            assert_eq!(find_byte(&hay, b'-'), None, "{len}");
            for at in 0..len {
                let mut with = hay.clone();
                with[at] = b'-';
                if at + 3 < len {
                    with[at + 3] = b'-';
                }
                assert_eq!(find_byte(&with, b'-'), Some(at), "{len} {at}");
            }
        }
        assert_eq!(find(b"-- --- ----x", b"---x"), Some(8));
        assert_eq!(find(b"-- --- ---", b"----"), None);
    }

    #[test]
    fn blocks_are_found_whatever_surrounds_them() {
        let cert = |b: &str| format!("-----BEGIN CERTIFICATE-----\n{b}\n-----END CERTIFICATE-----");
        let text = format!(
            "junk - with dashes ---\n{}\n-----BEGIN PRIVATE KEY-----\nQUJD\n-----END PRIVATE KEY-----\n{}\ntrailer",
            cert("QUJD"),
            cert("REVG")
        );
        let blocks = streamed(text.as_bytes(), usize::MAX, None).unwrap();
        assert_eq!(
            blocks,
            [cert("QUJD").into_bytes(), cert("REVG").into_bytes()]
        );
        assert_eq!(decode_block(&blocks[0]).as_deref(), Some(&b"ABC"[..]));
        assert_eq!(decode_block(&blocks[1]).as_deref(), Some(&b"DEF"[..]));
        // A block that does not end is malformed; nothing at all is no block.
        let cut = streamed(b"-----BEGIN CERTIFICATE-----\nQUJD", usize::MAX, None);
        assert!(matches!(cut, Err(Scan::Malformed)));
        assert!(
            streamed(b"no pem here", usize::MAX, None)
                .unwrap()
                .is_empty()
        );
        assert!(streamed(b"", usize::MAX, None).unwrap().is_empty());
    }

    /// A reader that hands out at most `step` bytes a call, and is interrupted once.
    struct Trickle<'a> {
        text: &'a [u8],
        step: usize,
        interrupted: bool,
    }

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if !self.interrupted {
                self.interrupted = true;
                return Err(std::io::ErrorKind::Interrupted.into());
            }
            let n = self.step.min(buf.len()).min(self.text.len());
            buf[..n].copy_from_slice(&self.text[..n]);
            self.text = &self.text[n..];
            Ok(n)
        }
    }

    fn streamed(text: &[u8], step: usize, size: Option<u64>) -> Result<Vec<Vec<u8>>, Scan> {
        let mut source = Trickle {
            text,
            step,
            interrupted: false,
        };
        let mut blocks = Vec::new();
        let mut buf = Vec::new();
        for_each_block(&mut source, size, u64::MAX, &mut buf, |b| {
            blocks.push(b.to_vec());
            true
        })?;
        Ok(blocks)
    }

    #[test]
    fn blocks_are_found_however_the_reads_cut_the_text() {
        // Blocks around chunk boundaries, one longer than two chunks, text between them
        // with dashes, and markers cut anywhere by the reads.
        let long = "QUJD".repeat(CHUNK / 2 + 7);
        let blocks = [
            format!("{}\n{}\n{}", "-".repeat(5), "QUJD", "-- x"),
            long,
            "REVG".to_owned(),
        ];
        let mut text = String::from("junk - with dashes ---\n");
        for (i, b) in blocks.iter().enumerate() {
            let pad = "x".repeat(CHUNK - 40 + i * 13);
            text.push_str(&format!(
                "-----BEGIN CERTIFICATE-----\n{b}\n-----END CERTIFICATE-----\n{pad}"
            ));
        }
        let expected: Vec<Vec<u8>> = blocks
            .iter()
            .map(|b| format!("-----BEGIN CERTIFICATE-----\n{b}\n-----END CERTIFICATE-----"))
            .map(String::into_bytes)
            .collect();
        let size = Some(text.len() as u64);
        for step in [1, 7, 26, 27, 4096, CHUNK - 1, CHUNK, CHUNK + 1, usize::MAX] {
            if step == 1 {
                // A byte a call: the first kilobytes only (the first block), the rest is too
                // slow for a test.
                let cut = &text.as_bytes()[..2 * 1024];
                assert_eq!(streamed(cut, 1, None).unwrap(), expected[..1]);
                continue;
            }
            assert_eq!(
                streamed(text.as_bytes(), step, size).unwrap(),
                expected,
                "{step}"
            );
            assert_eq!(
                streamed(text.as_bytes(), step, None).unwrap(),
                expected,
                "{step}"
            );
        }
        // A block that does not end is malformed, however it is read.
        let cut = &text.as_bytes()[..text.find("REVG").unwrap()];
        for step in [27, CHUNK, usize::MAX] {
            assert!(matches!(streamed(cut, step, None), Err(Scan::Malformed)));
        }
        // A marker cut at the end of the text is no block.
        assert!(streamed(b"-----BEGIN CERTIF", 5, None).unwrap().is_empty());
        // Past the limit, reading stops.
        let mut buf = Vec::new();
        let r = for_each_block(&mut text.as_bytes(), None, 1000, &mut buf, |_| true);
        assert!(matches!(r, Err(Scan::TooLarge)));
    }

    /// The system's bundle, where there is one, decodes exactly as rustls-pki-types decodes it.
    #[test]
    fn a_system_bundle_decodes_as_pki_types_decodes_it() {
        let Ok(pem) = std::fs::read("/etc/ssl/certs/ca-certificates.crt") else {
            return;
        };
        let ours: Vec<Vec<u8>> = streamed(&pem, CHUNK, Some(pem.len() as u64))
            .unwrap()
            .iter()
            .map(|b| decode_block(b).unwrap())
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
