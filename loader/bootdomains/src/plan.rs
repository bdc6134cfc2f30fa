//! The one check of a whole tree before anything runs: every domain turned
//! into its loader configuration and checked ([`crate::build::check`]: the loader's
//! plan in the domain's memory, its ACPI tables, its vCPU count). `pvh
//! launch --plan` prints exactly this; `pvh launch` builds and runs only
//! what passed it, so a tree passes `--plan` if and only if `launch` can
//! build it (short of host resources: memory, KVM).

use std::fmt;

use pvh_loader::{BootConfig, BootProtocol, Purpose, SubarchPolicy};

use super::build::{BuildError, Checked, DomainBuilder};
use super::error::{esc, esc_path};
use super::parser::{BOOT_PROTOCOLS, SUBARCHES};
use super::types::{BootDomain, BootInfo, BootModule, Capabilities, ModuleKind, ModuleOrigin};

/// One domain, checked.
#[derive(Debug)]
pub struct DomainPlan<'a> {
    /// The domain.
    pub domain: &'a BootDomain,
    /// What the loader gets.
    pub config: BootConfig<'a>,
    /// The plan, ACPI tables and RAM layout.
    pub checked: Checked<'a>,
}

/// Every domain of a [`BootInfo`], checked.
#[derive(Debug)]
pub struct LaunchPlan<'a> {
    /// The tree's domains and modules.
    pub info: &'a BootInfo,
    /// One plan per domain, in domain order.
    pub domains: Vec<DomainPlan<'a>>,
}

/// A domain that failed the check.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[error("d{domid} ({}): {source}", esc(.name))]
pub struct DomainError {
    /// Its domain id.
    pub domid: u32,
    /// Its node name.
    pub name: String,
    /// Why.
    #[source]
    pub source: BuildError,
}

impl<'a> LaunchPlan<'a> {
    /// Checks every domain of `info` as `builder` builds it; the first
    /// failure, naming its domain, ends the check.
    pub fn new(info: &'a BootInfo, builder: &DomainBuilder<'a>) -> Result<Self, DomainError> {
        let domains = info
            .domains
            .iter()
            .map(|d| plan_domain(info, d, builder))
            .collect::<Result<_, _>>()?;
        Ok(Self { info, domains })
    }

    /// The domain that leads (`capabilities` CONTROL): its end ends the
    /// launch, and its status is pvh's.
    pub fn leader(&self) -> Option<usize> {
        self.domains
            .iter()
            .position(|d| d.domain.capabilities.contains(Capabilities::CONTROL))
    }
}

fn plan_domain<'a>(
    info: &'a BootInfo,
    d: &'a BootDomain,
    builder: &DomainBuilder<'a>,
) -> Result<DomainPlan<'a>, DomainError> {
    let failed = |source| DomainError {
        domid: d.domid,
        name: d.name.clone(),
        source,
    };
    let config = builder.boot_config(info, d).map_err(failed)?;
    let checked = builder.check(&config, d.memory, d.vcpus).map_err(failed)?;
    Ok(DomainPlan {
        domain: d,
        config,
        checked,
    })
}

/// `n` bytes for people: whole GiB, MiB or KiB when exact, else one
/// decimal.
pub fn human(n: u64) -> String {
    const UNITS: [(u32, &str); 3] = [(30, "GiB"), (20, "MiB"), (10, "KiB")];
    for (shift, unit) in UNITS {
        if n >= 1 << shift {
            return if n % (1 << shift) == 0 {
                format!("{} {unit}", n >> shift)
            } else {
                format!("{:.1} {unit}", n as f64 / (1u64 << shift) as f64)
            };
        }
    }
    format!("{n} B")
}

fn protocol_name(p: BootProtocol) -> &'static str {
    BOOT_PROTOCOLS
        .iter()
        .find(|(_, v, _)| *v == p)
        .map_or("?", |(n, _, _)| n)
}

fn subarch_name(s: SubarchPolicy) -> &'static str {
    SUBARCHES
        .iter()
        .find(|(_, v, _)| *v == s)
        .map_or("?", |(n, _, _)| n)
}

struct Origin<'a>(&'a ModuleOrigin);

impl fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ModuleOrigin::ModuleIndex(n) => write!(f, "boot module {n}"),
            ModuleOrigin::File(path) => write!(f, "file {}", esc_path(path)),
            ModuleOrigin::Reg { addr, size } => write!(f, "at {addr:#x}, region {size:#x}"),
            ModuleOrigin::CommandLine { option, path } => match path {
                Some(p) => write!(f, "{option} {}", esc_path(p)),
                None => write!(f, "{option} (built in)"),
            },
        }
    }
}

fn kind_name(kind: ModuleKind) -> &'static str {
    match kind {
        ModuleKind::Kernel => "kernel",
        ModuleKind::Ramdisk => "ramdisk",
        ModuleKind::DeviceTree => "device tree",
        ModuleKind::Microcode => "microcode",
        ModuleKind::XsmPolicy => "XSM policy",
        ModuleKind::Config => "config",
        ModuleKind::Unknown => "module",
    }
}

