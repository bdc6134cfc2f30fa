//! `pvh launch CONFIG.dtb [--module FILE[@ADDR][,CMDLINE]]... [--dir DIR]`:
//! every domain of a boot-domain device tree in its own KVM VM.
//!
//! Build all, then run: the tree is parsed ([`pvh_bootdomains::parse`]), every domain
//! is checked ([`LaunchPlan::new`], the very check `--plan` prints), then
//! every domain is built into its own guest memory and VM; only when all
//! of them are built do their vCPUs start. Any failure before that is one
//! error naming the domain, and nothing has run. Console lines are
//! prefixed `(dN) ` (not those of the domain with the HARDWARE
//! capability); `pvh` exits when every domain has ended (or when the
//! domain with the CONTROL capability ends: the others are then ended
//! too), prints one summary line per domain, and returns the control
//! domain's status, else the first failing domain's (0 when all ended
//! cleanly).

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Duration;

use clap::Args;
use pvh_loader::input::{Input, InputError};

use crate::boot::{BootError, BootOptions, Prepared};
use crate::cli::options::DomainOptions;
use crate::cli::size::{parse_memory, parse_timeout};
use crate::devices::ConsoleOut;
use crate::kvm::KVM_DEVICE;
use crate::outcome::{VmEnd, status};
use crate::runner::{self, Stopper};
use pvh_bootdomains::blob::MAX_TREE_SIZE;
use pvh_bootdomains::error::{BootInfoError, esc, esc_path};
use pvh_bootdomains::host;
use pvh_bootdomains::plan::{DomainError, LaunchPlan};
use pvh_bootdomains::source::{BootSources, LoaderModule, ModuleNumbering};
use pvh_bootdomains::types::{BootInfo, Capabilities};

/// Arguments of `pvh launch`.
#[derive(Debug, Clone, Args)]
pub struct LaunchArgs {
    /// The boot-domain device tree (dom0less or hyperlaunch), compiled.
    #[arg(value_name = "CONFIG.dtb")]
    pub config: PathBuf,
    /// Modules (the boot loader's list: `module-index` N is the Nth, from
    /// 0), and the defaults for every domain: protocol, subarch, ACPI,
    /// vCPUs.
    #[command(flatten)]
    pub domain: DomainOptions,
    /// Count `module-index` / `mb-index` as Xen's multiboot list does: the
    /// device tree itself is module 0, the first `--module` is 1 (for
    /// trees written for Xen).
    #[arg(long)]
    pub xen_module_numbering: bool,
    /// Directory for `xen,uefi-binary` file names.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Memory all domains together may use (K, M, G, T suffixes). Default:
    /// what the host can give, its RAM plus swap (as `pvh boot --memory`
    /// is checked).
    #[arg(long, value_name = "SIZE", value_parser = parse_memory)]
    pub host_memory: Option<u64>,
    /// End each domain still running after this many seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_timeout)]
    pub timeout: Option<Duration>,
    /// Check the tree and every domain, print the plan and exit without
    /// running.
    #[arg(long)]
    pub plan: bool,
    /// The KVM device.
    #[arg(long, value_name = "PATH", default_value = KVM_DEVICE)]
    pub kvm_device: PathBuf,
}

/// How every domain is run (what is not in the tree).
#[derive(Debug, Clone)]
pub struct LaunchOptions {
    /// The KVM device.
    pub kvm_device: PathBuf,
    /// Per-domain timeout.
    pub timeout: Option<Duration>,
    /// Where the console lines of all domains go.
    pub console: ConsoleOut,
}

