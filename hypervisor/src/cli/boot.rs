//! `pvh boot`: load a kernel (or the built-in probe) and run it.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;
use clap::builder::TypedValueParser as _;
use pvh_loader::BootProtocol;
use pvh_loader::input::Input;

use super::size::{format_size, parse_memory, parse_timeout};
use super::terminal::{self, RawMode};
use crate::boot::{BootError, BootOptions};
use crate::devices::ConsoleOut;
use crate::devices::input::{ESCAPE_HELP, EscapeCommand, EscapeHandler};
use crate::diag;
use crate::host::HostMemory;
use crate::kvm::KVM_DEVICE;
use crate::outcome::{VmEnd, status};
use crate::output::{self, Exit, OutputError, Progress};
use crate::probe;
use pvh_bootdomains::error::esc_path;
use pvh_bootdomains::{BootInfo, CliModule, SingleDomain};

pub use super::options::{DomainOptions, ProtocolArg, SubarchArg};

/// `--serial`: where the guest's console goes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SerialArg {
    /// `-` (or `stdout`): standard output.
    #[default]
    Stdout,
    /// A file, created (or truncated) once the inputs have been checked.
    File(PathBuf),
}

impl From<OsString> for SerialArg {
    fn from(s: OsString) -> Self {
        if s == "-" || s == "stdout" {
            Self::Stdout
        } else {
            Self::File(s.into())
        }
    }
}

fn serial_parser() -> impl clap::builder::TypedValueParser<Value = SerialArg> {
    clap::builder::OsStringValueParser::new().map(SerialArg::from)
}

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
    /// Guest RAM (K, M, G, T suffixes); at most the host's RAM plus swap.
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
    /// Where guest console output goes: `-` (standard output) or a file,
    /// created only once the inputs have been checked (`./-` names a
    /// file called `-`).
    #[arg(long, value_name = "-|FILE", default_value = "-", value_parser = serial_parser())]
    pub serial: SerialArg,
    /// Feed the host's standard input to COM1 (the guest's ttyS0) even
    /// when it is not a terminal. A terminal on standard input is always
    /// an interactive console: raw mode, Ctrl-A x quits, Ctrl-A h helps.
    #[arg(long)]
    pub stdin: bool,
    /// End the guest after this many seconds (status 73); more than 0.
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
            serial: SerialArg::Stdout,
            stdin: false,
            timeout: None,
            verbose: false,
            kvm_device: PathBuf::from(KVM_DEVICE),
        }
    }
}

/// Prints `pvh: <msg>` on stderr and returns `code` as the way out.
fn fail(code: u8, msg: impl std::fmt::Display) -> Exit {
    diag!("pvh: {msg}");
    Exit::Status(code)
}

/// The guest's RAM as a budget for its inputs: each is opened through
/// [`Input`] (a regular file mapped, anything else read with a limit and
/// spooled to a temporary file), and refused before it is mapped or read
/// past the limit when it is larger than the RAM the inputs before it
/// left. Nothing bigger than the guest is ever held, and every input is
/// read once.
struct InputBudget {
    memory: u64,
    left: u64,
}

impl InputBudget {
    fn new(memory: u64) -> Self {
        Self {
            memory,
            left: memory,
        }
    }

    fn open(&mut self, option: &str, path: &Path, progress: &Progress) -> Result<Input, Exit> {
        progress.stage(format!("reading {option}"));
        let what = if self.left == self.memory {
            format!("of guest RAM (--memory {})", format_size(self.memory))
        } else {
            format!(
                "of guest RAM the inputs before it leave (--memory {})",
                format_size(self.memory)
            )
        };
        let input = Input::open_within(path, self.left, what)
            .map_err(|e| fail(status::for_input(&e), format_args!("{option}: {e}")))?;
        self.left -= input.len() as u64;
        Ok(input)
    }
}

