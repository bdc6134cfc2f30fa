//! `pvh launch CONFIG.dtb [--module FILE[@ADDR][,CMDLINE]]... [--dir DIR]`:
//! every domain of a boot-domain device tree in its own KVM VM, all at
//! once, each on its own threads (one per vCPU, from [`crate::runner`]).
//! Console lines are prefixed `(dN) `; `pvh` exits when every domain has
//! ended, prints one summary line per domain, and returns the first
//! failing domain's status (0 when all ended cleanly).

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use clap::Args;

use super::build::{self, DomainBoot};
use super::error::BootInfoError;
use super::source::{BootSources, LoaderModule, ModuleArg};
use super::types::{BootDomain, BootInfo};
use crate::boot::{BootError, BootOptions};
use crate::cli::size::{parse_memory, parse_timeout};
use crate::devices::ConsoleOut;
use crate::kvm::KVM_DEVICE;
use crate::outcome::{VmEnd, status};

/// Arguments of `pvh launch`.
#[derive(Debug, Clone, Args)]
pub struct LaunchArgs {
    /// The boot-domain device tree (dom0less or hyperlaunch), compiled.
    #[arg(value_name = "CONFIG.dtb")]
    pub config: PathBuf,
    /// A boot module: `module-index` N is the Nth (from 0); `@ADDR` is
    /// what `reg` matches; the command line wins over `bootargs`.
    #[arg(long = "module", value_name = "FILE[@ADDR][,CMDLINE]", value_parser = ModuleArg::parse)]
    pub modules: Vec<ModuleArg>,
    /// Directory for `xen,uefi-binary` file names.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Memory all domains together may use (K, M, G suffixes). Default:
    /// the host's physical memory.
    #[arg(long, value_name = "SIZE", value_parser = parse_memory)]
    pub host_memory: Option<u64>,
    /// End each domain still running after this many seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
    pub timeout: Option<Duration>,
    /// Parse the tree, print the domains and exit without running.
    #[arg(long)]
    pub plan: bool,
    /// The KVM device.
    #[arg(long, value_name = "PATH", default_value = KVM_DEVICE)]
    pub kvm_device: PathBuf,
}

/// The host's physical memory in bytes (0 if unknown).
fn host_physical_memory() -> u64 {
    // SAFETY: sysconf only reads system configuration; no memory is passed.
    let pages = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) };
    // SAFETY: as above.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(pages)
        .ok()
        .zip(u64::try_from(page).ok())
        .map_or(0, |(n, p)| n.saturating_mul(p))
}

/// How every domain is run (what is not in the tree).
#[derive(Debug, Clone)]
pub struct LaunchOptions {
    /// The KVM device.
    pub kvm_device: PathBuf,
    /// Per-domain timeout.
    pub timeout: Option<Duration>,
    /// Where the prefixed console lines of all domains go.
    pub console: ConsoleOut,
}

/// How one domain ended.
#[derive(Debug)]
pub struct DomainOutcome {
    /// Its domain id.
    pub domid: u32,
    /// Its node name.
    pub name: String,
    /// How its VM ended, or why it never ran.
    pub result: Result<VmEnd, BootError>,
}

impl DomainOutcome {
    /// The `pvh` status for this domain (0: ended cleanly).
    pub fn status(&self) -> u8 {
        match &self.result {
            Ok(end) => end.status(),
            Err(e) => e.status(),
        }
    }
}

/// A console writer that prefixes every line with `(dN) ` and hands
/// complete lines to the shared console in one write, so lines of
/// different domains never interleave mid-line.
#[derive(Clone)]
struct Prefixed {
    prefix: Arc<str>,
    partial: Arc<Mutex<Vec<u8>>>,
    out: ConsoleOut,
}

impl Prefixed {
    fn new(domid: u32, out: ConsoleOut) -> Self {
        Self {
            prefix: format!("(d{domid}) ").into(),
            partial: Arc::default(),
            out,
        }
    }

    /// Writes out an unterminated last line (with a newline).
    fn finish(&self) -> io::Result<()> {
        let mut partial = self.partial.lock().unwrap_or_else(PoisonError::into_inner);
        if !partial.is_empty() {
            partial.push(b'\n');
            let line = [self.prefix.as_bytes(), &partial].concat();
            partial.clear();
            self.out.clone().write_all(&line)?;
        }
        self.out.clone().flush()
    }
}

