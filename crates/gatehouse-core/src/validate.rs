//! Validation of what users type: emails, usernames, profile fields, metadata.

use serde_json::Value;

use crate::Error;

/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 100;
/// Longest avatar URL, in bytes.
pub const MAX_AVATAR_URL_BYTES: usize = 2048;
/// Largest user metadata object, serialized, in bytes.
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
/// Deepest nesting of user metadata.
pub const MAX_METADATA_DEPTH: usize = 8;

/// Trims an email and checks its shape: RFC 5321 lengths (local part ≤ 64 bytes, whole ≤
/// 254), exactly one `@`, a dot-atom local part, a domain of at least two labels of letters,
/// digits and hyphens, no control characters or spaces. Returns it trimmed, case kept.
pub fn email(raw: &str) -> Result<String, Error> {
    let email = raw.trim();
    let bad = |reason: &str| Error::invalid("email", reason);
    if email.is_empty() {
        return Err(bad("is required"));
    }
    if email.len() > 254 {
        return Err(bad("is longer than 254 bytes"));
    }
    if email.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad("contains spaces or control characters"));
    }
    let mut parts = email.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("must contain exactly one @"));
    };
    if local.is_empty() || local.len() > 64 {
        return Err(bad("the part before @ must be 1 to 64 bytes"));
    }
    let atext = |c: char| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
    if local
        .split('.')
        .any(|atom| atom.is_empty() || !atom.chars().all(atext))
    {
        return Err(bad("the part before @ is not a valid address"));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    if domain.len() > 253 || labels.len() < 2 || !labels.iter().all(label_ok) {
        return Err(bad("the domain is not valid"));
    }
    if labels
        .last()
        .is_some_and(|tld| tld.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(bad("the domain is not valid"));
    }
    Ok(email.to_owned())
}

/// `^[A-Za-z0-9_.-]{3,32}$`.
pub fn username(raw: &str) -> Result<String, Error> {
    let ok = (3..=32).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(Error::invalid(
            "username",
            "must be 3 to 32 of the characters A-Z a-z 0-9 _ . -",
        ))
    }
}

/// Trimmed, at most 100 characters, no control characters; empty means none.
pub fn display_name(raw: &str) -> Result<Option<String>, Error> {
    let name = raw.trim();
    if name.chars().count() > MAX_DISPLAY_NAME_CHARS {
        return Err(Error::invalid(
            "displayName",
            "must be at most 100 characters",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid("displayName", "contains control characters"));
    }
    Ok((!name.is_empty()).then(|| name.to_owned()))
}

/// An absolute http(s) URL of at most 2048 bytes; empty means none.
pub fn avatar_url(raw: &str) -> Result<Option<String>, Error> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let bad = || {
        Error::invalid(
            "avatarUrl",
            "must be an http:// or https:// URL of at most 2048 bytes",
        )
    };
    if raw.len() > MAX_AVATAR_URL_BYTES {
        return Err(bad());
    }
    let url = url::Url::parse(raw).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad());
    }
    Ok(Some(url.to_string()))
}

/// Whether metadata is over the bounds of [`metadata`] in size (16 KiB) or depth (8), as
/// opposed to malformed: an import reports the two apart.
pub fn metadata_too_large(value: &Value) -> bool {
    value.to_string().len() > MAX_METADATA_BYTES || depth(value) > MAX_METADATA_DEPTH
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// A JSON object of at most 16 KiB serialized and 8 levels deep, with no NUL character
/// anywhere (Postgres cannot store one in `jsonb`).
pub fn user_metadata(value: &Value) -> Result<(), Error> {
    metadata("userMetadata", value)
}

/// [`user_metadata`]'s rules, for a field of any name.
pub fn metadata(field: &'static str, value: &Value) -> Result<(), Error> {
    if !value.is_object() {
        return Err(Error::invalid(field, "must be a JSON object"));
    }
    if value.to_string().len() > MAX_METADATA_BYTES {
        return Err(Error::invalid(field, "must be at most 16 KiB"));
    }
    if depth(value) > MAX_METADATA_DEPTH {
        return Err(Error::invalid(field, "must be at most 8 levels deep"));
    }
    fn has_nul(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            Value::Array(items) => items.iter().any(has_nul),
            _ => false,
        }
    }
    if has_nul(value) {
        return Err(Error::invalid(field, "must not contain NUL characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_emails_are_trimmed_and_keep_their_case() {
        assert_eq!(
            email("  Ada.Lovelace+test@Example.COM ").unwrap(),
            "Ada.Lovelace+test@Example.COM"
        );
        assert!(email("o'brien@mail.example.co.uk").is_ok());
        assert!(email("jürgen@bücher.de").is_ok());
    }

    #[test]
    fn bad_emails_are_refused() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long_total = format!("a@{}.com", "b".repeat(250));
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@@example.com",
            "a@b@example.com",
            "ada@example",
            "ada@-example.com",
            "ada@example..com",
            ".ada@example.com",
            "ada.@example.com",
            "a..da@example.com",
            "ada lovelace@example.com",
            "ada@exa mple.com",
            "ada\u{0}@example.com",
            "ada\r\n@example.com",
            "\"ada\"@example.com",
            "ada@example.123",
            &long_local,
            &long_total,
        ] {
            assert!(email(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn usernames_follow_the_pattern() {
        assert!(username("ada_lovelace.1815-x").is_ok());
        for bad in ["ad", &"a".repeat(33), "ada lovelace", "ada@home", "adä", ""] {
            assert!(username(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn metadata_is_bounded_in_size_and_depth() {
        assert!(user_metadata(&serde_json::json!({"theme": "dark"})).is_ok());
        assert!(user_metadata(&serde_json::json!([1])).is_err());
        assert!(user_metadata(&serde_json::json!({"x": "a".repeat(17 * 1024)})).is_err());
        let deep = (0..9).fold(serde_json::json!(1), |v, _| serde_json::json!({ "k": v }));
        assert!(user_metadata(&deep).is_err());
        assert!(user_metadata(&serde_json::json!({"a": "x\u{0}y"})).is_err());
        assert!(user_metadata(&serde_json::json!({"a\u{0}": 1})).is_err());
    }
}
