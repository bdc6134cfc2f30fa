//! The options `pvh boot` and `pvh launch` share, defined once: the
//! `--module` syntax, `--boot-protocol`, `--subarch`, `--no-acpi` and
//! `--cpus` with its one limit. For `launch` they are the defaults a
//! domain's own node overrides (`pvh,boot-protocol`, `pvh,subarch`,
//! `pvh,acpi`, `cpus`).

use std::ffi::OsString;

use clap::builder::{OsStringValueParser, PossibleValue, TypedValueParser};
use clap::{Args, ValueEnum};
use pvh_loader::{BootProtocol, SubarchPolicy};

use pvh_bootdomains::parser::{BOOT_PROTOCOLS, MAX_VCPUS, SUBARCHES};
use pvh_bootdomains::source::{DomainDefaults, ModuleSpec};
use pvh_bootdomains::types::DomainBoot;

/// `--boot-protocol`; the names and help come from
/// [`BOOT_PROTOCOLS`], the table `pvh,boot-protocol` uses too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProtocolArg {
    /// PVH.
    #[default]
    Pvh,
    /// The Linux 64-bit boot protocol.
    Linux,
    /// The bzImage's vmlinux through PVH.
    PvhUnpack,
}

impl ProtocolArg {
    /// The loader's protocol.
    pub fn protocol(self) -> BootProtocol {
        match self {
            Self::Pvh => BootProtocol::Pvh,
            Self::Linux => BootProtocol::Linux64,
            Self::PvhUnpack => BootProtocol::PvhUnpack,
        }
    }
}

impl ValueEnum for ProtocolArg {
    fn value_variants<'a>() -> &'a [Self] {
        &[Self::Pvh, Self::Linux, Self::PvhUnpack]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        let p = self.protocol();
        BOOT_PROTOCOLS
            .iter()
            .find(|(_, v, _)| *v == p)
            .map(|&(name, _, help)| PossibleValue::new(name).help(help))
    }
}

/// `--subarch`; names and help from [`SUBARCHES`], the table `pvh,subarch`
/// uses too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubarchArg {
    /// hardware_subarch = PC.
    #[default]
    Pc,
    /// hardware_subarch = XEN, with the start_info address.
    Xen,
}

impl SubarchArg {
    /// The zero-page policy.
    pub fn policy(self) -> SubarchPolicy {
        match self {
            Self::Pc => SubarchPolicy::Pc,
            Self::Xen => SubarchPolicy::Xen,
        }
    }
}

impl ValueEnum for SubarchArg {
    fn value_variants<'a>() -> &'a [Self] {
        &[Self::Pc, Self::Xen]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        let p = self.policy();
        SUBARCHES
            .iter()
            .find(|(_, v, _)| *v == p)
            .map(|&(name, _, help)| PossibleValue::new(name).help(help))
    }
}

/// clap value parser for `--module`: an OS string, so any path works.
fn module_spec() -> impl TypedValueParser<Value = ModuleSpec> {
    OsStringValueParser::new().try_map(|s: OsString| ModuleSpec::parse(&s))
}

/// clap value parser for `--cpus`: 1 to [`MAX_VCPUS`], the limit the tree's
/// `cpus` and the ACPI tables have too.
fn cpus(s: &str) -> Result<u8, String> {
    s.parse::<u8>()
        .ok()
        .filter(|&n| n >= 1 && u32::from(n) <= MAX_VCPUS)
        .ok_or_else(|| format!("`{s}` is not a vCPU count from 1 to {MAX_VCPUS}"))
}

/// The guest options of `pvh boot` and `pvh launch`.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct DomainOptions {
    /// A boot module; repeatable, in order. In FILE, `,,` is a comma and
    /// `@@` an at sign, so any path can be named. `@ADDR` (launch only) is
    /// where a boot loader put it, which a tree's `reg` matches. CMDLINE is
    /// everything after the first single comma.
    #[arg(long = "module", value_name = "FILE[@ADDR][,CMDLINE]", value_parser = module_spec())]
    pub modules: Vec<ModuleSpec>,
    /// How to enter the kernel (launch: for domains without
    /// `pvh,boot-protocol`).
    #[arg(long, value_enum, default_value_t = ProtocolArg::Pvh)]
    pub boot_protocol: ProtocolArg,
    /// hardware_subarch in the zero page, Linux protocol and stub
    /// (launch: for domains without `pvh,subarch`).
    #[arg(long, value_enum, default_value_t = SubarchArg::Pc)]
    pub subarch: SubarchArg,
    /// Build no ACPI tables and no MP table: start_info's rsdp_paddr
    /// stays 0 (the guest sees one CPU and no FADT; power-off is then not
    /// available)
    /// (launch: for domains without `pvh,acpi`).
    #[arg(long)]
    pub no_acpi: bool,
    /// vCPUs (1 to 32). vCPU 0 boots; the others wait for the guest's
    /// INIT/SIPI. The guest learns of them from the ACPI MADT and the MP
    /// table (launch: for hyperlaunch domains without `cpus`).
    #[arg(long, default_value_t = 1, value_parser = cpus)]
    pub cpus: u8,
}

impl Default for DomainOptions {
    fn default() -> Self {
        Self {
            modules: Vec::new(),
            boot_protocol: ProtocolArg::Pvh,
            subarch: SubarchArg::Pc,
            no_acpi: false,
            cpus: 1,
        }
    }
}

impl DomainOptions {
    /// Protocol, subarch and ACPI as the options say.
    pub fn boot(&self) -> DomainBoot {
        DomainBoot::default()
            .protocol(self.boot_protocol.protocol())
            .subarch(self.subarch.policy())
            .acpi(!self.no_acpi)
    }

    /// What a launched domain gets where its node is silent.
    pub fn defaults(&self) -> DomainDefaults {
        DomainDefaults::default()
            .boot(self.boot())
            .vcpus(u32::from(self.cpus))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_entry_has_a_flag_value() {
        for (name, protocol, _) in BOOT_PROTOCOLS {
            let arg = ProtocolArg::from_str(name, false).unwrap();
            assert_eq!(arg.protocol(), protocol, "{name}");
        }
        for (name, policy, _) in SUBARCHES {
            let arg = SubarchArg::from_str(name, false).unwrap();
            assert_eq!(arg.policy(), policy, "{name}");
        }
        assert_eq!(ProtocolArg::value_variants().len(), BOOT_PROTOCOLS.len());
        assert_eq!(SubarchArg::value_variants().len(), SUBARCHES.len());
    }

    #[test]
    fn cpus_share_the_tree_limit() {
        assert_eq!(cpus("1"), Ok(1));
        assert_eq!(cpus("32"), Ok(32));
        for bad in ["0", "33", "255", "256", "two", ""] {
            assert!(cpus(bad).is_err(), "{bad}");
        }
        assert_eq!(MAX_VCPUS, u32::from(pvh_acpi::MAX_CPUS));
    }
}
