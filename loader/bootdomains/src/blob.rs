//! Structural check of a flattened device tree before the `fdt` crate reads
//! it.
//!
//! `fdt` 0.1 trusts the blob: a `size_dt_struct` past the end, a property
//! length past the block, a name offset past the strings, a missing
//! `FDT_END_NODE` or an `FDT_NOP` between properties make it index out of
//! bounds or fail an `assert!`. So the token stream is scanned once here,
//! linearly and without interpreting any node, and only a blob that passes
//! is handed to `fdt`. What is accepted is exactly what `fdt`'s node and
//! property iterators handle: per node, the name, then properties, then
//! child nodes, then `FDT_END_NODE`; one root with an empty name, then
//! `FDT_END`. NOP tokens are rejected (`dtc` and `vm-fdt` never emit them;
//! `fdt` mishandles them between properties).

use super::error::BlobError;

/// FDT header magic.
pub const FDT_MAGIC: u32 = 0xd00d_feed;
/// Size of the v17 header.
pub const HEADER_LEN: usize = 40;
/// Deepest node nesting followed. Boot-domain trees need 5
/// (`/chosen/hypervisor/config/module`); the limit keeps `fdt`'s recursive
/// node skipping off a deep stack.
pub const MAX_DEPTH: usize = 16;

/// Largest boot device tree read or parsed: 16 MiB. A boot-domain tree
/// describes domains and names their modules (it does not hold them), so
/// real ones are a few KiB; the limit leaves room for a tree describing
/// every domain the builder can give an id (0x7fef domains of up to about
/// 500 bytes each; the parser's own test of that limit is 5 MB), and is
/// what `pvh launch` reads of a file and what [`check`] accepts as
/// `totalsize`, so a huge tree costs neither memory nor parse time.
pub const MAX_TREE_SIZE: u64 = 16 << 20;

const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

/// Counts from a successful check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlobShape {
    /// Nodes in the tree, root included.
    pub nodes: usize,
    /// Properties in the tree.
    pub properties: usize,
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(word.try_into().ok()?))
}

/// Checks the header and the structure block; returns the blob cut to
/// `totalsize` (what `fdt::Fdt::new` should get) and the tree's shape.
pub fn check(blob: &[u8]) -> Result<(&[u8], BlobShape), BlobError> {
    let len = blob.len();
    if len < HEADER_LEN {
        return Err(BlobError::TooShort { len });
    }
    let field = |i: usize| be32(blob, i * 4).unwrap_or(0);
    let magic = field(0);
    if magic != FDT_MAGIC {
        return Err(BlobError::BadMagic { magic });
    }
    let totalsize = field(1);
    let total = usize::try_from(totalsize).unwrap_or(usize::MAX);
    if total > len || total < HEADER_LEN {
        return Err(BlobError::TotalSize { totalsize, len });
    }
    if u64::from(totalsize) > MAX_TREE_SIZE {
        return Err(BlobError::TooLarge {
            totalsize,
            max: MAX_TREE_SIZE,
        });
    }
    let (off_struct, off_strings, off_rsvmap) = (field(2), field(3), field(4));
    let (version, last_comp) = (field(5), field(6));
    let (size_strings, size_struct) = (field(8), field(9));
    if version < 17 || last_comp > 17 {
        return Err(BlobError::Version { version, last_comp });
    }
    let block = |name: &'static str, offset: u32, size: u32| {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let end = start.checked_add(usize::try_from(size).unwrap_or(usize::MAX));
        match end {
            Some(end) if end <= total => Ok(start..end),
            _ => Err(BlobError::BlockOutOfBounds {
                block: name,
                offset,
                size,
                totalsize,
            }),
        }
    };
    let structs = block("structure", off_struct, size_struct)?;
    let strings = block("strings", off_strings, size_strings)?;
    // The reservation map needs at least its terminating 16-byte entry.
    block("memory reservation", off_rsvmap, 16)?;
    let blob = blob.get(..total).unwrap_or_default();
    let structs = blob.get(structs).unwrap_or_default();
    let strings = blob.get(strings).unwrap_or_default();
    let shape = check_structure(structs, strings)?;
    Ok((blob, shape))
}

