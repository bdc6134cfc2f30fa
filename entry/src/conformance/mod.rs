//! Does a hypervisor hand its guest what the PVH boot ABI says? Each rule
//! of the ABI as a named check with PASS / FAIL / N/A and the offending
//! values.
//!
//! Sources of the rules (each [`Rule`] names its own):
//! - Xen `docs/misc/pvh.pandoc`: the entry point and the CPU state at it;
//!   the RSDP in `rsdp_paddr`;
//! - Xen `xen/include/public/arch-x86/hvm/start_info.h`: the magic, the
//!   versions, "nothing will be loaded at physical address 0", command
//!   lines as "zero-terminated ASCII", reserved fields "must be zero",
//!   "Xen on x86 will always try to place all the data below the 4GiB
//!   boundary";
//! - Xen `xen/include/public/xen.h`: the `SIF_*` flag bits;
//! - the System V ELF gABI: bytes between a segment's `p_filesz` and
//!   `p_memsz` hold 0 (the loader's job, as PVH loaders load the ELF);
//! - ACPI 6.5, 5.2: the RSDP's checksums and revisions, the table header's
//!   length and checksum, and (15) where tables belong in the address map.
//!
//! [`Level::Must`] rules are what those sources require. [`Level::Should`]
//! rules are interoperability advice: the memory map sorted, disjoint and
//! without empty entries, the RSDP passed when ACPI tables exist, ACPI
//! tables inside a non-RAM map entry, everything inside RAM and below
//! 4 GiB, tables and modules aligned, `SS` flat like `DS`, `EFER` zero.
//!
//! Everything here is a pure function of guest memory ([`PhysRead`]) and,
//! for the CPU rules, the [`cpu::EntryState`] a guest recorded at entry:
//! a guest (the probe) runs it on itself; a VMM author can run it in a host
//! test over the memory their VMM prepared (`entry` left `None`). No
//! allocator: findings are handed to a callback one at a time.

pub mod cpu;
mod rules;

use crate::memory::PhysRead;
use crate::start_info::MemmapEntry;
use core::fmt;
use core::ops::Range;

pub use rules::RULES;

/// How strongly a rule binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    /// Required by the specification.
    Must,
    /// Interoperability advice: what guests in the wild rely on.
    Should,
}

impl Level {
    /// `"MUST"` or `"SHOULD"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Must => "MUST",
            Self::Should => "SHOULD",
        }
    }
}

/// A rule's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The rule holds.
    Pass,
    /// The rule is broken; the note names the offending values.
    Fail,
    /// The rule does not apply, or cannot be judged from inside the guest
    /// (the note says which).
    NotApplicable,
}

impl Outcome {
    /// `"PASS"`, `"FAIL"` or `"N/A"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "PASS",
            Self::Fail => "FAIL",
            Self::NotApplicable => "N/A",
        }
    }

    /// The outcome [`Outcome::as_str`] printed.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "PASS" => Self::Pass,
            "FAIL" => Self::Fail,
            "N/A" => Self::NotApplicable,
            _ => return None,
        })
    }
}

/// One rule of the ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Stable name, `area.what` (`entry.cr0`, `memmap.sorted`): the key the
    /// probe prints and the matrix rows.
    pub id: &'static str,
    /// MUST or SHOULD.
    pub level: Level,
    /// Where the rule comes from.
    pub source: &'static str,
    /// What it asks, in one sentence.
    pub requirement: &'static str,
}

/// Bytes of a [`Note`].
pub const NOTE_LEN: usize = 160;

/// A short explanation of a finding, formatted without an allocator: text
/// past [`NOTE_LEN`] bytes is cut and marked with `...`.
#[derive(Clone, Copy)]
pub struct Note {
    buf: [u8; NOTE_LEN],
    len: usize,
}

