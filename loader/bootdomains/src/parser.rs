//! The one parser for both bindings: dom0less (`/chosen/*` with
//! `compatible = "xen,domain"`) and hyperlaunch (`/chosen/hypervisor`,
//! `compatible = "hypervisor,xen"`, domains inside).
//!
//! The walk goes down the tree once: the root's children (by name only),
//! `/chosen`'s children, each domain's children (and the hypervisor node's
//! children and its config node's children). Every visited node's property
//! list is read once (`props.rs`); nothing is looked up by path, so the
//! cost is linear in the size of the tree. Module bytes are found through a
//! locator (hash lookups), domain ids through a hash set. `#address-cells`
//! and `#size-cells` travel down the walk: a node without them has its
//! nearest ancestor's (as Xen's and Linux's readers do), and with no
//! ancestor setting them, the devicetree specification's defaults (2, 1).
//!
//! Before the walk, [`blob::check`] scans the token stream once so that the
//! `fdt` crate (which panics on inconsistent blobs) only ever sees a sound
//! one.

use std::collections::HashMap;

use fdt::Fdt;
use fdt::node::FdtNode;
use pvh_loader::{BootProtocol, SubarchPolicy};

use super::blob::{self, BlobShape};
use super::compression;
use super::error::{BlobError, BootInfoError, CellCount};
use super::props::{Prop, Props};
use super::source::{BootSources, Located, Locator};
use super::types::{
    BootDomain, BootInfo, BootModule, Capabilities, DomainMode, ModuleKind, ModuleOrigin,
    is_xsm_policy,
};

/// The first domain id Xen reserves (`DOMID_FIRST_RESERVED`); ids from here
/// up are special and may not be given to a domain.
pub const DOMID_FIRST_RESERVED: u32 = 0x7ff0;
/// The most vCPUs a domain may have: the most the ACPI tables describe
/// (one definition for the tree, `--cpus` and the table builder).
pub const MAX_VCPUS: u32 = pvh_acpi::MAX_CPUS as u32;
/// `mode` bit 0: PV guest.
pub const MODE_PV: u32 = 0x1;
/// `mode` bit 1: HVM guest with a device model.
pub const MODE_HVM_DM: u32 = 0x2;
/// `mode` bit 2 (hyperlaunch design document): 64-bit guest. A PVH guest
/// is entered in 32-bit mode whatever its kernel; with this bit pvh
/// requires the kernel to be a 64-bit image.
pub const MODE_64BIT: u32 = 0x4;
/// Guest memory is handed out in pages: lowered memory sizes are rounded
/// down to this.
const PAGE: u64 = 4096;

/// The values of `pvh,boot-protocol` and `--boot-protocol`, with the help
/// text the command line shows: one table for both.
pub const BOOT_PROTOCOLS: [(&str, BootProtocol, &str); 3] = [
    (
        "pvh",
        BootProtocol::Pvh,
        "PVH: a PVH ELF directly, a bzImage through the built-in stub",
    ),
    (
        "linux",
        BootProtocol::Linux64,
        "The Linux 64-bit boot protocol (bzImage only)",
    ),
    (
        "pvh-unpack",
        BootProtocol::PvhUnpack,
        "Decompress the bzImage to its vmlinux and boot that through PVH",
    ),
];

/// The values of `pvh,subarch` and `--subarch`, with their help text.
pub const SUBARCHES: [(&str, SubarchPolicy, &str); 2] = [
    ("pc", SubarchPolicy::Pc, "hardware_subarch = PC"),
    (
        "xen",
        SubarchPolicy::Xen,
        "hardware_subarch = XEN, with the start_info address",
    ),
];

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
        holders: [None, None],
        stats: ParseStats {
            blob: shape,
            ..ParseStats::default()
        },
    };
    let root_props = walk.read("/".into(), root)?;
    let root_cells = Cells::DEFAULT.under(&root_props)?;
    let mut chosen = None;
    for child in root.children() {
        if child.name == "chosen" {
            chosen = Some(child);
            break;
        }
        walk.stats.nodes_visited += 1;
    }
    let chosen = chosen.ok_or(BootInfoError::NoChosen)?;
    let chosen_props = walk.read("/chosen".into(), chosen)?;
    let cells = root_cells.under(&chosen_props)?;
    for child in chosen.children() {
        walk.chosen_child(child, &cells)?;
    }
    walk.finish()
}

