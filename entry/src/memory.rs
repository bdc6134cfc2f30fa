//! "Read and write bytes at a guest-physical address": the one seam through
//! which the start_info reader, writer and translation touch memory, so the
//! same code runs in a guest (identity-mapped RAM), in a host tool
//! (rust-vmm `vm-memory`, behind the `vm-memory` feature) and in tests (a
//! byte slice at a base address).

/// An access that falls outside the memory an implementation covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{len:#x} bytes at guest-physical {addr:#x} are outside the accessible memory")]
pub struct OutOfRange {
    /// First byte of the access.
    pub addr: u64,
    /// Length of the access.
    pub len: u64,
}

/// Reading guest-physical memory.
pub trait PhysRead {
    /// Fills `buf` from the bytes at `addr`; all or nothing.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), OutOfRange>;
}

/// Writing guest-physical memory.
pub trait PhysWrite: PhysRead {
    /// Writes `data` at `addr`; all or nothing: an access that is partly
    /// outside memory writes nothing.
    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), OutOfRange>;
}

/// Reading guest-physical memory in place, as a byte slice: for parsing a
/// large image (a bzImage module, a payload) where it lies, without a copy.
pub trait PhysBytes: PhysRead {
    /// The `len` bytes at `addr`.
    fn bytes(&self, addr: u64, len: u64) -> Result<&[u8], OutOfRange>;
}

impl<M: PhysBytes + ?Sized> PhysBytes for &M {
    fn bytes(&self, addr: u64, len: u64) -> Result<&[u8], OutOfRange> {
        (**self).bytes(addr, len)
    }
}

impl<M: PhysRead + ?Sized> PhysRead for &M {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), OutOfRange> {
        (**self).read(addr, buf)
    }
}

impl<M: PhysRead + ?Sized> PhysRead for &mut M {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), OutOfRange> {
        (**self).read(addr, buf)
    }
}

impl<M: PhysWrite + ?Sized> PhysWrite for &mut M {
    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), OutOfRange> {
        (**self).write(addr, data)
    }
}

/// Reads a plain-data value (any zerocopy `FromBytes` type) at `addr`.
pub fn read_obj<T, M>(mem: &M, addr: u64) -> Result<T, OutOfRange>
where
    T: zerocopy::FromBytes + zerocopy::IntoBytes,
    M: PhysRead + ?Sized,
{
    let mut value = T::new_zeroed();
    mem.read(addr, value.as_mut_bytes())?;
    Ok(value)
}

/// Writes a plain-data value at `addr`.
pub fn write_obj<T, M>(mem: &mut M, addr: u64, value: &T) -> Result<(), OutOfRange>
where
    T: zerocopy::IntoBytes + zerocopy::Immutable,
    M: PhysWrite + ?Sized,
{
    mem.write(addr, value.as_bytes())
}

/// The range `addr..addr+len` as indices into a region that starts at
/// `base` and is `size` bytes long, if it lies entirely inside.
fn window(
    base: u64,
    size: usize,
    addr: u64,
    len: usize,
) -> Result<core::ops::Range<usize>, OutOfRange> {
    let err = OutOfRange {
        addr,
        len: len as u64,
    };
    let start = addr.checked_sub(base).ok_or(err)?;
    let start = usize::try_from(start).map_err(|_| err)?;
    let end = start.checked_add(len).ok_or(err)?;
    if end > size {
        return Err(err);
    }
    Ok(start..end)
}

/// Memory backed by a byte buffer that stands at guest-physical `base`.
/// For tests and for host tools that stage a region before copying it.
#[derive(Debug, Clone)]
pub struct SliceMemory<B> {
    base: u64,
    bytes: B,
}

impl<B: AsRef<[u8]>> SliceMemory<B> {
    /// `bytes` at guest-physical address `base`.
    pub fn new(base: u64, bytes: B) -> Self {
        Self { base, bytes }
    }

    /// The guest-physical address of the first byte.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// The backing bytes.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.as_ref()
    }

    /// Gives the backing buffer back.
    pub fn into_inner(self) -> B {
        self.bytes
    }
}

impl<B: AsRef<[u8]>> PhysRead for SliceMemory<B> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), OutOfRange> {
        let bytes = self.bytes.as_ref();
        let range = window(self.base, bytes.len(), addr, buf.len())?;
        buf.copy_from_slice(&bytes[range]);
        Ok(())
    }
}

impl<B: AsRef<[u8]>> PhysBytes for SliceMemory<B> {
    fn bytes(&self, addr: u64, len: u64) -> Result<&[u8], OutOfRange> {
        let bytes = self.bytes.as_ref();
        let len = usize::try_from(len).map_err(|_| OutOfRange { addr, len })?;
        let range = window(self.base, bytes.len(), addr, len)?;
        Ok(&bytes[range])
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> PhysWrite for SliceMemory<B> {
    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), OutOfRange> {
        let bytes = self.bytes.as_mut();
        let range = window(self.base, bytes.len(), addr, data.len())?;
        bytes[range].copy_from_slice(data);
        Ok(())
    }
}

/// Physical memory seen through an identity map, as a PVH guest sees it at
/// entry: the physical address *is* the pointer. Covers `start..end`.
#[derive(Debug)]
pub struct IdentityMapped {
    start: u64,
    end: u64,
}

impl IdentityMapped {
    /// Memory from `start` (inclusive) to `end` (exclusive).
    ///
    /// # Safety
    /// For as long as the value lives, every address in `start..end` must be
    /// mapped (virtual = physical) and readable, and writable if
    /// [`PhysWrite`] is used; no Rust reference may alias bytes that are
    /// written through it; and the range must not contain address 0 if the
    /// platform treats a null pointer specially (it does not on x86 guests,
    /// but Rust does: do not include page 0).
    pub unsafe fn new(start: u64, end: u64) -> Self {
        Self { start, end }
    }

