//! The exit port (QEMU `isa-debug-exit` semantics, at 0xf4): a guest write of
//! `v` ends the VM, and `v` becomes the guest's exit code.

use super::{DeviceError, IoAction, PortDevice};

/// Where the exit port lives (QEMU's customary `iobase=0xf4`) and how many
/// ports it answers (QEMU's `iosize=4`): the machine contract's.
pub use pvh_entry::machine::{EXIT_PORT, EXIT_PORT_LEN};

/// Exit port device.
#[derive(Debug, Default)]
pub struct ExitPort;

impl PortDevice for ExitPort {
    fn read(&mut self, _offset: u16, data: &mut [u8]) {
        data.fill(0xff);
    }

    fn write(&mut self, _offset: u16, data: &[u8]) -> Result<IoAction, DeviceError> {
        // The value is the little-endian access (1, 2 or 4 bytes) zero-extended.
        let mut le = [0u8; 4];
        for (dst, src) in le.iter_mut().zip(data) {
            *dst = *src;
        }
        Ok(IoAction::Exit(u32::from_le_bytes(le)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_of_any_width_becomes_the_exit_value() {
        let mut p = ExitPort;
        assert_eq!(p.write(0, &[0x2a]).unwrap(), IoAction::Exit(42));
        assert_eq!(p.write(0, &[0x34, 0x12]).unwrap(), IoAction::Exit(0x1234));
        assert_eq!(
            p.write(0, &[1, 2, 3, 4]).unwrap(),
            IoAction::Exit(0x0403_0201)
        );
    }
}
