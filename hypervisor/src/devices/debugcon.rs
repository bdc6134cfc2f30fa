//! The Bochs/QEMU debug console on port 0xe9: every byte written is guest
//! output; reading the port returns 0xe9 so a guest can detect it.

use std::io::Write;

use super::{ConsoleOut, DeviceError, IoAction, PortDevice};

/// The conventional debug console port (the machine contract's).
pub use pvh_entry::machine::DEBUGCON_PORT;

/// Debug console device.
#[derive(Debug)]
pub struct DebugCon {
    out: ConsoleOut,
}

impl DebugCon {
    /// A debug console writing to `out`.
    pub fn new(out: ConsoleOut) -> Self {
        Self { out }
    }
}

impl PortDevice for DebugCon {
    fn read(&mut self, _offset: u16, data: &mut [u8]) {
        // Presence check used by Bochs/QEMU-aware guests: the port reads back 0xe9.
        data.fill(0);
        if let Some(b) = data.first_mut() {
            *b = DEBUGCON_PORT as u8;
        }
    }

    fn write(&mut self, _offset: u16, data: &[u8]) -> Result<IoAction, DeviceError> {
        // Only the low byte is a character, whatever the access width.
        let byte = data.first().copied().unwrap_or(0);
        self.out
            .write_all(&[byte])
            .and_then(|()| self.out.flush())
            .map_err(DeviceError::Output)?;
        Ok(IoAction::Continue)
    }
}
