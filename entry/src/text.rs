//! Printing bytes that came from an input or a guest: [`Escaped`] keeps
//! printable ASCII and writes everything else as `\xNN` (and `\` as `\\`),
//! so a value stays on one line and can carry no terminal control sequence
//! (no ESC, no carriage return, no newline that would start a fake line).
//!
//! One definition for every printer: the guests' `key=value` reports, and
//! the host's messages about device-tree strings, paths and command lines.

use core::fmt;

/// Displays bytes as printable ASCII, everything else (and `\`) as `\xNN`
/// / `\\`, so that one value stays on one line whatever it contains.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a [u8]);

impl<'a> Escaped<'a> {
    /// A string's bytes.
    pub fn str(s: &'a str) -> Self {
        Self(s.as_bytes())
    }
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.0 {
            match b {
                b'\\' => f.write_str("\\\\")?,
                0x20..=0x7e => fmt::Write::write_char(f, char::from(b))?,
                _ => write!(f, "\\x{b:02x}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_keeps_a_value_on_one_line() {
        let s = format!("{}", Escaped(b"root=/dev/vda a\\b\n\x00\xff"));
        assert_eq!(s, "root=/dev/vda a\\\\b\\x0a\\x00\\xff");
    }

    #[test]
    fn no_control_byte_survives() {
        let all: Vec<u8> = (0..=255).collect();
        let s = format!("{}", Escaped(&all));
        assert!(s.bytes().all(|b| (0x20..=0x7e).contains(&b)), "{s}");
        // Printable ASCII other than `\` is kept as is.
        assert_eq!(
            format!("{}", Escaped::str("pvh: d1 (a-b_c.0)")),
            "pvh: d1 (a-b_c.0)"
        );
        assert_eq!(format!("{}", Escaped::str("\u{1b}[31m")), "\\x1b[31m");
    }
}