/// The binding a domain node was found under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Dom0less,
    Hyperlaunch,
}

/// The `#address-cells` / `#size-cells` in force at a node: its own, or
/// its nearest ancestor's, or the defaults. Checked (1 or 2) only when a
/// `reg` / `module-addr` is read with them.
#[derive(Debug, Clone)]
struct Cells {
    address: CellCount,
    size: CellCount,
}

impl Cells {
    /// The devicetree specification's defaults: 2 address cells, 1 size
    /// cell (Xen's `DT_ROOT_NODE_*_CELLS_DEFAULT` are the same).
    const DEFAULT: Cells = Cells {
        address: CellCount {
            value: 2,
            from: None,
        },
        size: CellCount {
            value: 1,
            from: None,
        },
    };

    /// The cells for `props`' children: its own where it sets them,
    /// otherwise these.
    fn under(&self, props: &Props<'_>) -> Result<Cells, BootInfoError> {
        let own = |p: Prop, inherited: &CellCount| -> Result<CellCount, BootInfoError> {
            Ok(match props.u32(p)? {
                Some(value) => CellCount {
                    value,
                    from: Some(props.path.clone()),
                },
                None => inherited.clone(),
            })
        };
        Ok(Cells {
            address: own(Prop::AddressCells, &self.address)?,
            size: own(Prop::SizeCells, &self.size)?,
        })
    }