    fn check(&self, addr: u64, len: usize) -> Result<(), OutOfRange> {
        let err = OutOfRange {
            addr,
            len: len as u64,
        };
        let last = addr.checked_add(len as u64).ok_or(err)?;
        if addr < self.start || last > self.end || (len > 0 && addr == 0) {
            return Err(err);
        }
        Ok(())
    }
}

impl PhysRead for IdentityMapped {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), OutOfRange> {
        self.check(addr, buf.len())?;
        // SAFETY: `check` put `addr..addr+len` inside `start..end`, which the
        // constructor's contract says is identity-mapped and readable; `buf`
        // is a distinct Rust allocation, so the ranges do not overlap.
        unsafe {
            core::ptr::copy_nonoverlapping(addr as usize as *const u8, buf.as_mut_ptr(), buf.len())
        };
        Ok(())
    }
}

impl PhysWrite for IdentityMapped {
    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), OutOfRange> {
        self.check(addr, data.len())?;
        // SAFETY: as in `read`, the range is mapped and writable by contract,
        // and no Rust reference aliases it.
        unsafe {
            core::ptr::copy_nonoverlapping(data.as_ptr(), addr as usize as *mut u8, data.len())
        };
        Ok(())
    }
}

#[cfg(feature = "vm-memory")]
mod vm {
    use super::{OutOfRange, PhysRead, PhysWrite};
    use vm_memory::{Bytes, GuestAddress, GuestMemory, Permissions};

    /// Guest memory of rust-vmm `vm-memory` (any `GuestMemory`, such as
    /// `GuestMemoryMmap`). A reference wrapper, because `vm-memory` writes
    /// through `&self`.
    #[derive(Debug, Clone, Copy)]
    pub struct VmMemory<'a, M>(pub &'a M);

    impl<M: GuestMemory> PhysRead for VmMemory<'_, M> {
        fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), OutOfRange> {
            let err = OutOfRange {
                addr,
                len: buf.len() as u64,
            };
            // `read_slice` is all-or-nothing only when the whole range is
            // valid, so check first: no partial reads reach the caller.
            if buf.is_empty() {
                return Ok(());
            }
            let last = addr.checked_add(buf.len() as u64 - 1).ok_or(err)?;
            if !self
                .0
                .check_range(GuestAddress(addr), buf.len(), Permissions::Read)
                || last < addr
            {
                return Err(err);
            }
            self.0.read_slice(buf, GuestAddress(addr)).map_err(|_| err)
        }
    }

    impl<M: GuestMemory> PhysWrite for VmMemory<'_, M> {
        fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), OutOfRange> {
            let err = OutOfRange {
                addr,
                len: data.len() as u64,
            };
            if data.is_empty() {
                return Ok(());
            }
            addr.checked_add(data.len() as u64 - 1).ok_or(err)?;
            if !self
                .0
                .check_range(GuestAddress(addr), data.len(), Permissions::Write)
            {
                return Err(err);
            }
            self.0
                .write_slice(data, GuestAddress(addr))
                .map_err(|_| err)
        }
    }
}

#[cfg(feature = "vm-memory")]
pub use vm::VmMemory;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_memory_is_all_or_nothing() {
        let mut m = SliceMemory::new(0x1000, vec![0u8; 16]);
        m.write(0x1004, &[1, 2, 3]).unwrap();
        assert_eq!(
            m.write(0x100e, &[9, 9, 9]),
            Err(OutOfRange {
                addr: 0x100e,
                len: 3
            })
        );
        assert_eq!(
            m.write(0xfff, &[9]),
            Err(OutOfRange {
                addr: 0xfff,
                len: 1
            })
        );
        assert!(m.write(u64::MAX, &[9, 9]).is_err());
        let mut buf = [0u8; 4];
        m.read(0x1003, &mut buf).unwrap();
        assert_eq!(buf, [0, 1, 2, 3]);
        assert_eq!(m.bytes().iter().filter(|&&b| b == 9).count(), 0);
        assert_eq!(read_obj::<u16, _>(&m, 0x1004), Ok(0x0201));
    }

    #[test]
    fn identity_mapped_reads_a_host_buffer() {
        let mut buf = vec![0u8; 64];
        let base = buf.as_mut_ptr() as u64;
        {
            // SAFETY: the range is exactly `buf`, which outlives `mem` and is
            // not otherwise accessed while `mem` is in use.
            let mut mem = unsafe { IdentityMapped::new(base, base + 64) };
            mem.write(base + 8, b"pvh").unwrap();
            assert!(mem.write(base + 62, b"pvh").is_err());
            let mut out = [0u8; 3];
            mem.read(base + 8, &mut out).unwrap();
            assert_eq!(&out, b"pvh");
        }
        assert_eq!(&buf[8..11], b"pvh");
    }
}
