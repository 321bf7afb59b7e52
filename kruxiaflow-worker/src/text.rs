//! Making text that came from the network safe to print.

use std::borrow::Cow;
use std::fmt;

/// `s` with control characters (newlines, ANSI escapes, ...) written as escapes, so
/// that a string chosen by a server cannot forge log lines or colour a terminal.
/// Quotes and non-ASCII letters stay as they are.
pub(crate) fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut escaped = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

/// Displays a string from the server with its control characters escaped.
pub(crate) struct Escaped<'a>(pub(crate) &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape_controls(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_is_kept() {
        assert_eq!(escape_controls("plain \"name\" é"), "plain \"name\" é");
        assert_eq!(escape_controls("a\nINFO forged\x1b[31m"), "a\\nINFO forged\\u{1b}[31m");
        assert_eq!(Escaped("x\r\ty").to_string(), "x\\r\\ty");
    }
}