/// Where the scanner is inside a node.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Properties may still come.
    Properties,
    /// A child node was seen: only children or the end may follow.
    Children,
}

fn check_structure(s: &[u8], strings: &[u8]) -> Result<BlobShape, BlobError> {
    let mut shape = BlobShape::default();
    // One entry per open node.
    let mut stack: Vec<Phase> = Vec::new();
    let mut root_done = false;
    let mut at = 0usize;
    loop {
        let token = be32(s, at).ok_or(BlobError::Truncated {
            offset: at,
            what: "a token",
        })?;
        let token_at = at;
        at = at.saturating_add(4);
        let bad = |reason| BlobError::BadToken {
            offset: token_at,
            token,
            reason,
        };
        match token {
            FDT_BEGIN_NODE => {
                if root_done {
                    return Err(bad("a second root node"));
                }
                if let Some(top) = stack.last_mut() {
                    *top = Phase::Children;
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(BlobError::TooDeep {
                        offset: token_at,
                        max: MAX_DEPTH,
                    });
                }
                let name = c_str(s, at).ok_or(BlobError::BadString {
                    what: "node name",
                    offset: at,
                })?;
                if stack.is_empty() && !name.is_empty() {
                    return Err(BlobError::NamedRoot { name: name.into() });
                }
                at = align4(at, name.len().saturating_add(1));
                stack.push(Phase::Properties);
                shape.nodes = shape.nodes.saturating_add(1);
            }
            FDT_PROP => {
                match stack.last() {
                    None => return Err(bad("a property outside any node")),
                    Some(Phase::Children) => {
                        return Err(bad("a property after a child node"));
                    }
                    Some(Phase::Properties) => {}
                }
                let (Some(vlen), Some(nameoff)) = (be32(s, at), be32(s, at.saturating_add(4)))
                else {
                    return Err(BlobError::Truncated {
                        offset: at,
                        what: "a property header",
                    });
                };
                at = at.saturating_add(8);
                let vlen = usize::try_from(vlen).unwrap_or(usize::MAX);
                let end = at.checked_add(vlen).filter(|&e| e <= s.len());
                if end.is_none() {
                    return Err(BlobError::Truncated {
                        offset: at,
                        what: "a property value",
                    });
                }
                let nameoff = usize::try_from(nameoff).unwrap_or(usize::MAX);
                c_str(strings, nameoff).ok_or(BlobError::BadString {
                    what: "property name",
                    offset: nameoff,
                })?;
                at = align4(at, vlen);
                shape.properties = shape.properties.saturating_add(1);
            }
            FDT_END_NODE => {
                if stack.pop().is_none() {
                    return Err(bad("an end of node with no node open"));
                }
                if stack.is_empty() {
                    root_done = true;
                }
            }
            FDT_END => {
                if !root_done {
                    return Err(bad("the end of the tree before the root node is closed"));
                }
                return Ok(shape);
            }
            FDT_NOP => return Err(bad("NOP tokens are not supported")),
            _ => return Err(bad("not a structure token")),
        }
    }
}

/// The NUL-terminated UTF-8 string at `at`, without the NUL.
fn c_str(bytes: &[u8], at: usize) -> Option<&str> {
    let rest = bytes.get(at..)?;
    let nul = rest.iter().position(|&b| b == 0)?;
    std::str::from_utf8(rest.get(..nul)?).ok()
}

/// `at + len` rounded up to 4 (saturating: a huge value just ends the scan
/// with "truncated").
fn align4(at: usize, len: usize) -> usize {
    at.saturating_add(len)
        .checked_next_multiple_of(4)
        .unwrap_or(usize::MAX)
}