impl Note {
    /// An empty note.
    pub const fn new() -> Self {
        Self {
            buf: [0; NOTE_LEN],
            len: 0,
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        let bytes = &self.buf[..self.len];
        match core::str::from_utf8(bytes) {
            Ok(s) => s,
            // A cut through a multi-byte character: drop its start.
            Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
        }
    }
}

impl Default for Note {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Write for Note {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        const MORE: &[u8] = b"...";
        let room = NOTE_LEN - self.len;
        if s.len() <= room {
            self.buf[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
            self.len += s.len();
        } else if self.len < NOTE_LEN {
            let keep = room.saturating_sub(MORE.len());
            self.buf[self.len..self.len + keep].copy_from_slice(&s.as_bytes()[..keep]);
            self.buf[NOTE_LEN - MORE.len()..].copy_from_slice(MORE);
            self.len = NOTE_LEN;
        }
        Ok(())
    }
}

impl fmt::Debug for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule's verdict on one boot.
#[derive(Debug, Clone, Copy)]
pub struct Finding {
    /// The rule.
    pub rule: &'static Rule,
    /// Its outcome.
    pub outcome: Outcome,
    /// The values behind it.
    pub note: Note,
}

impl fmt::Display for Finding {
    /// `OUTCOME LEVEL[ note]`: the value of the probe's `verdict.<id>=`
    /// line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.outcome.as_str(), self.rule.level.as_str())?;
        if !self.note.as_str().is_empty() {
            write!(f, " {}", self.note)?;
        }
        Ok(())
    }
}

/// A verdict line's value (`OUTCOME LEVEL[ note]`) read back, for host
/// tools: the outcome, the level and the note.
pub fn parse_verdict(value: &str) -> Option<(Outcome, Level, &str)> {
    let mut it = value.splitn(3, ' ');
    let outcome = Outcome::parse(it.next()?)?;
    let level = match it.next()? {
        "MUST" => Level::Must,
        "SHOULD" => Level::Should,
        _ => return None,
    };
    Some((outcome, level, it.next().unwrap_or("")))
}

/// What was handed over, and what to judge it against.
#[derive(Debug)]
pub struct Subject<'a, M: ?Sized> {
    /// Guest memory.
    pub mem: &'a M,
    /// The start_info's address (EBX at entry).
    pub start_info: u64,
    /// The CPU state at entry; `None` skips the CPU rules (N/A), as a host
    /// test of a VMM's memory layout does.
    pub entry: Option<&'a cpu::EntryState>,
    /// Where the loaded guest image is (from its first `PT_LOAD`'s
    /// `p_paddr` to the end of its last `p_memsz`): nothing the hypervisor
    /// passes may overlap it. `None`: not checked.
    pub image: Option<Range<u64>>,
    /// The memory map to judge placement against when the start_info has
    /// none (under Xen: `XENMEM_memory_map`'s).
    pub fallback_map: Option<&'a [MemmapEntry]>,
    /// Whether the guest runs on Xen, where a version-0 start_info without
    /// a map is the documented arrangement.
    pub xen: bool,
}

/// Counts of a run's outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// MUST rules that failed.
    pub must_failed: u32,
    /// SHOULD rules that failed.
    pub should_failed: u32,
    /// Rules that passed.
    pub passed: u32,
    /// Rules that did not apply.
    pub not_applicable: u32,
}

impl Tally {
    /// Counts `finding`.
    pub fn add(&mut self, finding: &Finding) {
        match (finding.outcome, finding.rule.level) {
            (Outcome::Pass, _) => self.passed += 1,
            (Outcome::NotApplicable, _) => self.not_applicable += 1,
            (Outcome::Fail, Level::Must) => self.must_failed += 1,
            (Outcome::Fail, Level::Should) => self.should_failed += 1,
        }
    }
}

/// Judges `subject` by every rule, in [`RULES`] order, handing each
/// finding to `out`. Reads guest memory only; never panics, whatever the
/// memory holds; bounded work (at most [`MAX_MODULES`] modules and
/// [`MAX_MAP_ENTRIES`] map entries are examined, and a note says so).
pub fn check<M: PhysRead + ?Sized>(subject: &Subject<'_, M>, out: &mut dyn FnMut(&Finding)) {
    rules::check(subject, out)
}

/// Most modules the checks examine.
pub const MAX_MODULES: u32 = 32;
/// Most memory-map entries the checks examine.
pub const MAX_MAP_ENTRIES: u32 = 1024;

#[cfg(test)]
mod tests;