/// Refuses a guest larger than this host can ever back (RAM plus swap, see
/// [`crate::host`]): the mapping would succeed and the guest die later.
fn check_host_memory(memory: u64) -> Result<u64, Exit> {
    let Ok(host) = HostMemory::query() else {
        return Ok(u64::MAX);
    };
    if memory > host.limit() {
        return Err(fail(
            status::USAGE,
            format_args!(
                "--memory {} is more than this host can give ({} of RAM + {} of swap)",
                format_size(memory),
                format_size(host.ram),
                format_size(host.swap)
            ),
        ));
    }
    Ok(host.limit())
}

/// What the long part of loading is called on the progress line.
fn loading_stage(args: &BootArgs) -> &'static str {
    if args.domain.boot_protocol == ProtocolArg::PvhUnpack {
        "decompressing the kernel"
    } else {
        "loading the guest"
    }
}

/// Runs `pvh boot`; returns how `pvh` ends.
pub fn run(args: &BootArgs) -> Exit {
    match run_inner(args) {
        Ok(exit) | Err(exit) => exit,
    }
}

fn run_inner(args: &BootArgs) -> Result<Exit, Exit> {
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
    let host_memory_limit = check_host_memory(args.memory)?;
    let progress = Progress::start("reading the inputs");
    let mut budget = InputBudget::new(args.memory);
    let kernel = match &args.kernel {
        Some(path) => budget.open("--kernel", path, &progress)?,
        None => match probe::PROBE {
            Some(bytes) => Input::built_in(bytes),
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
        .map(|p| budget.open("--initrd", p, &progress))
        .transpose()?;
    let module_bytes = args
        .domain
        .modules
        .iter()
        .map(|m| budget.open("--module", &m.path, &progress))
        .collect::<Result<Vec<_>, _>>()?;

    // The options become a one-domain BootInfo, built into a BootConfig by
    // the same builder (and checked by the same check) `pvh launch` uses
    // for every domain of a tree.
    let cli_module = |option, path: Option<&Path>, bytes: Input, cmdline: &str| {
        CliModule::new(option, bytes)
            .path(path.map(Path::to_path_buf))
            .cmdline(cmdline)
    };
    let kernel = cli_module("--kernel", args.kernel.as_deref(), kernel, "");
    // Only `pvh launch --plan` prints the host's memory map; `pvh boot` has
    // no use for it (reading it costs three files per range): the spec's
    // empty default stays.
    let spec = SingleDomain::new(kernel, args.memory)
        .initrd(initrd.map(|b| cli_module("--initrd", args.initrd.as_deref(), b, "")))
        .modules(
            args.domain
                .modules
                .iter()
                .zip(module_bytes)
                .map(|(m, b)| cli_module("--module", Some(&m.path), b, &m.cmdline))
                .collect(),
        )
        .cmdline(args.cmdline.clone())
        .cpus(u32::from(args.domain.cpus))
        .boot(args.domain.boot())
        .host_memory_limit(host_memory_limit)
        .hypervisor_cmdline(super::invocation());
    let mut info = BootInfo::single_domain(spec).map_err(|e| fail(status::BAD_INPUT, e))?;
    crate::boot::fit_cmdlines_to_machine(&mut info);
    let domain = info
        .domains
        .first()
        .ok_or_else(|| fail(status::BAD_INPUT, "no domain to boot"))?;
    let builder = crate::boot::domain_builder();
    let mut config = builder
        .boot_config(&info, domain)
        .map_err(|e| fail(status::BAD_INPUT, e))?;
    progress.stage(loading_stage(args));
    // pvh-unpack through the cache: the cached vmlinux booted through PVH is
    // exactly what the loader's PvhUnpack plans (the unpack cache's tests
    // compare the plans), without decompressing again.
    let unpacked = match (domain.boot.protocol, args.no_unpack_cache) {
        (BootProtocol::PvhUnpack, false) => {
            cached_unpack(config.kernel.image(), args.memory, args.verbose)?
        }
        _ => None,
    };
    if let Some(vmlinux) = &unpacked {
        config.kernel = pvh_loader::Kernel::PvhElf {
            image: vmlinux,
            relocation: config.kernel.relocation(),
        };
    }
    let checked = builder
        .check(&config, args.memory, domain.vcpus)
        .map_err(|e| fail(status::BAD_INPUT, e))?;

    if args.plan {
        drop(progress);
        output::print(checked.plan.to_string()).map_err(|e| e.exit())?;
        return Ok(Exit::Status(status::SUCCESS));
    }

    // Guest output is discarded until the output is opened, after every
    // input has been checked and loaded; no guest code runs before that.
    let console = ConsoleOut::pending();
    let opts = BootOptions {
        kvm_device: args.kvm_device.clone(),
        memory: args.memory,
        timeout: args.timeout,
        console: console.clone(),
        vcpus: args.domain.cpus,
    };
    let plan_text = args.verbose.then(|| checked.plan.to_string());
    let prepared = crate::boot::build(checked, &opts).map_err(|e| boot_failed(&e))?;
    // The inputs are in guest RAM now. Their mappings (the kernel file,
    // the initrd, a cached vmlinux) would otherwise stay resident for the
    // whole run: their page-cache pages count in this process's RSS, 50-70
    // MiB more than a VMM that read()s the kernel (docs/benchmarks.md,
    // "Peak RSS").
    drop(config);
    drop(unpacked);
    drop(info);
    drop(progress);
    open_console(&args.serial, &console).map_err(|e| e.exit())?;
    if let Some(text) = plan_text {
        diag!("pvh: boot plan:\n{}", text.trim_end());
    }
    let bus = Arc::clone(prepared.vm.bus());
    // The terminal goes back to how it was when `raw` drops: on return,
    // on `?`, on a panic; a fatal signal is handled in `terminal`.
    let interactive = terminal::stdin_is_interactive();
    let raw = if interactive {
        Some(RawMode::stdin().map_err(|e| {
            fail(
                status::VMM_ERROR,
                format_args!("putting the terminal into raw mode: {e}"),
            )
        })?)
    } else {
        None
    };
    let stop_input = Arc::new(AtomicBool::new(false));
    let feed = |escape: Option<EscapeHandler>| {
        crate::devices::input::spawn_feeder(
            Arc::clone(prepared.vm.uart()),
            io::stdin(),
            Arc::clone(&stop_input),
            escape,
        )
        .map(drop)
        .map_err(|e| {
            fail(
                status::VMM_ERROR,
                format_args!("starting the stdin thread: {e}"),
            )
        })
    };
    let report = if interactive {
        // The escape's quit must reach the run from the stdin thread: the
        // vCPUs run on their own threads, this one waits.
        let running =
            crate::runner::start(prepared.vcpus).map_err(|e| boot_failed(&BootError::Vmm(e)))?;
        let quit = running.stopper();
        feed(Some(Box::new(move |c| match c {
            EscapeCommand::Quit => quit.quit(),
            EscapeCommand::Help => diag!("\r\n{}", ESCAPE_HELP.trim_end()),
        })))?;
        running.wait(args.timeout)
    } else {
        if args.stdin {
            feed(None)?;
        }
        crate::runner::run(prepared.vcpus, args.timeout)
            .map_err(|e| boot_failed(&BootError::Vmm(e)))?
    };
    stop_input.store(true, Ordering::SeqCst);
    drop(raw);
    // Everything the guest printed is out before our verdict; output that
    // cannot be written is the run's result (see `crate::output`).
    let flushed = console
        .clone()
        .flush()
        .map_err(|e| OutputError::write("guest output", e));
    if report.end.output_closed() || matches!(flushed, Err(OutputError::Closed { .. })) {
        return Ok(Exit::OutputClosed);
    }

    if args.verbose {
        for (id, s) in &report.stats {
            diag!(
                "pvh: vcpu{id}: {} exits ({} port I/O, {} MMIO reads, {} MMIO writes, {} interrupted)",
                s.exits,
                s.io,
                s.mmio_reads,
                s.mmio_writes,
                s.interrupted
            );
        }
        for (port, c) in bus.unhandled() {
            diag!(
                "pvh: unanswered port {port:#06x}: {} reads, {} writes",
                c.reads,
                c.writes
            );
        }
    }
    report_end(&report.end, args.verbose);
    if super::ends_process() {
        // The process exits next, and the kernel tears the VM down with
        // it. Dropping `Vm` would first delete its memory slots (a KVM
        // memslot update) and unmap guest RAM, work the exit repeats: in
        // the nested benchmark that was about 6 ms of pvh's 77 ms for the
        // 2-instruction guest (docs/benchmarks.md, "pvh's own cost").
        // vCPU threads still running are left to the exit the same way
        // (crate::runner). Called as a library (`main_with`), it drops.
        std::mem::forget(prepared.vm);
    }
    match flushed {
        // One message per failure: a run that ended because the output
        // failed has said so already.
        Err(e) if report.end.status() != status::OUTPUT => Ok(e.exit()),
        _ => Ok(Exit::Status(report.end.status())),
    }
}

/// `kernel` unpacked through the per-user unpack cache, if it is a bzImage
/// and there is a cache directory; `None` leaves the unpacking to the loader
/// (which also reports a kernel that is not a bzImage).
fn cached_unpack(
    kernel: &[u8],
    memory: u64,
    verbose: bool,
) -> Result<Option<pvh_loader::Unpacked>, Exit> {
    let Ok(bz) = pvh_bootparams::BzImage::parse(kernel) else {
        return Ok(None);
    };
    let Some(cache) = pvh_loader::UnpackCache::in_user_cache_dir() else {
        if verbose {
            diag!("pvh: unpack cache: neither XDG_CACHE_HOME nor HOME is set; not cached");
        }
        return Ok(None);
    };
    // Decompression stops at the smaller of the guest's RAM and the
    // image's announced size, as the loader's own pvh-unpack does.
    let unpacked = cache.unpack_within(&bz, memory).map_err(|e| {
        fail(
            status::BAD_INPUT,
            format_args!("loading the guest failed: {e}"),
        )
    })?;
    if verbose {
        diag!(
            "pvh: unpack cache {}: {}",
            cache.dir().display(),
            unpacked.outcome()
        );
    }
    Ok(Some(unpacked))
}

fn boot_failed(e: &BootError) -> Exit {
    fail(e.status(), e)
}

/// Opens the `--serial` output and sends `console` there.
fn open_console(spec: &SerialArg, console: &ConsoleOut) -> Result<(), OutputError> {
    match spec {
        SerialArg::Stdout => console.redirect(output::STDOUT, Box::new(io::stdout())),
        SerialArg::File(path) => {
            let file = File::create(path).map_err(|source| OutputError::Create {
                path: path.clone(),
                source,
            })?;
            console.redirect(path.display().to_string(), Box::new(BufWriter::new(file)));
        }
    }
    Ok(())
}

/// The one-line verdict (plus registers when the guest died badly).
fn report_end(end: &VmEnd, verbose: bool) {
    let code = end.status();
    if code != status::SUCCESS || verbose {
        diag!("pvh: {end} (status {code})");
    } else {
        diag!("pvh: {end}");
    }
    let show_regs = !matches!(
        end,
        VmEnd::ExitPort(_) | VmEnd::Reset | VmEnd::Shutdown | VmEnd::PowerOff
    );
    if let (true, Some(regs)) = (show_regs, end.regs()) {
        let lines: Vec<String> = regs
            .to_string()
            .lines()
            .map(|l| format!("pvh:   {l}"))
            .collect();
        diag!("{}", lines.join("\n"));
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

    /// The progress line names decompression only where pvh decompresses
    /// (tests/console.rs shows the line itself on a real terminal).
    #[test]
    fn the_progress_line_says_decompressing_only_for_pvh_unpack() {
        let mut args = BootArgs::default();
        args.domain.boot_protocol = ProtocolArg::PvhUnpack;
        assert_eq!(loading_stage(&args), "decompressing the kernel");
        for other in [ProtocolArg::Pvh, ProtocolArg::Linux] {
            args.domain.boot_protocol = other;
            assert_eq!(loading_stage(&args), "loading the guest");
        }
    }
}