fn write_module(f: &mut fmt::Formatter<'_>, indent: &str, m: &BootModule) -> fmt::Result {
    write!(
        f,
        "{indent}{} {}: {}, {} bytes",
        kind_name(m.kind),
        esc(&m.node),
        Origin(&m.origin),
        m.bytes.len()
    )?;
    if let Some(c) = m.compression {
        write!(f, ", {c:?}")?;
    }
    if m.headroom > 0 {
        write!(f, ", headroom {:#x} ({})", m.headroom, human(m.headroom))?;
        if m.kind == ModuleKind::Kernel {
            // build::boot_config: a kernel is loaded (or relocated by the
            // stub), not decompressed where it lies.
            f.write_str(" not reserved for a kernel")?;
        }
    }
    if !m.cmdline.is_empty() {
        write!(f, ", cmdline \"{}\"", esc(&m.cmdline))?;
    }
    writeln!(f)
}

impl fmt::Display for LaunchPlan<'_> {
    /// What `pvh launch --plan` prints: the host, then per domain its
    /// settings, its modules and every placement in its memory. Every
    /// string from the tree is escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = self.info;
        writeln!(
            f,
            "boot loader: {}; command line: \"{}\"",
            esc(&info.loader_name),
            esc(&info.cmdline)
        )?;
        let ram: u64 = info
            .host_memmap
            .iter()
            .filter(|r| r.kind == "System RAM")
            .map(|r| r.end - r.start)
            .sum();
        writeln!(
            f,
            "host: memory limit {}; memory map: {} ranges, {} System RAM",
            human(info.host_memory_limit),
            info.host_memmap.len(),
            human(ram)
        )?;
        for r in &info.host_memmap {
            writeln!(f, "  {:#014x}..{:#014x} {}", r.start, r.end, esc(&r.kind))?;
        }
        let used: Vec<usize> = info
            .domains
            .iter()
            .flat_map(|d| {
                std::iter::once(d.kernel)
                    .chain(d.ramdisk)
                    .chain(d.extra_modules.iter().copied())
            })
            .collect();
        for (i, m) in info.modules.iter().enumerate() {
            if !used.contains(&i) {
                write_module(f, "host ", m)?;
                writeln!(f, "  (for the hypervisor; pvh has no use for it)")?;
            }
        }
        let leader = self.leader().map(|i| self.domains[i].domain.domid);
        for p in &self.domains {
            let d = p.domain;
            let caps = d.capabilities;
            writeln!(
                f,
                "d{} {}: {}, PVH{}, {} vCPU(s), memory {}{}",
                d.domid,
                esc(&d.name),
                esc(&d.node),
                if d.long_mode { " 64-bit" } else { "" },
                d.vcpus,
                human(d.memory),
                if d.memory < d.memory_asked {
                    format!(
                        " (lowered from {} to fit the host limit)",
                        human(d.memory_asked)
                    )
                } else {
                    String::new()
                }
            )?;
            writeln!(
                f,
                "  mem-min {}, mem-max {}; capabilities {:#x}{}{}",
                human(d.mem_min),
                human(d.mem_max),
                caps.bits(),
                if caps.contains(Capabilities::CONTROL) {
                    " CONTROL (leads: its end ends every domain, its status is pvh's)"
                } else {
                    ""
                },
                if caps.contains(Capabilities::HARDWARE) {
                    " HARDWARE (owns the console: lines without prefix)"
                } else {
                    ""
                }
            )?;
            if leader.is_some_and(|l| l != d.domid) {
                writeln!(
                    f,
                    "  ends when the control domain d{} ends",
                    leader.unwrap_or(0)
                )?;
            }
            writeln!(
                f,
                "  boot protocol {}, subarch {}, ACPI {}",
                protocol_name(d.boot.protocol),
                subarch_name(d.boot.subarch),
                if d.boot.acpi { "on" } else { "off" }
            )?;
            for i in std::iter::once(d.kernel)
                .chain(d.ramdisk)
                .chain(d.extra_modules.iter().copied())
            {
                if let Some(m) = info.module(i) {
                    write_module(f, "  ", m)?;
                }
            }
            writeln!(f, "  cmdline \"{}\"", esc(&d.cmdline))?;
            writeln!(f, "  guest memory:")?;
            for pl in p.checked.plan.placements() {
                if matches!(pl.purpose, Purpose::Reserved(_)) {
                    continue;
                }
                writeln!(
                    f,
                    "    {:#014x}..{:#014x} {:>10} {}",
                    pl.start,
                    pl.start.saturating_add(pl.len),
                    human(pl.len),
                    pl.purpose
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn sizes_for_people() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(256 << 20), "256 MiB");
        assert_eq!(human(3 << 30), "3 GiB");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human((1 << 20) + (1 << 19)), "1.5 MiB");
    }
}
