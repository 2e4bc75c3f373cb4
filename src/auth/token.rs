//! The compact JWS form, parsed strictly and without allocation beyond the header's JSON.
//!
//! Pure functions: no keys, no time, no I/O. The order of checks is deliberate: size first (nothing
//! is decoded past 8 KB), then shape, then the header — the payload is only parsed after its
//! signature has verified (see `verify.rs`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use super::Reason;
use super::json;

/// The default and recommended maximum token length in bytes.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The three segments of a compact JWS.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Compact<'a> {
    pub(crate) header: &'a str,
    pub(crate) payload: &'a str,
    pub(crate) signature: &'a str,
    /// `header.payload`: the bytes the signature covers.
    pub(crate) signing_input: &'a str,
}

fn is_b64url(segment: &str) -> bool {
    // A table lookup per byte: this runs over every byte of every token that is verified.
    const ALPHABET: [bool; 256] = {
        let mut t = [false; 256];
        let mut b = 0;
        while b < 256 {
            let c = b as u8;
            t[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
            b += 1;
        }
        t
    };
    segment.bytes().all(|b| ALPHABET[usize::from(b)])
}

/// Splits a compact token into its segments, refusing anything but `b64url.b64url.b64url`.
pub(crate) fn split(token: &str, max_bytes: usize) -> Result<Compact<'_>, Reason> {
    if token.len() > max_bytes {
        return Err(Reason::TooLarge);
    }
    let mut parts = token.splitn(4, '.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Reason::Malformed);
    };
    if header.is_empty() || payload.is_empty() || signature.is_empty() {
        return Err(Reason::Malformed);
    }
    if !(is_b64url(header) && is_b64url(payload) && is_b64url(signature)) {
        return Err(Reason::Malformed);
    }
    let signing_input = &token[..header.len() + 1 + payload.len()];
    Ok(Compact {
        header,
        payload,
        signature,
        signing_input,
    })
}

/// Decodes one base64url segment (no padding, canonical trailing bits).
pub(crate) fn decode_segment(segment: &str) -> Result<Vec<u8>, Reason> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| Reason::Malformed)
}

/// Decodes a segment into a caller's buffer, returning the used prefix (signatures: no allocation).
pub(crate) fn decode_segment_into<'b>(
    segment: &str,
    buf: &'b mut [u8],
) -> Result<&'b [u8], Reason> {
    let n = URL_SAFE_NO_PAD
        .decode_slice(segment, buf)
        .map_err(|_| Reason::Malformed)?;
    Ok(&buf[..n])
}

/// The parts of a JOSE header this crate acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<String>,
    pub(crate) typ: Option<String>,
}

/// Parses an algorithm name exactly as RFC 7518 spells it. `none` in any case, and every name this
/// crate does not verify, is refused.
pub(crate) fn parse_alg(name: &str) -> Option<Algorithm> {
    Some(match name {
        "HS256" => Algorithm::HS256,
        "HS384" => Algorithm::HS384,
        "HS512" => Algorithm::HS512,
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

/// Decodes and checks the JOSE header (RFC 7515 §4).
///
/// `jku`, `x5u`, `jwk` and `x5c` are ignored: keys come only from the configuration, never from
/// the token that is to be verified with them.
pub(crate) fn parse_header(segment: &str) -> Result<Header, Reason> {
    let bytes = decode_segment(segment)?;
    let map = json::parse_object(&bytes).ok_or(Reason::Malformed)?;
    header_from_map(&map)
}

fn header_from_map(map: &Map<String, Value>) -> Result<Header, Reason> {
    let alg = match map.get("alg") {
        Some(Value::String(name)) => parse_alg(name).ok_or(Reason::UnsupportedAlgorithm)?,
        Some(_) => return Err(Reason::Malformed),
        None => return Err(Reason::UnsupportedAlgorithm),
    };
    // RFC 7515 §4.1.11: a recipient MUST reject a token whose `crit` names an extension it does
    // not understand; this crate understands none. `crit` of the wrong shape is malformed.
    if let Some(crit) = map.get("crit") {
        return Err(match crit {
            Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_string) => {
                Reason::CriticalExtension
            }
            _ => Reason::Malformed,
        });
    }
    let kid = optional_string(map, "kid")?;
    let typ = optional_string(map, "typ")?;
    Ok(Header { alg, kid, typ })
}

fn optional_string(map: &Map<String, Value>, name: &str) -> Result<Option<String>, Reason> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Reason::Malformed),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn split_accepts_only_three_b64url_segments() {
        let c = split("a.b.c", 100).unwrap();
        assert_eq!(
            (c.header, c.payload, c.signature, c.signing_input),
            ("a", "b", "c", "a.b")
        );
        for bad in [
            "", "a", "a.b", "a.b.c.d", "a..c", ".b.c", "a.b.", "a.b.c=", "a+b.c.d", "a.b/c.d",
            "a b.c.d", "a.b.c\n",
        ] {
            assert_eq!(split(bad, 100).err(), Some(Reason::Malformed), "{bad:?}");
        }
        assert_eq!(split("a.b.c", 4).err(), Some(Reason::TooLarge));
    }

    #[test]
    fn signing_input_is_header_dot_payload() {
        let c = split("hh.pp.ss", 100).unwrap();
        assert_eq!(c.signing_input, "hh.pp");
        assert_eq!(c.signature, "ss");
    }

    #[test]
    fn alg_none_in_any_case_is_unsupported() {
        for alg in [
            "none", "None", "NONE", "nOnE", "", "hs256", "HS257", "ES512",
        ] {
            let h = b64(&format!(r#"{{"alg":"{alg}"}}"#));
            assert_eq!(parse_header(&h), Err(Reason::UnsupportedAlgorithm), "{alg}");
        }
        assert_eq!(
            parse_header(&b64(r#"{"typ":"JWT"}"#)),
            Err(Reason::UnsupportedAlgorithm)
        );
        assert_eq!(parse_header(&b64(r#"{"alg":256}"#)), Err(Reason::Malformed));
    }

    #[test]
    fn crit_is_refused() {
        let h = b64(r#"{"alg":"HS256","crit":["exp"],"exp":1}"#);
        assert_eq!(parse_header(&h), Err(Reason::CriticalExtension));
        let h = b64(r#"{"alg":"HS256","crit":[]}"#);
        assert_eq!(parse_header(&h), Err(Reason::Malformed));
    }

    #[test]
    fn header_fields_are_typed_and_unique() {
        let h = b64(r#"{"alg":"RS256","kid":"k1","typ":"JWT","jku":"https://evil"}"#);
        let header = parse_header(&h).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.kid.as_deref(), Some("k1"));
        assert_eq!(
            parse_header(&b64(r#"{"alg":"RS256","kid":7}"#)),
            Err(Reason::Malformed)
        );
        assert_eq!(
            parse_header(&b64(r#"{"alg":"none","alg":"RS256"}"#)),
            Err(Reason::Malformed)
        );
    }

    #[test]
    fn padded_or_non_canonical_base64_is_malformed() {
        // "QQ" is canonical for "A"; "QR" has non-zero trailing bits.
        assert_eq!(decode_segment("QQ"), Ok(b"A".to_vec()));
        assert_eq!(decode_segment("QR"), Err(Reason::Malformed));
        assert_eq!(decode_segment("QQ=="), Err(Reason::Malformed));
    }
}
