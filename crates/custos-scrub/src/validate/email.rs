//! E-mail addresses: the automaton finds the shape; this check refuses what
//! only looks like an address (`logo@2x.png`: a file extension where the
//! top-level domain should be).

/// Top-level labels that are really file extensions (`logo@2x.png`).
const FILE_TLDS: [&[u8]; 14] = [
    b"png", b"jpg", b"jpeg", b"gif", b"svg", b"webp", b"ico", b"css", b"js", b"map", b"json",
    b"txt", b"log", b"ts",
];

/// [`FILE_TLDS`] as words: the bytes little-endian, zero-padded, and the
/// length above them.
#[allow(clippy::indexing_slicing)] // Evaluated at compile time: a bad index fails the build.
const FILE_TLD_WORDS: [u64; FILE_TLDS.len()] = {
    let mut words = [0u64; FILE_TLDS.len()];
    let mut i = 0;
    while i < FILE_TLDS.len() {
        let tld = FILE_TLDS[i];
        let mut bytes = [0u8; 4];
        let mut j = 0;
        while j < tld.len() {
            bytes[j] = tld[j];
            j += 1;
        }
        words[i] = u32::from_le_bytes(bytes) as u64 | (tld.len() as u64) << 32;
        i += 1;
    }
    words
};

/// Whether `tld` is one of [`FILE_TLDS`], in any case: its lower-cased
/// word among [`FILE_TLD_WORDS`] (a dozen compares of a register instead
/// of a dozen slice compares; every candidate address runs this).
fn file_tld(tld: &[u8]) -> bool {
    let mut bytes = [0u8; 4];
    if tld.len() > bytes.len() {
        return false;
    }
    for (slot, b) in bytes.iter_mut().zip(tld) {
        *slot = b.to_ascii_lowercase();
    }
    let word = u64::from(u32::from_le_bytes(bytes)) | (tld.len() as u64) << 32;
    FILE_TLD_WORDS.contains(&word)
}

pub(super) fn email(span: &[u8]) -> bool {
    let Some(at) = memchr::memrchr(b'@', span) else {
        return false;
    };
    let (Some(local), Some(domain)) = (span.get(..at), span.get(at + 1..)) else {
        return false;
    };
    if local.is_empty() || local.len() > 64 || domain.len() > 253 {
        return false;
    }
    // ASCII (most addresses) is UTF-8; the word-wise test is cheaper.
    if !span.is_ascii() && std::str::from_utf8(span).is_err() {
        return false;
    }
    let quoted = local.first() == Some(&b'"');
    if !quoted
        && (local.first() == Some(&b'.')
            || local.last() == Some(&b'.')
            || local.windows(2).any(|w| w == b".."))
    {
        return false;
    }
    if quoted && !local.iter().any(u8::is_ascii_alphanumeric) {
        return false;
    }
    let mut labels = domain.split(|&b| b == b'.').peekable();
    let mut tld: &[u8] = &[];
    let mut count = 0;
    while let Some(label) = labels.next() {
        count += 1;
        if label.is_empty()
            || label.len() > 63
            || label.first() == Some(&b'-')
            || label.last() == Some(&b'-')
        {
            return false;
        }
        if labels.peek().is_none() {
            tld = label;
        }
    }
    if count < 2 || tld.len() < 2 {
        return false;
    }
    let ascii_tld = tld.iter().all(u8::is_ascii);
    if ascii_tld {
        let alpha = tld.iter().all(u8::is_ascii_alphabetic);
        let puny = tld
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"xn--"));
        (alpha || puny) && !file_tld(tld)
    } else {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::text;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

        #[test]
        fn file_tlds_in_any_case(t in text(b"jJsSpPnNgGtTxXlLoO.\0", 6)) {
            let expect = FILE_TLDS.iter().any(|f| f.eq_ignore_ascii_case(&t));
            proptest::prop_assert_eq!(file_tld(&t), expect);
        }
    }
}
