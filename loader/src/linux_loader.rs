//! Compatibility with rust-vmm [`linux-loader`](https://docs.rs/linux-loader)
//! (feature `linux-loader`), so a VMM that boots PVH guests with it today
//! can switch to pvh one call at a time (`docs/linux-loader.md`):
//!
//! 1. [`LinuxLoaderAbi`]: conversions between pvh's ABI structs and
//!    linux-loader's (`hvm_start_info`, `hvm_memmap_table_entry`,
//!    `hvm_modlist_entry`, `boot_params`). Both sides are the same C layout
//!    (checked below, size and every field offset), so a conversion is a
//!    byte copy.
//! 2. [`PvhElfLoader`]: linux-loader's [`KernelLoader`] for PVH ELF kernels,
//!    in place of `linux_loader::loader::Elf`: the same result for the same
//!    image, after pvh's checks of the ELF and its `PHYS32_ENTRY` note.
//! 3. [`PvhConfigurator`]: linux-loader's [`BootConfigurator`] in place of
//!    `PvhBootConfigurator`: the same bytes at the same addresses, after
//!    checking that the start_info agrees with the tables it is written
//!    with, and read back through pvh's validating reader.
//! 4. Then the whole of a VMM's hand-built start_info gives way to
//!    [`plan`](crate::plan())/[`load`](crate::load()).
//!
//! Only this file depends on linux-loader; without the feature pvh-loader
//! takes command lines as bytes ([`BootConfig::cmdline`](crate::BootConfig)).

use crate::elf::ElfImage;
use crate::error::LoadError;
use core::mem::{offset_of, size_of};
use linux_loader::configurator::pvh::Error as PvhConfigError;
use linux_loader::configurator::{
    BootConfigurator, BootParams as LlBootParams, Error as ConfigError, Result as ConfigResult,
};
use linux_loader::loader::bootparam::boot_params;
use linux_loader::loader::elf::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info,
};
use linux_loader::loader::elf::{Error as ElfError, PvhBootCapability};
use linux_loader::loader::{Error as KernelLoaderError, KernelLoader, KernelLoaderResult};
use pvh_bootparams::BootParams;
use pvh_entry::{
    Limits, MemmapEntry, ModlistEntry, START_INFO_MAGIC, StartInfo, StartInfoView, VmMemory,
};
use std::io::{Read, Seek, SeekFrom};
use vm_memory::{ByteValued, GuestAddress, GuestMemoryBackend, ReadVolatile};
use zerocopy::{FromBytes, FromZeros, IntoBytes};

/// A rust-vmm `linux_loader` command line, re-exported for callers that
/// build their command line with it.
pub use linux_loader::cmdline::Cmdline;

/// The bytes (without NUL) of a `linux_loader` command line, for
/// [`BootConfig::cmdline`](crate::BootConfig).
pub fn cmdline_bytes(cmdline: &Cmdline) -> Result<Vec<u8>, LoadError> {
    let c = cmdline
        .as_cstring()
        .map_err(|e| LoadError::Cmdline(e.to_string()))?;
    Ok(c.into_bytes())
}

/// A pvh ABI struct with a linux-loader twin of the same C layout.
///
/// ```
/// use pvh_loader::linux_loader::LinuxLoaderAbi;
/// use pvh_entry::StartInfo;
///
/// let ours = StartInfo { magic: pvh_entry::START_INFO_MAGIC, version: 1, ..Default::default() };
/// let theirs = ours.to_linux_loader();
/// assert_eq!(theirs.magic, ours.magic);
/// assert_eq!(StartInfo::from_linux_loader(&theirs), ours);
/// ```
pub trait LinuxLoaderAbi: Sized {
    /// The linux-loader type.
    type LinuxLoader: ByteValued;

    /// The same bytes as linux-loader's type.
    fn to_linux_loader(&self) -> Self::LinuxLoader;

    /// The same bytes as pvh's type.
    fn from_linux_loader(other: &Self::LinuxLoader) -> Self;
}

