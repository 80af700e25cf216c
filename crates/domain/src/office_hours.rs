//! B4 / W4: a site's office hours in its own time zone.

use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Weekly opening intervals in a time zone. No intervals means always open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct OfficeHours {
    /// An IANA time zone name, such as `Europe/Stockholm`.
    pub timezone: String,
    pub intervals: Vec<OpenInterval>,
}

impl Default for OfficeHours {
    fn default() -> Self {
        Self {
            timezone: "UTC".into(),
            intervals: Vec::new(),
        }
    }
}

/// One opening: a weekday and local times `HH:MM`, `from` before `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenInterval {
    /// `mon` … `sun`.
    pub day: String,
    pub from: String,
    pub to: String,
}

/// What is wrong with a site's office hours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfficeHoursError {
    #[error("unknown time zone {0:?}")]
    TimeZone(String),
    #[error("unknown weekday {0:?} (use mon, tue, wed, thu, fri, sat or sun)")]
    Day(String),
    #[error("invalid time {0:?} (use HH:MM)")]
    Time(String),
    #[error("interval on {0} ends before it starts")]
    Order(String),
}

struct Parsed {
    tz: Tz,
    intervals: Vec<(Weekday, NaiveTime, NaiveTime)>,
}

fn parse_day(s: &str) -> Option<Weekday> {
    Some(match s {
        "mon" => Weekday::Mon,
        "tue" => Weekday::Tue,
        "wed" => Weekday::Wed,
        "thu" => Weekday::Thu,
        "fri" => Weekday::Fri,
        "sat" => Weekday::Sat,
        "sun" => Weekday::Sun,
        _ => return None,
    })
}

fn parse_time(s: &str) -> Option<NaiveTime> {
    if s == "24:00" {
        return NaiveTime::from_hms_opt(23, 59, 59);
    }
    NaiveTime::parse_from_str(s, "%H:%M").ok()
}

impl OfficeHours {
    /// Checks every field; sites are saved only when this passes.
    pub fn validate(&self) -> Result<(), OfficeHoursError> {
        self.parse().map(|_| ())
    }

    fn parse(&self) -> Result<Parsed, OfficeHoursError> {
        let tz: Tz = self
            .timezone
            .parse()
            .map_err(|_| OfficeHoursError::TimeZone(self.timezone.clone()))?;
        let mut intervals = Vec::new();
        for i in &self.intervals {
            let day = parse_day(&i.day).ok_or_else(|| OfficeHoursError::Day(i.day.clone()))?;
            let from = parse_time(&i.from).ok_or_else(|| OfficeHoursError::Time(i.from.clone()))?;
            let to = parse_time(&i.to).ok_or_else(|| OfficeHoursError::Time(i.to.clone()))?;
            if to <= from {
                return Err(OfficeHoursError::Order(i.day.clone()));
            }
            intervals.push((day, from, to));
        }
        Ok(Parsed { tz, intervals })
    }

    /// Whether the team is inside office hours at `now`. Invalid settings count as always
    /// open, so a typo never hides the chat (they cannot be saved anyway).
    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        let Ok(p) = self.parse() else { return true };
        if p.intervals.is_empty() {
            return true;
        }
        let local = now.with_timezone(&p.tz);
        let (day, time) = (local.weekday(), local.time());
        p.intervals
            .iter()
            .any(|&(d, from, to)| d == day && from <= time && time < to)
    }

    /// When the team is next back, for the offline message ("back Monday 09:00").
    /// None when always open or never open.
    pub fn next_open(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let p = self.parse().ok()?;
        if p.intervals.is_empty() || self.is_open(now) {
            return None;
        }
        let local_now = now.with_timezone(&p.tz);
        (0..=7)
            .flat_map(|offset| {
                let date = local_now.date_naive() + Duration::days(offset);
                p.intervals
                    .iter()
                    .filter(move |(d, _, _)| *d == date.weekday())
                    .filter_map(move |(_, from, _)| {
                        p.tz.from_local_datetime(&date.and_time(*from)).earliest()
                    })
            })
            .map(|t| t.with_timezone(&Utc))
            .filter(|t| *t > now)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours() -> OfficeHours {
        OfficeHours {
            timezone: "Europe/Stockholm".into(),
            intervals: vec![
                OpenInterval {
                    day: "mon".into(),
                    from: "09:00".into(),
                    to: "17:00".into(),
                },
                OpenInterval {
                    day: "fri".into(),
                    from: "09:00".into(),
                    to: "12:00".into(),
                },
            ],
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn empty_means_always_open() {
        let h = OfficeHours::default();
        assert!(h.is_open(utc("2026-11-21T03:00:00Z")));
        assert_eq!(h.next_open(utc("2026-11-21T03:00:00Z")), None);
    }

    #[test]
    fn open_inside_interval_in_local_time() {
        let h = hours();
        // Monday 2026-11-23 09:30 Stockholm (UTC+1) is 08:30 UTC.
        assert!(h.is_open(utc("2026-11-23T08:30:00Z")));
        // 07:30 UTC is 08:30 local: closed.
        assert!(!h.is_open(utc("2026-11-23T07:30:00Z")));
        // 16:00 UTC is 17:00 local: closed (end is exclusive).
        assert!(!h.is_open(utc("2026-11-23T16:00:00Z")));
    }

    #[test]
    fn next_open_finds_the_next_interval() {
        let h = hours();
        // Saturday: next is Monday 09:00 local = 08:00 UTC.
        assert_eq!(
            h.next_open(utc("2026-11-21T10:00:00Z")),
            Some(utc("2026-11-23T08:00:00Z"))
        );
        // Monday evening: next is Friday 09:00 local.
        assert_eq!(
            h.next_open(utc("2026-11-23T18:00:00Z")),
            Some(utc("2026-11-27T08:00:00Z"))
        );
    }

    #[test]
    fn validation_names_the_problem() {
        let mut h = hours();
        h.timezone = "Mars/Olympus".into();
        assert_eq!(
            h.validate(),
            Err(OfficeHoursError::TimeZone("Mars/Olympus".into()))
        );
        let mut h = hours();
        h.intervals[0].day = "monday".into();
        assert!(matches!(h.validate(), Err(OfficeHoursError::Day(_))));
        let mut h = hours();
        h.intervals[0].to = "08:00".into();
        assert!(matches!(h.validate(), Err(OfficeHoursError::Order(_))));
        let mut h = hours();
        h.intervals[0].from = "9am".into();
        assert!(matches!(h.validate(), Err(OfficeHoursError::Time(_))));
    }
}
