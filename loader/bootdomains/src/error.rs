//! Errors of the boot-domain parser: one enum for the blob's structure
//! ([`BlobError`]), one for what the tree means ([`BootInfoError`]).
//!
//! Every semantic error names the node path and, where one is at fault, the
//! property, so a user can find the line in the `.dts` to fix.

use std::fmt;
use std::path::{Path, PathBuf};

use pvh_entry::text::Escaped;

use super::types::ModuleKind;

/// A string from the tree (node path, property value) or a path, escaped
/// for printing: a tree cannot put terminal control sequences or a fake
/// `pvh:` line into a message.
pub fn esc(s: &str) -> Escaped<'_> {
    Escaped::str(s)
}

/// A path, escaped for printing (see [`esc`]).
pub fn esc_path(p: &Path) -> Escaped<'_> {
    Escaped(p.as_os_str().as_encoded_bytes())
}

/// The flattened tree is not structurally sound (checked before the `fdt`
/// crate reads it, because that crate panics on inconsistent blobs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// Shorter than the 40-byte FDT header.
    #[error("device tree blob is {len} bytes, shorter than the 40-byte header")]
    TooShort {
        /// The blob length.
        len: usize,
    },
    /// `totalsize` is above [`super::blob::MAX_TREE_SIZE`].
    #[error(
        "device tree totalsize {totalsize:#x} is more than the {max:#x} bytes a boot tree may have"
    )]
    TooLarge {
        /// The header's `totalsize`.
        totalsize: u32,
        /// The limit.
        max: u64,
    },
    /// The header does not start with 0xd00dfeed.
    #[error("device tree magic is {magic:#010x}, expected 0xd00dfeed")]
    BadMagic {
        /// The magic found.
        magic: u32,
    },
    /// `totalsize` claims more bytes than were given, or less than a header.
    #[error("device tree header says totalsize {totalsize}, but the blob is {len} bytes")]
    TotalSize {
        /// The header's `totalsize`.
        totalsize: u32,
        /// The bytes available.
        len: usize,
    },
    /// A version older than 17 (no `size_dt_struct`) or one that is not
    /// backwards compatible with 17.
    #[error(
        "device tree version {version} (last compatible {last_comp}) is not supported; need 17"
    )]
    Version {
        /// `version`.
        version: u32,
        /// `last_comp_version`.
        last_comp: u32,
    },
    /// A block (structure, strings, memory reservations) lies outside
    /// `totalsize`.
    #[error(
        "device tree {block} block at {offset:#x}+{size:#x} lies outside totalsize {totalsize:#x}"
    )]
    BlockOutOfBounds {
        /// Which block.
        block: &'static str,
        /// Its offset from the header.
        offset: u32,
        /// Its size.
        size: u32,
        /// The header's `totalsize`.
        totalsize: u32,
    },
    /// The structure block ends in the middle of a token, name or value.
    #[error("device tree structure block is truncated at offset {offset:#x} (reading {what})")]
    Truncated {
        /// Offset into the structure block.
        offset: usize,
        /// What was being read.
        what: &'static str,
    },
    /// A token that is not allowed at this place.
    #[error("device tree token {token:#x} at structure offset {offset:#x}: {reason}")]
    BadToken {
        /// Offset into the structure block.
        offset: usize,
        /// The token value.
        token: u32,
        /// Why it is wrong here.
        reason: &'static str,
    },
    /// A node name or property name is not a NUL-terminated UTF-8 string.
    #[error("device tree {what} at offset {offset:#x} is not a NUL-terminated UTF-8 string")]
    BadString {
        /// Node name (structure offset) or property name (strings offset).
        what: &'static str,
        /// The offset.
        offset: usize,
    },
    /// Nodes nest deeper than this parser follows.
    #[error("device tree nodes nest deeper than {max} levels (structure offset {offset:#x})")]
    TooDeep {
        /// Offset of the node that is too deep.
        offset: usize,
        /// The limit.
        max: usize,
    },
    /// The root node has a name (the root's name must be empty).
    #[error("device tree root node is named \"{}\"; the root's name must be empty", esc(.name))]
    NamedRoot {
        /// The name found.
        name: String,
    },
}

