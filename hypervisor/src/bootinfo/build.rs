//! The one domain builder: a [`BootDomain`] of a [`BootInfo`] into the
//! loader's [`BootConfig`]. `pvh boot` (through
//! [`BootInfo::single_domain`]) and `pvh launch` (through the device-tree
//! parser) both end here, so a guest is built the same way however it was
//! described.

use pvh_loader::{BootConfig, BootProtocol, Module, SubarchPolicy};

use super::types::{BootDomain, BootInfo};
use crate::probe;

/// How to boot a domain: what the description itself does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DomainBoot {
    /// The boot protocol (`--boot-protocol`).
    pub protocol: BootProtocol,
    /// `hardware_subarch` for zero-page boots (`--subarch`).
    pub subarch: SubarchPolicy,
    /// Whether to give the guest ACPI tables (`--no-acpi` turns it off).
    pub acpi: bool,
}

impl Default for DomainBoot {
    /// PVH, subarch PC, ACPI on: what `pvh boot` and `pvh launch` do by
    /// default.
    fn default() -> Self {
        Self {
            protocol: BootProtocol::Pvh,
            subarch: SubarchPolicy::Pc,
            acpi: true,
        }
    }
}

/// Why a domain cannot be turned into a boot configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A module index in the domain points past `BootInfo::modules`.
    #[error("domain {domid}: module {index} does not exist")]
    MissingModule {
        /// The domain.
        domid: u32,
        /// The index.
        index: usize,
    },
    /// A bzImage booted as PVH needs the stub guest, which is not built in.
    #[error(
        "the kernel is a bzImage and the PVH stub guest is not built in; \
         use --boot-protocol linux or pvh-unpack"
    )]
    NoStub,
}

/// The loader's view of domain `d`: its kernel, command line, and modules in
/// PVH order (ramdisk first, then the others). A bzImage booted as PVH goes
/// through the built-in stub guest.
pub fn boot_config<'a>(
    info: &'a BootInfo,
    d: &'a BootDomain,
    how: &DomainBoot,
) -> Result<BootConfig<'a>, BuildError> {
    let missing = |index| BuildError::MissingModule {
        domid: d.domid,
        index,
    };
    let kernel = info.module(d.kernel).ok_or(missing(d.kernel))?;
    let mut modules = Vec::new();
    for &i in d.ramdisk.iter().chain(&d.extra_modules) {
        let m = info.module(i).ok_or(missing(i))?;
        modules.push(Module {
            bytes: &m.bytes,
            cmdline: (!m.cmdline.is_empty()).then_some(m.cmdline.as_bytes()),
            above_4g: false,
        });
    }
    let is_bzimage = pvh_bootparams::BzImage::parse(&kernel.bytes).is_ok();
    let stub = match (how.protocol, is_bzimage) {
        (BootProtocol::Pvh, true) => Some(probe::STUB.ok_or(BuildError::NoStub)?),
        _ => None,
    };
    let config = BootConfig {
        kernel: &kernel.bytes,
        protocol: how.protocol,
        stub,
        cmdline: d.cmdline.as_bytes(),
        modules,
        subarch: how.subarch,
        ..Default::default()
    };
    Ok(if how.acpi {
        crate::boot::acpi_config(config)
    } else {
        config
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootinfo::{CliModule, SingleDomain};

    fn cli(option: &'static str, bytes: &[u8], cmdline: &str) -> CliModule {
        CliModule {
            option,
            path: None,
            bytes: bytes.into(),
            cmdline: cmdline.into(),
        }
    }

    fn single() -> BootInfo {
        BootInfo::single_domain(SingleDomain {
            kernel: cli("--kernel", b"not an image", ""),
            initrd: Some(cli("--initrd", b"initrd bytes", "")),
            modules: vec![
                cli("--module", b"first", "one"),
                cli("--module", b"second", ""),
            ],
            cmdline: "console=ttyS0".into(),
            memory: 64 << 20,
            cpus: 2,
            host_memory_limit: u64::MAX,
        })
        .unwrap()
    }

    #[test]
    fn modules_in_pvh_order_with_their_command_lines() {
        let info = single();
        let config = boot_config(&info, &info.domains[0], &DomainBoot::default()).unwrap();
        assert_eq!(config.kernel, b"not an image");
        assert_eq!(config.cmdline, b"console=ttyS0");
        let modules: Vec<(&[u8], Option<&[u8]>)> = config
            .modules
            .iter()
            .map(|m| (m.bytes, m.cmdline))
            .collect();
        assert_eq!(
            modules,
            vec![
                (&b"initrd bytes"[..], None),
                (&b"first"[..], Some(&b"one"[..])),
                (&b"second"[..], None)
            ]
        );
        assert_eq!(config.stub, None, "not a bzImage: no stub");
        assert_eq!(config.acpi, Some(crate::acpi::REGION_SIZE));
        let no_acpi = DomainBoot {
            acpi: false,
            protocol: BootProtocol::Linux64,
            subarch: SubarchPolicy::Xen,
        };
        let config = boot_config(&info, &info.domains[0], &no_acpi).unwrap();
        assert_eq!(config.acpi, None);
        assert_eq!(config.protocol, BootProtocol::Linux64);
        assert_eq!(config.subarch, SubarchPolicy::Xen);
    }

    #[test]
    fn a_dangling_module_index_is_an_error() {
        let mut info = single();
        info.domains[0].extra_modules.push(9);
        let d = info.domains[0].clone();
        assert_eq!(
            boot_config(&info, &d, &DomainBoot::default()).unwrap_err(),
            BuildError::MissingModule {
                domid: d.domid,
                index: 9
            }
        );
    }
}
