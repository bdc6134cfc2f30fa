//! The ACPI sleep control/status register pair of the hardware-reduced FADT
//! (one byte at [`SLEEP_CONTROL_PORT`], both registers share it): a write
//! of `SLP_TYP(S5) | SLP_EN` powers the machine off, which ends the VM
//! cleanly. Other sleep states are not offered (the DSDT names only
//! `_S5_`), so other writes — such as the `WAK_STS` clear ACPICA does
//! before sleeping — change nothing.

use super::{DeviceError, IoAction, PortDevice};
pub use pvh_acpi::SLEEP_CONTROL_PORT;

/// Sleep control and status register.
#[derive(Debug, Default)]
pub struct SleepControl;

impl PortDevice for SleepControl {
    fn read(&mut self, _offset: u16, data: &mut [u8]) {
        // Sleep status: no wake event pending.
        data.fill(0);
    }

    fn write(&mut self, _offset: u16, data: &[u8]) -> Result<IoAction, DeviceError> {
        // The register is 8 bits wide (the FADT says byte access); a wider
        // write carries it in its low byte.
        match data.first() {
            Some(&v) if pvh_acpi::is_poweroff(v) => Ok(IoAction::PowerOff),
            _ => Ok(IoAction::Continue),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_s5_with_slp_en_powers_off() {
        let mut d = SleepControl;
        // SLP_TYP = 5 in bits 4:2, SLP_EN = bit 5 (ACPI 6.5, 4.8.3.7).
        assert_eq!(d.write(0, &[0x34]).unwrap(), IoAction::PowerOff);
        assert_eq!(d.write(0, &[0x34, 0]).unwrap(), IoAction::PowerOff);
        assert_eq!(d.write(0, &[0x14]).unwrap(), IoAction::Continue);
        assert_eq!(
            d.write(0, &[0x80]).unwrap(),
            IoAction::Continue,
            "WAK_STS clear"
        );
        assert_eq!(d.write(0, &[0x2c]).unwrap(), IoAction::Continue, "S3");
        assert_eq!(d.write(0, &[]).unwrap(), IoAction::Continue);
        let mut b = [0xff];
        d.read(0, &mut b);
        assert_eq!(b, [0]);
    }
}
