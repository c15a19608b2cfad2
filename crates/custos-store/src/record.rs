//! The stored form of a record: each field encrypted on its own, packed as
//! `u32 name length, name, u32 envelope length, envelope` repeated.
//! Field names stay in clear (they are schema, not data); values do not.

use custos_core::CoreError;

/// Packs (field name, envelope) pairs.
pub(crate) fn pack(fields: &[(String, Vec<u8>)]) -> Vec<u8> {
    let cap = fields.iter().map(|(n, c)| 8 + n.len() + c.len()).sum();
    let mut out = Vec::with_capacity(cap);
    for (name, ct) in fields {
        out.extend_from_slice(&(name.len() as u32).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(ct.len() as u32).to_be_bytes());
        out.extend_from_slice(ct);
    }
    out
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], CoreError> {
    if buf.len() < n {
        return Err(CoreError::MalformedEnvelope);
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

fn take_len(buf: &mut &[u8]) -> Result<usize, CoreError> {
    let b = take(buf, 4)?;
    let arr: [u8; 4] = b.try_into().map_err(|_| CoreError::MalformedEnvelope)?;
    Ok(u32::from_be_bytes(arr) as usize)
}

/// Unpacks what [`pack`] produced; rejects truncated or corrupt input.
pub(crate) fn unpack(mut buf: &[u8]) -> Result<Vec<(String, &[u8])>, CoreError> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let n = take_len(&mut buf)?;
        let name =
            std::str::from_utf8(take(&mut buf, n)?).map_err(|_| CoreError::MalformedEnvelope)?;
        let m = take_len(&mut buf)?;
        let ct = take(&mut buf, m)?;
        out.push((name.to_owned(), ct));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let f = vec![
            ("name".to_string(), vec![1, 2, 3]),
            ("email".to_string(), vec![]),
        ];
        let p = pack(&f);
        let u = unpack(&p).unwrap();
        assert_eq!(u.len(), 2);
        assert_eq!(u[0].0, "name");
        assert_eq!(u[0].1, &[1, 2, 3]);
        for cut in 1..p.len() {
            let _ = unpack(&p[..cut]);
        }
        assert!(unpack(&p[..5]).is_err());
    }
}