/// Implements [`LinuxLoaderAbi`] as a byte copy, after compile-time checks
/// that both types have the same size and every field the same offset.
macro_rules! same_abi {
    ($ours:ty, $theirs:ty, [$(($a:ident, $b:ident)),* $(,)?]) => {
        const _: () = {
            assert!(size_of::<$ours>() == size_of::<$theirs>());
            $(assert!(offset_of!($ours, $a) == offset_of!($theirs, $b));)*
        };

        impl LinuxLoaderAbi for $ours {
            type LinuxLoader = $theirs;

            fn to_linux_loader(&self) -> $theirs {
                let mut out = <$theirs>::default();
                // Same size (asserted above): the copy fills every byte.
                out.as_mut_slice().copy_from_slice(self.as_bytes());
                out
            }

            fn from_linux_loader(other: &$theirs) -> Self {
                let mut out = <$ours>::new_zeroed();
                out.as_mut_bytes().copy_from_slice(other.as_slice());
                out
            }
        }
    };
}

same_abi!(
    StartInfo,
    hvm_start_info,
    [
        (magic, magic),
        (version, version),
        (flags, flags),
        (nr_modules, nr_modules),
        (modlist_paddr, modlist_paddr),
        (cmdline_paddr, cmdline_paddr),
        (rsdp_paddr, rsdp_paddr),
        (memmap_paddr, memmap_paddr),
        (memmap_entries, memmap_entries),
        (reserved, reserved),
    ]
);

same_abi!(
    MemmapEntry,
    hvm_memmap_table_entry,
    [
        (addr, addr),
        (size, size),
        (type_, type_),
        (reserved, reserved)
    ]
);

same_abi!(
    ModlistEntry,
    hvm_modlist_entry,
    [
        (paddr, paddr),
        (size, size),
        (cmdline_paddr, cmdline_paddr),
        (reserved, reserved),
    ]
);

// `boot_params`: every field, both sides named after Linux's
// `arch/x86/include/uapi/asm/bootparam.h`.
same_abi!(
    BootParams,
    boot_params,
    [
        (screen_info, screen_info),
        (apm_bios_info, apm_bios_info),
        (_pad2, _pad2),
        (tboot_addr, tboot_addr),
        (ist_info, ist_info),
        (acpi_rsdp_addr, acpi_rsdp_addr),
        (_pad3, _pad3),
        (hd0_info, hd0_info),
        (hd1_info, hd1_info),
        (sys_desc_table, sys_desc_table),
        (olpc_ofw_header, olpc_ofw_header),
        (ext_ramdisk_image, ext_ramdisk_image),
        (ext_ramdisk_size, ext_ramdisk_size),
        (ext_cmd_line_ptr, ext_cmd_line_ptr),
        (_pad4, _pad4),
        (cc_blob_address, cc_blob_address),
        (edid_info, edid_info),
        (efi_info, efi_info),
        (alt_mem_k, alt_mem_k),
        (scratch, scratch),
        (e820_entries, e820_entries),
        (eddbuf_entries, eddbuf_entries),
        (edd_mbr_sig_buf_entries, edd_mbr_sig_buf_entries),
        (kbd_status, kbd_status),
        (secure_boot, secure_boot),
        (_pad5, _pad5),
        (sentinel, sentinel),
        (_pad6, _pad6),
        (hdr, hdr),
        (_pad7, _pad7),
        (edd_mbr_sig_buffer, edd_mbr_sig_buffer),
        (e820_table, e820_table),
        (_pad8, _pad8),
        (eddbuf, eddbuf),
        (_pad9, _pad9),
    ]
);

/// The largest kernel image [`PvhElfLoader`] reads (the same bound as a
/// decompressed payload, [`crate::MAX_UNPACKED`]).
pub const MAX_KERNEL_IMAGE: u64 = crate::MAX_UNPACKED;

