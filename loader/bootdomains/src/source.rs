//! Where module bytes come from: the boot loader's module list (what
//! `--module FILE[@ADDR][,CMDLINE]` gives) and a directory for
//! `xen,uefi-binary` file names.

use pvh_loader::input::{Input, InputError};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use pvh_entry::text::Escaped;

use super::error::BootInfoError;
use super::types::{DomainBoot, HostMemoryRange};

/// One module as a boot loader hands it over: bytes, optionally the address
/// it was put at, and the loader's own string for it. Built with
/// [`LoaderModule::new`] and its setters; the fields stay readable and
/// assignable.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoaderModule {
    /// The module's bytes.
    pub bytes: Input,
    /// The load address (`FILE@ADDR`), matched against `reg`.
    pub addr: Option<u64>,
    /// The loader's module string (after the comma); wins over `bootargs`
    /// when not empty.
    pub cmdline: String,
    /// The file it was read from, if any.
    pub path: Option<PathBuf>,
}

impl LoaderModule {
    /// A module holding `bytes`: no address, no module string, no file.
    pub fn new(bytes: Input) -> Self {
        Self {
            bytes,
            addr: None,
            cmdline: String::new(),
            path: None,
        }
    }

    /// The address the boot loader put it at (`FILE@ADDR`).
    #[must_use]
    pub fn addr(mut self, addr: Option<u64>) -> Self {
        self.addr = addr;
        self
    }

    /// The loader's module string.
    #[must_use]
    pub fn cmdline(mut self, cmdline: impl Into<String>) -> Self {
        self.cmdline = cmdline.into();
        self
    }

    /// The file it was read from.
    #[must_use]
    pub fn path(mut self, path: Option<PathBuf>) -> Self {
        self.path = path;
        self
    }
}

/// A `--module` argument, the one syntax `pvh boot` and `pvh launch`
/// share: `FILE[@ADDR][,CMDLINE]`.
///
/// - `FILE` is a path (any bytes: an OS string). Inside it, `,,` stands for
///   a `,` and `@@` for an `@` (QEMU's doubling), so every path can be
///   named: `--module 'a,,b@@c'` is the file `a,b@c`.
/// - `@ADDR` (hex with `0x`, or decimal) is the address a boot loader put
///   the module at, which a tree's `reg` / `module-addr` matches (`pvh
///   launch` only).
/// - `CMDLINE` is everything after the first single `,` (after `FILE` and
///   `@ADDR`), commas included: the module's command line. Right after a
///   bare `FILE` it cannot start with `,` (that `,,` is part of the path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleSpec {
    /// The file.
    pub path: PathBuf,
    /// The load address, if given.
    pub addr: Option<u64>,
    /// The module string (may be empty).
    pub cmdline: String,
}

/// A `--module` argument that does not follow [`ModuleSpec`]'s syntax.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModuleSpecError {
    /// Nothing before the `@` or `,`.
    #[error("the module file name is empty")]
    EmptyPath,
    /// `@ADDR` is not a number.
    #[error(
        "`@{}` is not an address (hex with 0x, or decimal; write `@@` for an `@` in the file name)",
        Escaped(.0.as_bytes())
    )]
    BadAddress(String),
    /// `@ADDR` is not UTF-8.
    #[error("the `@ADDR` part is not an address (write `@@` for an `@` in the file name)")]
    AddressNotUtf8,
    /// The command line after the comma is not UTF-8.
    #[error("the module command line (after the first `,`) is not UTF-8")]
    CmdlineNotUtf8,
}

