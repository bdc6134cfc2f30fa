//! The one parser for both bindings: dom0less (`/chosen/*` with
//! `compatible = "xen,domain"`) and hyperlaunch (`/chosen/hypervisor`,
//! `compatible = "hypervisor,xen"`, domains inside).
//!
//! The walk goes down the tree once: the root's children (by name only),
//! `/chosen`'s children, each domain's children (and the hypervisor node's
//! children and its config node's children). Every visited node's property
//! list is read once (`props.rs`); nothing is looked up by path, so the
//! cost is linear in the size of the tree. Module bytes are found through a
//! locator (hash lookups), domain ids through a hash set.
//!
//! Before the walk, [`blob::check`] scans the token stream once so that the
//! `fdt` crate (which panics on inconsistent blobs) only ever sees a sound
//! one.

use std::collections::HashMap;

use fdt::Fdt;
use fdt::node::FdtNode;

use super::blob::{self, BlobShape};
use super::compression;
use super::error::{BlobError, BootInfoError};
use super::props::{Prop, Props};
use super::source::{BootSources, Located, Locator};
use super::types::{
    BootDomain, BootInfo, BootModule, Capabilities, DomainMode, ModuleKind, ModuleOrigin,
};

/// The first domain id Xen reserves (`DOMID_FIRST_RESERVED`); ids from here
/// up are special and may not be given to a domain.
pub const DOMID_FIRST_RESERVED: u32 = 0x7ff0;
/// The most vCPUs a domain may ask for (vCPU ids are 8-bit xAPIC ids).
pub const MAX_VCPUS: u32 = 255;
/// `mode` bit 0: PV guest.
pub const MODE_PV: u32 = 0x1;
/// `mode` bit 1: HVM guest with a device model.
pub const MODE_HVM_DM: u32 = 0x2;
/// `mode` bit 2 (hyperlaunch design document): 64-bit guest. Accepted and
/// without effect: a PVH guest is entered in 32-bit mode and picks its own.
pub const MODE_64BIT: u32 = 0x4;

/// Counters from one parse, to check that the work is linear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ParseStats {
    /// Nodes and properties in the whole blob (from the structural check).
    pub blob: BlobShape,
    /// Nodes the walk visited (each at most once).
    pub nodes_visited: usize,
    /// Properties the walk read (each at most once).
    pub properties_read: usize,
}

/// Parses a dom0less or hyperlaunch device tree into a [`BootInfo`].
pub fn parse(blob: &[u8], sources: BootSources<'_>) -> Result<BootInfo, BootInfoError> {
    parse_with_stats(blob, sources).map(|(info, _)| info)
}

/// [`parse`], also returning how many nodes and properties were visited.
pub fn parse_with_stats(
    blob: &[u8],
    sources: BootSources<'_>,
) -> Result<(BootInfo, ParseStats), BootInfoError> {
    let (blob, shape) = blob::check(blob)?;
    // `check` already verified what `Fdt::new` checks; map anyway.
    let fdt = Fdt::new(blob).map_err(|_| BlobError::TooShort { len: blob.len() })?;
    // After the check the root exists and has an empty name, which is what
    // `find_node("/")` matches (no alias fallback is reached).
    let root = fdt.find_node("/").ok_or(BootInfoError::NoChosen)?;
    let mut walk = Walk {
        locator: Locator::new(sources)?,
        modules: Vec::new(),
        domains: Vec::new(),
        domids: HashMap::new(),
        stats: ParseStats {
            blob: shape,
            ..ParseStats::default()
        },
    };
    let mut chosen = None;
    for child in root.children() {
        walk.stats.nodes_visited += 1;
        if child.name == "chosen" {
            chosen = Some(child);
            break;
        }
    }
    let chosen = chosen.ok_or(BootInfoError::NoChosen)?;
    for child in chosen.children() {
        walk.chosen_child(child)?;
    }
    let info = walk.finish()?;
    Ok(info)
}

/// The binding a domain node was found under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Dom0less,
    Hyperlaunch,
}

/// `#address-cells` / `#size-cells` of a module's parent, checked only
/// when a `reg` needs them.
#[derive(Debug, Clone)]
struct Cells {
    node: String,
    address: Option<u32>,
    size: Option<u32>,
}

impl Cells {
    fn of(props: &Props<'_>) -> Result<Self, BootInfoError> {
        Ok(Self {
            node: props.path.clone(),
            address: props.u32(Prop::AddressCells)?,
            size: props.u32(Prop::SizeCells)?,
        })
    }

