//! `pvh boot`: load a kernel (or the built-in probe) and run it.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use pvh_loader::BootProtocol;

use super::size::{parse_memory, parse_timeout};
use crate::boot::{BootError, BootOptions};
use crate::bootinfo::build;
use crate::bootinfo::error::esc_path;
use crate::bootinfo::{BootInfo, CliModule, SingleDomain, host};
use crate::devices::ConsoleOut;
use crate::kvm::KVM_DEVICE;
use crate::outcome::{VmEnd, status};
use crate::probe;

pub use super::options::{DomainOptions, ProtocolArg, SubarchArg};

/// Arguments of `pvh boot`.
#[derive(Debug, Clone, Args)]
pub struct BootArgs {
    /// Kernel: a PVH ELF, or a bzImage. Default: the built-in probe guest.
    #[arg(long, value_name = "FILE")]
    pub kernel: Option<PathBuf>,
    /// Initial ramdisk (becomes module 0; `--module`s follow it).
    #[arg(long, value_name = "FILE")]
    pub initrd: Option<PathBuf>,
    /// Modules, protocol, subarch, ACPI, vCPUs: the options `pvh launch`
    /// shares.
    #[command(flatten)]
    pub domain: DomainOptions,
    /// Kernel command line.
    #[arg(long, default_value = "")]
    pub cmdline: String,
    /// Guest RAM (K, M, G suffixes).
    #[arg(long, default_value = "512M", value_parser = parse_memory)]
    pub memory: u64,
    /// With `--boot-protocol pvh-unpack`: decompress the bzImage every time
    /// instead of keeping the unpacked kernel in the per-user cache
    /// (`$XDG_CACHE_HOME/pvh/unpacked`, else `~/.cache/pvh/unpacked`).
    #[arg(long)]
    pub no_unpack_cache: bool,
    /// Print the loader's boot plan and exit without running.
    #[arg(long)]
    pub plan: bool,
    /// Where guest console output goes: `stdout` or a file.
    #[arg(long, value_name = "stdout|FILE", default_value = "stdout")]
    pub serial: String,
    /// Feed the host's standard input to COM1 (the guest's ttyS0).
    #[arg(long)]
    pub stdin: bool,
    /// End the guest after this many seconds (status 73).
    #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
    pub timeout: Option<Duration>,
    /// Print the plan, exit counts and unanswered ports on stderr.
    #[arg(long, short)]
    pub verbose: bool,
    /// The KVM device.
    #[arg(long, value_name = "PATH", default_value = KVM_DEVICE)]
    pub kvm_device: PathBuf,
}

impl Default for BootArgs {
    fn default() -> Self {
        Self {
            kernel: None,
            initrd: None,
            domain: DomainOptions::default(),
            cmdline: String::new(),
            memory: 512 << 20,
            no_unpack_cache: false,
            plan: false,
            serial: "stdout".into(),
            stdin: false,
            timeout: None,
            verbose: false,
            kvm_device: PathBuf::from(KVM_DEVICE),
        }
    }
}

/// Prints `pvh: <msg>` on stderr and returns `code`.
fn fail(code: u8, msg: impl std::fmt::Display) -> u8 {
    eprintln!("pvh: {msg}");
    code
}

fn read(what: &str, path: &Path) -> Result<Vec<u8>, u8> {
    std::fs::read(path).map_err(|e| {
        fail(
            status::BAD_INPUT,
            format_args!("cannot read {what} {}: {e}", path.display()),
        )
    })
}

/// Runs `pvh boot`; returns the exit status.
pub fn run(args: &BootArgs) -> u8 {
    match run_inner(args) {
        Ok(code) | Err(code) => code,
    }
}