impl ModuleSpec {
    /// Parses `FILE[@ADDR][,CMDLINE]` (see the type's documentation).
    pub fn parse(arg: &OsStr) -> Result<Self, ModuleSpecError> {
        let b = arg.as_bytes();
        let mut path = Vec::with_capacity(b.len());
        let mut addr = None;
        let mut cmdline: &[u8] = &[];
        let mut i = 0;
        while let Some(&c) = b.get(i) {
            let doubled = b.get(i + 1) == Some(&c);
            match c {
                b',' | b'@' if doubled => {
                    path.push(c);
                    i += 2;
                }
                b',' => {
                    cmdline = b.get(i + 1..).unwrap_or_default();
                    break;
                }
                b'@' => {
                    let rest = b.get(i + 1..).unwrap_or_default();
                    let (a, c) = match rest.iter().position(|&x| x == b',') {
                        Some(comma) => (&rest[..comma], &rest[comma + 1..]),
                        None => (rest, &[][..]),
                    };
                    let a = std::str::from_utf8(a).map_err(|_| ModuleSpecError::AddressNotUtf8)?;
                    addr =
                        Some(parse_addr(a).ok_or_else(|| ModuleSpecError::BadAddress(a.into()))?);
                    cmdline = c;
                    break;
                }
                _ => {
                    path.push(c);
                    i += 1;
                }
            }
        }
        if path.is_empty() {
            return Err(ModuleSpecError::EmptyPath);
        }
        let cmdline = std::str::from_utf8(cmdline)
            .map_err(|_| ModuleSpecError::CmdlineNotUtf8)?
            .to_owned();
        Ok(Self {
            path: PathBuf::from(OsString::from_vec(path)),
            addr,
            cmdline,
        })
    }

    /// Opens the file as a [`LoaderModule`] of at most `limit` bytes (see
    /// [`open_input`]); `index` names the argument in errors.
    pub fn load(&self, index: usize, limit: u64) -> Result<LoaderModule, BootInfoError> {
        let bytes = open_input(&format!("--module {index}"), &self.path, limit)?;
        Ok(LoaderModule {
            bytes,
            addr: self.addr,
            cmdline: self.cmdline.clone(),
            path: Some(self.path.clone()),
        })
    }
}

/// Opens a module file for `node` through [`Input`]: a regular file is
/// mapped, anything else read, and a file over `limit` (for `pvh launch`,
/// what the host can give: a module may go to any domain, and the tree
/// that says which is read with the modules) refused before either.
pub fn open_input(node: &str, path: &Path, limit: u64) -> Result<Input, BootInfoError> {
    Input::open_within(
        path,
        limit,
        "of memory the host may give its guests (--host-memory, else RAM + swap)",
    )
    .map_err(|e| match e {
        InputError::Io { path, source } => BootInfoError::FileMissing {
            node: node.to_owned(),
            path,
            source,
        },
        e => BootInfoError::InputTooLarge {
            node: node.to_owned(),
            source: e,
        },
    })
}

fn parse_addr(a: &str) -> Option<u64> {
    match a.strip_prefix("0x").or_else(|| a.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => a.parse().ok(),
    }
}

/// How `module-index` / `mb-index` count the boot loader's modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModuleNumbering {
    /// The first `--module` is 0 (pvh's default).
    #[default]
    FromZero,
    /// Xen's multiboot list: the device tree itself is module 0, the first
    /// `--module` is 1 (`--xen-module-numbering`), so a tree written for
    /// Xen works unchanged.
    TreeIsZero,
}

impl ModuleNumbering {
    /// The number of the first `--module`.
    pub fn first(self) -> u32 {
        match self {
            Self::FromZero => 0,
            Self::TreeIsZero => 1,
        }
    }
}

/// What a domain gets when its node does not say. Built from
/// [`DomainDefaults::default`] and its setters; the fields stay readable
/// and assignable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DomainDefaults {
    /// Protocol, subarch, ACPI (`--boot-protocol`, `--subarch`,
    /// `--no-acpi`).
    pub boot: DomainBoot,
    /// vCPUs for a hyperlaunch domain without `cpus` (`--cpus`).
    pub vcpus: u32,
}

impl Default for DomainDefaults {
    /// The default [`DomainBoot`], one vCPU.
    fn default() -> Self {
        Self {
            boot: DomainBoot::default(),
            vcpus: 1,
        }
    }
}

impl DomainDefaults {
    /// Protocol, subarch and ACPI.
    #[must_use]
    pub fn boot(mut self, boot: DomainBoot) -> Self {
        self.boot = boot;
        self
    }

