//! Input rules, as pure functions so they are tested on their own.

/// The longest message text, in characters.
pub const MAX_TEXT_CHARS: usize = 4000;
/// The longest user name, in characters.
pub const MAX_USER_NAME_CHARS: usize = 32;
/// The longest room name, in characters.
pub const MAX_ROOM_NAME_CHARS: usize = 80;

/// A rule an input broke: the API's error `code` and a message saying what to fix.
#[derive(Debug, PartialEq, Eq)]
pub struct Invalid {
    pub code: &'static str,
    pub message: String,
}

fn invalid(code: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        code,
        message: message.into(),
    }
}

/// A message text: not blank, at most [`MAX_TEXT_CHARS`] characters. Kept as written (no trimming).
pub fn message_text(text: &str) -> Result<&str, Invalid> {
    if text.trim().is_empty() {
        return Err(invalid("empty_text", "text must not be empty"));
    }
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(invalid(
            "text_too_long",
            format!("text has {chars} characters; the limit is {MAX_TEXT_CHARS}"),
        ));
    }
    Ok(text)
}

/// A user or room name: trimmed, not empty, at most `max` characters, no control characters.
pub fn name<'a>(field: &str, raw: &'a str, max: usize) -> Result<&'a str, Invalid> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(invalid(
            "invalid_name",
            format!("{field} must not be empty"),
        ));
    }
    if name.chars().count() > max {
        return Err(invalid(
            "invalid_name",
            format!("{field} must be at most {max} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid(
            "invalid_name",
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(name)
}

/// A reaction: exactly one emoji from the Unicode emoji list (skin tones and ZWJ sequences included).
pub fn emoji(raw: &str) -> Result<&'static str, Invalid> {
    emojis::get(raw).map(|e| e.as_str()).ok_or_else(|| {
        invalid(
            "invalid_emoji",
            format!(
                "{:?} is not a single emoji",
                raw.chars().take(16).collect::<String>()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_text_must_not_be_blank() {
        assert_eq!(message_text("").unwrap_err().code, "empty_text");
        assert_eq!(message_text(" \n\t").unwrap_err().code, "empty_text");
        assert_eq!(message_text(" hi "), Ok(" hi "));
    }

    #[test]
    fn message_text_is_limited_in_characters_not_bytes() {
        assert!(message_text(&"é".repeat(MAX_TEXT_CHARS)).is_ok());
        let too_long = "a".repeat(MAX_TEXT_CHARS + 1);
        assert_eq!(message_text(&too_long).unwrap_err().code, "text_too_long");
    }

    #[test]
    fn names_are_trimmed_and_checked() {
        assert_eq!(name("name", "  alice ", 32), Ok("alice"));
        assert!(name("name", "   ", 32).is_err());
        assert!(name("name", &"x".repeat(33), 32).is_err());
        assert!(name("name", "a\u{7}b", 32).is_err());
    }

    #[test]
    fn only_single_emojis_are_reactions() {
        assert_eq!(emoji("👍"), Ok("👍"));
        assert!(emoji("👍🏽").is_ok());
        assert!(emoji("❤️").is_ok());
        for bad in ["", "a", "thumbsup", "👍👍", ":+1:", "<script>"] {
            assert!(emoji(bad).is_err(), "{bad:?} accepted");
        }
    }
}
