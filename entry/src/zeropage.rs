//! The translation of a start_info into a Linux zero page.
//!
//! One pure function, [`translate`], used by the guest stub (in a PVH guest,
//! over identity-mapped memory) and by the loader (on the host, over
//! `vm-memory`): both sides produce the same page from the same inputs by
//! construction. The rules, with their sources, are in `docs/abi.md`.

use crate::memory::{OutOfRange, PhysRead, PhysWrite, write_obj};
use crate::reader::StartInfoView;
use crate::start_info::{MemmapEntry, MemmapType};
use pvh_bootparams::{
    BOOT_FLAG, BootParams, E820_MAX_ENTRIES_ZEROPAGE, E820Entry, E820Type, HDRS_MAGIC,
    HardwareSubarch, LOADER_TYPE_UNDEFINED, SetupData, SetupDataType, SetupHeader,
};
use zerocopy::IntoBytes;

/// The legacy ISA window: reserved in the e820 map unless the map already
/// marks it non-RAM.
pub use crate::machine::ISA_WINDOW;

/// The boot protocol version written when the caller has no kernel header:
/// 2.12, as Linux's own PVH entry writes.
pub const DEFAULT_PROTOCOL: u16 = 0x020c;

/// `hardware_subarch` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubarchPolicy {
    /// `hardware_subarch = PC (0)`, data 0: what Linux's PVH entry does and
    /// what bootparam.h asks for guests that are not on the PV path.
    #[default]
    Pc,
    /// `hardware_subarch = XEN (2)` and `hardware_subarch_data` = the
    /// start_info's physical address, so the kernel can find it. Opt-in:
    /// Linux then also skips the RTC and PNPBIOS probes.
    Xen,
}

impl SubarchPolicy {
    /// The `hardware_subarch` value this policy writes.
    pub const fn hardware_subarch(self) -> HardwareSubarch {
        match self {
            Self::Pc => HardwareSubarch::PC,
            Self::Xen => HardwareSubarch::XEN,
        }
    }

    /// The policy that writes `value`, if there is one.
    pub const fn from_hardware_subarch(value: u32) -> Option<Self> {
        match HardwareSubarch(value) {
            HardwareSubarch::PC => Some(Self::Pc),
            HardwareSubarch::XEN => Some(Self::Xen),
            _ => None,
        }
    }
}

/// Which module becomes the initrd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InitrdChoice {
    /// Module 0 if there is one (the PVH convention).
    #[default]
    FirstModule,
    /// This module; an error if it does not exist.
    Module(u32),
    /// No initrd.
    None,
}

/// How to translate.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct TranslateOptions<'a> {
    /// Subarch policy.
    pub subarch: SubarchPolicy,
    /// Initrd choice.
    pub initrd: InitrdChoice,
    /// The kernel's own setup header (from its bzImage), copied in first.
    pub setup_header: Option<&'a SetupHeader>,
    /// A memory map to use instead of the start_info's; required for a
    /// version-0 start_info (on Xen: the XENMEM_memory_map result).
    pub memmap: Option<&'a [MemmapEntry]>,
}

impl<'a> TranslateOptions<'a> {
    /// Subarch policy.
    #[must_use]
    pub const fn subarch(mut self, subarch: SubarchPolicy) -> Self {
        self.subarch = subarch;
        self
    }

    /// Initrd choice.
    #[must_use]
    pub const fn initrd(mut self, initrd: InitrdChoice) -> Self {
        self.initrd = initrd;
        self
    }

    /// The kernel's own setup header, copied in first.
    #[must_use]
    pub const fn setup_header(mut self, setup_header: Option<&'a SetupHeader>) -> Self {
        self.setup_header = setup_header;
        self
    }

    /// A memory map to use instead of the start_info's.
    #[must_use]
    pub const fn memmap(mut self, memmap: Option<&'a [MemmapEntry]>) -> Self {
        self.memmap = memmap;
        self
    }
}

/// Why a translation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TranslateError {
    /// No memory map: version 0 (or 0 entries) and none supplied.
    #[error("start_info version {version} carries no memory map and none was supplied")]
    NoMemoryMap {
        /// The start_info version.
        version: u32,
    },
    /// A memory-map entry's range wraps past 2^64.
    #[error(
        "memory-map entry {index} ({addr:#x}+{size:#x}) wraps past the end of the address space"
    )]
    EntryWraps {
        /// Entry index.
        index: usize,
        /// Its address.
        addr: u64,
        /// Its size.
        size: u64,
    },
    /// The e820 scratch buffer is too small.
    #[error("e820 scratch holds {available} entries; {needed} needed")]
    ScratchTooSmall {
        /// Entries needed.
        needed: usize,
        /// Entries available.
        available: usize,
    },
    /// The chosen initrd module does not exist.
    #[error("initrd module {index} requested, but there are only {count} modules")]
    NoSuchModule {
        /// Requested index.
        index: u32,
        /// Modules present.
        count: u32,
    },
}

