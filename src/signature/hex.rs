//! Lowercase hex encoding, allocation-light for the signing hot path, and
//! strict fixed-length decoding.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Appends the lowercase hex form of `bytes` to `out`.
pub fn encode_into(bytes: &[u8], out: &mut String) {
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
}

/// The lowercase hex form of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    encode_into(bytes, &mut out);
    out
}

/// Decodes exactly `2 * N` hex characters (either case) into `N` bytes;
/// `None` for any other length or a non-hex character.
pub fn decode_array<const N: usize>(hex: &str) -> Option<[u8; N]> {
    let raw = hex.as_bytes();
    if raw.len() != 2 * N {
        return None;
    }
    let mut bytes = [0u8; N];
    for (out, pair) in bytes.iter_mut().zip(raw.chunks_exact(2)) {
        *out = (digit_value(pair[0])? << 4) | digit_value(pair[1])?;
    }
    Some(bytes)
}

fn digit_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{decode_array, encode};

    #[test]
    fn decodes_either_case() {
        assert_eq!(decode_array::<2>("0aFf"), Some([0x0a, 0xff]));
        assert_eq!(decode_array::<2>("0AfF"), Some([0x0a, 0xff]));
    }

    #[test]
    fn refuses_wrong_length_and_non_hex() {
        assert_eq!(decode_array::<2>("0af"), None);
        assert_eq!(decode_array::<2>("0aff0"), None);
        assert_eq!(decode_array::<2>(""), None);
        assert_eq!(decode_array::<2>("0g00"), None);
        assert_eq!(decode_array::<2>("é00"), None);
        assert_eq!(decode_array::<0>(""), Some([]));
    }

    #[test]
    fn encodes_lowercase() {
        assert_eq!(encode(&[0x00, 0x0a, 0xff]), "000aff");
    }
}
