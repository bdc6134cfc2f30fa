//! Helpers shared by the bootinfo tests: trees built in code with `vm-fdt`,
//! `.dts` fixtures compiled with `dtc`, and a scratch directory for module
//! files.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use pvh_bootdomains::{BootSources, LoaderModule};

/// A property value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum V {
    /// Big-endian cells.
    Cells(Vec<u32>),
    /// One NUL-terminated string.
    Str(String),
    /// A string list.
    Strs(Vec<String>),
    /// Raw bytes.
    Raw(Vec<u8>),
}

impl V {
    /// The encoded bytes.
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            V::Cells(c) => c.iter().flat_map(|v| v.to_be_bytes()).collect(),
            V::Str(s) => {
                let mut b = s.as_bytes().to_vec();
                b.push(0);
                b
            }
            V::Strs(l) => l
                .iter()
                .flat_map(|s| s.bytes().chain(std::iter::once(0)))
                .collect(),
            V::Raw(b) => b.clone(),
        }
    }
}

impl From<u32> for V {
    fn from(v: u32) -> Self {
        V::Cells(vec![v])
    }
}
impl<const N: usize> From<[u32; N]> for V {
    fn from(v: [u32; N]) -> Self {
        V::Cells(v.to_vec())
    }
}
impl From<&str> for V {
    fn from(v: &str) -> Self {
        V::Str(v.to_owned())
    }
}
impl<const N: usize> From<[&str; N]> for V {
    fn from(v: [&str; N]) -> Self {
        V::Strs(v.iter().map(|s| (*s).to_owned()).collect())
    }
}

/// A node of a tree built in code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub props: Vec<(String, V)>,
    pub children: Vec<Node>,
}

impl Node {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            props: Vec::new(),
            children: Vec::new(),
        }
    }

    pub fn prop(mut self, name: &str, v: impl Into<V>) -> Self {
        self.props.push((name.to_owned(), v.into()));
        self
    }

    pub fn child(mut self, n: Node) -> Self {
        self.children.push(n);
        self
    }

    /// Removes property `name` (all occurrences).
    pub fn without(mut self, name: &str) -> Self {
        self.props.retain(|(n, _)| n != name);
        self
    }
}

fn write(w: &mut vm_fdt::FdtWriter, n: &Node) {
    let h = w.begin_node(&n.name).expect("valid node name");
    for (name, v) in &n.props {
        w.property(name, &v.bytes()).expect("valid property name");
    }
    for c in &n.children {
        write(w, c);
    }
    w.end_node(h).expect("balanced");
}

/// The blob for a root node's children (the root itself is unnamed).
pub fn blob(children: Vec<Node>) -> Vec<u8> {
    let mut root = Node::new("");
    root.children = children;
    let mut w = vm_fdt::FdtWriter::new().expect("writer");
    write(&mut w, &root);
    w.finish().expect("finish")
}

/// `/chosen` with the given children.
pub fn chosen(children: Vec<Node>) -> Vec<u8> {
    let mut c = Node::new("chosen");
    c.children = children;
    blob(vec![c])
}

/// `/chosen/hypervisor` (hyperlaunch) with the given children.
pub fn hyperlaunch(children: Vec<Node>) -> Vec<u8> {
    let mut h = Node::new("hypervisor").prop("compatible", ["hypervisor,xen", "xen,x86"]);
    h.children = children;
    chosen(vec![h])
}

/// The path of a fixture (in `loader/bootdomains/tests/fixtures`, whichever
/// crate's tests include this module).
pub fn fixture(name: &str) -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let own = here.join("tests/fixtures");
    let dir = if own.is_dir() {
        own
    } else {
        here.join("../loader/bootdomains/tests/fixtures")
    };
    dir.join(name)
}

/// Compiles a `.dts` fixture with `dtc`. `None` (after printing why) when
/// dtc is not installed; under `CI=true` that is a failure.
pub fn dtc(name: &str) -> Option<Vec<u8>> {
    let path = fixture(name);
    match Command::new("dtc")
        .args(["-q", "-I", "dts", "-O", "dtb", "-o", "-"])
        .arg(&path)
        .output()
    {
        Ok(out) => {
            assert!(
                out.status.success(),
                "dtc failed on {}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            Some(out.stdout)
        }
        Err(e) => {
            let reason =
                format!("dtc not runnable ({e}); install device-tree-compiler (scripts/setup.sh)");
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{reason}");
            }
            eprintln!("skipped: {reason}");
            None
        }
    }
}

/// A scratch directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pvh-bootinfo-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self(dir)
    }

    pub fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).expect("write scratch file");
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loader module without an address.
pub fn lm(bytes: &[u8], cmdline: &str) -> LoaderModule {
    LoaderModule::new(bytes.into()).cmdline(cmdline)
}

/// A loader module placed at `addr`.
pub fn lm_at(bytes: &[u8], addr: u64, cmdline: &str) -> LoaderModule {
    lm(bytes, cmdline).addr(Some(addr))
}

/// 1 GiB.
pub const GIB: u64 = 1 << 30;

/// Sources with modules, an optional directory, and a 1 GiB host.
pub fn sources<'a>(modules: &'a [LoaderModule], dir: Option<&'a Path>) -> BootSources<'a> {
    BootSources::default()
        .modules(modules)
        .dir(dir)
        .host_memory_limit(GIB)
}

/// A dom0less tree with `n` domains, each with a kernel (loader module 0,
/// with `bootargs`) and a ramdisk (loader module 1), 1 MiB of memory and
/// one vCPU. Per domain: 3 nodes, 8 properties.
pub fn many_domains(n: usize) -> Vec<u8> {
    let doms = (0..n)
        .map(|i| {
            Node::new(&format!("dom{i}"))
                .prop("compatible", "xen,domain")
                .prop("memory", [0, 0x400])
                .prop("cpus", 1u32)
                .child(
                    Node::new("kernel")
                        .prop("compatible", ["multiboot,kernel", "multiboot,module"])
                        .prop("module-index", 0u32)
                        .prop("bootargs", "console=hvc0"),
                )
                .child(
                    Node::new("ramdisk")
                        .prop("compatible", ["multiboot,ramdisk", "multiboot,module"])
                        .prop("module-index", 1u32),
                )
        })
        .collect();
    chosen(doms)
}

/// The two loader modules `many_domains` refers to.
pub fn many_domains_modules() -> Vec<LoaderModule> {
    vec![lm(b"\x7fELF kernel", ""), lm(b"070701 initrd", "")]
}
