//! Reading what a guest printed: `key=value` lines, possibly wrapped in a
//! hypervisor's console decoration (Xen prints guest port-0xE9 output as
//! `(d0) [  2.488] key=value`).

use std::collections::BTreeMap;

/// One memory-map or e820 entry as the probe prints it (`addr,size,type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapEntry {
    /// Start.
    pub addr: u64,
    /// Length.
    pub size: u64,
    /// Type (1 = RAM).
    pub type_: u32,
}

impl MapEntry {
    /// One past the end (saturating).
    pub fn end(&self) -> u64 {
        self.addr.saturating_add(self.size)
    }
}

/// Why a report is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// A key is printed twice with different values.
    #[error("key {key} printed twice: {first:?} and {second:?}")]
    Duplicate {
        /// The key.
        key: String,
        /// First value.
        first: String,
        /// Second value.
        second: String,
    },
}

/// The `key=value` lines of a guest's output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    values: BTreeMap<String, String>,
}

/// The `key=value` part of one console line, if it has one: Xen's `(d0) `
/// prefix and a `[timestamp] ` are skipped; a key is non-empty and made of
/// ASCII letters, digits, `.` and `_`.
pub fn key_value(line: &str) -> Option<(&str, &str)> {
    let line = line.trim_end_matches(['\r', '\n']);
    let line = match line.find("(d0) ") {
        Some(i) => &line[i + 5..],
        None => line,
    };
    let line = match line.strip_prefix('[') {
        Some(rest) => rest.split_once("] ").map_or(line, |(_, r)| r),
        None => line,
    };
    let (key, value) = line.split_once('=')?;
    let valid = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_');
    valid.then_some((key, value))
}

/// A number as the probe prints it: `0x` hex or decimal.
pub fn parse_num(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

impl Report {
    /// Collects the `key=value` lines of `output`; other lines are ignored.
    pub fn parse(output: &str) -> Result<Self, ReportError> {
        let mut values = BTreeMap::new();
        for (key, value) in output.lines().filter_map(key_value) {
            if let Some(first) = values.get(key) {
                if first != value {
                    return Err(ReportError::Duplicate {
                        key: key.to_owned(),
                        first: String::clone(first),
                        second: value.to_owned(),
                    });
                }
                continue;
            }
            values.insert(key.to_owned(), value.to_owned());
        }
        Ok(Self { values })
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// The value of `key` as a number.
    pub fn num(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(parse_num)
    }

    /// Whether the probe got to its last line (`probe.done=1`).
    pub fn done(&self) -> bool {
        self.get("probe.done") == Some("1")
    }

    /// The entries `<prefix>.0`, `<prefix>.1`, ... up to the first missing
    /// or malformed one.
    pub fn map(&self, prefix: &str) -> Vec<MapEntry> {
        (0..)
            .map_while(|i| {
                let v = self.get(&format!("{prefix}.{i}"))?;
                let mut it = v.split(',');
                let addr = parse_num(it.next()?)?;
                let size = parse_num(it.next()?)?;
                let type_ = u32::try_from(parse_num(it.next()?)?).ok()?;
                it.next()
                    .is_none()
                    .then_some(MapEntry { addr, size, type_ })
            })
            .collect()
    }

    /// Every key and value, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Bytes of RAM (type 1) in `entries`.
pub fn ram_bytes(entries: &[MapEntry]) -> u64 {
    entries
        .iter()
        .filter(|e| e.type_ == 1)
        .map(|e| e.size)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_and_xen_decorated_lines() {
        let out = "SeaBIOS\r\nBooting from ROM..\r\nprobe.start=1\r\n\
                   (XEN) noise\n(d0) [    2.49] cmdline=a b=c\n\
                   (d0) memmap.0=0x0,0x9f000,1\nmemmap.1=0x100000,0x3f00000,1\n\
                   memmap.2=0xfd00000000,0x300000000,2\n= bad\nnot a line\n";
        let r = Report::parse(out).unwrap();
        assert_eq!(r.get("probe.start"), Some("1"));
        assert_eq!(r.get("cmdline"), Some("a b=c"));
        assert!(!r.done());
        let m = r.map("memmap");
        assert_eq!(m.len(), 3);
        assert_eq!(
            m[2],
            MapEntry {
                addr: 0xfd_0000_0000,
                size: 0x3_0000_0000,
                type_: 2
            }
        );
        assert_eq!(ram_bytes(&m), 0x9f000 + 0x3f0_0000);
        assert_eq!(r.num("memmap.count"), None);
        assert_eq!(parse_num("0x1388"), Some(5000));
        assert_eq!(parse_num("5000"), Some(5000));
        assert_eq!(parse_num("x"), None);
    }

    #[test]
    fn conflicting_duplicates_are_an_error() {
        assert!(Report::parse("a=1\na=1\n").is_ok());
        assert_eq!(
            Report::parse("a=1\na=2\n"),
            Err(ReportError::Duplicate {
                key: "a".into(),
                first: "1".into(),
                second: "2".into()
            })
        );
    }
}