/// linux-loader's [`KernelLoader`] for PVH ELF kernels, checked by pvh.
///
/// A drop-in for `linux_loader::loader::Elf` on PVH kernels: the segments
/// land at the same addresses (`p_paddr`, plus `kernel_offset` if given)
/// and the [`KernelLoaderResult`] is the same (`kernel_load` = `e_entry`
/// plus the offset, `kernel_end` = the end of the highest segment,
/// `pvh_boot_cap` from the `PHYS32_ENTRY` note, ignored with an offset, as
/// linux-loader does). What differs, by design:
///
/// - the image is checked first as pvh's loader checks it
///   ([`ElfImage::parse`]): an ELF without a valid `PHYS32_ENTRY` note, with
///   overlapping or wrapping segments, or with an entry outside its
///   executable segments is refused (linux-loader loads a non-PVH ELF; use
///   it for those);
/// - a segment's bytes past its file size (`.bss`) are zeroed (linux-loader
///   leaves them as they were);
/// - with `highmem_start_address`, every segment must start at or above it
///   (linux-loader checks only `e_entry`);
/// - the image is read whole into memory (up to [`MAX_KERNEL_IMAGE`]).
///
/// Errors are linux-loader's (`Error::Elf`); the variant is the closest
/// one (an image pvh refuses is `InvalidPvhNote` or
/// `InvalidProgramHeaderAddress`): call [`ElfImage::parse`] for pvh's
/// typed reason.
#[derive(Debug, Clone, Copy, Default)]
pub struct PvhElfLoader;

impl KernelLoader for PvhElfLoader {
    fn load<F, M: GuestMemoryBackend>(
        guest_mem: &M,
        kernel_offset: Option<GuestAddress>,
        kernel_image: &mut F,
        highmem_start_address: Option<GuestAddress>,
    ) -> linux_loader::loader::Result<KernelLoaderResult>
    where
        F: Read + ReadVolatile + Seek,
    {
        let elf = |e: ElfError| KernelLoaderError::Elf(e);
        let len = kernel_image
            .seek(SeekFrom::End(0))
            .map_err(|_| elf(ElfError::SeekElfStart))?;
        if len > MAX_KERNEL_IMAGE {
            return Err(elf(ElfError::ReadKernelImage));
        }
        kernel_image
            .rewind()
            .map_err(|_| elf(ElfError::SeekElfStart))?;
        let mut bytes = Vec::with_capacity(len as usize);
        kernel_image
            .take(len)
            .read_to_end(&mut bytes)
            .map_err(|_| elf(ElfError::ReadKernelImage))?;

        let image = ElfImage::parse(&bytes).map_err(|e| elf(elf_error(&e)))?;
        let offset = kernel_offset.map_or(0, |o| o.0);
        let e_entry = e_entry(&bytes).ok_or(elf(ElfError::ReadElfHeader))?;
        if let Some(high) = highmem_start_address {
            if e_entry < high.0 {
                return Err(elf(ElfError::InvalidEntryAddress));
            }
            if image.segments.iter().any(|s| s.paddr < high.0) {
                return Err(elf(ElfError::InvalidProgramHeaderAddress));
            }
        }

        let mut mem = VmMemory(guest_mem);
        let mut kernel_end = 0u64;
        for s in &image.segments {
            let at = s
                .paddr
                .checked_add(offset)
                .ok_or(elf(ElfError::InvalidProgramHeaderAddress))?;
            let end = at
                .checked_add(s.memsz)
                .ok_or(KernelLoaderError::MemoryOverflow)?;
            let data = image.file_bytes(s);
            pvh_entry::PhysWrite::write(&mut mem, at, data)
                .map_err(|_| elf(ElfError::ReadKernelImage))?;
            // `.bss`: zeroed in bounded chunks.
            let mut z = at + data.len() as u64;
            const ZEROS: [u8; 4096] = [0; 4096];
            while z < end {
                let n = (end - z).min(ZEROS.len() as u64) as usize;
                pvh_entry::PhysWrite::write(&mut mem, z, &ZEROS[..n])
                    .map_err(|_| elf(ElfError::ReadKernelImage))?;
                z += n as u64;
            }
            kernel_end = kernel_end.max(end);
        }

        let kernel_load = e_entry.checked_add(offset).ok_or(elf(ElfError::Overflow))?;
        let pvh_boot_cap = if kernel_offset.is_some() {
            PvhBootCapability::PvhEntryIgnored
        } else {
            PvhBootCapability::PvhEntryPresent(GuestAddress(u64::from(image.entry)))
        };
        Ok(KernelLoaderResult {
            kernel_load: GuestAddress(kernel_load),
            kernel_end,
            setup_header: None,
            pvh_boot_cap,
        })
    }
}

