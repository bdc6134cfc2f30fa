//! DSDT nodes for the common ISA devices, built from what the device model
//! says about itself (its ports and GSI): a VMM's UART or RTC calls these
//! with its own constants and hands the bytes to [`crate::Platform::device`].
//!
//! Each node names its interrupt as an Extended Interrupt descriptor (edge,
//! active high, exclusive): a hardware-reduced machine has no legacy PIC,
//! so Linux maps no ISA IRQ numbers by itself and takes the GSI from
//! `_CRS` alone.

use acpi_tables::aml;

use crate::bytes_of;

/// `\_SB.<name>`: a 16550-compatible UART (`PNP0501`) at I/O `base`, `len`
/// ports, on `gsi`. `name` is the 4-character ACPI name (`"COM1"`).
/// Without it, a hardware-reduced guest's ttyS0 gets no working interrupt
/// and user-space console output is lost.
pub fn uart(name: &str, base: u16, len: u8, gsi: u32) -> Vec<u8> {
    let irq = aml::Interrupt::new(true, true, false, false, gsi);
    let io = aml::IO::new(base, base, 1, len);
    let resources = aml::ResourceTemplate::new(vec![&irq, &io]);
    let hid = aml::Name::new("_HID".into(), &aml::EISAName::new("PNP0501"));
    let uid = aml::Name::new("_UID".into(), &aml::ZERO);
    let crs = aml::Name::new("_CRS".into(), &resources);
    bytes_of(&aml::Device::new(
        format!("_SB_.{name}").as_str().into(),
        vec![&hid, &uid, &crs],
    ))
}

/// `\_SB.RTC`: an MC146818 CMOS/RTC (`PNP0B00`) at I/O `base`, `len`
/// ports, on `gsi` (8 on a PC). Without it Linux's `rtc_cmos` falls back
/// to the legacy platform device, whose IRQ 8 does not exist on a
/// hardware-reduced machine: `request_irq(8)` fails and the probe ends
/// with error -22 (EINVAL). With it, the PNP driver takes the ports and
/// the GSI from `_CRS`.
pub fn rtc(base: u16, len: u8, gsi: u32) -> Vec<u8> {
    let irq = aml::Interrupt::new(true, true, false, false, gsi);
    let io = aml::IO::new(base, base, 1, len);
    let resources = aml::ResourceTemplate::new(vec![&io, &irq]);
    let hid = aml::Name::new("_HID".into(), &aml::EISAName::new("PNP0B00"));
    let crs = aml::Name::new("_CRS".into(), &resources);
    bytes_of(&aml::Device::new("_SB_.RTC_".into(), vec![&hid, &crs]))
}
