//! Timestamps as JSON: RFC 3339 in UTC, byte for byte as chrono's own `Serialize` writes
//! them (`2026-11-22T20:44:42.123456Z`, with 0, 3, 6 or 9 digits of fraction, the fewest
//! that hold the value), but written into a buffer on the stack and handed to the
//! serializer as one string.
//!
//! Why: chrono's `Serialize` goes through `collect_str`, and serde_json escapes each of the
//! formatter's twenty-odd small writes on its own. That took about 330 ns a timestamp
//! against about 95 ns here, and every posted message puts several on the sockets (its
//! ack, its delivery and the inbox rows): 2.6 % of the server at 5,000 msg/s before, 0.5 %
//! after (docs/performance.md, round 13). Calendar arithmetic stays chrono's.
//!
//! Use on fields: `#[serde(serialize_with = "wire_time::serialize")]`, or
//! `wire_time::option` for an `Option`. Reading them back is chrono's, unchanged.

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use serde::{Serialize, Serializer};

/// Serializes `t` as chrono's `Serialize` would.
pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    match Rfc3339::of(t) {
        Some(text) => s.serialize_str(text.as_str()),
        // Years beyond four digits and leap seconds: rare enough for chrono's own writer.
        None => s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
    }
}

/// [`serialize`] for an optional timestamp (`null` when absent).
pub fn option<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    struct Wire<'a>(&'a DateTime<Utc>);
    impl Serialize for Wire<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            serialize(self.0, s)
        }
    }
    match t {
        Some(t) => s.serialize_some(&Wire(t)),
        None => s.serialize_none(),
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z` in a fixed buffer.
struct Rfc3339 {
    buf: [u8; 30],
    len: usize,
}

impl Rfc3339 {
    /// None for years outside 0–9999 and for leap seconds, which chrono writes differently.
    fn of(t: &DateTime<Utc>) -> Option<Self> {
        // The UTC fields once: each of `DateTime`'s own accessors converts it again.
        let (date, time) = (t.date_naive(), t.time());
        let year = u32::try_from(date.year()).ok().filter(|y| *y <= 9999)?;
        let nano = time.nanosecond();
        if nano >= 1_000_000_000 {
            return None;
        }
        let secs = time.num_seconds_from_midnight();
        let mut buf = *b"0000-00-00T00:00:00.000000000Z";
        digits(&mut buf[0..4], year);
        digits(&mut buf[5..7], date.month());
        digits(&mut buf[8..10], date.day());
        digits(&mut buf[11..13], secs / 3600);
        digits(&mut buf[14..16], secs / 60 % 60);
        digits(&mut buf[17..19], secs % 60);
        // chrono's `SecondsFormat::AutoSi`: as many digits as the fraction needs, in threes.
        let shown = match nano {
            0 => 0,
            n if n % 1_000_000 == 0 => 3,
            n if n % 1_000 == 0 => 6,
            _ => 9,
        };
        let len = if shown == 0 {
            buf[19] = b'Z';
            20
        } else {
            digits(&mut buf[20..20 + shown], nano / 10u32.pow(9 - shown as u32));
            buf[20 + shown] = b'Z';
            21 + shown
        };
        Some(Rfc3339 { buf, len })
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits and separators were written.
        std::str::from_utf8(&self.buf[..self.len]).expect("ASCII")
    }
}

/// Writes `v` as decimal digits filling `out`, zero-padded on the left.
fn digits(out: &mut [u8], mut v: u32) {
    for c in out.iter_mut().rev() {
        *c = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    #[derive(Serialize)]
    struct Ours {
        #[serde(serialize_with = "serialize")]
        at: DateTime<Utc>,
        #[serde(serialize_with = "option")]
        maybe: Option<DateTime<Utc>>,
    }

    #[derive(Serialize)]
    struct Chronos {
        at: DateTime<Utc>,
        maybe: Option<DateTime<Utc>>,
    }

    fn both(at: DateTime<Utc>, maybe: Option<DateTime<Utc>>) -> (String, String) {
        (
            serde_json::to_string(&Ours { at, maybe }).unwrap(),
            serde_json::to_string(&Chronos { at, maybe }).unwrap(),
        )
    }

    #[test]
    fn fractions_shrink_to_the_digits_they_need() {
        let at = |s, ns| Utc.timestamp_opt(s, ns).unwrap();
        let (ours, _) = both(at(1_795_000_000, 0), None);
        assert_eq!(ours, r#"{"at":"2026-11-18T11:06:40Z","maybe":null}"#);
        for (ns, text) in [
            (120_000_000, "40.120Z"),
            (123_456_000, "40.123456Z"),
            (123_456_789, "40.123456789Z"),
            (1_000, "40.000001Z"),
        ] {
            let (ours, chronos) = both(at(1_795_000_000, ns), Some(at(0, ns)));
            assert!(ours.contains(text), "{ours}");
            assert_eq!(ours, chronos);
        }
    }

    #[test]
    fn years_beyond_four_digits_and_leap_seconds_read_as_chrono_writes_them() {
        let far = Utc.with_ymd_and_hms(12_345, 1, 2, 3, 4, 5).unwrap();
        let before = Utc.with_ymd_and_hms(-1, 1, 2, 3, 4, 5).unwrap();
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
            .unwrap()
            .and_utc();
        for t in [far, before, leap] {
            let (ours, chronos) = both(t, Some(t));
            assert_eq!(ours, chronos);
        }
    }

    proptest! {
        #[test]
        fn every_instant_reads_as_chrono_writes_it(
            secs in -62_167_219_200i64..253_402_300_800,
            nanos in prop_oneof![Just(0u32), (0u32..1000).prop_map(|m| m * 1_000_000),
                                 (0u32..1_000_000).prop_map(|u| u * 1_000), 0u32..1_000_000_000],
            none in any::<bool>(),
        ) {
            let t = Utc.timestamp_opt(secs, nanos).unwrap();
            let (ours, chronos) = both(t, (!none).then_some(t));
            prop_assert_eq!(ours, chronos);
        }
    }
}
