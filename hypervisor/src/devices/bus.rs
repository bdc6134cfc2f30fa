//! The port-I/O bus: port ranges mapped to devices, plus accounting of the
//! ports nobody answers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{DeviceError, IoAction, PortDevice};

/// A half-open range of I/O ports `[base, base + len)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub base: u16,
    /// Number of ports (at least 1).
    pub len: u16,
}

impl PortRange {
    /// Offset of `port` inside the range, or `None` when it lies outside.
    pub fn offset_of(&self, port: u16) -> Option<u16> {
        let off = port.checked_sub(self.base)?;
        (off < self.len).then_some(off)
    }

    fn overlaps(&self, other: &PortRange) -> bool {
        let end = u32::from(self.base) + u32::from(self.len);
        let other_end = u32::from(other.base) + u32::from(other.len);
        u32::from(self.base) < other_end && u32::from(other.base) < end
    }
}

/// Accesses to one unanswered port.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PortCounts {
    /// Guest reads (each answered with all ones).
    pub reads: u64,
    /// Guest writes (dropped).
    pub writes: u64,
}

/// Registering a device failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    /// The new range overlaps one already registered.
    #[error("port range {new:#x}+{new_len} overlaps {old:#x}+{old_len}")]
    Overlap {
        /// Base of the rejected range.
        new: u16,
        /// Length of the rejected range.
        new_len: u16,
        /// Base of the range already there.
        old: u16,
        /// Length of the range already there.
        old_len: u16,
    },
    /// The range is empty or runs past port 0xffff.
    #[error("port range {base:#x}+{len} is empty or runs past 0xffff")]
    BadRange {
        /// Base of the rejected range.
        base: u16,
        /// Length of the rejected range.
        len: u16,
    },
}

type SharedDevice = Arc<Mutex<dyn PortDevice>>;

/// Routes port accesses to devices. Shared by all vCPU threads (`Arc<IoBus>`);
/// each device has its own lock so two vCPUs touching different devices do
/// not serialize.
#[derive(Default)]
pub struct IoBus {
    devices: Vec<(PortRange, SharedDevice)>,
    unhandled: Mutex<BTreeMap<u16, PortCounts>>,
}

impl std::fmt::Debug for IoBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ranges: Vec<_> = self.devices.iter().map(|(r, _)| r).collect();
        f.debug_struct("IoBus").field("ranges", &ranges).finish()
    }
}

/// A poisoned lock only means another vCPU thread panicked while holding it;
/// the device state is still plain data, so keep going with it.
fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl IoBus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// Map `device` at `[base, base + len)`.
    pub fn register(
        &mut self,
        base: u16,
        len: u16,
        device: Arc<Mutex<dyn PortDevice>>,
    ) -> Result<(), BusError> {
        let range = PortRange { base, len };
        if len == 0 || u32::from(base) + u32::from(len) > 0x1_0000 {
            return Err(BusError::BadRange { base, len });
        }
        if let Some((old, _)) = self.devices.iter().find(|(r, _)| r.overlaps(&range)) {
            return Err(BusError::Overlap {
                new: base,
                new_len: len,
                old: old.base,
                old_len: old.len,
            });
        }
        self.devices.push((range, device));
        Ok(())
    }

    fn find(&self, port: u16) -> Option<(u16, &SharedDevice)> {
        self.devices
            .iter()
            .find_map(|(r, d)| r.offset_of(port).map(|off| (off, d)))
    }

    /// Guest `in` from `port`; unanswered ports read as all ones.
    pub fn read(&self, port: u16, data: &mut [u8]) {
        match self.find(port) {
            Some((off, dev)) => lock(dev).read(off, data),
            None => {
                data.fill(0xff);
                lock(&self.unhandled).entry(port).or_default().reads += 1;
            }
        }
    }

    /// Guest `out` to `port`; writes to unanswered ports are dropped.
    pub fn write(&self, port: u16, data: &[u8]) -> Result<IoAction, DeviceError> {
        match self.find(port) {
            Some((off, dev)) => lock(dev).write(off, data),
            None => {
                lock(&self.unhandled).entry(port).or_default().writes += 1;
                Ok(IoAction::Continue)
            }
        }
    }

    /// Accesses to unanswered ports so far, by port.
    pub fn unhandled(&self) -> BTreeMap<u16, PortCounts> {
        lock(&self.unhandled).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo(u8);
    impl PortDevice for Echo {
        fn read(&mut self, offset: u16, data: &mut [u8]) {
            data.fill(self.0.wrapping_add(offset as u8));
        }
        fn write(&mut self, _offset: u16, data: &[u8]) -> Result<IoAction, DeviceError> {
            self.0 = data[0];
            Ok(IoAction::Continue)
        }
    }

    #[test]
    fn routes_by_range_and_counts_the_rest() {
        let mut bus = IoBus::new();
        bus.register(0x100, 4, Arc::new(Mutex::new(Echo(0x10))))
            .unwrap();
        let mut b = [0u8; 1];
        bus.read(0x102, &mut b);
        assert_eq!(b, [0x12]);
        bus.write(0x100, &[0x40]).unwrap();
        bus.read(0x103, &mut b);
        assert_eq!(b, [0x43]);
        let mut w = [0u8; 2];
        bus.read(0x104, &mut w);
        assert_eq!(w, [0xff, 0xff]);
        bus.read(0x104, &mut b);
        bus.write(0x104, &[1]).unwrap();
        assert_eq!(
            bus.unhandled().get(&0x104),
            Some(&PortCounts {
                reads: 2,
                writes: 1
            })
        );
        assert_eq!(bus.unhandled().len(), 1);
    }

    #[test]
    fn rejects_overlap_and_bad_ranges() {
        let mut bus = IoBus::new();
        bus.register(0x3f8, 8, Arc::new(Mutex::new(Echo(0))))
            .unwrap();
        assert_eq!(
            bus.register(0x3ff, 1, Arc::new(Mutex::new(Echo(0)))),
            Err(BusError::Overlap {
                new: 0x3ff,
                new_len: 1,
                old: 0x3f8,
                old_len: 8
            })
        );
        assert!(
            bus.register(0x400, 1, Arc::new(Mutex::new(Echo(0))))
                .is_ok()
        );
        assert_eq!(
            bus.register(0xffff, 2, Arc::new(Mutex::new(Echo(0)))),
            Err(BusError::BadRange {
                base: 0xffff,
                len: 2
            })
        );
        assert_eq!(
            bus.register(0x10, 0, Arc::new(Mutex::new(Echo(0)))),
            Err(BusError::BadRange { base: 0x10, len: 0 })
        );
    }
}
