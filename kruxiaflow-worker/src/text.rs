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

/// `url` with the password of its user part (`https://user:pass@host`) replaced, so
/// that no log line or error shows it.
pub(crate) fn redact_url(url: &str) -> Cow<'_, str> {
    if !url.contains('@') {
        return Cow::Borrowed(url);
    }
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("redacted"));
            Cow::Owned(parsed.into())
        }
        Ok(_) => Cow::Borrowed(url),
        // Not a URL: whatever stands before the last '@' may be a password.
        Err(_) => Cow::Owned(format!("(redacted)@{}", url.rsplit('@').next().unwrap_or_default())),
    }
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
    fn a_password_in_a_url_is_redacted_and_the_rest_is_kept() {
        assert_eq!(redact_url("https://flow.example:8443/kruxia"), "https://flow.example:8443/kruxia");
        assert_eq!(
            redact_url("https://me:s3cr3t@flow.example/api/v1/workers/poll"),
            "https://me:redacted@flow.example/api/v1/workers/poll"
        );
        assert_eq!(redact_url("https://me@flow.example/"), "https://me@flow.example/");
        assert_eq!(redact_url("http://me:s3cr3t@exa mple.com"), "(redacted)@exa mple.com");
    }

    #[test]
    fn control_characters_are_escaped_and_the_rest_is_kept() {
        assert_eq!(escape_controls("plain \"name\" é"), "plain \"name\" é");
        assert_eq!(escape_controls("a\nINFO forged\x1b[31m"), "a\\nINFO forged\\u{1b}[31m");
        assert_eq!(Escaped("x\r\ty").to_string(), "x\\r\\ty");
    }
}
