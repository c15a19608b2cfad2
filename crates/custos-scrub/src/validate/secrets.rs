//! Secrets: JWTs (three base64url parts, a JSON header), `Bearer` and
//! `Basic` credentials (the token after the scheme word is replaced) and
//! passwords in `user:password@` URLs.

use base64::Engine as _;

/// Base64url as JWTs use it (padding optional).
const JWT_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

pub(super) fn jwt(span: &[u8]) -> bool {
    const MAX_HEADER: usize = 2048;
    let Some(header) = span.split(|&b| b == b'.').next() else {
        return false;
    };
    if header.len() > MAX_HEADER {
        return false;
    }
    let mut buf = [0u8; MAX_HEADER / 4 * 3];
    let Some(decoded) = JWT_BASE64
        .decode_slice(header, &mut buf)
        .ok()
        .and_then(|n| buf.get(..n))
    else {
        return false;
    };
    decoded.first() == Some(&b'{')
        && decoded
            .windows(5)
            .any(|w| w == b"\"alg\"" || w == b"\"typ\"")
}

/// Skips the scheme word and blanks; the token is what gets replaced.
fn token_after_word(span: &[u8]) -> Option<(usize, usize)> {
    let word_end = span.iter().position(|b| *b == b' ' || *b == b'\t')?;
    let rest = span.get(word_end..)?;
    let tok = word_end + rest.iter().position(|b| *b != b' ' && *b != b'\t')?;
    Some((tok, span.len()))
}

pub(super) fn bearer(span: &[u8]) -> Option<(usize, usize)> {
    let (s, e) = token_after_word(span)?;
    let token = span.get(s..e)?;
    // "bearer instruments" is prose; tokens carry digits or symbols.
    let techy = token
        .iter()
        .any(|b| b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'='));
    let mixed =
        token.iter().any(u8::is_ascii_uppercase) && token.iter().any(u8::is_ascii_lowercase);
    (techy || (mixed && token.len() >= 16)).then_some((s, e))
}

pub(super) fn basic(span: &[u8]) -> Option<(usize, usize)> {
    let (s, e) = token_after_word(span)?;
    let token = span.get(s..e)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()?;
    decoded.contains(&b':').then_some((s, e))
}

pub(super) fn url_credentials(span: &[u8]) -> Option<(usize, usize)> {
    let s = memchr::memmem::find(span, b"://")? + 3;
    let e = memchr::memrchr(b'@', span)?;
    let userinfo = span.get(s..e)?;
    let colon = memchr::memchr(b':', userinfo)?;
    let (user, pass) = (userinfo.get(..colon)?, userinfo.get(colon + 1..)?);
    // `url_credentials:1a2b3c4d@` is our own pseudonym, not a password.
    if pass.is_empty() || user == b"url_credentials" {
        return None;
    }
    Some((s, e))
}
