//! Every unit sidewatch reads or writes as text, in one place: durations,
//! rates, percentages, byte sizes and memory slopes, and the helpers that
//! show them in tables and reports. One table of time units serves every
//! parser.

use std::time::Duration;

/// Seconds per time unit, for every parser here. Each parser accepts the
/// subset it documents.
const TIME_UNITS: [(&str, f64); 8] = [
    ("us", 1e-6),
    ("µs", 1e-6),
    ("ms", 1e-3),
    ("s", 1.0),
    ("m", 60.0),
    ("min", 60.0),
    ("h", 3600.0),
    ("d", 86400.0),
];

/// Seconds in `unit` if it is one of `accepted`.
fn unit_seconds(unit: &str, accepted: &[&str]) -> Option<f64> {
    if !accepted.contains(&unit) {
        return None;
    }
    TIME_UNITS.iter().find(|(u, _)| *u == unit).map(|(_, s)| *s)
}

/// A duration: one or more `<number><unit>` terms, units `us`, `ms`, `s`,
/// `m`, `h`, `d` (`500ms`, `1m30s`, `1.5s`), at most a year.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("`{text}` has no unit (use e.g. 500ms, 10s, 1m)"))?;
        let (num, tail) = rest.split_at(num_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let n: f64 = num
            .parse()
            .map_err(|_| format!("`{text}` is not a duration (use e.g. 500ms, 10s, 1m)"))?;
        let scale = match unit_seconds(unit, &["us", "µs", "ms", "s", "m", "h", "d"]) {
            Some(s) => s,
            None => {
                return Err(format!(
                    "`{text}` has unknown unit `{unit}` (use us, ms, s, m, h, d)"
                ))
            }
        };
        total += n * scale;
        rest = next;
    }
    if !total.is_finite() || total > 366.0 * 86400.0 {
        return Err(format!("`{text}` is longer than a year"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// Formats a duration compactly for tables and logs: `1.23ms`, `4.5s`.
pub(crate) fn human_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1e-3 {
        format!("{:.0}µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.2}ms", s * 1e3)
    } else if s < 120.0 {
        format!("{s:.2}s")
    } else {
        format!("{:.1}m", s / 60.0)
    }
}

/// `200/s`, `1000/m`, `50/h`: a non-negative rate per second.
pub(crate) fn parse_rate(s: &str) -> Result<f64, String> {
    let (n, unit) = s
        .trim()
        .split_once('/')
        .ok_or_else(|| format!("`{s}` is not a rate (use e.g. 200/s)"))?;
    let n: f64 = n
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a rate (use e.g. 200/s)"))?;
    let Some(per) = unit_seconds(unit.trim(), &["s", "m", "h"]) else {
        return Err(format!(
            "`{s}`: unknown rate unit `/{}` (use /s, /m or /h)",
            unit.trim()
        ));
    };
    if !(n.is_finite() && n >= 0.0) {
        return Err(format!("`{s}` must be a non-negative rate"));
    }
    Ok(n / per)
}

/// `10%`, `+10%`, `-5%` or a bare ratio `0.1`; the sign is ignored (each
/// metric knows which way is worse). Returns a ratio.
pub(crate) fn percent(s: &str) -> Result<f64, String> {
    let t = s.trim().trim_start_matches(['+', '-']);
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| format!("`{s}` is not a percentage (use 10% or 0.1)"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("`{s}` must be a non-negative percentage"))
    }
}

/// `500MB`, `4000MB`, `16MiB`, `1.5GB`, `512kB`, `100B`: bytes. MB and GB
/// are decimal (10^6, 10^9), MiB and GiB binary.
pub(crate) fn bytes(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("`{s}` needs a unit (B, kB, MB, GB, KiB, MiB, GiB)"))?;
    let (n, unit) = t.split_at(split);
    let n: f64 = n
        .parse()
        .map_err(|_| format!("`{s}` is not a size (use e.g. 500MB)"))?;
    let mult = match unit.trim() {
        "B" => 1.0,
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        u => {
            return Err(format!(
                "`{s}`: unknown size unit `{u}` (B, kB, MB, GB, KiB, MiB, GiB)"
            ))
        }
    };
    Ok(n * mult)
}

/// `10MB/min`, `1MiB/s`, `50MB/h`: bytes per second.
pub(crate) fn slope(s: &str) -> Result<f64, String> {
    let (size, per) = s
        .trim()
        .rsplit_once('/')
        .ok_or_else(|| format!("`{s}` is not a rate of growth (use e.g. 10MB/min)"))?;
    let Some(secs) = unit_seconds(per.trim(), &["s", "min", "m", "h"]) else {
        return Err(format!(
            "`{s}`: unknown time unit `/{}` (/s, /min, /h)",
            per.trim()
        ));
    };
    Ok(bytes(size)? / secs)
}

/// `12.3 MB/min` for reports.
pub(crate) fn show_slope(bytes_per_second: f64) -> String {
    format!("{:.2} MB/min", bytes_per_second * 60.0 / 1e6)
}

/// `412.0 MB` for reports.
pub(crate) fn show_bytes(b: f64) -> String {
    format!("{:.1} MB", b / 1e6)
}

/// Seconds for reports: `1.23ms`, `4.50s`; `-` when not finite or too large.
pub(crate) fn secs(s: f64) -> String {
    if s.is_nan() {
        return "-".into();
    }
    // Values come from stored results too: one no Duration holds is unknown.
    Duration::try_from_secs_f64(s.max(0.0)).map_or_else(|_| "-".into(), human_duration)
}

/// A ratio as a percentage for reports: `1.250%`.
pub(crate) fn pct(r: f64) -> String {
    format!("{:.3}%", r * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stored results are read from disk: a huge duration shows as unknown
    /// instead of panicking the report or the `/runs` page.
    #[test]
    fn secs_of_a_value_no_duration_holds_is_unknown() {
        assert_eq!(secs(1e300), "-");
        assert_eq!(secs(f64::NAN), "-");
        assert_eq!(secs(1.5), "1.50s");
    }

    #[test]
    fn parses_the_forms_configs_use() {
        assert_eq!(percent("+10%").unwrap(), 0.1);
        assert_eq!(percent("-5%").unwrap(), 0.05);
        assert_eq!(percent("0.2").unwrap(), 0.2);
        assert!(percent("ten").is_err());
        assert_eq!(bytes("500MB").unwrap(), 5e8);
        assert_eq!(bytes("16MiB").unwrap(), 16.0 * 1048576.0);
        assert_eq!(bytes("1.5GB").unwrap(), 1.5e9);
        assert!(bytes("12").is_err());
        assert!(bytes("12XB").is_err());
        assert_eq!(slope("10MB/min").unwrap(), 1e7 / 60.0);
        assert_eq!(slope("1MiB/s").unwrap(), 1048576.0);
        assert!(slope("10MB").is_err());
        assert_eq!(show_slope(1e7 / 60.0), "10.00 MB/min");
    }

    #[test]
    fn parses_units_and_compounds() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_duration("10").unwrap_err().contains("no unit"));
        assert!(parse_duration("10x").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("400d").is_err());
    }

    #[test]
    fn human_is_compact() {
        assert_eq!(human_duration(Duration::from_micros(250)), "250µs");
        assert_eq!(human_duration(Duration::from_micros(1234)), "1.23ms");
        assert_eq!(human_duration(Duration::from_millis(4500)), "4.50s");
    }
}
