//! Errors of the boot-domain parser: one enum for the blob's structure
//! ([`BlobError`]), one for what the tree means ([`BootInfoError`]).
//!
//! Every semantic error names the node path and, where one is at fault, the
//! property, so a user can find the line in the `.dts` to fix.

use std::path::PathBuf;

use super::types::ModuleKind;

/// The flattened tree is not structurally sound (checked before the `fdt`
/// crate reads it, because that crate panics on inconsistent blobs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    /// Shorter than the 40-byte FDT header.
    #[error("device tree blob is {len} bytes, shorter than the 40-byte header")]
    TooShort {
        /// The blob length.
        len: usize,
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
    #[error("device tree root node is named {name:?}; the root's name must be empty")]
    NamedRoot {
        /// The name found.
        name: String,
    },
}

/// The tree (or the `pvh boot` options) does not describe domains this
/// hypervisor can build.
#[derive(Debug, thiserror::Error)]
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
    /// More domains than domain ids below the reserved range.
    #[error("{count} domains is more than the {max} domain ids available")]
    TooManyDomains {
        /// Domains in the tree.
        count: usize,
        /// Domain ids available.
        max: u32,
    },
    /// A property the binding requires is absent.
    #[error("{node}: required property `{property}` is missing")]
    MissingProperty {
        /// Node path.
        node: String,
        /// The property.
        property: &'static str,
    },
    /// A property occurs twice in the same node.
    #[error("{node}: property `{property}` occurs more than once")]
    DuplicateProperty {
        /// Node path.
        node: String,
        /// The property.
        property: &'static str,
    },
    /// A property's value has the wrong number of bytes.
    #[error("{node}: property `{property}` is {len} bytes, expected {expected}")]
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
    #[error("{node}: property `{property}` is not a NUL-terminated UTF-8 string")]
    NotAString {
        /// Node path.
        node: String,
        /// The property.
        property: &'static str,
    },
    /// A numeric property is out of its allowed range.
    #[error("{node}: property `{property}` = {value:#x} is invalid: {reason}")]
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
    /// Two domains ask for the same domain id.
    #[error("{second}: domid {domid} is already used by {first}")]
    DuplicateDomid {
        /// The id.
        domid: u32,
        /// The node that has it first.
        first: String,
        /// The node that repeats it.
        second: String,
    },
    /// `mode` has bits this parser does not know.
    #[error("{node}: property `mode` = {mode:#x} has unknown bits {unknown:#x}")]
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
        "{node}: property `mode` = {mode:#x} asks for {what}, which is not supported (only PVH: mode bits 0 and 1 clear)"
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
    #[error("{node}: property `capabilities` = {value:#x} has unknown bits {unknown:#x}")]
    UnknownCapabilities {
        /// Node path.
        node: String,
        /// The value.
        value: u32,
        /// The unknown bits.
        unknown: u32,
    },
    /// A domain has no kernel module (explicit or guessed).
    #[error("{node}: domain has no kernel module")]
    MissingKernel {
        /// The domain node path.
        node: String,
    },
    /// A domain has two modules of a kind it may have only one of.
    #[error("{second}: a second {kind:?} module in the domain (the first is {first})")]
    DuplicateModule {
        /// The kind.
        kind: ModuleKind,
        /// The first module node.
        first: String,
        /// The repeated module node.
        second: String,
    },
    /// A module node has no location (`module-index`, `mb-index`, `reg` or
    /// `xen,uefi-binary`).
    #[error("{node}: module has none of `module-index`, `mb-index`, `reg`, `xen,uefi-binary`")]
    NoLocation {
        /// Module node path.
        node: String,
    },
    /// A module node has two ways of locating it.
    #[error("{node}: module has both `{first}` and `{second}`; give exactly one")]
    ConflictingLocation {
        /// Module node path.
        node: String,
        /// One property.
        first: &'static str,
        /// The other.
        second: &'static str,
    },
    /// `module-index` / `mb-index` is past the end of the boot loader's
    /// module list.
    #[error("{node}: `{property}` = {index} but only {count} modules were given")]
    ModuleIndexOutOfRange {
        /// Module node path.
        node: String,
        /// `module-index` or `mb-index`.
        property: &'static str,
        /// The index.
        index: u32,
        /// The number of modules given.
        count: usize,
    },
    /// `xen,uefi-binary` is used but the caller gave no directory.
    #[error("{node}: `xen,uefi-binary` = {name:?} but no module directory was given (--dir)")]
    NoModuleDir {
        /// Module node path.
        node: String,
        /// The file name.
        name: String,
    },
    /// `xen,uefi-binary` is not a plain file name.
    #[error(
        "{node}: `xen,uefi-binary` = {name:?} is not a plain file name (empty, or has `/`, `\\` or `..`)"
    )]
    BadFileName {
        /// Module node path.
        node: String,
        /// The name.
        name: String,
    },
    /// A module file could not be read.
    #[error("{node}: cannot read module file {}: {source}", path.display())]
    FileMissing {
        /// Module node path (or the command-line option).
        node: String,
        /// The path tried.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `reg` names an address where no boot module was put.
    #[error(
        "{node}: `reg` = <{addr:#x} {size:#x}> points at no module (give --module FILE@{addr:#x})"
    )]
    RegNowhere {
        /// Module node path.
        node: String,
        /// The address.
        addr: u64,
        /// The size.
        size: u64,
    },
    /// `reg` finds a module at its address, but of another size.
    #[error(
        "{node}: `reg` size {reg_size:#x} differs from the {module_size:#x}-byte module at {addr:#x}"
    )]
    RegSizeMismatch {
        /// Module node path.
        node: String,
        /// The address.
        addr: u64,
        /// The size in `reg`.
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
    #[error("{node}: `{property}` = {kib} KiB overflows a 64-bit byte count")]
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
        "{node}: memory sizes out of order: mem-min {min:#x} <= memory {memory:#x} <= mem-max {max:#x} does not hold"
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
    /// A domain asks for more memory than the host allows.
    #[error("{node}: `{property}` = {bytes:#x} bytes is over the host limit of {limit:#x}")]
    MemoryOverLimit {
        /// Node path.
        node: String,
        /// The property.
        property: &'static str,
        /// The size asked for, bytes.
        bytes: u64,
        /// The host limit, bytes.
        limit: u64,
    },
    /// All domains together ask for more memory than the host allows.
    #[error("the domains together ask for {total:#x} bytes, over the host limit of {limit:#x}")]
    TotalMemoryOverLimit {
        /// The sum of the domains' initial memory, bytes.
        total: u64,
        /// The host limit, bytes.
        limit: u64,
    },
}