/// Result of a translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    /// Total e820 entries, those in the zero page and those past 128.
    pub e820_total: usize,
    /// The initrd as (address, size), if any.
    pub initrd: Option<(u64, u64)>,
}

impl Translation {
    /// Entries that did not fit in the zero page: they belong in a
    /// `SETUP_E820_EXT` node ([`write_e820_ext`]). A slice of the scratch
    /// buffer given to [`translate`].
    pub fn e820_ext<'s>(&self, scratch: &'s [E820Entry]) -> &'s [E820Entry] {
        scratch
            .get(E820_MAX_ENTRIES_ZEROPAGE..self.e820_total)
            .unwrap_or(&[])
    }
}

/// The e820 scratch capacity [`translate`] needs for a map of `entries`
/// entries: one more, for the ISA reservation.
pub const fn e820_scratch_len(entries: usize) -> usize {
    entries.saturating_add(1)
}

/// The e820 type a PVH memory-map type becomes: the ACPI types Linux knows
/// keep their number; DISABLED, Xen's OEM types and anything unknown become
/// RESERVED (never RAM, never a panic).
pub fn e820_type(t: MemmapType) -> E820Type {
    match t {
        MemmapType::RAM
        | MemmapType::RESERVED
        | MemmapType::ACPI
        | MemmapType::NVS
        | MemmapType::UNUSABLE
        | MemmapType::PMEM => E820Type(t.0),
        _ => E820Type::RESERVED,
    }
}

/// Translates the start_info `info` into the zero page `bp` (overwritten
/// entirely). `e820_scratch` must hold [`e820_scratch_len`] entries for the
/// map used; after the call it holds the whole sorted e820 table, of which
/// the first 128 are in `bp` and the rest in [`Translation::e820_ext`].
pub fn translate<M: PhysRead + ?Sized>(
    info: &StartInfoView<'_, M>,
    options: &TranslateOptions<'_>,
    e820_scratch: &mut [E820Entry],
    bp: &mut BootParams,
) -> Result<Translation, TranslateError> {
    *bp = BootParams::zeroed();
    match options.setup_header {
        Some(hdr) => bp.hdr = *hdr,
        None => {
            bp.hdr.boot_flag = BOOT_FLAG;
            bp.hdr.header = HDRS_MAGIC;
            bp.hdr.version = DEFAULT_PROTOCOL;
        }
    }
    bp.hdr.type_of_loader = LOADER_TYPE_UNDEFINED;
    bp.sentinel = 0;
    bp.acpi_rsdp_addr = info.header().rsdp_paddr;
    bp.set_cmd_line_ptr(info.cmdline().map_or(0, |(addr, _)| addr));
    bp.hdr.hardware_subarch = options.subarch.hardware_subarch();
    bp.hdr.hardware_subarch_data = match options.subarch {
        SubarchPolicy::Pc => 0,
        SubarchPolicy::Xen => info.addr(),
    };

    let initrd = match options.initrd {
        InitrdChoice::None => None,
        InitrdChoice::FirstModule => info.module(0),
        InitrdChoice::Module(index) => {
            Some(info.module(index).ok_or(TranslateError::NoSuchModule {
                index,
                count: info.module_count(),
            })?)
        }
    }
    .map(|m| (m.entry.paddr, m.entry.size));
    if let Some((addr, size)) = initrd {
        bp.set_ramdisk(addr, size);
    }

    let e820_total = build_e820(info, options.memmap, e820_scratch)?;
    let in_page = e820_total.min(E820_MAX_ENTRIES_ZEROPAGE);
    bp.e820_table[..in_page].copy_from_slice(&e820_scratch[..in_page]);
    bp.e820_entries = in_page as u8;
    Ok(Translation { e820_total, initrd })
}