    /// vCPUs for a hyperlaunch domain without `cpus`.
    #[must_use]
    pub fn vcpus(mut self, vcpus: u32) -> Self {
        self.vcpus = vcpus;
        self
    }
}

/// Everything the parser may use besides the tree. Built from
/// [`BootSources::default`] and its setters
/// (`BootSources::default().modules(&mods).dir(Some(dir))`); the fields stay
/// readable and assignable.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct BootSources<'a> {
    /// The boot loader's modules, in order.
    pub modules: &'a [LoaderModule],
    /// How `module-index` counts them.
    pub numbering: ModuleNumbering,
    /// Directory for `xen,uefi-binary` names.
    pub dir: Option<&'a Path>,
    /// Host memory limit in bytes.
    pub host_memory_limit: u64,
    /// What a domain gets where its node is silent.
    pub defaults: DomainDefaults,
    /// The boot loader's name, for [`super::BootInfo::loader_name`].
    pub loader_name: &'a str,
    /// The hypervisor command line, for [`super::BootInfo::cmdline`].
    pub cmdline: &'a str,
    /// The host memory map, for [`super::BootInfo::host_memmap`].
    pub host_memmap: &'a [HostMemoryRange],
}

impl Default for BootSources<'_> {
    /// No modules, no directory, no host limit, the default domain
    /// settings, pvh as the loader, no command line, no host map.
    fn default() -> Self {
        Self {
            modules: &[],
            numbering: ModuleNumbering::FromZero,
            dir: None,
            host_memory_limit: u64::MAX,
            defaults: DomainDefaults::default(),
            loader_name: super::host::LOADER_NAME,
            cmdline: "",
            host_memmap: &[],
        }
    }
}

impl<'a> BootSources<'a> {
    /// The boot loader's modules, in order.
    #[must_use]
    pub fn modules(mut self, modules: &'a [LoaderModule]) -> Self {
        self.modules = modules;
        self
    }

    /// How `module-index` counts them.
    #[must_use]
    pub fn numbering(mut self, numbering: ModuleNumbering) -> Self {
        self.numbering = numbering;
        self
    }

    /// The directory for `xen,uefi-binary` names.
    #[must_use]
    pub fn dir(mut self, dir: Option<&'a Path>) -> Self {
        self.dir = dir;
        self
    }

    /// The host memory limit in bytes.
    #[must_use]
    pub fn host_memory_limit(mut self, host_memory_limit: u64) -> Self {
        self.host_memory_limit = host_memory_limit;
        self
    }

    /// What a domain gets where its node is silent.
    #[must_use]
    pub fn defaults(mut self, defaults: DomainDefaults) -> Self {
        self.defaults = defaults;
        self
    }

    /// The boot loader's name ([`BootSources::loader_name`]).
    #[must_use]
    pub fn loader_name(mut self, loader_name: &'a str) -> Self {
        self.loader_name = loader_name;
        self
    }

    /// The hypervisor command line ([`BootSources::cmdline`]).
    #[must_use]
    pub fn cmdline(mut self, cmdline: &'a str) -> Self {
        self.cmdline = cmdline;
        self
    }

    /// The host memory map ([`BootSources::host_memmap`]).
    #[must_use]
    pub fn host_memmap(mut self, host_memmap: &'a [HostMemoryRange]) -> Self {
        self.host_memmap = host_memmap;
        self
    }
}

/// Finds module bytes for the parser; built once per parse so lookups by
/// address and repeated file names cost O(1).
#[derive(Debug)]
pub(crate) struct Locator<'a> {
    sources: BootSources<'a>,
    by_addr: HashMap<u64, usize>,
    files: HashMap<String, (PathBuf, Input)>,
}

/// Where a located module's bytes and loader string came from.
pub(crate) struct Located {
    pub(crate) bytes: Input,
    pub(crate) loader_cmdline: String,
    /// The region `reg` / `module-addr` gave (at least the module's size).
    pub(crate) region: Option<u64>,
}