    /// Devicetree defaults: 2 address cells, 1 size cell.
    fn get(&self) -> Result<(u32, u32), BootInfoError> {
        let check = |v: Option<u32>, default: u32, p: Prop| {
            let n = v.unwrap_or(default);
            if (1..=2).contains(&n) {
                Ok(n)
            } else {
                Err(BootInfoError::InvalidValue {
                    node: self.node.clone(),
                    property: p.name(),
                    value: u64::from(n),
                    reason: "must be 1 or 2 to locate a module by `reg`",
                })
            }
        };
        Ok((
            check(self.address, 2, Prop::AddressCells)?,
            check(self.size, 1, Prop::SizeCells)?,
        ))
    }
}

/// A domain's module slots while its children are walked.
#[derive(Debug, Default)]
struct Slots {
    kernel: Option<(usize, String)>,
    ramdisk: Option<(usize, String)>,
    extra: Vec<usize>,
    unknown_seen: usize,
}

struct Walk<'a> {
    locator: Locator<'a>,
    modules: Vec<BootModule>,
    /// Domains with their tree domid (None: to allocate) and node path.
    domains: Vec<(Option<u32>, String, BootDomain)>,
    domids: HashMap<u32, String>,
    stats: ParseStats,
}

fn compat_has(raw: Option<&[u8]>, want: &str) -> bool {
    raw.is_some_and(|v| v.split(|&b| b == 0).any(|s| s == want.as_bytes()))
}

/// The module kind a `compatible` list names, or `None` if the node is not
/// a module. Specific kinds win over the generic `multiboot,module`.
fn module_kind(compat: &[&str]) -> Option<ModuleKind> {
    let mut generic = false;
    for c in compat {
        let kind = match *c {
            "multiboot,kernel" | "module,kernel" | "xen,linux-zimage" => ModuleKind::Kernel,
            "multiboot,ramdisk" | "module,ramdisk" | "xen,linux-initrd" => ModuleKind::Ramdisk,
            "multiboot,device-tree" | "module,device-tree" => ModuleKind::DeviceTree,
            "multiboot,microcode" | "module,microcode" => ModuleKind::Microcode,
            "multiboot,xsm-policy" | "module,xsm-policy" | "xen,xsm-policy" => {
                ModuleKind::XsmPolicy
            }
            "module,config" => ModuleKind::Config,
            "multiboot,module" | "xen,multiboot-module" | "module,index" => {
                generic = true;
                continue;
            }
            _ => continue,
        };
        return Some(kind);
    }
    generic.then_some(ModuleKind::Unknown)
}

/// `kib` KiB in bytes.
fn kib_to_bytes(node: &str, property: &'static str, kib: u64) -> Result<u64, BootInfoError> {
    kib.checked_mul(1024)
        .ok_or_else(|| BootInfoError::MemoryOverflow {
            node: node.to_owned(),
            property,
            kib,
        })
}