/// `e_entry` of an ELF pvh has parsed (class from byte 4).
fn e_entry(bytes: &[u8]) -> Option<u64> {
    match bytes.get(4)? {
        1 => Some(u64::from(u32::read_from_bytes(bytes.get(24..28)?).ok()?)),
        2 => u64::read_from_bytes(bytes.get(24..32)?).ok(),
        _ => None,
    }
}

/// The closest linux-loader ELF error for a refusal by pvh's checks.
fn elf_error(e: &LoadError) -> ElfError {
    match e {
        LoadError::UnknownImage { .. } | LoadError::Elf(_) => ElfError::InvalidElfMagicNumber,
        LoadError::NoPvhEntry | LoadError::Note(_) | LoadError::ConflictingNotes { .. } => {
            ElfError::InvalidPvhNote
        }
        _ => ElfError::InvalidProgramHeaderAddress,
    }
}

/// linux-loader's [`BootConfigurator`] for PVH, checked by pvh.
///
/// A drop-in for `linux_loader::configurator::pvh::PvhBootConfigurator`:
/// the same [`LlBootParams`] (an `hvm_start_info` header, the memory map as
/// `sections`, the module list as `modules`) give the same bytes at the
/// same addresses. Before writing, it checks what linux-loader takes on
/// trust: the header is a start_info (magic, at least version 1's size),
/// `sections_start` is its `memmap_paddr` and `sections` holds exactly
/// `memmap_entries` entries, `modules_start`/`modules` are its
/// `modlist_paddr`/`nr_modules`. After writing, the start_info is read back
/// through [`StartInfoView`] (command lines terminated, tables inside
/// guest memory). A refusal is `Error::Pvh(StartInfoSetup)` (or the
/// linux-loader error for a write that failed); read the start_info with
/// [`StartInfoView::read`] for pvh's typed reason.
#[derive(Debug, Clone, Copy, Default)]
pub struct PvhConfigurator;

impl BootConfigurator for PvhConfigurator {
    fn write_bootparams<M>(params: &LlBootParams, guest_memory: &M) -> ConfigResult<()>
    where
        M: GuestMemoryBackend,
    {
        let refuse = || ConfigError::Pvh(PvhConfigError::StartInfoSetup);
        let header = params
            .header
            .get(..size_of::<StartInfo>())
            .and_then(|b| StartInfo::read_from_bytes(b).ok())
            .ok_or_else(refuse)?;
        if header.magic != START_INFO_MAGIC || header.version < 1 {
            return Err(refuse());
        }
        let memmap = params
            .sections
            .as_ref()
            .ok_or(ConfigError::Pvh(PvhConfigError::MemmapTableMissing))?;
        let memmap_at = params
            .sections_start
            .ok_or(ConfigError::Pvh(PvhConfigError::MemmapTableAddressMissing))?;
        let memmap_len = u64::from(header.memmap_entries) * size_of::<MemmapEntry>() as u64;
        if memmap_at.0 != header.memmap_paddr || memmap.len() as u64 != memmap_len {
            return Err(refuse());
        }
        let modules_len = u64::from(header.nr_modules) * size_of::<ModlistEntry>() as u64;
        match (&params.modules, params.modules_start) {
            (Some(m), Some(at))
                if at.0 == header.modlist_paddr && m.len() as u64 == modules_len => {}
            (None, None) if header.nr_modules == 0 => {}
            (Some(_), None) => {
                return Err(ConfigError::Pvh(PvhConfigError::ModulesAddressMissing));
            }
            _ => return Err(refuse()),
        }

        linux_loader::configurator::pvh::PvhBootConfigurator::write_bootparams(
            params,
            guest_memory,
        )?;

        let mem = VmMemory(guest_memory);
        StartInfoView::read_with_limits(&mem, params.header_start.0, &Limits::default())
            .map_err(|_| refuse())?;
        Ok(())
    }
}