    /// The (address, size) cell counts for module `node`'s `property`.
    fn get(&self, node: &str, property: &'static str) -> Result<(u32, u32), BootInfoError> {
        for (cells, count) in [
            ("#address-cells", &self.address),
            ("#size-cells", &self.size),
        ] {
            if !(1..=2).contains(&count.value) {
                return Err(BootInfoError::InvalidCells {
                    node: node.to_owned(),
                    property,
                    cells,
                    count: count.clone(),
                });
            }
        }
        Ok((self.address.value, self.size.value))
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

/// The capabilities at most one domain may hold, in [`Walk::holders`]
/// order, with their names for messages.
const UNIQUE_CAPABILITIES: [(Capabilities, &str); 2] = [
    (Capabilities::CONTROL, "CONTROL (0x1)"),
    (Capabilities::HARDWARE, "HARDWARE (0x2)"),
];

struct Walk<'a> {
    locator: Locator<'a>,
    modules: Vec<BootModule>,
    /// Domains with their tree domid (None: to allocate).
    domains: Vec<(Option<u32>, BootDomain)>,
    domids: HashMap<u32, String>,
    /// The domain holding each of [`UNIQUE_CAPABILITIES`].
    holders: [Option<String>; 2],
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

/// The value of a string property that names one entry of `table`.
fn named<T: Copy>(
    props: &Props<'_>,
    p: Prop,
    table: &[(&str, T, &str)],
    expected: &'static str,
) -> Result<Option<T>, BootInfoError> {
    let Some(name) = props.string(p)? else {
        return Ok(None);
    };
    table
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|&(_, v, _)| Some(v))
        .ok_or_else(|| BootInfoError::InvalidString {
            node: props.path.clone(),
            property: p.name(),
            value: name.to_owned(),
            expected,
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

    fn chosen_child(&mut self, node: FdtNode<'_, '_>, cells: &Cells) -> Result<(), BootInfoError> {
        let props = self.read(format!("/chosen/{}", node.name), node)?;
        let compat = props.raw(Prop::Compatible);
        if compat_has(compat, "xen,domain") {
            let cells = cells.under(&props)?;
            self.domain(node, props, Style::Dom0less, &cells)
        } else if compat_has(compat, "hypervisor,xen") {
            let cells = cells.under(&props)?;
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
            let cells = cells.under(&props)?;
            return self.domain(node, props, Style::Hyperlaunch, &cells);
        }
        if compat_has(compat, "xen,config") {
            let cells = cells.under(&props)?;
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

    /// `capabilities`: known bits only, no XENSTORE, and each of CONTROL
    /// and HARDWARE held by one domain at most.
    fn capabilities(&mut self, props: &Props<'_>) -> Result<Capabilities, BootInfoError> {
        let path = &props.path;
        let value = props.u32(Prop::Capabilities)?.unwrap_or(0);
        let caps =
            Capabilities::from_bits(value).ok_or_else(|| BootInfoError::UnknownCapabilities {
                node: path.clone(),
                value,
                unknown: value & !Capabilities::all().bits(),
            })?;
        if caps.contains(Capabilities::XENSTORE) {
            return Err(BootInfoError::UnsupportedCapability {
                node: path.clone(),
                capability: "XENSTORE (0x4)",
                reason: "pvh has no xenstore for the domain to serve",
            });
        }
        for ((cap, name), holder) in UNIQUE_CAPABILITIES.iter().zip(&mut self.holders) {
            if !caps.contains(*cap) {
                continue;
            }
            if let Some(first) = holder {
                return Err(BootInfoError::DuplicateCapability {
                    capability: name,
                    first: first.clone(),
                    second: path.clone(),
                });
            }
            *holder = Some(path.clone());
        }
        Ok(caps)
    }

    fn domain(
        &mut self,
        node: FdtNode<'_, '_>,
        props: Props<'_>,
        style: Style,
        cells: &Cells,
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

        let capabilities = self.capabilities(&props)?;

        let memory_kib =
            props
                .u64(Prop::Memory)?
                .ok_or_else(|| BootInfoError::MissingProperty {
                    node: path.clone(),
                    property: Prop::Memory.name(),
                })?;
        let memory = kib_to_bytes(&path, Prop::Memory.name(), memory_kib)?;
        let (mem_min, min_prop) = match props.u64(Prop::MemMin)? {
            Some(kib) => (kib_to_bytes(&path, Prop::MemMin.name(), kib)?, Prop::MemMin),
            None => (memory, Prop::Memory),
        };
        let mem_max = match props.u64(Prop::MemMax)? {
            Some(kib) => kib_to_bytes(&path, Prop::MemMax.name(), kib)?,
            None => memory,
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
        if mem_min > limit {
            return Err(BootInfoError::MemoryOverLimit {
                node: path,
                property: min_prop.name(),
                bytes: mem_min,
                limit,
            });
        }
        if props.has(Prop::StaticMem) {
            return Err(BootInfoError::Unsupported {
                node: path,
                property: Prop::StaticMem.name(),
                reason: "it gives a domain banks of host physical memory; a KVM guest's RAM is \
                         host virtual memory, which pvh chooses (remove it and keep `memory`)",
            });
        }

        let defaults = self.locator.sources().defaults;
        let vcpus = match (props.u32(Prop::Cpus)?, style) {
            (Some(n), _) => n,
            (None, Style::Hyperlaunch) => defaults.vcpus,
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
                "must be between 1 and 32 (the most vCPUs pvh's ACPI tables describe)",
            ));
        }

        let mut boot = defaults.boot;
        if let Some(p) = named(
            &props,
            Prop::PvhBootProtocol,
            &BOOT_PROTOCOLS,
            "\"pvh\", \"linux\" or \"pvh-unpack\"",
        )? {
            boot.protocol = p;
        }
        if let Some(s) = named(&props, Prop::PvhSubarch, &SUBARCHES, "\"pc\" or \"xen\"")? {
            boot.subarch = s;
        }
        match props.u32(Prop::PvhAcpi)? {
            None => {}
            Some(0) => boot.acpi = false,
            Some(1) => boot.acpi = true,
            Some(v) => {
                return Err(invalid(
                    Prop::PvhAcpi,
                    u64::from(v),
                    "must be 0 (no ACPI tables) or 1",
                ));
            }
        }

        let mut slots = Slots::default();
        for child in node.children() {
            let child_props = self.read(format!("{path}/{}", child.name), child)?;
            let compat = child_props.string_list(Prop::Compatible)?;
            let Some(kind) = module_kind(&compat) else {
                // Not a module (passthrough, vpl011, ...): not ours.
                continue;
            };
            let mut module = self.module(&child_props, kind, cells)?;
            // dom0less `kernel_probe`: of the modules that do not say what
            // they are, the first is the kernel, the second the ramdisk. An
            // XSM policy (recognised by its magic) is never guessed.
            if module.kind == ModuleKind::Unknown {
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
            node: path,
            mode: DomainMode::Pvh,
            long_mode: mode & MODE_64BIT != 0,
            capabilities,
            memory,
            memory_asked: memory,
            mem_min,
            mem_max,
            vcpus,
            kernel,
            ramdisk: slots.ramdisk.map(|(i, _)| i),
            extra_modules: slots.extra,
            cmdline,
            boot,
        };
        self.domains.push((domid, domain));
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
            Prop::ModuleAddr,
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
        let (origin, located) = match way {
            Prop::ModuleIndex | Prop::MbIndex => {
                let index = props.u32(way)?.unwrap_or(0);
                let located = self.locator.by_index(path, way.name(), index)?;
                (ModuleOrigin::ModuleIndex(index), located)
            }
            Prop::Reg | Prop::ModuleAddr => {
                let (ac, sc) = cells.get(path, way.name())?;
                let (addr, size) =
                    props
                        .reg(way, ac, sc)
                        .ok_or_else(|| BootInfoError::RegLength {
                            node: path.clone(),
                            property: way.name(),
                            len: props.raw(way).map_or(0, <[u8]>::len),
                            address_cells: cells.address.clone(),
                            size_cells: cells.size.clone(),
                        })?;
                let located = self.locator.by_reg(path, way.name(), addr, size)?;
                (ModuleOrigin::Reg { addr, size }, located)
            }
            _ => {
                let name = props.string(Prop::UefiBinary)?.unwrap_or_default();
                let (file, located) = self.locator.by_file(path, name)?;
                (ModuleOrigin::File(file), located)
            }
        };
        let Located {
            bytes,
            loader_cmdline,
            region,
        } = located;
        // Xen: the boot loader's own module string wins when not empty.
        let cmdline = if loader_cmdline.is_empty() {
            props.string(Prop::Bootargs)?.unwrap_or_default().to_owned()
        } else {
            loader_cmdline
        };
        let kind = match (kind, is_xsm_policy(&bytes)) {
            (ModuleKind::Kernel | ModuleKind::Ramdisk, true) => {
                return Err(BootInfoError::XsmPolicyAsDomainModule {
                    node: path.clone(),
                    kind,
                });
            }
            (ModuleKind::Unknown, true) => ModuleKind::XsmPolicy,
            (kind, _) => kind,
        };
        let (compression, estimate) = compression::headroom(&bytes);
        let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        let rest_of_region = region.map_or(0, |r| r.saturating_sub(len));
        Ok(BootModule {
            kind,
            origin,
            bytes,
            cmdline,
            compression,
            headroom: estimate.max(rest_of_region),
            node: path.clone(),
        })
    }

    /// Allocates the missing domain ids (lowest free from 1, tree order),
    /// chooses each domain's memory within the host limit, and assembles
    /// the result.
    fn finish(self) -> Result<(BootInfo, ParseStats), BootInfoError> {
        let Walk {
            locator,
            modules,
            domains,
            domids,
            stats,
            ..
        } = self;
        if domains.is_empty() {
            return Err(BootInfoError::NoDomains);
        }
        let sources = locator.sources();
        let unnumbered = domains.iter().filter(|(id, _)| id.is_none()).count();
        let taken = domids
            .keys()
            .filter(|&&id| (1..DOMID_FIRST_RESERVED).contains(&id))
            .count();
        let free = (DOMID_FIRST_RESERVED as usize - 1) - taken;
        if unnumbered > free {
            return Err(BootInfoError::TooManyDomains {
                count: unnumbered,
                free,
            });
        }
        let mut next = 1u32;
        let mut out: Vec<BootDomain> = domains
            .into_iter()
            .map(|(domid, mut domain)| {
                domain.domid = domid.unwrap_or_else(|| {
                    while domids.contains_key(&next) {
                        next += 1;
                    }
                    next += 1;
                    next - 1
                });
                domain
            })
            .collect();
        choose_memory(&mut out, sources.host_memory_limit)?;
        Ok((
            BootInfo {
                loader_name: sources.loader_name.to_owned(),
                cmdline: sources.cmdline.to_owned(),
                host_memmap: sources.host_memmap.to_vec(),
                modules,
                domains: out,
                host_memory_limit: sources.host_memory_limit,
            },
            stats,
        ))
    }
}

/// Gives every domain its `memory` if they fit the host limit together;
/// otherwise lowers the domains that allow it (`mem-min` below `memory`)
/// in proportion to how far each may go, never below its `mem-min`, and
/// rounded down to whole pages. Fails when even every domain at its
/// `mem-min` does not fit.
pub fn choose_memory(domains: &mut [BootDomain], limit: u64) -> Result<(), BootInfoError> {
    let sum = |f: fn(&BootDomain) -> u64| domains.iter().fold(0u128, |s, d| s + u128::from(f(d)));
    let total = sum(|d| d.memory);
    let limit128 = u128::from(limit);
    if total <= limit128 {
        return Ok(());
    }
    let floor = sum(|d| d.mem_min);
    if floor > limit128 {
        return Err(BootInfoError::TotalMemoryOverLimit {
            total: u64::try_from(floor).unwrap_or(u64::MAX),
            limit,
        });
    }
    let deficit = total - limit128;
    let slack = total - floor;
    for d in domains.iter_mut() {
        let room = d.memory.saturating_sub(d.mem_min);
        let own = u128::from(room);
        // Ceiling of own * deficit / slack: the cuts add up to at least the
        // deficit. The quotient is at most `own`, so it fits in a u64.
        let cut = u64::try_from((own * deficit).div_ceil(slack)).unwrap_or(u64::MAX);
        let lowered = (d.memory - cut.min(room)) & !(PAGE - 1);
        d.memory = lowered.max(d.mem_min);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn domain(memory: u64, mem_min: u64) -> BootDomain {
        BootDomain {
            domid: 1,
            name: "d".into(),
            node: "/chosen/d".into(),
            mode: DomainMode::Pvh,
            long_mode: false,
            capabilities: Capabilities::empty(),
            memory,
            memory_asked: memory,
            mem_min,
            mem_max: memory,
            vcpus: 1,
            kernel: 0,
            ramdisk: None,
            extra_modules: vec![],
            cmdline: String::new(),
            boot: super::super::types::DomainBoot::default(),
        }
    }

    fn chosen(ds: &[(u64, u64)], limit: u64) -> Result<Vec<u64>, BootInfoError> {
        let mut v: Vec<BootDomain> = ds.iter().map(|&(m, min)| domain(m, min)).collect();
        choose_memory(&mut v, limit)?;
        Ok(v.iter().map(|d| d.memory).collect())
    }

    #[test]
    fn memory_is_lowered_in_proportion_to_what_each_domain_may_give() {
        // Fits: untouched.
        assert_eq!(chosen(&[(100 * MIB, 0)], 100 * MIB).unwrap(), [100 * MIB]);
        // Only the first may give: it gives all that is needed.
        assert_eq!(
            chosen(&[(100 * MIB, 40 * MIB), (100 * MIB, 100 * MIB)], 150 * MIB).unwrap(),
            [50 * MIB, 100 * MIB]
        );
        // Both may give, 100 and 50 MiB: a 60 MiB cut splits 40 / 20.
        assert_eq!(
            chosen(&[(100 * MIB, 0), (100 * MIB, 50 * MIB)], 140 * MIB).unwrap(),
            [60 * MIB, 80 * MIB]
        );
        // Uneven shares round each cut up to a page; the total still fits
        // and nobody goes below mem-min.
        let got = chosen(
            &[(7 * MIB, MIB), (5 * MIB, 2 * MIB), (3 * MIB, 3 * MIB)],
            11 * MIB,
        )
        .unwrap();
        assert!(got.iter().sum::<u64>() <= 11 * MIB, "{got:?}");
        assert!(
            got[0] >= MIB && got[1] >= 2 * MIB && got[2] == 3 * MIB,
            "{got:?}"
        );
        assert!(got.iter().all(|m| m % 4096 == 0), "{got:?}");
        // Not even the minimums fit.
        assert!(matches!(
            chosen(&[(100 * MIB, 80 * MIB), (100 * MIB, 80 * MIB)], 150 * MIB),
            Err(BootInfoError::TotalMemoryOverLimit { total, limit }) if total == 160 * MIB && limit == 150 * MIB
        ));
    }
}
