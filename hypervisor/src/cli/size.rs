//! Memory sizes (`512M`, `2G`, `1T`, `65536K`, or plain bytes) and
//! timeouts (seconds, fractions allowed) on the command line: the one size
//! parser and the one timeout parser every option of `pvh boot` and
//! `pvh launch` uses, and the one way sizes are printed back.

use std::time::Duration;

/// A size could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SizeError {
    /// Not a number with an optional K/M/G/T/P/E suffix.
    #[error(
        "`{0}` is not a size (expected a whole number with an optional K, M, G, T, P or E suffix)"
    )]
    Syntax(String),
    /// The size does not fit in 64 bits.
    #[error("`{0}` is too large")]
    Overflow(String),
}

/// Parses `N`, `NK`, `NM`, `NG`, `NT`, `NP` or `NE` (binary units,
/// case-insensitive, an optional trailing `B`/`iB` accepted: `512MiB`), so
/// `1T` and `1024G` are the same size.
pub fn parse_size(s: &str) -> Result<u64, SizeError> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let body = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (digits, shift) = match body.chars().last() {
        Some('k') => (&body[..body.len() - 1], 10),
        Some('m') => (&body[..body.len() - 1], 20),
        Some('g') => (&body[..body.len() - 1], 30),
        Some('t') => (&body[..body.len() - 1], 40),
        Some('p') => (&body[..body.len() - 1], 50),
        Some('e') => (&body[..body.len() - 1], 60),
        _ => (body, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SizeError::Syntax(s.to_owned()));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| SizeError::Overflow(s.to_owned()))?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| SizeError::Overflow(s.to_owned()))
}

/// clap value parser for a memory size.
pub fn parse_memory(s: &str) -> Result<u64, String> {
    parse_size(s).map_err(|e| e.to_string())
}

/// `bytes` for people: the largest binary unit that keeps at least one
/// whole unit, with one decimal when it is not exact (`512 MiB`,
/// `23.4 GiB`, `8 TiB`, `100 B`).
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let Some(i) = (0..UNITS.len())
        .rev()
        .find(|&i| bytes >> (10 * (i + 1)) != 0)
    else {
        return format!("{bytes} B");
    };
    let unit = 1u64 << (10 * (i + 1));
    if bytes % unit == 0 {
        format!("{} {}", bytes / unit, UNITS[i])
    } else {
        // Tenths, rounded down: never more than is there.
        let tenths = (u128::from(bytes) * 10 / u128::from(unit)) as u64;
        format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[i])
    }
}

/// clap value parser for a timeout in seconds (fractions allowed). Zero is
/// refused rather than taken as "no timeout" or "stop at once": leaving
/// the option out means no timeout.
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    let d = Duration::try_from_secs_f64(secs).map_err(|e| format!("`{s}`: {e}"))?;
    if d.is_zero() {
        return Err(format!(
            "`{s}`: a timeout must be more than 0 seconds (leave --timeout out for none)"
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("512m"), Ok(512 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("8MB"), Ok(8 << 20));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert_eq!(parse_size("1t"), Ok(1 << 40));
        assert_eq!(parse_size("2PiB"), Ok(2 << 50));
        assert_eq!(parse_size("15E"), Ok(15 << 60));
    }

    #[test]
    fn one_size_has_one_value_whatever_the_unit() {
        // The campaign's finding: `1T` was refused while `65536G` passed.
        assert_eq!(parse_size("1T"), parse_size("1024G"));
        assert_eq!(parse_size("64T"), parse_size("65536G"));
        assert_eq!(parse_size("1P"), parse_size("1048576G"));
        assert_eq!(parse_size("16E"), Err(SizeError::Overflow("16E".into())));
    }

    #[test]
    fn sizes_print_in_the_largest_whole_unit() {
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(1023), "1023 B");
        assert_eq!(format_size(512 << 20), "512 MiB");
        assert_eq!(format_size(8 << 40), "8 TiB");
        assert_eq!(format_size((23 << 30) + (1 << 29)), "23.5 GiB");
        assert_eq!(format_size((1 << 30) - 1), "1023.9 MiB");
        assert_eq!(format_size(u64::MAX), "15.9 EiB");
    }

    #[test]
    fn zero_timeout_is_refused() {
        for zero in ["0", "0.0", "1e-12", " 0 "] {
            let e = parse_timeout(zero).unwrap_err();
            assert!(e.contains("more than 0 seconds"), "{zero}: {e}");
        }
        for bad in ["nan", "inf", "-0.5", "1e300"] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_timeout("0.001"), Ok(Duration::from_millis(1)));
    }

    proptest::proptest! {
        #[test]
        fn suffixed_numbers_scale(n in 0u64..(1 << 33), unit in 0usize..4, lower: bool) {
            let (suffix, shift) = [("", 0), ("K", 10), ("M", 20), ("G", 30)][unit];
            // (T and up are covered by `suffixes`: n << 40 overflows here.)
            let suffix = if lower { suffix.to_lowercase() } else { suffix.to_owned() };
            proptest::prop_assert_eq!(parse_size(&format!("{n}{suffix}")), Ok(n << shift));
        }

        #[test]
        fn any_text_is_a_size_or_an_error(s in ".{0,24}") {
            // Never panics; whatever parses is a whole number of bytes that
            // re-parses to itself in plain form.
            if let Ok(n) = parse_size(&s) {
                proptest::prop_assert_eq!(parse_size(&n.to_string()), Ok(n));
            }
        }
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse_size(""), Err(SizeError::Syntax("".into())));
        assert_eq!(parse_size("M"), Err(SizeError::Syntax("M".into())));
        assert_eq!(parse_size("12X"), Err(SizeError::Syntax("12X".into())));
        assert_eq!(parse_size("1TT"), Err(SizeError::Syntax("1TT".into())));
        assert_eq!(parse_size("-1M"), Err(SizeError::Syntax("-1M".into())));
        assert_eq!(parse_size("1.5G"), Err(SizeError::Syntax("1.5G".into())));
        assert_eq!(
            parse_size("99999999999999G"),
            Err(SizeError::Overflow("99999999999999G".into()))
        );
    }
}