/// An `#address-cells` or `#size-cells` value and where it came from:
/// the nearest ancestor that sets it (as Xen's and Linux's readers take
/// it), or the devicetree specification's default (2 and 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellCount {
    /// The count.
    pub value: u32,
    /// The node that sets it, or `None` for the default.
    pub from: Option<String>,
}

impl fmt::Display for CellCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.from {
            Some(node) => write!(f, "{} (from {})", self.value, esc(node)),
            None => write!(
                f,
                "{} (the devicetree default: no ancestor sets it)",
                self.value
            ),
        }
    }
}

/// The tree (or the `pvh boot` options) does not describe domains this
/// hypervisor can build. Node paths and strings from the tree are escaped
/// when printed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BootInfoError {
    /// The blob is structurally broken.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// There is no `/chosen` node.
    #[error("the device tree has no /chosen node")]
    NoChosen,
    /// Neither `/chosen/*` nor `/chosen/hypervisor/*` holds a
    /// `compatible = "xen,domain"` node.
    #[error(
        "the device tree describes no domain (no \"xen,domain\" node under /chosen or /chosen/hypervisor)"
    )]
    NoDomains,
    /// More domains without a `domid` than free domain ids.
    #[error(
        "{count} domains have no `domid`, but only {free} domain ids are free (ids are allocated from 1 to 0x7fef)"
    )]
    TooManyDomains {
        /// Domains that need an allocated id.
        count: usize,
        /// Ids from 1 to 0x7fef not taken by an explicit `domid`.
        free: usize,
    },
    /// A property the binding requires is absent.
    #[error("{}: required property `{property}` is missing", esc(.node))]
    MissingProperty {
        /// Node path.
        node: String,
        /// The property.
        property: &'static str,
    },
    /// A property occurs twice in the same node.
    #[error("{}: property `{property}` occurs more than once", esc(.node))]
    DuplicateProperty {
        /// Node path.
        node: String,
        /// The property.
        property: &'static str,
    },
    /// A property's value has the wrong number of bytes.
    #[error("{}: property `{property}` is {len} bytes, expected {expected}", esc(.node))]
    WrongLength {
        /// Node path.
        node: String,
        /// The property.
        property: &'static str,
        /// Its length.
        len: usize,
        /// What the binding wants.
        expected: &'static str,
    },
    /// A string property is not NUL-terminated UTF-8.
    #[error("{}: property `{property}` is not a NUL-terminated UTF-8 string", esc(.node))]
    NotAString {
        /// Node path.
        node: String,
        /// The property.
        property: &'static str,
    },
    /// A numeric property is out of its allowed range.
    #[error("{}: property `{property}` = {value:#x} is invalid: {reason}", esc(.node))]
    InvalidValue {
        /// Node path.
        node: String,
        /// The property.
        property: &'static str,
        /// The value.
        value: u64,
        /// Why.
        reason: &'static str,
    },
    /// A string property has a value outside its set.
    #[error("{}: property `{property}` = \"{}\" is invalid: expected {expected}", esc(.node), esc(.value))]
    InvalidString {
        /// Node path.
        node: String,
        /// The property.
        property: &'static str,
        /// The value.
        value: String,
        /// The values allowed.
        expected: &'static str,
    },
    /// Two domains ask for the same domain id.
    #[error("{}: domid {domid} is already used by {}", esc(.second), esc(.first))]
    DuplicateDomid {
        /// The id.
        domid: u32,
        /// The node that has it first.
        first: String,
        /// The node that repeats it.
        second: String,
    },
    /// `mode` has bits this parser does not know.
    #[error("{}: property `mode` = {mode:#x} has unknown bits {unknown:#x}", esc(.node))]
    UnknownModeBits {
        /// Node path.
        node: String,
        /// The value.
        mode: u32,
        /// The unknown bits.
        unknown: u32,
    },
    /// `mode` asks for a guest type other than PVH.
    #[error(
        "{}: property `mode` = {mode:#x} asks for {what}, which is not supported (only PVH: mode bits 0 and 1 clear)",
        esc(.node)
    )]
    UnsupportedMode {
        /// Node path.
        node: String,
        /// The value.
        mode: u32,
        /// The guest type asked for.
        what: &'static str,
    },
    /// `capabilities` has bits this parser does not know.
    #[error("{}: property `capabilities` = {value:#x} has unknown bits {unknown:#x}", esc(.node))]
    UnknownCapabilities {
        /// Node path.
        node: String,
        /// The value.
        value: u32,
        /// The unknown bits.
        unknown: u32,
    },
    /// A capability pvh cannot give a domain.
    #[error("{}: property `capabilities` has {capability}, which pvh does not support: {reason}", esc(.node))]
    UnsupportedCapability {
        /// Node path.
        node: String,
        /// The capability (`XENSTORE (0x4)`).
        capability: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// Two domains claim a capability only one may have.
    #[error(
        "{}: capability {capability} is already held by {} (at most one domain may have it)",
        esc(.second),
        esc(.first)
    )]
    DuplicateCapability {
        /// The capability (`CONTROL (0x1)`).
        capability: &'static str,
        /// The domain that has it first.
        first: String,
        /// The domain that repeats it.
        second: String,
    },
    /// A binding property pvh recognises but cannot honour.
    #[error("{}: property `{property}` is not supported: {reason}", esc(.node))]
    Unsupported {
        /// Node path.
        node: String,
        /// The property.
        property: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// A domain has no kernel module (explicit or guessed).
    #[error("{}: domain has no kernel module", esc(.node))]
    MissingKernel {
        /// The domain node path.
        node: String,
    },
    /// A domain has two modules of a kind it may have only one of.
    #[error("{}: a second {kind:?} module in the domain (the first is {})", esc(.second), esc(.first))]
    DuplicateModule {
        /// The kind.
        kind: ModuleKind,
        /// The first module node.
        first: String,
        /// The repeated module node.
        second: String,
    },
    /// A module given as a domain's kernel or ramdisk is an XSM policy.
    #[error(
        "{}: the module is an XSM (FLASK) policy (magic 0xf97cff8c), not a {kind:?}; pvh never gives a policy to a domain as its kernel or ramdisk",
        esc(.node)
    )]
    XsmPolicyAsDomainModule {
        /// Module node path (or the command-line option).
        node: String,
        /// The kind the tree (or the option) gave it.
        kind: ModuleKind,
    },
    /// A module node has no location (`module-index`, `mb-index`, `reg`,
    /// `module-addr` or `xen,uefi-binary`).
    #[error(
        "{}: module has none of `module-index`, `mb-index`, `reg`, `module-addr`, `xen,uefi-binary`",
        esc(.node)
    )]
    NoLocation {
        /// Module node path.
        node: String,
    },
    /// A module node has two ways of locating it.
    #[error("{}: module has both `{first}` and `{second}`; give exactly one", esc(.node))]
    ConflictingLocation {
        /// Module node path.
        node: String,
        /// One property.
        first: &'static str,
        /// The other.
        second: &'static str,
    },
    /// `module-index` / `mb-index` is outside the boot loader's module
    /// list.
    #[error(
        "{}: `{property}` = {index}, but the modules given are numbered {first} to {}{}",
        esc(.node),
        *.first as u64 + *.count as u64 - 1,
        if *.first == 1 { " (module 0 is the device tree itself)" } else { "" }
    )]
    ModuleIndexOutOfRange {
        /// Module node path.
        node: String,
        /// `module-index` or `mb-index`.
        property: &'static str,
        /// The index.
        index: u32,
        /// The first module's number (0, or 1 when the tree is module 0).
        first: u32,
        /// The number of modules given.
        count: usize,
    },
    /// `module-index` / `mb-index` 0 names the device tree itself (Xen's
    /// numbering, `--xen-module-numbering`).
    #[error(
        "{}: `{property}` = 0 is the device tree itself in Xen's module numbering (--xen-module-numbering); the first --module is 1",
        esc(.node)
    )]
    ModuleIndexIsTree {
        /// Module node path.
        node: String,
        /// `module-index` or `mb-index`.
        property: &'static str,
    },
    /// `xen,uefi-binary` is used but the caller gave no directory.
    #[error(
        "{}: `xen,uefi-binary` = \"{}\" but no module directory was given (--dir)",
        esc(.node),
        esc(.name)
    )]
    NoModuleDir {
        /// Module node path.
        node: String,
        /// The file name.
        name: String,
    },
    /// `xen,uefi-binary` is not a plain file name.
    #[error(
        "{}: `xen,uefi-binary` = \"{}\" is not a plain file name (empty, or has `/`, `\\` or `..`)",
        esc(.node),
        esc(.name)
    )]
    BadFileName {
        /// Module node path.
        node: String,
        /// The name.
        name: String,
    },
    /// A module file could not be read.
    #[error("{}: cannot read module file {}: {source}", esc(.node), esc_path(.path))]
    FileMissing {
        /// Module node path (or the command-line option).
        node: String,
        /// The path tried.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A module file is larger than it may be (see
    /// [`super::source::open_input`]; it was not read), or, read from a
    /// pipe, could not be spooled to a temporary file
    /// ([`pvh_loader::InputError::Spool`]).
    #[error("{}: {source}", esc(.node))]
    InputTooLarge {
        /// Module node path (or the command-line option).
        node: String,
        /// The sizes.
        #[source]
        source: pvh_loader::InputError,
    },
    /// The cell count that applies to a module's `reg` / `module-addr` is
    /// not 1 or 2.
    #[error(
        "{}: `{property}` is read with {cells} = {count}, which must be 1 or 2",
        esc(.node)
    )]
    InvalidCells {
        /// Module node path.
        node: String,
        /// `reg` or `module-addr`.
        property: &'static str,
        /// `#address-cells` or `#size-cells`.
        cells: &'static str,
        /// The count and where it came from.
        count: CellCount,
    },
    /// A `reg` / `module-addr` is not one address/size pair.
    #[error(
        "{}: `{property}` is {len} bytes, expected one address/size pair: #address-cells = {address_cells}, #size-cells = {size_cells}",
        esc(.node)
    )]
    RegLength {
        /// Module node path.
        node: String,
        /// `reg` or `module-addr`.
        property: &'static str,
        /// Its length.
        len: usize,
        /// The address cells used.
        address_cells: CellCount,
        /// The size cells used.
        size_cells: CellCount,
    },
    /// `reg` / `module-addr` names an address where no boot module was
    /// put.
    #[error(
        "{}: `{property}` = <{addr:#x} {size:#x}> points at no module (give --module FILE@{addr:#x})",
        esc(.node)
    )]
    RegNowhere {
        /// Module node path.
        node: String,
        /// `reg` or `module-addr`.
        property: &'static str,
        /// The address.
        addr: u64,
        /// The size.
        size: u64,
    },
    /// The region `reg` / `module-addr` gives is smaller than the module
    /// put at its address.
    #[error(
        "{}: `{property}` region of {reg_size:#x} bytes at {addr:#x} is smaller than the {module_size:#x}-byte module there",
        esc(.node)
    )]
    RegTooSmall {
        /// Module node path.
        node: String,
        /// `reg` or `module-addr`.
        property: &'static str,
        /// The address.
        addr: u64,
        /// The region's size.
        reg_size: u64,
        /// The size of the module at that address.
        module_size: u64,
    },
    /// Two boot-loader modules claim the same load address.
    #[error("modules {first} and {second} are both placed at {addr:#x}")]
    DuplicateModuleAddress {
        /// The address.
        addr: u64,
        /// Index of the first module.
        first: usize,
        /// Index of the second.
        second: usize,
    },
    /// A memory size in KiB does not fit in 64 bits as bytes.
    #[error("{}: `{property}` = {kib} KiB overflows a 64-bit byte count", esc(.node))]
    MemoryOverflow {
        /// Node path.
        node: String,
        /// The property.
        property: &'static str,
        /// The value in KiB.
        kib: u64,
    },
    /// `mem-min` <= `memory` <= `mem-max` does not hold.
    #[error(
        "{}: memory sizes out of order: mem-min {min:#x} <= memory {memory:#x} <= mem-max {max:#x} does not hold",
        esc(.node)
    )]
    MemoryRange {
        /// Node path.
        node: String,
        /// Minimum, bytes.
        min: u64,
        /// Initial, bytes.
        memory: u64,
        /// Maximum, bytes.
        max: u64,
    },
    /// A domain needs more memory than the host allows.
    #[error("{}: `{property}` = {bytes:#x} bytes is over the host limit of {limit:#x}", esc(.node))]
    MemoryOverLimit {
        /// Node path (or `command line`).
        node: String,
        /// The property (`mem-min`, `memory`, `--memory`).
        property: &'static str,
        /// The size asked for, bytes.
        bytes: u64,
        /// The host limit, bytes.
        limit: u64,
    },
    /// All domains together need more memory than the host allows, even
    /// lowered to their `mem-min`.
    #[error(
        "the domains together need at least {total:#x} bytes (each its `mem-min`, or `memory` without one), over the host limit of {limit:#x}"
    )]
    TotalMemoryOverLimit {
        /// The sum of the domains' least memory, bytes.
        total: u64,
        /// The host limit, bytes.
        limit: u64,
    },
}

