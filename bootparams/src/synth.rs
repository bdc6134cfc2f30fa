//! Synthetic bzImages for tests (feature `synth`): a setup header with the
//! fields a loader reads, written at the offsets of boot.rst, so each rule
//! of the boot protocol can be broken on its own without building a kernel.
//! The workspace's tests share this one builder.

use alloc::vec;
use alloc::vec::Vec;

/// A bzImage to build: four setup sectors after the boot sector, then the
/// protected-mode code (`head`, then the `payload` the header points at,
/// then 64 bytes of trailer).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SynthBzImage {
    /// Boot protocol version (0x020f: 2.15).
    pub version: u16,
    /// `xloadflags` (3: `KERNEL_64 | CAN_BE_LOADED_ABOVE_4G`).
    pub xloadflags: u16,
    /// `relocatable_kernel`.
    pub relocatable: bool,
    /// `kernel_alignment`.
    pub kernel_alignment: u32,
    /// `pref_address`.
    pub pref_address: u64,
    /// `init_size`.
    pub init_size: u32,
    /// `cmdline_size`.
    pub cmdline_size: u32,
    /// `initrd_addr_max`.
    pub initrd_addr_max: u32,
    /// Protected-mode code before the payload.
    pub head: Vec<u8>,
    /// The payload (`payload_offset` = `head.len()`).
    pub payload: Vec<u8>,
}

impl Default for SynthBzImage {
    /// A kernel the 64-bit boot protocol takes: relocatable, 2 MiB
    /// alignment, preferring 16 MiB, 4 MiB `init_size`.
    fn default() -> Self {
        Self {
            version: 0x020f,
            xloadflags: 0x3,
            relocatable: true,
            kernel_alignment: 0x20_0000,
            pref_address: 0x100_0000,
            init_size: 0x40_0000,
            cmdline_size: 2047,
            initrd_addr_max: 0x7fff_ffff,
            head: vec![0xf4; 0x400],
            payload: vec![0x55; 0x100],
        }
    }
}

impl SynthBzImage {
    /// Setup sectors (`setup_sects`).
    pub const SETUP_SECTS: u8 = 4;
    /// Bytes before the protected-mode code.
    pub const SETUP_SIZE: usize = (Self::SETUP_SECTS as usize + 1) * 512;
    /// Bytes after the payload.
    pub const TRAILER: usize = 64;

    /// Boot protocol version.
    #[must_use]
    pub fn version(mut self, version: u16) -> Self {
        self.version = version;
        self
    }

    /// `xloadflags`.
    #[must_use]
    pub fn xloadflags(mut self, xloadflags: u16) -> Self {
        self.xloadflags = xloadflags;
        self
    }

    /// `relocatable_kernel`.
    #[must_use]
    pub fn relocatable(mut self, relocatable: bool) -> Self {
        self.relocatable = relocatable;
        self
    }

    /// `kernel_alignment`.
    #[must_use]
    pub fn kernel_alignment(mut self, kernel_alignment: u32) -> Self {
        self.kernel_alignment = kernel_alignment;
        self
    }

    /// `pref_address`.
    #[must_use]
    pub fn pref_address(mut self, pref_address: u64) -> Self {
        self.pref_address = pref_address;
        self
    }

    /// `init_size`.
    #[must_use]
    pub fn init_size(mut self, init_size: u32) -> Self {
        self.init_size = init_size;
        self
    }

    /// `cmdline_size`.
    #[must_use]
    pub fn cmdline_size(mut self, cmdline_size: u32) -> Self {
        self.cmdline_size = cmdline_size;
        self
    }

    /// `initrd_addr_max`.
    #[must_use]
    pub fn initrd_addr_max(mut self, initrd_addr_max: u32) -> Self {
        self.initrd_addr_max = initrd_addr_max;
        self
    }

    /// Protected-mode code before the payload.
    #[must_use]
    pub fn head(mut self, head: Vec<u8>) -> Self {
        self.head = head;
        self
    }

    /// The payload.
    #[must_use]
    pub fn payload(mut self, payload: Vec<u8>) -> Self {
        self.payload = payload;
        self
    }

    /// Bytes of protected-mode code the image will have.
    pub fn code_size(&self) -> usize {
        self.head.len() + self.payload.len() + Self::TRAILER
    }

    /// The image.
    pub fn build(&self) -> Vec<u8> {
        let mut b = vec![0u8; Self::SETUP_SIZE];
        b[0x1f1] = Self::SETUP_SECTS;
        b[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
        b[0x200] = 0xeb;
        b[0x201] = 0x6a; // the header ends at 0x26c
        b[0x202..0x206].copy_from_slice(b"HdrS");
        b[0x206..0x208].copy_from_slice(&self.version.to_le_bytes());
        b[0x211] = 1; // LOADED_HIGH, as every bzImage says
        b[0x214..0x218].copy_from_slice(&0x10_0000u32.to_le_bytes());
        b[0x22c..0x230].copy_from_slice(&self.initrd_addr_max.to_le_bytes());
        b[0x230..0x234].copy_from_slice(&self.kernel_alignment.to_le_bytes());
        b[0x234] = u8::from(self.relocatable);
        b[0x235] = 21;
        b[0x236..0x238].copy_from_slice(&self.xloadflags.to_le_bytes());
        b[0x238..0x23c].copy_from_slice(&self.cmdline_size.to_le_bytes());
        b[0x248..0x24c].copy_from_slice(&(self.head.len() as u32).to_le_bytes());
        b[0x24c..0x250].copy_from_slice(&(self.payload.len() as u32).to_le_bytes());
        b[0x258..0x260].copy_from_slice(&self.pref_address.to_le_bytes());
        b[0x260..0x264].copy_from_slice(&self.init_size.to_le_bytes());
        b.extend(&self.head);
        b.extend(&self.payload);
        b.extend([0xcc; Self::TRAILER]);
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BzImage;

    #[test]
    fn the_built_image_reads_back_field_by_field() {
        let s = SynthBzImage::default();
        let bytes = s.build();
        let image = BzImage::parse(&bytes).unwrap();
        let h = image.header();
        assert_eq!({ h.version }, 0x020f);
        assert_eq!({ h.init_size }, 0x40_0000);
        assert_eq!({ h.pref_address }, 0x100_0000);
        assert_eq!(image.setup_size(), SynthBzImage::SETUP_SIZE);
        assert_eq!(image.kernel().len(), s.code_size());
        assert_eq!(image.payload(), &s.payload[..]);
        assert!(image.check_64bit_boot().is_ok());
    }
}
