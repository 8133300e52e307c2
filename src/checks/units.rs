//! Values check configs write as text: percentages, byte sizes and memory
//! slopes.

/// `10%`, `+10%`, `-5%` or a bare ratio `0.1`; the sign is ignored (each
/// metric knows which way is worse). Returns a ratio.
pub fn percent(s: &str) -> Result<f64, String> {
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
pub fn bytes(s: &str) -> Result<f64, String> {
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
pub fn slope(s: &str) -> Result<f64, String> {
    let (size, per) = s
        .trim()
        .rsplit_once('/')
        .ok_or_else(|| format!("`{s}` is not a rate of growth (use e.g. 10MB/min)"))?;
    let secs = match per.trim() {
        "s" => 1.0,
        "min" | "m" => 60.0,
        "h" => 3600.0,
        u => return Err(format!("`{s}`: unknown time unit `/{u}` (/s, /min, /h)")),
    };
    Ok(bytes(size)? / secs)
}

/// `12.3 MB/min` for reports.
pub fn show_slope(bytes_per_second: f64) -> String {
    format!("{:.2} MB/min", bytes_per_second * 60.0 / 1e6)
}

/// `412.0 MB` for reports.
pub fn show_bytes(b: f64) -> String {
    format!("{:.1} MB", b / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