impl BootInfoError {
    /// The node (or command-line option) the error is about, if one is at
    /// fault.
    pub fn node(&self) -> Option<&str> {
        use BootInfoError::*;
        match self {
            MissingProperty { node, .. }
            | DuplicateProperty { node, .. }
            | WrongLength { node, .. }
            | NotAString { node, .. }
            | InvalidValue { node, .. }
            | InvalidString { node, .. }
            | UnknownModeBits { node, .. }
            | UnsupportedMode { node, .. }
            | UnknownCapabilities { node, .. }
            | UnsupportedCapability { node, .. }
            | Unsupported { node, .. }
            | MissingKernel { node }
            | XsmPolicyAsDomainModule { node, .. }
            | NoLocation { node }
            | ConflictingLocation { node, .. }
            | ModuleIndexOutOfRange { node, .. }
            | ModuleIndexIsTree { node, .. }
            | NoModuleDir { node, .. }
            | BadFileName { node, .. }
            | FileMissing { node, .. }
            | InputTooLarge { node, .. }
            | InvalidCells { node, .. }
            | RegLength { node, .. }
            | RegNowhere { node, .. }
            | RegTooSmall { node, .. }
            | MemoryOverflow { node, .. }
            | MemoryRange { node, .. }
            | MemoryOverLimit { node, .. } => Some(node),
            DuplicateDomid { second, .. }
            | DuplicateCapability { second, .. }
            | DuplicateModule { second, .. } => Some(second),
            Blob(_)
            | NoChosen
            | NoDomains
            | TooManyDomains { .. }
            | DuplicateModuleAddress { .. }
            | TotalMemoryOverLimit { .. } => None,
        }
    }

    /// The property at fault, if one is.
    pub fn property(&self) -> Option<&'static str> {
        use BootInfoError::*;
        match self {
            MissingProperty { property, .. }
            | DuplicateProperty { property, .. }
            | WrongLength { property, .. }
            | NotAString { property, .. }
            | InvalidValue { property, .. }
            | InvalidString { property, .. }
            | Unsupported { property, .. }
            | ModuleIndexOutOfRange { property, .. }
            | ModuleIndexIsTree { property, .. }
            | InvalidCells { property, .. }
            | RegLength { property, .. }
            | RegNowhere { property, .. }
            | RegTooSmall { property, .. }
            | MemoryOverflow { property, .. }
            | MemoryOverLimit { property, .. } => Some(property),
            DuplicateDomid { .. } => Some("domid"),
            UnknownModeBits { .. } | UnsupportedMode { .. } => Some("mode"),
            UnknownCapabilities { .. }
            | UnsupportedCapability { .. }
            | DuplicateCapability { .. } => Some("capabilities"),
            NoModuleDir { .. } | BadFileName { .. } => Some("xen,uefi-binary"),
            MemoryRange { .. } => Some("memory"),
            _ => None,
        }
    }
}
