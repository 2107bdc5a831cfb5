//! Byte strings (paths, command lines, comm) as the store shows them: valid UTF-8 stays readable,
//! everything else is escaped losslessly (`\\`, `\n`, `\t`, `\xNN`), in text and in JSON alike.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// Raw bytes that print and serialize escaped. The escaping is reversible ([`unescape`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ByteText(pub Vec<u8>);

impl ByteText {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl From<&[u8]> for ByteText {
    fn from(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }
}

impl From<Vec<u8>> for ByteText {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl fmt::Display for ByteText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape(&self.0))
    }
}

impl Serialize for ByteText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&escape(&self.0))
    }
}

impl<'de> Deserialize<'de> for ByteText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        unescape(&text).map(ByteText).map_err(de::Error::custom)
    }
}

/// Escapes bytes: printable UTF-8 is kept, `\` doubles, control characters and invalid UTF-8
/// become `\n`, `\t`, `\r` or `\xNN`. NUL separators in command lines therefore show as `\x00`.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for character in chunk.valid().chars() {
            match character {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c.is_control() => {
                    let mut buffer = [0u8; 4];
                    for byte in c.encode_utf8(&mut buffer).bytes() {
                        out.push_str(&format!("\\x{byte:02x}"));
                    }
                }
                c => out.push(c),
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// Reverses [`escape`].
pub fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some(position) = rest.find('\\') {
        out.extend_from_slice(&rest.as_bytes()[..position]);
        let escaped = &rest[position + 1..];
        let (byte, consumed) = match escaped.as_bytes().first() {
            Some(b'\\') => (b'\\', 1),
            Some(b'n') => (b'\n', 1),
            Some(b't') => (b'\t', 1),
            Some(b'r') => (b'\r', 1),
            Some(b'x') => {
                let hex = escaped
                    .get(1..3)
                    .ok_or_else(|| format!("truncated \\x escape in {text:?}"))?;
                let byte = u8::from_str_radix(hex, 16)
                    .map_err(|_| format!("bad \\x escape {hex:?} in {text:?}"))?;
                (byte, 3)
            }
            _ => return Err(format!("unknown escape in {text:?}")),
        };
        out.push(byte);
        rest = &escaped[consumed..];
    }
    out.extend_from_slice(rest.as_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_hostile_bytes_reversibly() {
        let hostile = b"/usr/bin/a\\b\nc\td\xff\xfe\x00\x1b[31m\xc3\xa9".to_vec();
        let text = escape(&hostile);
        assert_eq!(text, "/usr/bin/a\\\\b\\nc\\td\\xff\\xfe\\x00\\x1b[31mé");
        assert!(!text.chars().any(char::is_control));
        assert_eq!(unescape(&text).unwrap(), hostile);
    }

    #[test]
    fn json_round_trip() {
        let value = ByteText(b"x\xffy".to_vec());
        let json = serde_json::to_string(&value).unwrap();
        assert_eq!(json, r#""x\\xffy""#);
        assert_eq!(serde_json::from_str::<ByteText>(&json).unwrap(), value);
    }
}