fn run_inner(args: &BootArgs) -> Result<u8, u8> {
    if let Some(m) = args.domain.modules.iter().find(|m| m.addr.is_some()) {
        return Err(fail(
            status::USAGE,
            format_args!(
                "--module {}: `@ADDR` is where a boot loader put a module, for a tree's `reg` \
                 (pvh launch); pvh boot places modules itself",
                esc_path(&m.path)
            ),
        ));
    }
    let kernel: Vec<u8> = match &args.kernel {
        Some(path) => read("kernel", path)?,
        None => match probe::PROBE {
            Some(bytes) => bytes.to_vec(),
            None => {
                return Err(fail(
                    status::NO_PROBE,
                    "the built-in probe guest is not built yet; pass --kernel FILE",
                ));
            }
        },
    };
    let initrd = args
        .initrd
        .as_deref()
        .map(|p| read("initrd", p))
        .transpose()?;
    let module_bytes = args
        .domain
        .modules
        .iter()
        .map(|m| read("module", &m.path))
        .collect::<Result<Vec<_>, _>>()?;

    // The options become a one-domain BootInfo, built into a BootConfig by
    // the same builder (and checked by the same check) `pvh launch` uses
    // for every domain of a tree.
    let cli_module = |option, path: Option<&Path>, bytes: Vec<u8>, cmdline: &str| CliModule {
        option,
        path: path.map(Path::to_path_buf),
        bytes: bytes.into(),
        cmdline: cmdline.to_owned(),
    };
    let info = BootInfo::single_domain(SingleDomain {
        kernel: cli_module("--kernel", args.kernel.as_deref(), kernel, ""),
        initrd: initrd.map(|b| cli_module("--initrd", args.initrd.as_deref(), b, "")),
        modules: args
            .domain
            .modules
            .iter()
            .zip(module_bytes)
            .map(|(m, b)| cli_module("--module", Some(&m.path), b, &m.cmdline))
            .collect(),
        cmdline: args.cmdline.clone(),
        memory: args.memory,
        cpus: u32::from(args.domain.cpus),
        boot: args.domain.boot(),
        // The loader checks the size against what it can lay out; pvh boot
        // sets no host limit of its own.
        host_memory_limit: u64::MAX,
        hypervisor_cmdline: super::invocation(),
        host_memmap: host::memory_map(),
    })
    .map_err(|e| fail(status::BAD_INPUT, e))?;
    let domain = info
        .domains
        .first()
        .ok_or_else(|| fail(status::BAD_INPUT, "no domain to boot"))?;
    let mut config = build::boot_config(&info, domain).map_err(|e| fail(status::BAD_INPUT, e))?;
    // pvh-unpack through the cache: the cached vmlinux booted through PVH is
    // exactly what the loader's PvhUnpack plans (the unpack cache's tests
    // compare the plans), without decompressing again.
    let unpacked = match (domain.boot.protocol, args.no_unpack_cache) {
        (BootProtocol::PvhUnpack, false) => cached_unpack(config.kernel, args.verbose)?,
        _ => None,
    };
    if let Some(vmlinux) = &unpacked {
        config.kernel = vmlinux;
        config.protocol = BootProtocol::Pvh;
    }
    let checked =
        build::check(&config, args.memory, domain.vcpus).map_err(|e| fail(status::BAD_INPUT, e))?;

    if args.plan {
        print!("{}", checked.plan);
        return Ok(status::SUCCESS);
    }

    let console = open_console(&args.serial)?;
    let opts = BootOptions {
        kvm_device: args.kvm_device.clone(),
        memory: args.memory,
        timeout: args.timeout,
        console: console.clone(),
        vcpus: args.domain.cpus,
    };
    let prepared = crate::boot::build(checked, &config, &opts).map_err(|e| boot_failed(&e))?;
    if args.verbose {
        eprint!("pvh: boot plan:\n{}", prepared.guest.plan);
    }
    let bus = std::sync::Arc::clone(prepared.vm.bus());
    let stop_input = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    if args.stdin {
        crate::devices::input::spawn_feeder(
            std::sync::Arc::clone(prepared.vm.uart()),
            io::stdin(),
            std::sync::Arc::clone(&stop_input),
        )
        .map_err(|e| {
            fail(
                status::VMM_ERROR,
                format_args!("starting the stdin thread: {e}"),
            )
        })?;
    }
    let report = crate::runner::run(prepared.vcpus, args.timeout)
        .map_err(|e| boot_failed(&BootError::Vmm(e)))?;
    stop_input.store(true, std::sync::atomic::Ordering::SeqCst);
    // Make sure everything the guest printed is out before our verdict.
    let _ = console.clone().flush();

    if args.verbose {
        for (id, s) in &report.stats {
            eprintln!(
                "pvh: vcpu{id}: {} exits ({} port I/O, {} MMIO reads, {} MMIO writes, {} interrupted)",
                s.exits, s.io, s.mmio_reads, s.mmio_writes, s.interrupted
            );
        }
        for (port, c) in bus.unhandled() {
            eprintln!(
                "pvh: unanswered port {port:#06x}: {} reads, {} writes",
                c.reads, c.writes
            );
        }
    }
    report_end(&report.end, args.verbose);
    Ok(report.end.status())
}

/// `kernel` unpacked through the per-user unpack cache, if it is a bzImage
/// and there is a cache directory; `None` leaves the unpacking to the loader
/// (which also reports a kernel that is not a bzImage).
fn cached_unpack(kernel: &[u8], verbose: bool) -> Result<Option<pvh_loader::Unpacked>, u8> {
    let Ok(bz) = pvh_bootparams::BzImage::parse(kernel) else {
        return Ok(None);
    };
    let Some(cache) = pvh_loader::UnpackCache::in_user_cache_dir() else {
        if verbose {
            eprintln!("pvh: unpack cache: neither XDG_CACHE_HOME nor HOME is set; not cached");
        }
        return Ok(None);
    };
    let unpacked = cache.unpack(&bz).map_err(|e| {
        fail(
            status::BAD_INPUT,
            format_args!("loading the guest failed: {e}"),
        )
    })?;
    if verbose {
        eprintln!(
            "pvh: unpack cache {}: {}",
            cache.dir().display(),
            unpacked.outcome()
        );
    }
    Ok(Some(unpacked))
}

fn boot_failed(e: &BootError) -> u8 {
    fail(e.status(), e)
}

fn open_console(spec: &str) -> Result<ConsoleOut, u8> {
    if spec == "stdout" {
        return Ok(ConsoleOut::stdout());
    }
    let file = File::create(spec).map_err(|e| {
        fail(
            status::BAD_INPUT,
            format_args!("cannot create serial output file {spec}: {e}"),
        )
    })?;
    Ok(ConsoleOut::new(Box::new(BufWriter::new(file))))
}

/// The one-line verdict (plus registers when the guest died badly).
fn report_end(end: &VmEnd, verbose: bool) {
    let code = end.status();
    if code != status::SUCCESS || verbose {
        eprintln!("pvh: {end} (status {code})");
    } else {
        eprintln!("pvh: {end}");
    }
    let show_regs = !matches!(
        end,
        VmEnd::ExitPort(_) | VmEnd::Reset | VmEnd::Shutdown | VmEnd::PowerOff
    );
    if let (true, Some(regs)) = (show_regs, end.regs()) {
        let mut err = io::stderr().lock();
        for line in regs.to_string().lines() {
            let _ = writeln!(err, "pvh:   {line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_parses_fractions_and_rejects_negative() {
        assert_eq!(parse_timeout("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_timeout("-1").is_err());
        assert!(parse_timeout("soon").is_err());
    }
}
