//! SSE cursors: the `id:` of every event and the `Last-Event-ID` a client resumes from.
//!
//! A cursor is the event's position in the topic, `"<partition>-<offset>"`. Because a room lives on
//! one partition, the offset alone orders a room's events, and any publish-server instance can resume
//! a client from it: they all read the same log.

use std::{fmt, str::FromStr};

/// A position in the event topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor {
    pub partition: i32,
    pub offset: i64,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed event cursor {0:?}: expected \"<partition>-<offset>\"")]
pub struct CursorError(String);

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.partition, self.offset)
    }
}

impl FromStr for Cursor {
    type Err = CursorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || CursorError(s.chars().take(64).collect());
        let (partition, offset) = s.trim().split_once('-').ok_or_else(bad)?;
        // Only plain decimal digits: `parse` alone would accept a leading '+'.
        let digits =
            |t: &str| !t.is_empty() && t.len() <= 19 && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(partition) || !digits(offset) {
            return Err(bad());
        }
        Ok(Cursor {
            partition: partition.parse().map_err(|_| bad())?,
            offset: offset.parse().map_err(|_| bad())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_through_its_text_form() {
        let cursor = Cursor {
            partition: 2,
            offset: 1234,
        };
        assert_eq!(cursor.to_string(), "2-1234");
        assert_eq!("2-1234".parse::<Cursor>(), Ok(cursor));
    }

    proptest::proptest! {
        #[test]
        fn any_text_parses_or_is_rejected_without_panicking(text in "\\PC{0,40}") {
            let _ = text.parse::<Cursor>();
        }

        #[test]
        fn every_cursor_round_trips(partition in 0..i32::MAX, offset in 0..i64::MAX) {
            let cursor = Cursor { partition, offset };
            proptest::prop_assert_eq!(cursor.to_string().parse::<Cursor>(), Ok(cursor));
        }
    }

    #[test]
    fn malformed_cursors_are_rejected() {
        for bad in [
            "",
            "-",
            "1-",
            "-5",
            "a-1",
            "1-b",
            "1-2-3",
            "+1-2",
            "1--2",
            "99999999999-1",
            "1-99999999999999999999",
        ] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad:?} parsed");
        }
    }
}
