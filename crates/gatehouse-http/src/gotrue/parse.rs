//! What only GoTrue's wire format needs: Go durations (`ban_duration`) and its shallow
//! metadata merge.

use std::time::Duration;

use gatehouse_core::Error;
use serde_json::Value;
use time::OffsetDateTime;

/// GoTrue's metadata update: keys of `patch` replace those of `base`; `null` removes.
pub fn merge_metadata(base: &Value, patch: &Value) -> Value {
    let mut merged = base.as_object().cloned().unwrap_or_default();
    if let Some(patch) = patch.as_object() {
        for (key, value) in patch {
            if value.is_null() {
                merged.remove(key);
            } else {
                merged.insert(key.clone(), value.clone());
            }
        }
    }
    Value::Object(merged)
}

/// Parses a Go duration (`300ms`, `1.5h`, `2h45m`); `None` when it is not one.
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() || rest.len() > 64 {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest.get(..number_end)?.parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += number * seconds;
    }
    (total.is_finite() && total < 1e12).then(|| Duration::from_secs_f64(total))
}

/// The longest ban a duration may set: past it, "for ever" is what is meant, and date
/// arithmetic would leave the calendar (year 9999) soon after.
pub const MAX_BAN: Duration = Duration::from_secs(100 * 365 * 24 * 3600 + 25 * 24 * 3600);

/// When a ban of `duration` (a Go duration) from `now` ends: at most [`MAX_BAN`] away.
pub fn ban_end(now: OffsetDateTime, duration: &str) -> Result<OffsetDateTime, Error> {
    let duration = parse_go_duration(duration)
        .ok_or_else(|| Error::invalid("ban_duration", "must be a duration like 24h or none"))?;
    if duration > MAX_BAN {
        return Err(Error::invalid(
            "ban_duration",
            "must be at most 100 years (876600h)",
        ));
    }
    now.checked_add(time::Duration::try_from(duration).unwrap_or(time::Duration::MAX))
        .ok_or_else(|| Error::invalid("ban_duration", "ends past the year 9999"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn go_durations_parse_like_go() {
        assert_eq!(parse_go_duration("24h"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_go_duration("1h30m"), Some(Duration::from_secs(5_400)));
        assert_eq!(
            parse_go_duration("1.5s"),
            Some(Duration::from_millis(1_500))
        );
        assert_eq!(parse_go_duration("300ms"), Some(Duration::from_millis(300)));
        for bad in ["", "24", "h", "1d", "-1h", "1h-", "forever", "none"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn ban_durations_are_bounded_instead_of_overflowing() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(
            ban_end(now, "24h").unwrap(),
            now + Duration::from_secs(86_400)
        );
        assert!(ban_end(now, "876600h").is_ok(), "100 years is allowed");
        for huge in ["100000000h", "876700h", "999999999999h", "1e300h"] {
            let err = ban_end(now, huge).unwrap_err();
            assert!(
                matches!(err, Error::Validation { .. }),
                "{huge}: a validation error, not a panic: {err:?}"
            );
        }
        // Near the end of the calendar a bounded ban still cannot overflow.
        let late = time::macros::datetime!(9990-01-01 0:00 UTC);
        assert!(matches!(
            ban_end(late, "876000h"),
            Err(Error::Validation { .. })
        ));
    }

    #[test]
    fn metadata_merges_shallowly_and_null_removes() {
        let base = json!({"a": 1, "b": {"x": 1}, "c": 3});
        let merged = merge_metadata(&base, &json!({"b": {"y": 2}, "c": null, "d": 4}));
        assert_eq!(merged, json!({"a": 1, "b": {"y": 2}, "d": 4}));
    }
}
