//! Memory sizes (`512M`, `2G`, `65536K`, or plain bytes) and timeouts
//! (seconds, fractions allowed) on the command line; the clap value
//! parsers `pvh boot` and `pvh launch` share.

use std::time::Duration;

/// A size could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SizeError {
    /// Not a number with an optional K/M/G suffix.
    #[error("`{0}` is not a size (expected a number with an optional K, M or G suffix)")]
    Syntax(String),
    /// The size does not fit in 64 bits.
    #[error("`{0}` is too large")]
    Overflow(String),
}

/// Parses `N`, `NK`, `NM` or `NG` (binary units, case-insensitive, an
/// optional trailing `B`/`iB` accepted: `512MiB`).
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

/// clap value parser for a timeout in seconds (fractions allowed).
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| format!("`{s}`: {e}"))
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
    }

    proptest::proptest! {
        #[test]
        fn suffixed_numbers_scale(n in 0u64..(1 << 33), unit in 0usize..4, lower: bool) {
            let (suffix, shift) = [("", 0), ("K", 10), ("M", 20), ("G", 30)][unit];
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
        assert_eq!(parse_size("12T"), Err(SizeError::Syntax("12T".into())));
        assert_eq!(parse_size("-1M"), Err(SizeError::Syntax("-1M".into())));
        assert_eq!(parse_size("1.5G"), Err(SizeError::Syntax("1.5G".into())));
        assert_eq!(
            parse_size("99999999999999G"),
            Err(SizeError::Overflow("99999999999999G".into()))
        );
    }
}
