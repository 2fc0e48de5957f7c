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

/// The longest slow-mode interval, in seconds (one hour).
pub const MAX_SLOW_MODE_SECS: i64 = 3600;
/// The longest timed ban, in seconds (one year); longer is a ban until lifted (`null`).
pub const MAX_BAN_SECS: i64 = 365 * 24 * 3600;
/// The longest ban reason, in characters.
pub const MAX_REASON_CHARS: usize = 200;

/// A room's slow mode: 0 (off) to [`MAX_SLOW_MODE_SECS`] seconds.
pub fn slow_mode_secs(secs: i64) -> Result<u32, Invalid> {
    u32::try_from(secs)
        .ok()
        .filter(|&s| i64::from(s) <= MAX_SLOW_MODE_SECS)
        .ok_or_else(|| {
            invalid(
                "invalid_slow_mode",
                format!("slow_mode_secs must be a whole number from 0 to {MAX_SLOW_MODE_SECS}"),
            )
        })
}

/// A ban's length: `None` (until lifted) or 1 to [`MAX_BAN_SECS`] seconds.
pub fn ban_secs(secs: Option<i64>) -> Result<Option<u32>, Invalid> {
    secs.map(|secs| {
        u32::try_from(secs)
            .ok()
            .filter(|&s| s >= 1 && i64::from(s) <= MAX_BAN_SECS)
            .ok_or_else(|| {
                invalid(
                    "invalid_ban",
                    format!("seconds must be null (until lifted) or from 1 to {MAX_BAN_SECS}"),
                )
            })
    })
    .transpose()
}

/// A ban's reason: trimmed, at most [`MAX_REASON_CHARS`] characters, no control characters; may
/// be empty.
pub fn reason(raw: &str) -> Result<&str, Invalid> {
    let reason = raw.trim();
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(invalid(
            "invalid_ban",
            format!("reason must be at most {MAX_REASON_CHARS} characters"),
        ));
    }
    if reason.chars().any(char::is_control) {
        return Err(invalid(
            "invalid_ban",
            "reason must not contain control characters",
        ));
    }
    Ok(reason)
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
    fn slow_mode_is_zero_to_an_hour() {
        assert_eq!(slow_mode_secs(0), Ok(0));
        assert_eq!(slow_mode_secs(3600), Ok(3600));
        for bad in [-1, 3601, i64::from(u32::MAX) + 1, i64::MIN] {
            assert_eq!(slow_mode_secs(bad).unwrap_err().code, "invalid_slow_mode");
        }
    }

    #[test]
    fn a_ban_lasts_from_a_second_to_a_year_or_until_lifted() {
        assert_eq!(ban_secs(None), Ok(None));
        assert_eq!(ban_secs(Some(1)), Ok(Some(1)));
        assert_eq!(ban_secs(Some(MAX_BAN_SECS)), Ok(Some(31_536_000)));
        for bad in [0, -5, MAX_BAN_SECS + 1] {
            assert_eq!(ban_secs(Some(bad)).unwrap_err().code, "invalid_ban");
        }
        assert_eq!(reason("  spam  "), Ok("spam"));
        assert_eq!(reason("a\u{7}b").unwrap_err().code, "invalid_ban");
        assert!(reason(&"x".repeat(MAX_REASON_CHARS + 1)).is_err());
    }

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
