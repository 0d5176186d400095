//! Human-written sizes ("25MiB") and durations ("10m", "1h30m") in hooks.toml.

use std::time::Duration;

/// Parses a byte size: a whole number with an optional unit B, KB, KiB, MB, MiB, GB, GiB
/// (case-insensitive; KB = 1000, KiB = 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (num, unit) = s.split_at(digits);
    let n: u64 = num.parse().map_err(|_| {
        format!("{s:?} is not a size: write a whole number and a unit, like \"25MiB\"")
    })?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "kib" => 1 << 10,
        "mb" => 1_000_000,
        "mib" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit {other:?}: use B, KB, KiB, MB, MiB, GB or GiB"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Parses a duration: one or more whole numbers each with a unit ms, s, m, h or d,
/// like "90s", "10m" or "1h30m".
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "{s:?} is not a duration: write a number and a unit (ms, s, m, h, d), like \"10m\" or \"1h30m\""
        )
    };
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let part = match &rest[..letters] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "d" => Duration::from_secs(n.saturating_mul(86400)),
            _ => return Err(bad()),
        };
        rest = &rest[letters..];
        total = total.saturating_add(part);
    }
    Ok(total)
}

/// Writes a duration as [`parse_duration`] reads it: `"45s"`, or `"1500ms"` when it is
/// not a whole number of seconds.
pub fn format_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("25MiB"), Ok(25 * 1024 * 1024));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("2 kb"), Ok(2000));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("1.5MiB").is_err());
        assert!(
            parse_size("3 parsecs")
                .unwrap_err()
                .contains("unknown size unit")
        );
        assert!(parse_size("99999999999999999999GiB").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        for bad in ["", "10", "m", "10 minutes", "1.5h", "-1s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        for d in ["45s", "1500ms", "0s"] {
            assert_eq!(format_duration(parse_duration(d).unwrap()), d);
        }
    }
}
