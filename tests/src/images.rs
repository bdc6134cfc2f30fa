//! Boot images built byte by byte for the workspace tests (offsets from the
//! ELF specification and Linux's boot.rst), so each rule can be broken on
//! its own without a toolchain.

/// A PT_LOAD of a synthetic ELF.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Physical (and virtual) address.
    pub paddr: u64,
    /// Bytes in the file (filled with `hlt`).
    pub filesz: u64,
    /// Bytes in memory.
    pub memsz: u64,
    /// `p_flags` (5 = R+X).
    pub flags: u32,
}

impl Load {
    /// Executable code of `len` bytes at `paddr`.
    pub fn code(paddr: u64, len: u64) -> Self {
        Self {
            paddr,
            filesz: len,
            memsz: len,
            flags: 5,
        }
    }
}

/// A synthetic little-endian ELF64.
#[derive(Debug, Clone)]
pub struct SynthElf {
    /// `e_machine` (62: x86-64).
    pub machine: u16,
    /// PT_LOADs.
    pub loads: Vec<Load>,
    /// Xen `PHYS32_ENTRY` values, one 8-byte note each, in one PT_NOTE.
    pub entries: Vec<u64>,
    /// PT_NULL headers appended after the others.
    pub null_headers: usize,
}

impl SynthElf {
    /// A PVH ELF64 for x86-64: 0x100 bytes of code at 1 MiB, entry there.
    pub fn pvh() -> Self {
        Self {
            machine: 62,
            loads: vec![Load::code(0x10_0000, 0x100)],
            entries: vec![0x10_0000],
            null_headers: 0,
        }
    }

    /// The file.
    pub fn build(&self) -> Vec<u8> {
        let mut notes = Vec::new();
        for e in &self.entries {
            notes.extend(4u32.to_le_bytes());
            notes.extend(8u32.to_le_bytes());
            notes.extend(18u32.to_le_bytes());
            notes.extend(b"Xen\0");
            notes.extend(e.to_le_bytes());
        }
        let has_notes = !self.entries.is_empty();
        let phnum = self.loads.len() + usize::from(has_notes) + self.null_headers;
        let phoff = 64u64;
        let notes_off = phoff + 56 * phnum as u64;
        let mut data_off = notes_off + notes.len() as u64;
        let mut out = Vec::new();
        out.extend(b"\x7fELF\x02\x01\x01");
        out.resize(16, 0);
        out.extend(2u16.to_le_bytes()); // ET_EXEC
        out.extend(self.machine.to_le_bytes());
        out.extend(1u32.to_le_bytes());
        out.extend(self.entries.first().copied().unwrap_or(0).to_le_bytes());
        out.extend(phoff.to_le_bytes());
        out.extend(0u64.to_le_bytes());
        out.extend(0u32.to_le_bytes());
        out.extend(64u16.to_le_bytes());
        out.extend(56u16.to_le_bytes());
        out.extend((phnum as u16).to_le_bytes());
        out.extend([0u8; 6]);
        let mut phdr = |t: u32, flags: u32, off: u64, addr: u64, filesz: u64, memsz: u64| {
            out.extend(t.to_le_bytes());
            out.extend(flags.to_le_bytes());
            out.extend(off.to_le_bytes());
            out.extend(addr.to_le_bytes());
            out.extend(addr.to_le_bytes());
            out.extend(filesz.to_le_bytes());
            out.extend(memsz.to_le_bytes());
            out.extend(0x1000u64.to_le_bytes());
        };
        for l in &self.loads {
            phdr(1, l.flags, data_off, l.paddr, l.filesz, l.memsz);
            data_off += l.filesz;
        }
        if has_notes {
            phdr(4, 4, notes_off, 0, notes.len() as u64, notes.len() as u64);
        }
        for _ in 0..self.null_headers {
            phdr(0, 0, 0, 0, 0, 0);
        }
        out.extend(&notes);
        for l in &self.loads {
            out.resize(out.len() + l.filesz as usize, 0xf4);
        }
        out
    }
}

/// Synthetic bzImages: the workspace's one builder.
pub use pvh_bootparams::synth::SynthBzImage as SynthBz;