impl<'a> Walk<'a> {
    fn read<'n>(
        &mut self,
        path: String,
        node: FdtNode<'_, 'n>,
    ) -> Result<Props<'n>, BootInfoError> {
        self.stats.nodes_visited += 1;
        Props::read(path, node, &mut self.stats.properties_read)
    }

    fn chosen_child(&mut self, node: FdtNode<'_, '_>) -> Result<(), BootInfoError> {
        let props = self.read(format!("/chosen/{}", node.name), node)?;
        let compat = props.raw(Prop::Compatible);
        if compat_has(compat, "xen,domain") {
            self.domain(node, props, Style::Dom0less)
        } else if compat_has(compat, "hypervisor,xen") {
            let cells = Cells::of(&props)?;
            for child in node.children() {
                self.hypervisor_child(child, &props.path, &cells)?;
            }
            Ok(())
        } else {
            // Anything else under /chosen (bootargs holders, dom0 modules
            // of a Xen with a dom0) is not ours.
            Ok(())
        }
    }

    fn hypervisor_child(
        &mut self,
        node: FdtNode<'_, '_>,
        parent: &str,
        cells: &Cells,
    ) -> Result<(), BootInfoError> {
        let props = self.read(format!("{parent}/{}", node.name), node)?;
        let compat = props.raw(Prop::Compatible);
        if compat_has(compat, "xen,domain") {
            return self.domain(node, props, Style::Hyperlaunch);
        }
        if compat_has(compat, "xen,config") {
            let cells = Cells::of(&props)?;
            for child in node.children() {
                let props = self.read(format!("{}/{}", props.path, child.name), child)?;
                self.host_module(props, &cells)?;
            }
            return Ok(());
        }
        self.host_module(props, cells)
    }

    /// A module outside any domain (microcode, XSM policy, config): kept in
    /// [`BootInfo::modules`], owned by no domain.
    fn host_module(&mut self, props: Props<'_>, cells: &Cells) -> Result<(), BootInfoError> {
        let compat = props.string_list(Prop::Compatible)?;
        if let Some(kind) = module_kind(&compat) {
            let module = self.module(&props, kind, cells)?;
            self.modules.push(module);
        }
        Ok(())
    }

    fn domain(
        &mut self,
        node: FdtNode<'_, '_>,
        props: Props<'_>,
        style: Style,
    ) -> Result<(), BootInfoError> {
        let path = props.path.clone();
        let invalid = |property: Prop, value: u64, reason| BootInfoError::InvalidValue {
            node: props.path.clone(),
            property: property.name(),
            value,
            reason,
        };

        let domid = props.u32(Prop::Domid)?;
        if let Some(id) = domid {
            if id >= DOMID_FIRST_RESERVED {
                return Err(invalid(
                    Prop::Domid,
                    u64::from(id),
                    "in the reserved range (0x7ff0 and up)",
                ));
            }
            if let Some(first) = self.domids.insert(id, path.clone()) {
                return Err(BootInfoError::DuplicateDomid {
                    domid: id,
                    first,
                    second: path,
                });
            }
        }

        let mode = props.u32(Prop::Mode)?.unwrap_or(0);
        let unknown = mode & !(MODE_PV | MODE_HVM_DM | MODE_64BIT);
        if unknown != 0 {
            return Err(BootInfoError::UnknownModeBits {
                node: path,
                mode,
                unknown,
            });
        }
        let unsupported = match mode & (MODE_PV | MODE_HVM_DM) {
            0 => None,
            MODE_PV => Some("a PV guest"),
            MODE_HVM_DM => Some("an HVM guest with a device model"),
            _ => Some("both PV and HVM (contradictory)"),
        };
        if let Some(what) = unsupported {
            return Err(BootInfoError::UnsupportedMode {
                node: path,
                mode,
                what,
            });
        }

        let caps = props.u32(Prop::Capabilities)?.unwrap_or(0);
        let capabilities =
            Capabilities::from_bits(caps).ok_or_else(|| BootInfoError::UnknownCapabilities {
                node: path.clone(),
                value: caps,
                unknown: caps & !Capabilities::all().bits(),
            })?;

        let memory_kib =
            props
                .u64(Prop::Memory)?
                .ok_or_else(|| BootInfoError::MissingProperty {
                    node: path.clone(),
                    property: Prop::Memory.name(),
                })?;
        let memory = kib_to_bytes(&path, Prop::Memory.name(), memory_kib)?;
        let mem_min = match props.u64(Prop::MemMin)? {
            Some(kib) => kib_to_bytes(&path, Prop::MemMin.name(), kib)?,
            None => memory,
        };
        let (mem_max, max_prop) = match props.u64(Prop::MemMax)? {
            Some(kib) => (kib_to_bytes(&path, Prop::MemMax.name(), kib)?, Prop::MemMax),
            None => (memory, Prop::Memory),
        };
        if !(mem_min <= memory && memory <= mem_max) {
            return Err(BootInfoError::MemoryRange {
                node: path,
                min: mem_min,
                memory,
                max: mem_max,
            });
        }
        let limit = self.locator.sources().host_memory_limit;
        if mem_max > limit {
            return Err(BootInfoError::MemoryOverLimit {
                node: path,
                property: max_prop.name(),
                bytes: mem_max,
                limit,
            });
        }

        let vcpus = match (props.u32(Prop::Cpus)?, style) {
            (Some(n), _) => n,
            (None, Style::Hyperlaunch) => 1,
            (None, Style::Dom0less) => {
                return Err(BootInfoError::MissingProperty {
                    node: path,
                    property: Prop::Cpus.name(),
                });
            }
        };
        if vcpus == 0 || vcpus > MAX_VCPUS {
            return Err(invalid(
                Prop::Cpus,
                u64::from(vcpus),
                "must be between 1 and 255",
            ));
        }

        let cells = Cells::of(&props)?;
        let mut slots = Slots::default();
        for child in node.children() {
            let child_props = self.read(format!("{path}/{}", child.name), child)?;
            let compat = child_props.string_list(Prop::Compatible)?;
            let Some(kind) = module_kind(&compat) else {
                // Not a module (passthrough, vpl011, ...): not ours.
                continue;
            };
            let mut module = self.module(&child_props, kind, &cells)?;
            // dom0less `kernel_probe`: of the modules that do not say what
            // they are, the first is the kernel, the second the ramdisk.
            if kind == ModuleKind::Unknown {
                module.kind = match slots.unknown_seen {
                    0 => ModuleKind::Kernel,
                    1 => ModuleKind::Ramdisk,
                    _ => ModuleKind::Unknown,
                };
                slots.unknown_seen += 1;
            }
            let index = self.modules.len();
            let slot = match module.kind {
                ModuleKind::Kernel => Some(&mut slots.kernel),
                ModuleKind::Ramdisk => Some(&mut slots.ramdisk),
                _ => None,
            };
            match slot {
                Some(Some((_, first))) => {
                    return Err(BootInfoError::DuplicateModule {
                        kind: module.kind,
                        first: first.clone(),
                        second: child_props.path,
                    });
                }
                Some(empty) => *empty = Some((index, child_props.path)),
                None => slots.extra.push(index),
            }
            self.modules.push(module);
        }
        let Some((kernel, _)) = slots.kernel else {
            return Err(BootInfoError::MissingKernel { node: path });
        };
        let cmdline = self
            .modules
            .get(kernel)
            .map(|m| m.cmdline.clone())
            .unwrap_or_default();
        let domain = BootDomain {
            domid: domid.unwrap_or(0),
            name: node.name.to_owned(),
            mode: DomainMode::Pvh,
            capabilities,
            memory,
            mem_min,
            mem_max,
            vcpus,
            kernel,
            ramdisk: slots.ramdisk.map(|(i, _)| i),
            extra_modules: slots.extra,
            cmdline,
        };
        self.domains.push((domid, path, domain));
        Ok(())
    }

    /// Locates one module node's bytes and builds its [`BootModule`].
    fn module(
        &mut self,
        props: &Props<'_>,
        kind: ModuleKind,
        cells: &Cells,
    ) -> Result<BootModule, BootInfoError> {
        let path = &props.path;
        let ways = [
            Prop::ModuleIndex,
            Prop::MbIndex,
            Prop::Reg,
            Prop::UefiBinary,
        ];
        let mut present = ways.into_iter().filter(|&p| props.has(p));
        let Some(way) = present.next() else {
            return Err(BootInfoError::NoLocation { node: path.clone() });
        };
        if let Some(other) = present.next() {
            return Err(BootInfoError::ConflictingLocation {
                node: path.clone(),
                first: way.name(),
                second: other.name(),
            });
        }
        let (
            origin,
            Located {
                bytes,
                loader_cmdline,
            },
        ) = match way {
            Prop::ModuleIndex | Prop::MbIndex => {
                let index = props.u32(way)?.unwrap_or(0);
                let located = self.locator.by_index(path, way.name(), index)?;
                (ModuleOrigin::ModuleIndex(index), located)
            }
            Prop::Reg => {
                let (ac, sc) = cells.get()?;
                let (addr, size) = props.reg(ac, sc)?.unwrap_or((0, 0));
                let located = self.locator.by_reg(path, addr, size)?;
                (ModuleOrigin::Reg { addr, size }, located)
            }
            _ => {
                let name = props.string(Prop::UefiBinary)?.unwrap_or_default();
                let (file, located) = self.locator.by_file(path, name)?;
                (ModuleOrigin::File(file), located)
            }
        };
        // Xen: the boot loader's own module string wins when not empty.
        let cmdline = if loader_cmdline.is_empty() {
            props.string(Prop::Bootargs)?.unwrap_or_default().to_owned()
        } else {
            loader_cmdline
        };
        let (compression, headroom) = compression::headroom(&bytes);
        Ok(BootModule {
            kind,
            origin,
            bytes,
            cmdline,
            compression,
            headroom,
            node: path.clone(),
        })
    }

    /// Allocates the missing domain ids (lowest free from 1, tree order),
    /// checks the total memory, and assembles the result.
    fn finish(self) -> Result<(BootInfo, ParseStats), BootInfoError> {
        let Walk {
            locator,
            modules,
            domains,
            domids,
            stats,
        } = self;
        if domains.is_empty() {
            return Err(BootInfoError::NoDomains);
        }
        let limit = locator.sources().host_memory_limit;
        let count = domains.len();
        let mut next = 1u32;
        let mut out = Vec::with_capacity(domains.len());
        let mut total = 0u64;
        for (domid, _path, mut domain) in domains {
            domain.domid = match domid {
                Some(id) => id,
                None => {
                    while domids.contains_key(&next) {
                        next += 1;
                    }
                    if next >= DOMID_FIRST_RESERVED {
                        return Err(BootInfoError::TooManyDomains {
                            count,
                            max: DOMID_FIRST_RESERVED,
                        });
                    }
                    next += 1;
                    next - 1
                }
            };
            total = total.saturating_add(domain.memory);
            out.push(domain);
        }
        if total > limit {
            return Err(BootInfoError::TotalMemoryOverLimit { total, limit });
        }
        Ok((
            BootInfo {
                modules,
                domains: out,
                host_memory_limit: limit,
            },
            stats,
        ))
    }
}