fn build_e820<M: PhysRead + ?Sized>(
    info: &StartInfoView<'_, M>,
    supplied: Option<&[MemmapEntry]>,
    scratch: &mut [E820Entry],
) -> Result<usize, TranslateError> {
    let count = match supplied {
        Some(map) => map.len(),
        None if info.memmap_len() > 0 => info.memmap_len() as usize,
        None => {
            return Err(TranslateError::NoMemoryMap {
                version: info.version(),
            });
        }
    };
    let needed = e820_scratch_len(count);
    if scratch.len() < needed {
        return Err(TranslateError::ScratchTooSmall {
            needed,
            available: scratch.len(),
        });
    }
    let mut n = 0;
    for index in 0..count {
        let entry = match supplied {
            Some(map) => map[index],
            // Validated to be in memory by the reader; if memory changed
            // underneath, the entry is dropped rather than invented.
            None => match info.memmap_entry(index as u32) {
                Some(e) => e,
                None => continue,
            },
        };
        if entry.end().is_none() {
            return Err(TranslateError::EntryWraps {
                index,
                addr: entry.addr,
                size: entry.size,
            });
        }
        if entry.size == 0 {
            continue;
        }
        scratch[n] = E820Entry::new(entry.addr, entry.size, e820_type(entry.type_));
        n += 1;
    }
    if !isa_window_is_reserved(&scratch[..n]) {
        scratch[n] = E820Entry::new(
            ISA_WINDOW.start,
            ISA_WINDOW.end - ISA_WINDOW.start,
            E820Type::RESERVED,
        );
        n += 1;
    }
    // By address, then size and type so the order is fully determined.
    // Comparing the address alone first is the common, cheap case (the
    // sort is most of the translation's time).
    scratch[..n].sort_unstable_by(|a, b| {
        let (a_addr, b_addr) = (a.addr, b.addr);
        a_addr.cmp(&b_addr).then_with(|| {
            let (a_size, a_type, b_size, b_type) = (a.size, a.type_, b.size, b.type_);
            (a_size, a_type).cmp(&(b_size, b_type))
        })
    });
    Ok(n)
}

/// Whether every byte of the ISA window is covered by non-RAM entries.
fn isa_window_is_reserved(entries: &[E820Entry]) -> bool {
    // Walk the window forward, each step jumping to the furthest end of a
    // non-RAM entry that covers the current point: O(n) per step, and each
    // step strictly advances, at most n steps.
    let mut at = ISA_WINDOW.start;
    while at < ISA_WINDOW.end {
        let next = entries
            .iter()
            .filter(|e| { e.type_ } != E820Type::RAM)
            .filter_map(|e| Some((e.addr, e.end()?)))
            .filter(|&(start, end)| start <= at && end > at)
            .map(|(_, end)| end)
            .max();
        match next {
            Some(end) => at = end,
            None => return false,
        }
    }
    true
}

/// Bytes a `SETUP_E820_EXT` node for `entries` entries occupies.
pub const fn e820_ext_size(entries: usize) -> u64 {
    (size_of::<SetupData>() + entries * size_of::<E820Entry>()) as u64
}

/// Writes a `SETUP_E820_EXT` node holding `entries` at `addr` and links it
/// at the head of `bp`'s setup_data list.
pub fn write_e820_ext<M: PhysWrite + ?Sized>(
    mem: &mut M,
    addr: u64,
    entries: &[E820Entry],
    bp: &mut BootParams,
) -> Result<(), OutOfRange> {
    let len = entries.as_bytes().len();
    let err = OutOfRange {
        addr,
        len: e820_ext_size(entries.len()),
    };
    let node = SetupData {
        next: bp.hdr.setup_data,
        type_: SetupDataType::E820_EXT,
        len: u32::try_from(len).map_err(|_| err)?,
    };
    let payload = addr.checked_add(size_of::<SetupData>() as u64).ok_or(err)?;
    mem.write(payload, entries.as_bytes())?;
    write_obj(mem, addr, &node)?;
    bp.hdr.setup_data = addr;
    Ok(())
}

#[cfg(feature = "alloc")]
mod owned {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    /// A translated zero page with its overflow e820 entries, for hosts.
    #[derive(Debug, Clone)]
    pub struct ZeroPage {
        /// The zero page.
        pub params: BootParams,
        /// Entries past the first 128, for a `SETUP_E820_EXT` node.
        pub e820_ext: Vec<E820Entry>,
        /// The translation summary.
        pub translation: Translation,
    }

    /// [`translate`] with its own scratch buffer.
    pub fn translate_owned<M: PhysRead + ?Sized>(
        info: &StartInfoView<'_, M>,
        options: &TranslateOptions<'_>,
    ) -> Result<ZeroPage, TranslateError> {
        let entries = options
            .memmap
            .map_or(info.memmap_len() as usize, <[_]>::len);
        let mut scratch = vec![E820Entry::new(0, 0, E820Type(0)); e820_scratch_len(entries)];
        let mut params = BootParams::zeroed();
        let translation = translate(info, options, &mut scratch, &mut params)?;
        let e820_ext = translation.e820_ext(&scratch).to_vec();
        Ok(ZeroPage {
            params,
            e820_ext,
            translation,
        })
    }
}

#[cfg(feature = "alloc")]
pub use owned::{ZeroPage, translate_owned};
