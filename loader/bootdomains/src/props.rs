//! The properties of one node, read in a single pass over its property list
//! and then decoded with typed, length-checked accessors.

use super::error::BootInfoError;

/// The properties the bindings use (on domain and module nodes alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prop {
    Compatible,
    Domid,
    Mode,
    Capabilities,
    Memory,
    MemMin,
    MemMax,
    Cpus,
    AddressCells,
    SizeCells,
    Reg,
    ModuleAddr,
    ModuleIndex,
    MbIndex,
    UefiBinary,
    Bootargs,
    StaticMem,
    PvhBootProtocol,
    PvhSubarch,
    PvhAcpi,
}

impl Prop {
    const ALL: [Prop; 20] = [
        Prop::Compatible,
        Prop::Domid,
        Prop::Mode,
        Prop::Capabilities,
        Prop::Memory,
        Prop::MemMin,
        Prop::MemMax,
        Prop::Cpus,
        Prop::AddressCells,
        Prop::SizeCells,
        Prop::Reg,
        Prop::ModuleAddr,
        Prop::ModuleIndex,
        Prop::MbIndex,
        Prop::UefiBinary,
        Prop::Bootargs,
        Prop::StaticMem,
        Prop::PvhBootProtocol,
        Prop::PvhSubarch,
        Prop::PvhAcpi,
    ];

    /// The property name in the tree.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Prop::Compatible => "compatible",
            Prop::Domid => "domid",
            Prop::Mode => "mode",
            Prop::Capabilities => "capabilities",
            Prop::Memory => "memory",
            Prop::MemMin => "mem-min",
            Prop::MemMax => "mem-max",
            Prop::Cpus => "cpus",
            Prop::AddressCells => "#address-cells",
            Prop::SizeCells => "#size-cells",
            Prop::Reg => "reg",
            Prop::ModuleAddr => "module-addr",
            Prop::ModuleIndex => "module-index",
            Prop::MbIndex => "mb-index",
            Prop::UefiBinary => "xen,uefi-binary",
            Prop::Bootargs => "bootargs",
            Prop::StaticMem => "xen,static-mem",
            Prop::PvhBootProtocol => "pvh,boot-protocol",
            Prop::PvhSubarch => "pvh,subarch",
            Prop::PvhAcpi => "pvh,acpi",
        }
    }

    fn from_name(name: &str) -> Option<Prop> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// One node's known properties (raw values), and its path for errors.
#[derive(Debug)]
pub(crate) struct Props<'a> {
    pub(crate) path: String,
    values: [Option<&'a [u8]>; Prop::ALL.len()],
}

impl<'a> Props<'a> {
    /// Reads `node`'s properties once. Unknown properties are skipped; a
    /// known one given twice is an error. Adds the number of properties
    /// seen to `count`.
    pub(crate) fn read(
        path: String,
        node: fdt::node::FdtNode<'_, 'a>,
        count: &mut usize,
    ) -> Result<Self, BootInfoError> {
        let mut values = [None; Prop::ALL.len()];
        for p in node.properties() {
            *count = count.saturating_add(1);
            let Some(which) = Prop::from_name(p.name) else {
                continue;
            };
            let Some(slot) = values.get_mut(which as usize) else {
                continue;
            };
            if slot.is_some() {
                return Err(BootInfoError::DuplicateProperty {
                    node: path,
                    property: which.name(),
                });
            }
            *slot = Some(p.value);
        }
        Ok(Self { path, values })
    }

    /// The raw value, if present.
    pub(crate) fn raw(&self, p: Prop) -> Option<&'a [u8]> {
        self.values.get(p as usize).copied().flatten()
    }

    /// Whether the property is present.
    pub(crate) fn has(&self, p: Prop) -> bool {
        self.raw(p).is_some()
    }

    fn wrong_length(&self, p: Prop, len: usize, expected: &'static str) -> BootInfoError {
        BootInfoError::WrongLength {
            node: self.path.clone(),
            property: p.name(),
            len,
            expected,
        }
    }

    /// A 4-byte big-endian value.
    pub(crate) fn u32(&self, p: Prop) -> Result<Option<u32>, BootInfoError> {
        let Some(v) = self.raw(p) else {
            return Ok(None);
        };
        let bytes: [u8; 4] = v
            .try_into()
            .map_err(|_| self.wrong_length(p, v.len(), "4 (one cell)"))?;
        Ok(Some(u32::from_be_bytes(bytes)))
    }

    /// An 8-byte big-endian value (two cells, most significant first).
    pub(crate) fn u64(&self, p: Prop) -> Result<Option<u64>, BootInfoError> {
        let Some(v) = self.raw(p) else {
            return Ok(None);
        };
        let bytes: [u8; 8] = v
            .try_into()
            .map_err(|_| self.wrong_length(p, v.len(), "8 (two cells)"))?;
        Ok(Some(u64::from_be_bytes(bytes)))
    }

    /// A NUL-terminated UTF-8 string (without the NUL).
    pub(crate) fn string(&self, p: Prop) -> Result<Option<&'a str>, BootInfoError> {
        let Some(v) = self.raw(p) else {
            return Ok(None);
        };
        let not_a_string = || BootInfoError::NotAString {
            node: self.path.clone(),
            property: p.name(),
        };
        let body = v.strip_suffix(&[0]).ok_or_else(not_a_string)?;
        if body.contains(&0) {
            return Err(not_a_string());
        }
        std::str::from_utf8(body)
            .map(Some)
            .map_err(|_| not_a_string())
    }

    /// A list of NUL-terminated UTF-8 strings (`compatible`); empty when
    /// absent.
    pub(crate) fn string_list(&self, p: Prop) -> Result<Vec<&'a str>, BootInfoError> {
        let Some(v) = self.raw(p) else {
            return Ok(Vec::new());
        };
        let not_a_string = || BootInfoError::NotAString {
            node: self.path.clone(),
            property: p.name(),
        };
        let body = v.strip_suffix(&[0]).ok_or_else(not_a_string)?;
        body.split(|&b| b == 0)
            .map(|s| std::str::from_utf8(s).map_err(|_| not_a_string()))
            .collect()
    }

    /// `p` (`reg` or `module-addr`) as one (address, size) pair with the
    /// given cell counts (each 1 or 2: checked by the caller), or `None`
    /// when its length is not one pair.
    pub(crate) fn reg(&self, p: Prop, address_cells: u32, size_cells: u32) -> Option<(u64, u64)> {
        let v = self.raw(p)?;
        let (ac, sc) = (address_cells as usize * 4, size_cells as usize * 4);
        if v.len() != ac + sc {
            return None;
        }
        let (a, s) = v.split_at(ac);
        Some((be_cells(a), be_cells(s)))
    }
}

/// One or two big-endian cells as a number.
fn be_cells(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}
