//! The i8042 keyboard controller on ports 0x60 and 0x64, from vm-superio.
//! It exists for one reason: Linux (`reboot=k`) resets the machine by writing
//! command 0xfe to port 0x64, which is how the VM learns the guest is done.
//! vm-superio reads every register as 0, i.e. "output buffer empty, input
//! buffer not busy", so Linux's polling loops end at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use vm_superio::{I8042Device, Trigger};

use super::{DeviceError, IoAction, PortDevice};

/// First i8042 port (data).
pub const I8042_BASE: u16 = pvh_entry::machine::I8042_PORT;
/// The i8042 spans 0x60..=0x64 (data at +0, command/status at +4); 0x61 in
/// between is the PIT speaker port that KVM's in-kernel PIT answers first.
pub const I8042_LEN: u16 = 5;
/// Data register offset (port 0x60).
const DATA_OFFSET: u16 = 0;
/// Command/status register offset (port 0x64).
const COMMAND_OFFSET: u16 = 4;

/// A `Trigger` that just raises a flag the vCPU loop looks at after the write.
#[derive(Debug, Default, Clone)]
pub struct ResetFlag(Arc<AtomicBool>);

impl Trigger for ResetFlag {
    type E = std::convert::Infallible;

    fn trigger(&self) -> Result<(), Self::E> {
        self.0.store(true, Ordering::SeqCst);
        Ok(())
    }
}

/// The i8042 device.
#[derive(Debug)]
pub struct I8042 {
    dev: I8042Device<ResetFlag>,
    reset: ResetFlag,
}

impl Default for I8042 {
    fn default() -> Self {
        let reset = ResetFlag::default();
        Self {
            dev: I8042Device::new(reset.clone()),
            reset,
        }
    }
}

impl I8042 {
    /// A fresh controller.
    pub fn new() -> Self {
        Self::default()
    }
}

impl PortDevice for I8042 {
    fn read(&mut self, offset: u16, data: &mut [u8]) {
        if offset != DATA_OFFSET && offset != COMMAND_OFFSET {
            // 0x61..=0x63 are not the controller's: read like an empty bus.
            data.fill(0xff);
            return;
        }
        data.fill(0);
        if let (Some(b), Ok(off)) = (data.first_mut(), u8::try_from(offset)) {
            *b = self.dev.read(off);
        }
    }

    fn write(&mut self, offset: u16, data: &[u8]) -> Result<IoAction, DeviceError> {
        let (Some(&value), Ok(off)) = (data.first(), u8::try_from(offset)) else {
            return Ok(IoAction::Continue);
        };
        if offset != DATA_OFFSET && offset != COMMAND_OFFSET {
            return Ok(IoAction::Continue);
        }
        // The error type is Infallible.
        let Ok(()) = self.dev.write(off, value);
        if self.reset.0.swap(false, Ordering::SeqCst) {
            Ok(IoAction::Reset)
        } else {
            Ok(IoAction::Continue)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_0xfe_on_the_command_port_resets() {
        let mut k = I8042::new();
        assert_eq!(k.write(0, &[0xfe]).unwrap(), IoAction::Continue);
        assert_eq!(k.write(4, &[0xd1]).unwrap(), IoAction::Continue);
        assert_eq!(k.write(4, &[0xfe]).unwrap(), IoAction::Reset);
        let mut b = [0xaa];
        k.read(4, &mut b);
        assert_eq!(b, [0], "status must say: not busy, nothing to read");
        k.read(2, &mut b);
        assert_eq!(b, [0xff], "0x62 is not the controller's");
    }
}
