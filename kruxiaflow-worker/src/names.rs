//! The rules for the names the protocol carries: worker types, activity names, file
//! names' parts and error codes.

/// `^[A-Za-z0-9_-]{1,255}$`: the rule for worker types and activity names.
pub(crate) fn is_identifier(s: &str) -> bool {
    (1..=255).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether `code` is an error code: 1 to 128 letters, digits, `_`, `.`, `:`, `/` or
/// `-` (`BAD_INPUT`, `openai:rate_limited`), not a sentence.
pub(crate) fn is_code(code: &str) -> bool {
    (1..=128).contains(&code.len())
        && code.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'/' | b'-'))
}