impl<'a> Locator<'a> {
    pub(crate) fn new(sources: BootSources<'a>) -> Result<Self, BootInfoError> {
        let mut by_addr = HashMap::new();
        for (i, m) in sources.modules.iter().enumerate() {
            let Some(addr) = m.addr else { continue };
            if let Some(first) = by_addr.insert(addr, i) {
                return Err(BootInfoError::DuplicateModuleAddress {
                    addr,
                    first,
                    second: i,
                });
            }
        }
        Ok(Self {
            sources,
            by_addr,
            files: HashMap::new(),
        })
    }

    pub(crate) fn sources(&self) -> BootSources<'a> {
        self.sources
    }

    /// The loader module numbered `index` (see [`ModuleNumbering`]).
    pub(crate) fn by_index(
        &self,
        node: &str,
        property: &'static str,
        index: u32,
    ) -> Result<Located, BootInfoError> {
        let first = self.sources.numbering.first();
        if index == 0 && first == 1 {
            return Err(BootInfoError::ModuleIndexIsTree {
                node: node.to_owned(),
                property,
            });
        }
        let m = index
            .checked_sub(first)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.sources.modules.get(i))
            .ok_or_else(|| BootInfoError::ModuleIndexOutOfRange {
                node: node.to_owned(),
                property,
                index,
                first,
                count: self.sources.modules.len(),
            })?;
        Ok(Located {
            bytes: m.bytes.clone(),
            loader_cmdline: m.cmdline.clone(),
            region: None,
        })
    }

    /// The loader module put at `addr`, which must fit in `size` bytes
    /// (the rest of the region is the module's headroom).
    pub(crate) fn by_reg(
        &self,
        node: &str,
        property: &'static str,
        addr: u64,
        size: u64,
    ) -> Result<Located, BootInfoError> {
        let m = self
            .by_addr
            .get(&addr)
            .and_then(|&i| self.sources.modules.get(i))
            .ok_or_else(|| BootInfoError::RegNowhere {
                node: node.to_owned(),
                property,
                addr,
                size,
            })?;
        let module_size = u64::try_from(m.bytes.len()).unwrap_or(u64::MAX);
        if module_size > size {
            return Err(BootInfoError::RegTooSmall {
                node: node.to_owned(),
                property,
                addr,
                reg_size: size,
                module_size,
            });
        }
        Ok(Located {
            bytes: m.bytes.clone(),
            loader_cmdline: m.cmdline.clone(),
            region: Some(size),
        })
    }

    /// The file `name` under the module directory (read once per name).
    pub(crate) fn by_file(
        &mut self,
        node: &str,
        name: &str,
    ) -> Result<(PathBuf, Located), BootInfoError> {
        if !is_plain_file_name(name) {
            return Err(BootInfoError::BadFileName {
                node: node.to_owned(),
                name: name.to_owned(),
            });
        }
        let Some(dir) = self.sources.dir else {
            return Err(BootInfoError::NoModuleDir {
                node: node.to_owned(),
                name: name.to_owned(),
            });
        };
        if let Some((path, bytes)) = self.files.get(name) {
            return Ok((
                path.clone(),
                Located {
                    bytes: bytes.clone(),
                    loader_cmdline: String::new(),
                    region: None,
                },
            ));
        }
        let path = dir.join(name);
        let bytes = open_input(node, &path, self.sources.host_memory_limit)?;
        self.files
            .insert(name.to_owned(), (path.clone(), bytes.clone()));
        Ok((
            path,
            Located {
                bytes,
                loader_cmdline: String::new(),
                region: None,
            },
        ))
    }
}