/// How one domain ended.
#[derive(Debug)]
pub struct DomainOutcome {
    /// Its domain id.
    pub domid: u32,
    /// Its node name.
    pub name: String,
    /// Whether it led the launch (CONTROL).
    pub leads: bool,
    /// How its VM ended, or why its vCPUs could not be started.
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

/// `pvh launch` failed before any domain ran.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The tree file could not be read.
    #[error("cannot read {}: {source}", esc_path(.path))]
    Config {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The tree file is larger than a boot tree may be
    /// ([`MAX_TREE_SIZE`]; it was not read), or a tree read from a pipe
    /// could not be spooled to a temporary file.
    #[error(transparent)]
    ConfigTooLarge(InputError),
    /// The tree or a module is unusable.
    #[error(transparent)]
    BootInfo(#[from] BootInfoError),
    /// A domain cannot be built from what it was given.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The host could not build a domain (memory, KVM).
    #[error("d{domid} ({}): {source}", esc(.name))]
    Build {
        /// Its domain id.
        domid: u32,
        /// Its node name.
        name: String,
        /// Why.
        #[source]
        source: BootError,
    },
}

impl LaunchError {
    /// The `pvh` exit status: a bad tree, module or domain is bad input
    /// (66); a host failure has the status `pvh boot` gives it.
    pub fn status(&self) -> u8 {
        match self {
            Self::ConfigTooLarge(e)
            | Self::BootInfo(BootInfoError::InputTooLarge { source: e, .. }) => {
                status::for_input(e)
            }
            Self::Config { .. } | Self::BootInfo(_) | Self::Domain(_) => status::BAD_INPUT,
            Self::Build { source, .. } => source.status(),
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

    /// Whole lines without a prefix: the console owner's (HARDWARE).
    fn bare(out: ConsoleOut) -> Self {
        Self {
            prefix: "".into(),
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

/// A domain built and ready to run: its VM, its vCPUs, its console. It
/// borrows nothing from the [`BootInfo`]: the inputs are in guest RAM, and
/// the caller can release their mappings before the domains run.
struct Built {
    domid: u32,
    name: String,
    /// Whether the domain leads (CONTROL): the others end when it ends.
    leads: bool,
    prepared: Prepared,
    console: Prefixed,
}

/// Builds every domain of `plan` into its own guest memory and VM, in
/// domain order, starting none. The first failure drops what was built
/// and names its domain.
fn build_all(plan: LaunchPlan<'_>, opts: &LaunchOptions) -> Result<Vec<Built>, LaunchError> {
    plan.domains
        .into_iter()
        .map(|p| {
            let d = p.domain;
            let console = if d.capabilities.contains(Capabilities::HARDWARE) {
                Prefixed::bare(opts.console.clone())
            } else {
                Prefixed::new(d.domid, opts.console.clone())
            };
            let boot_opts = BootOptions {
                kvm_device: opts.kvm_device.clone(),
                memory: d.memory,
                timeout: opts.timeout,
                console: ConsoleOut::new(Box::new(console.clone())),
                // The parser keeps vcpus within 1..=32.
                vcpus: u8::try_from(d.vcpus).unwrap_or(u8::MAX),
            };
            let prepared =
                crate::boot::build(p.checked, &boot_opts).map_err(|source| LaunchError::Build {
                    domid: d.domid,
                    name: d.name.clone(),
                    source,
                })?;
            Ok(Built {
                domid: d.domid,
                name: d.name.clone(),
                leads: d.capabilities.contains(Capabilities::CONTROL),
                prepared,
                console,
            })
        })
        .collect()
}

/// Starts every built domain's vCPUs and waits: for all of them, or, when
/// a domain leads (CONTROL), for it, ending the others when it ends.
/// Outcomes are in domain order.
fn run_all(built: Vec<Built>, timeout: Option<Duration>) -> Vec<DomainOutcome> {
    let leader = built.iter().position(|b| b.leads);
    let names: Vec<(u32, String)> = built.iter().map(|b| (b.domid, b.name.clone())).collect();
    let (tx, rx) = mpsc::channel();
    let mut results: Vec<Option<Result<VmEnd, BootError>>> =
        (0..built.len()).map(|_| None).collect();
    std::thread::scope(|s| {
        let mut stoppers: Vec<Option<Stopper>> = Vec::with_capacity(built.len());
        let mut vms = Vec::with_capacity(built.len());
        for (i, b) in built.into_iter().enumerate() {
            let Built {
                prepared: Prepared { vm, vcpus, .. },
                console,
                ..
            } = b;
            // The VM lives until every domain has ended (its memory stays
            // mapped while a vCPU thread that missed the stop may run).
            vms.push(vm);
            match runner::start(vcpus) {
                Ok(running) => {
                    stoppers.push(Some(running.stopper()));
                    let tx = tx.clone();
                    let waiter = std::thread::Builder::new()
                        .name(format!("d{}", names[i].0))
                        .spawn_scoped(s, move || {
                            let report = running.wait(timeout);
                            let _ = console.finish();
                            let _ = tx.send((i, Ok(report.end)));
                        });
                    if let Err(e) = waiter {
                        results[i] = Some(Err(BootError::Vmm(crate::Error::Os {
                            op: "starting the domain's thread",
                            source: e,
                        })));
                    }
                }
                Err(e) => {
                    stoppers.push(None);
                    results[i] = Some(Err(BootError::Vmm(e)));
                }
            }
        }
        drop(tx);
        for (i, result) in rx {
            if Some(i) == leader {
                for stopper in stoppers.iter().flatten() {
                    stopper.stop();
                }
            }
            results[i] = Some(result);
        }
        drop(vms);
    });
    results
        .into_iter()
        .zip(names)
        .enumerate()
        .map(|(i, (result, (domid, name)))| DomainOutcome {
            domid,
            name,
            leads: Some(i) == leader,
            result: result.unwrap_or_else(|| {
                Ok(VmEnd::Unhandled {
                    exit: "domain thread panicked".into(),
                    regs: None,
                })
            }),
        })
        .collect()
}

/// Checks every domain of `info`, builds them all, then runs them all
/// (see the module documentation). An `Err` means nothing ran.
pub fn launch(info: &BootInfo, opts: &LaunchOptions) -> Result<Vec<DomainOutcome>, LaunchError> {
    let builder = crate::boot::domain_builder();
    let plan = LaunchPlan::new(info, &builder)?;
    let built = build_all(plan, opts)?;
    Ok(run_all(built, opts.timeout))
}

/// Reads the tree and the modules and parses them into a [`BootInfo`].
pub fn load(args: &LaunchArgs) -> Result<BootInfo, LaunchError> {
    let dtb = Input::open_within(&args.config, MAX_TREE_SIZE, "a boot device tree may have")
        .map_err(|e| match e {
            InputError::Io { path, source } => LaunchError::Config { path, source },
            e => LaunchError::ConfigTooLarge(e),
        })?;
    let host_memory_limit = args.host_memory.unwrap_or_else(crate::host::memory_limit);
    let modules = args
        .domain
        .modules
        .iter()
        .enumerate()
        .map(|(i, m)| m.load(i, host_memory_limit))
        .collect::<Result<Vec<LoaderModule>, _>>()?;
    let host_memmap = host::memory_map();
    let cmdline = crate::cli::invocation();
    let mut info = pvh_bootdomains::parse(
        &dtb,
        BootSources::default()
            .modules(&modules)
            .numbering(if args.xen_module_numbering {
                ModuleNumbering::TreeIsZero
            } else {
                ModuleNumbering::FromZero
            })
            .dir(args.dir.as_deref())
            .host_memory_limit(host_memory_limit)
            .defaults(args.domain.defaults())
            .loader_name(host::LOADER_NAME)
            .cmdline(&cmdline)
            .host_memmap(&host_memmap),
    )?;
    crate::boot::fit_cmdlines_to_machine(&mut info);
    Ok(info)
}

/// Runs `pvh launch`; returns how `pvh` ends.
pub fn run(args: &LaunchArgs) -> crate::output::Exit {
    use crate::output::{self, Exit};
    let failed = |e: LaunchError| {
        crate::diag!("pvh: {e}");
        Exit::Status(e.status())
    };
    let info = match load(args) {
        Ok(info) => info,
        Err(e) => return failed(e),
    };
    let builder = crate::boot::domain_builder();
    let plan = match LaunchPlan::new(&info, &builder) {
        Ok(plan) => plan,
        Err(e) => return failed(e.into()),
    };
    if args.plan {
        return match output::print(plan.to_string()) {
            Ok(()) => Exit::Status(status::SUCCESS),
            Err(e) => e.exit(),
        };
    }
    let opts = LaunchOptions {
        kvm_device: args.kvm_device.clone(),
        timeout: args.timeout,
        console: ConsoleOut::stdout(),
    };
    let built = match build_all(plan, &opts) {
        Ok(built) => built,
        Err(e) => return failed(e),
    };
    // Every input is in guest RAM now: release the tree's and the modules'
    // mappings (their page-cache pages would count in pvh's RSS while the
    // domains run, as in `pvh boot`).
    drop(info);
    let outcomes = run_all(built, opts.timeout);
    // The reader of the consoles has gone: end quietly, like `boot`.
    if outcomes
        .iter()
        .any(|o| o.result.as_ref().is_ok_and(VmEnd::output_closed))
    {
        return Exit::OutputClosed;
    }
    Exit::Status(summarize(&outcomes, &mut io::stderr().lock()))
}

/// Writes one summary line per domain to `err` and returns pvh's status:
/// the leading (CONTROL) domain's, else the first failing domain's (0 when
/// all ended cleanly).
pub fn summarize(outcomes: &[DomainOutcome], err: &mut dyn Write) -> u8 {
    let leader = outcomes.iter().find(|o| o.leads);
    let mut first_failure = status::SUCCESS;
    for o in outcomes {
        let code = o.status();
        let name = esc(&o.name);
        let role = if o.leads { " [control domain]" } else { "" };
        let _ = match &o.result {
            Ok(end @ VmEnd::Destroyed { .. }) => match leader {
                Some(l) => writeln!(
                    err,
                    "pvh: d{} ({name}): {end}: the control domain d{} ended (status {code})",
                    o.domid, l.domid
                ),
                None => writeln!(err, "pvh: d{} ({name}): {end} (status {code})", o.domid),
            },
            Ok(end) => writeln!(
                err,
                "pvh: d{} ({name}){role}: {end} (status {code})",
                o.domid
            ),
            Err(e) => writeln!(err, "pvh: d{} ({name}){role}: {e} (status {code})", o.domid),
        };
        if first_failure == status::SUCCESS {
            first_failure = code;
        }
    }
    leader.map_or(first_failure, DomainOutcome::status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::console::Capture as Sink;

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
        let bare = Sink::default();
        let mut p = Prefixed::bare(ConsoleOut::new(Box::new(bare.clone())));
        p.write_all(b"owner\nlast").unwrap();
        p.finish().unwrap();
        assert_eq!(&*bare.0.lock().unwrap(), b"owner\nlast\n");
    }

    fn outcome(domid: u32, leads: bool, end: VmEnd) -> DomainOutcome {
        DomainOutcome {
            domid,
            name: format!("dom{domid}"),
            leads,
            result: Ok(end),
        }
    }

    #[test]
    fn the_control_domain_decides_the_status() {
        let mut out = Vec::new();
        // No leader: the first failing domain's status.
        let all = [
            outcome(1, false, VmEnd::ExitPort(0)),
            outcome(2, false, VmEnd::ExitPort(7)),
            outcome(3, false, VmEnd::ExitPort(9)),
        ];
        assert_eq!(summarize(&all, &mut out), 7);
        // A leader: its status, whatever the others did.
        let led = [
            outcome(1, false, VmEnd::ExitPort(7)),
            outcome(2, true, VmEnd::ExitPort(0)),
            outcome(3, false, VmEnd::Destroyed { regs: None }),
        ];
        let mut out = Vec::new();
        assert_eq!(summarize(&led, &mut out), 0);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("pvh: d2 (dom2) [control domain]: guest exited"),
            "{text}"
        );
        assert!(
            text.contains("pvh: d3 (dom3): destroyed by the VMM while running: the control domain d2 ended (status 0)"),
            "{text}"
        );
    }

    #[test]
    fn names_are_escaped_in_the_summary() {
        let o = DomainOutcome {
            domid: 1,
            name: "x\u{1b}[2J\npvh: fake".into(),
            leads: false,
            result: Ok(VmEnd::ExitPort(0)),
        };
        let mut out = Vec::new();
        summarize(&[o], &mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(
            text.starts_with("pvh: d1 (x\\x1b[2J\\x0apvh: fake): "),
            "{text}"
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
            "--boot-protocol",
            "linux",
            "--subarch",
            "xen",
            "--no-acpi",
            "--cpus",
            "4",
            "--xen-module-numbering",
        ])
        .unwrap();
        let a = cli.launch;
        assert_eq!(a.config, PathBuf::from("boot.dtb"));
        assert_eq!(a.domain.modules.len(), 2);
        assert_eq!(a.domain.modules[0].addr, Some(0x10_0000));
        assert_eq!(a.domain.modules[0].cmdline, "console=ttyS0");
        assert!(a.xen_module_numbering);
        let d = a.domain.defaults();
        assert_eq!(d.vcpus, 4);
        assert_eq!(d.boot.protocol, pvh_loader::BootProtocol::Linux64);
        assert_eq!(d.boot.subarch, pvh_loader::SubarchPolicy::Xen);
        assert!(!d.boot.acpi);
        assert_eq!(a.dir, Some(PathBuf::from("files")));
        assert_eq!(a.host_memory, Some(2 << 30));
        assert_eq!(a.timeout, Some(Duration::from_millis(1500)));
    }
}
