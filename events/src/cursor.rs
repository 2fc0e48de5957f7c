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

    use proptest::prelude::*;

    fn cursor(partition: i32, offset: i64) -> Cursor {
        Cursor { partition, offset }
    }

    #[test]
    fn a_cursor_is_written_as_partition_dash_offset() {
        assert_eq!(cursor(0, 0).to_string(), "0-0");
        assert_eq!(cursor(2, 1234).to_string(), "2-1234");
        assert_eq!(
            cursor(i32::MAX, i64::MAX).to_string(),
            "2147483647-9223372036854775807"
        );
    }

    #[test]
    fn well_formed_cursors_are_read_including_the_largest_positions() {
        for (text, expected) in [
            ("0-0", cursor(0, 0)),
            ("2-1234", cursor(2, 1234)),
            ("2147483647-9223372036854775807", cursor(i32::MAX, i64::MAX)),
            // Leading zeros are still plain decimal digits.
            ("007-0042", cursor(7, 42)),
            // Surrounding whitespace is trimmed, as HTTP does around a header value.
            (" 3-4\t", cursor(3, 4)),
        ] {
            assert_eq!(text.parse::<Cursor>(), Ok(expected), "{text:?}");
        }
    }

    #[test]
    fn malformed_cursors_are_rejected() {
        for bad in [
            // empty or missing a part
            "",
            " ",
            "-",
            "1",
            "1-",
            "-5",
            "12345",
            // negative, signed or doubled dashes
            "-1-5",
            "1--2",
            "+1-2",
            "1-+2",
            // not decimal integers
            "a-1",
            "1-b",
            "0x1-2",
            "1.0-2",
            "1-2.0",
            "1e3-2",
            "1_000-2",
            "١-٢",
            "１-２",
            // extra parts
            "1-2-3",
            "1-2-",
            // whitespace inside
            "1 -2",
            "1- 2",
            "1 2-3",
            "1-2 3",
            // one past the largest partition (i32) and offset (i64), and far beyond
            "2147483648-0",
            "0-9223372036854775808",
            "99999999999-1",
            "1-99999999999999999999",
            "1-999999999999999999999999999999999999999999",
        ] {
            assert!(
                matches!(bad.parse::<Cursor>(), Err(CursorError(_))),
                "{bad:?} parsed as {:?}",
                bad.parse::<Cursor>()
            );
        }
    }

    #[test]
    fn the_error_quotes_at_most_64_characters_of_the_input() {
        let long = "x".repeat(10_000);
        let CursorError(quoted) = long.parse::<Cursor>().unwrap_err();
        assert_eq!(quoted, "x".repeat(64));
    }

    proptest! {
        #[test]
        fn every_position_round_trips_through_its_text_form(
            partition in 0..=i32::MAX,
            offset in 0..=i64::MAX,
        ) {
            let cursor = Cursor { partition, offset };
            prop_assert_eq!(cursor.to_string().parse::<Cursor>(), Ok(cursor));
        }

        #[test]
        fn a_negative_partition_or_offset_is_not_a_cursor(
            partition in i32::MIN..0,
            offset in i64::MIN..0,
            valid_partition in 0..=i32::MAX,
            valid_offset in 0..=i64::MAX,
        ) {
            for negative in [
                cursor(partition, valid_offset),
                cursor(valid_partition, offset),
                cursor(partition, offset),
            ] {
                let text = negative.to_string();
                prop_assert!(text.parse::<Cursor>().is_err(), "{} parsed", text);
            }
        }

        #[test]
        fn a_partition_or_offset_beyond_its_type_is_rejected(
            partition in (i32::MAX as u64 + 1)..=u64::MAX,
            offset in (i64::MAX as u64 + 1)..=u64::MAX,
        ) {
            for text in [format!("{partition}-0"), format!("0-{offset}")] {
                prop_assert!(text.parse::<Cursor>().is_err(), "{} parsed", text);
            }
        }

        /// Near-misses (digits, dashes, signs, dots, spaces) are accepted exactly when they are
        /// `<digits>-<digits>` within range, and then mean those numbers.
        #[test]
        fn parse_accepts_exactly_two_in_range_decimal_numbers_joined_by_a_dash(
            text in prop_oneof![
                "[ 0-9+.-]{0,24}",
                " ?[0-9]{1,11}-[0-9]{1,20} ?",
                "(214748364[6-9]|[0-9]{1,3})-(922337203685477580[6-9]|[0-9]{1,3})",
            ],
        ) {
            let trimmed = text.trim_matches(' ');
            let expected = trimmed.split_once('-').and_then(|(p, o)| {
                // A part is at most 19 digits (the longest i64), leading zeros included.
                let decimal = |t: &str| {
                    (1..=19).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit())
                };
                if !decimal(p) || !decimal(o) {
                    return None;
                }
                // Read wider than the fields, so the range check below is what rejects overflow.
                let (p, o) = (p.parse::<u128>().ok()?, o.parse::<u128>().ok()?);
                Some(cursor(i32::try_from(p).ok()?, i64::try_from(o).ok()?))
            });
            prop_assert_eq!(text.parse::<Cursor>().ok(), expected, "{:?}", text);
        }
    }
}