/// A name that stays inside the directory: not empty, no path separator,
/// no `..`.
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['/', '\\', '\0']) && !name.contains("..") && name != "."
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &[u8]) -> Result<ModuleSpec, ModuleSpecError> {
        ModuleSpec::parse(OsStr::from_bytes(s))
    }

    fn expect(path: &[u8], addr: Option<u64>, cmdline: &str) -> ModuleSpec {
        ModuleSpec {
            path: PathBuf::from(OsStr::from_bytes(path)),
            addr,
            cmdline: cmdline.into(),
        }
    }

    #[test]
    fn module_argument_forms() {
        assert_eq!(
            spec(b"k.elf@0x200000,console=ttyS0,x").unwrap(),
            expect(b"k.elf", Some(0x20_0000), "console=ttyS0,x")
        );
        assert_eq!(
            spec(b"dir/initrd").unwrap(),
            expect(b"dir/initrd", None, "")
        );
        assert_eq!(
            spec(b"a,foo=1,bar").unwrap(),
            expect(b"a", None, "foo=1,bar")
        );
        assert_eq!(spec(b"a@4096").unwrap().addr, Some(4096));
        assert_eq!(spec(b"a@0x10,").unwrap(), expect(b"a", Some(16), ""));
        assert_eq!(spec(b"a@zz"), Err(ModuleSpecError::BadAddress("zz".into())));
        assert_eq!(spec(b"@0x10"), Err(ModuleSpecError::EmptyPath));
        assert_eq!(spec(b",x"), Err(ModuleSpecError::EmptyPath));
        assert_eq!(spec(b""), Err(ModuleSpecError::EmptyPath));
    }

    #[test]
    fn doubled_commas_and_ats_name_any_path() {
        assert_eq!(spec(b"a,,b").unwrap(), expect(b"a,b", None, ""));
        assert_eq!(
            spec(b"user@@host/f").unwrap(),
            expect(b"user@host/f", None, "")
        );
        assert_eq!(
            spec(b"x,,y@@z@0x1000,c,,d").unwrap(),
            expect(b"x,y@z", Some(0x1000), "c,,d")
        );
        // `,,,` is a literal comma, then the separator.
        assert_eq!(spec(b"a,,,x").unwrap(), expect(b"a,", None, "x"));
        assert_eq!(spec(b"a@@@7").unwrap(), expect(b"a@", Some(7), ""));
        assert_eq!(spec(b",,").unwrap(), expect(b",", None, ""));
    }

    #[test]
    fn paths_are_os_strings() {
        // Not UTF-8: accepted as a path.
        assert_eq!(
            spec(b"mod\xff\xfe.bin,args").unwrap(),
            expect(b"mod\xff\xfe.bin", None, "args")
        );
        assert_eq!(spec(b"a@\xff"), Err(ModuleSpecError::AddressNotUtf8));
        assert_eq!(spec(b"a,\xff"), Err(ModuleSpecError::CmdlineNotUtf8));
    }

    proptest::proptest! {
        /// Any path (without NUL) written with doubled `,` and `@` comes
        /// back as itself, with any address and any command line that
        /// does not start with `,` (after a bare FILE, `,,` is a comma of
        /// the path).
        #[test]
        fn every_path_can_be_named(
            path in proptest::collection::vec(1u8..=255, 1..40),
            addr in proptest::option::of(proptest::num::u64::ANY),
            cmdline in "[ -~]{0,20}",
        ) {
            proptest::prop_assume!(addr.is_some() || !cmdline.starts_with(','));
            let mut arg = Vec::new();
            for &b in &path {
                arg.push(b);
                if b == b',' || b == b'@' {
                    arg.push(b);
                }
            }
            if let Some(a) = addr {
                arg.extend_from_slice(format!("@{a:#x}").as_bytes());
            }
            if !cmdline.is_empty() {
                arg.push(b',');
                arg.extend_from_slice(cmdline.as_bytes());
            }
            let parsed = spec(&arg).unwrap();
            proptest::prop_assert_eq!(parsed, expect(&path, addr, &cmdline));
        }
    }

    #[test]
    fn file_names_must_stay_in_the_directory() {
        assert!(is_plain_file_name("vmlinux"));
        assert!(is_plain_file_name("initrd.img"));
        for bad in ["", ".", "..", "../x", "a/b", "/etc/passwd", "a\\b", "x..y"] {
            assert!(!is_plain_file_name(bad), "{bad:?}");
        }
    }
}
