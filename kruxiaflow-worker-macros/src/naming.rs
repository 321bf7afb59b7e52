//! Activity names: the default from a type name, and the rule they must follow.

/// `TextProcessor` → `text_processor`, `HTTPFetch` → `http_fetch`.
pub(crate) fn snake_case(ident: &str) -> String {
    let chars: Vec<char> = ident.chars().collect();
    let mut out = String::with_capacity(ident.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev_lower = i > 0 && (chars[i - 1].is_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let prev_upper = i > 0 && chars[i - 1].is_uppercase();
            if i > 0 && (prev_lower || (prev_upper && next_lower)) && !out.ends_with('_') {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `^[A-Za-z0-9_-]{1,255}$`, the rule the worker and the server share.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if (1..=255).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        return Ok(());
    }
    Err(format!("activity name {name:?} is invalid: use 1 to 255 letters, digits, '_' or '-'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_become_snake_case() {
        assert_eq!(snake_case("TextProcessor"), "text_processor");
        assert_eq!(snake_case("HTTPFetch"), "http_fetch");
        assert_eq!(snake_case("Batch2Processor"), "batch2_processor");
        assert_eq!(snake_case("Echo"), "echo");
    }

    #[test]
    fn names_follow_the_identifier_rule() {
        assert!(check_name("process_text-2").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("has space").is_err());
        assert!(check_name(&"a".repeat(256)).is_err());
    }
}