impl Write for Prefixed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut partial = self.partial.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = Vec::new();
        for &b in buf {
            partial.push(b);
            if b == b'\n' {
                out.extend_from_slice(self.prefix.as_bytes());
                out.append(&mut partial);
            }
        }
        if !out.is_empty() {
            self.out.write_all(&out)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn run_domain(info: &BootInfo, d: &BootDomain, opts: &LaunchOptions) -> DomainOutcome {
    let console = Prefixed::new(d.domid, opts.console.clone());
    let result = (|| {
        let config = build::boot_config(info, d, &DomainBoot::default()).map_err(|e| {
            BootError::Vmm(crate::Error::Os {
                op: "building the domain",
                source: io::Error::other(e),
            })
        })?;
        let boot_opts = BootOptions {
            kvm_device: opts.kvm_device.clone(),
            memory: d.memory,
            timeout: opts.timeout,
            console: ConsoleOut::new(Box::new(console.clone())),
            // The parser keeps vcpus within 1..=255.
            vcpus: u8::try_from(d.vcpus).unwrap_or(u8::MAX),
        };
        crate::boot::boot(&config, &boot_opts).map(|(report, _vm)| report.end)
    })();
    let _ = console.finish();
    DomainOutcome {
        domid: d.domid,
        name: d.name.clone(),
        result,
    }
}

/// Runs every domain of `info` at once, each in its own VM on its own
/// threads, and waits for all of them. Outcomes are in domain order.
pub fn launch(info: &BootInfo, opts: &LaunchOptions) -> Vec<DomainOutcome> {
    std::thread::scope(|s| {
        let handles: Vec<_> = info
            .domains
            .iter()
            .map(|d| {
                std::thread::Builder::new()
                    .name(format!("d{}", d.domid))
                    .spawn_scoped(s, move || run_domain(info, d, opts))
            })
            .collect();
        handles
            .into_iter()
            .zip(&info.domains)
            .map(|(h, d)| {
                let failed = |what: &str| DomainOutcome {
                    domid: d.domid,
                    name: d.name.clone(),
                    result: Ok(VmEnd::Unhandled {
                        exit: what.to_owned(),
                        regs: None,
                    }),
                };
                match h {
                    Ok(h) => h
                        .join()
                        .unwrap_or_else(|_| failed("domain thread panicked")),
                    Err(_) => failed("domain thread could not be started"),
                }
            })
            .collect()
    })
}

/// Reads the tree and the modules and parses them into a [`BootInfo`].
pub fn load(args: &LaunchArgs) -> Result<BootInfo, LaunchError> {
    let dtb = std::fs::read(&args.config).map_err(|source| LaunchError::Config {
        path: args.config.clone(),
        source,
    })?;
    let modules = args
        .modules
        .iter()
        .enumerate()
        .map(|(i, m)| m.load(i))
        .collect::<Result<Vec<LoaderModule>, _>>()?;
    let host_memory_limit = args.host_memory.unwrap_or_else(host_physical_memory);
    Ok(super::parse(
        &dtb,
        BootSources {
            modules: &modules,
            dir: args.dir.as_deref(),
            host_memory_limit,
        },
    )?)
}

/// `pvh launch` failed before any domain ran.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The tree file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Config {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The tree or a module is unusable.
    #[error(transparent)]
    BootInfo(#[from] BootInfoError),
}

/// Runs `pvh launch`; returns the exit status.
pub fn run(args: &LaunchArgs) -> u8 {
    let info = match load(args) {
        Ok(info) => info,
        Err(e) => {
            eprintln!("pvh: {e}");
            return status::BAD_INPUT;
        }
    };
    if args.plan {
        print!("{}", plan(&info));
        return status::SUCCESS;
    }
    let opts = LaunchOptions {
        kvm_device: args.kvm_device.clone(),
        timeout: args.timeout,
        console: ConsoleOut::stdout(),
    };
    let outcomes = launch(&info, &opts);
    summarize(&outcomes, &mut io::stderr().lock())
}

/// One line per domain: what it will get.
pub fn plan(info: &BootInfo) -> String {
    let mut s = String::new();
    for d in &info.domains {
        let kernel = info.kernel_of(d).map_or("?", |m| m.node.as_str());
        s.push_str(&format!(
            "d{} {}: {} MiB, {} vCPU(s), kernel {}, {} module(s), cmdline {:?}\n",
            d.domid,
            d.name,
            d.memory >> 20,
            d.vcpus,
            kernel,
            usize::from(d.ramdisk.is_some()) + d.extra_modules.len(),
            d.cmdline
        ));
    }
    s
}

/// Writes one summary line per domain to `err` and returns the first
/// failing domain's status (0 when all ended cleanly).
pub fn summarize(outcomes: &[DomainOutcome], err: &mut dyn Write) -> u8 {
    let mut worst = status::SUCCESS;
    for o in outcomes {
        let code = o.status();
        let _ = match &o.result {
            Ok(end) => writeln!(err, "pvh: d{} ({}): {end} (status {code})", o.domid, o.name),
            Err(e) => writeln!(err, "pvh: d{} ({}): {e} (status {code})", o.domid, o.name),
        };
        if worst == status::SUCCESS {
            worst = code;
        }
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn console_lines_are_prefixed_whole() {
        let sink = Sink::default();
        let mut p = Prefixed::new(3, ConsoleOut::new(Box::new(sink.clone())));
        p.write_all(b"hel").unwrap();
        assert!(
            sink.0.lock().unwrap().is_empty(),
            "half a line is held back"
        );
        p.write_all(b"lo\nsecond\nthi").unwrap();
        assert_eq!(&*sink.0.lock().unwrap(), b"(d3) hello\n(d3) second\n");
        p.finish().unwrap();
        assert_eq!(
            &*sink.0.lock().unwrap(),
            b"(d3) hello\n(d3) second\n(d3) thi\n"
        );
    }

    #[test]
    fn launch_arguments() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            launch: LaunchArgs,
        }
        let cli = Cli::try_parse_from([
            "pvh",
            "boot.dtb",
            "--module",
            "k.elf@0x100000,console=ttyS0",
            "--module",
            "initrd",
            "--dir",
            "files",
            "--host-memory",
            "2G",
            "--timeout",
            "1.5",
        ])
        .unwrap();
        let a = cli.launch;
        assert_eq!(a.config, PathBuf::from("boot.dtb"));
        assert_eq!(a.modules.len(), 2);
        assert_eq!(a.modules[0].addr, Some(0x10_0000));
        assert_eq!(a.modules[0].cmdline, "console=ttyS0");
        assert_eq!(a.dir, Some(PathBuf::from("files")));
        assert_eq!(a.host_memory, Some(2 << 30));
        assert_eq!(a.timeout, Some(Duration::from_millis(1500)));
    }
}
