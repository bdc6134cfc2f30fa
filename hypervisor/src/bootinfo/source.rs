//! Where module bytes come from: the boot loader's module list (what
//! `--module FILE[@ADDR][,CMDLINE]` gives) and a directory for
//! `xen,uefi-binary` file names.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::BootInfoError;

/// One module as a boot loader hands it over: bytes, optionally the address
/// it was put at, and the loader's own string for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoaderModule {
    /// The module's bytes.
    pub bytes: Arc<[u8]>,
    /// The load address (`FILE@ADDR`), matched against `reg`.
    pub addr: Option<u64>,
    /// The loader's module string (after the comma); wins over `bootargs`
    /// when not empty.
    pub cmdline: String,
    /// The file it was read from, if any.
    pub path: Option<PathBuf>,
}

/// A parsed `FILE[@ADDR][,CMDLINE]` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleArg {
    /// The file.
    pub path: PathBuf,
    /// The load address, if given.
    pub addr: Option<u64>,
    /// The module string (may be empty).
    pub cmdline: String,
}

impl ModuleArg {
    /// Parses `FILE[@ADDR][,CMDLINE]`. The command line is everything after
    /// the first comma; `@ADDR` is the part after the last `@` of the file
    /// part, in hex with `0x` or decimal.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (file, cmdline) = s.split_once(',').unwrap_or((s, ""));
        let (path, addr) = match file.rsplit_once('@') {
            Some((p, a)) => (p, Some(parse_addr(a)?)),
            None => (file, None),
        };
        if path.is_empty() {
            return Err(format!("`{s}`: the module file name is empty"));
        }
        Ok(Self {
            path: PathBuf::from(path),
            addr,
            cmdline: cmdline.to_owned(),
        })
    }

    /// Reads the file into a [`LoaderModule`].
    pub fn load(&self, index: usize) -> Result<LoaderModule, BootInfoError> {
        let bytes = std::fs::read(&self.path).map_err(|source| BootInfoError::FileMissing {
            node: format!("--module {index}"),
            path: self.path.clone(),
            source,
        })?;
        Ok(LoaderModule {
            bytes: bytes.into(),
            addr: self.addr,
            cmdline: self.cmdline.clone(),
            path: Some(self.path.clone()),
        })
    }
}

fn parse_addr(a: &str) -> Result<u64, String> {
    let parsed = match a.strip_prefix("0x").or_else(|| a.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => a.parse(),
    };
    parsed.map_err(|_| format!("`{a}` is not an address (hex with 0x, or decimal)"))
}

/// Everything the parser may use besides the tree.
#[derive(Debug, Clone, Copy)]
pub struct BootSources<'a> {
    /// The boot loader's modules, in order (`module-index` counts from 0).
    pub modules: &'a [LoaderModule],
    /// Directory for `xen,uefi-binary` names.
    pub dir: Option<&'a Path>,
    /// Host memory limit in bytes.
    pub host_memory_limit: u64,
}

/// Finds module bytes for the parser; built once per parse so lookups by
/// address and repeated file names cost O(1).
#[derive(Debug)]
pub(crate) struct Locator<'a> {
    sources: BootSources<'a>,
    by_addr: HashMap<u64, usize>,
    files: HashMap<String, (PathBuf, Arc<[u8]>)>,
}

/// Where a located module's bytes and loader string came from.
pub(crate) struct Located {
    pub(crate) bytes: Arc<[u8]>,
    pub(crate) loader_cmdline: String,
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

    /// Module `index` of the loader's list.
    pub(crate) fn by_index(
        &self,
        node: &str,
        property: &'static str,
        index: u32,
    ) -> Result<Located, BootInfoError> {
        let m = usize::try_from(index)
            .ok()
            .and_then(|i| self.sources.modules.get(i))
            .ok_or_else(|| BootInfoError::ModuleIndexOutOfRange {
                node: node.to_owned(),
                property,
                index,
                count: self.sources.modules.len(),
            })?;
        Ok(Located {
            bytes: Arc::clone(&m.bytes),
            loader_cmdline: m.cmdline.clone(),
        })
    }

    /// The loader module put at `addr`, which must be `size` bytes.
    pub(crate) fn by_reg(
        &self,
        node: &str,
        addr: u64,
        size: u64,
    ) -> Result<Located, BootInfoError> {
        let m = self
            .by_addr
            .get(&addr)
            .and_then(|&i| self.sources.modules.get(i))
            .ok_or_else(|| BootInfoError::RegNowhere {
                node: node.to_owned(),
                addr,
                size,
            })?;
        let module_size = u64::try_from(m.bytes.len()).unwrap_or(u64::MAX);
        if module_size != size {
            return Err(BootInfoError::RegSizeMismatch {
                node: node.to_owned(),
                addr,
                reg_size: size,
                module_size,
            });
        }
        Ok(Located {
            bytes: Arc::clone(&m.bytes),
            loader_cmdline: m.cmdline.clone(),
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
                    bytes: Arc::clone(bytes),
                    loader_cmdline: String::new(),
                },
            ));
        }
        let path = dir.join(name);
        let bytes: Arc<[u8]> = std::fs::read(&path)
            .map_err(|source| BootInfoError::FileMissing {
                node: node.to_owned(),
                path: path.clone(),
                source,
            })?
            .into();
        self.files
            .insert(name.to_owned(), (path.clone(), Arc::clone(&bytes)));
        Ok((
            path,
            Located {
                bytes,
                loader_cmdline: String::new(),
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

    #[test]
    fn module_argument_forms() {
        assert_eq!(
            ModuleArg::parse("k.elf@0x200000,console=ttyS0,x").unwrap(),
            ModuleArg {
                path: "k.elf".into(),
                addr: Some(0x20_0000),
                cmdline: "console=ttyS0,x".into()
            }
        );
        assert_eq!(
            ModuleArg::parse("dir/initrd").unwrap(),
            ModuleArg {
                path: "dir/initrd".into(),
                addr: None,
                cmdline: String::new()
            }
        );
        assert_eq!(ModuleArg::parse("a@4096").unwrap().addr, Some(4096));
        assert!(ModuleArg::parse("a@zz").is_err());
        assert!(ModuleArg::parse("@0x10").is_err());
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
