//! The `pvh` command line. Each subcommand lives in its own module with its
//! own `Args` struct and `run` function; adding one (`wrap`, `inspect`,
//! `launch`) means a new module and a new [`Command`] variant.

pub mod boot;
pub mod inspect;
pub mod options;
pub mod size;
pub mod terminal;
pub mod wrap;

use std::ffi::OsString;
use std::sync::OnceLock;

use clap::{Parser, Subcommand};

use crate::outcome::status;
use crate::output::{Exit, OutputError};

/// `pvh`: boot PVH guests on KVM.
#[derive(Debug, Parser)]
#[command(name = "pvh", version, about, long_about = None)]
pub struct Cli {
    /// What to do; without one, `pvh` boots the built-in probe guest.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Boot a guest on KVM (default: the built-in probe guest).
    Boot(boot::BootArgs),
    /// Describe a boot image: PVH ELF notes, bzImage header, wrap payload.
    Inspect(inspect::InspectArgs),
    /// Wrap a bzImage (and initrd, cmdline) into a PVH ELF with the stub.
    Wrap(wrap::WrapArgs),
    /// Boot every domain a dom0less or hyperlaunch device tree describes.
    Launch(crate::launch::LaunchArgs),
}

/// `pvh boot ...` alone: the same program ([`Cli`]'s name, version and
/// about) with the `boot` subcommand only. Building clap's command is most
/// of the work of parsing; a boot, the command whose start-up time counts,
/// skips building the other subcommands' arguments. The help, the errors
/// and the parsed arguments are [`Cli`]'s (a test compares them).
#[derive(Debug, Parser)]
#[command(name = "pvh", version, about, long_about = None)]
struct BootCli {
    #[command(subcommand)]
    command: BootOnly,
}

/// [`Command`] with `boot` only (its doc comment is `boot`'s help line:
/// the same words as [`Command::Boot`]'s).
#[derive(Debug, Subcommand)]
enum BootOnly {
    /// Boot a guest on KVM (default: the built-in probe guest).
    Boot(boot::BootArgs),
}

/// Parses `pvh`'s arguments (the first is the program name) into the
/// subcommand to run; `pvh boot ...` with the `boot` subcommand alone
/// (the same help, errors and arguments as through the whole command).
pub fn parse(args: Vec<OsString>) -> Result<Option<Command>, clap::Error> {
    if args.get(1).is_some_and(|a| a == "boot") {
        return BootCli::try_parse_from(args).map(|cli| match cli.command {
            BootOnly::Boot(args) => Some(Command::Boot(args)),
        });
    }
    Cli::try_parse_from(args).map(|cli| cli.command)
}

/// pvh's own command line (the arguments after the program name, joined
/// by spaces), as [`main_with`] got it.
static INVOCATION: OnceLock<String> = OnceLock::new();

/// The hypervisor command line `pvh boot` and `pvh launch` record in
/// `BootInfo::cmdline`: the arguments `pvh` was started with.
pub fn invocation() -> String {
    INVOCATION.get().cloned().unwrap_or_default()
}

/// Parses the process arguments, runs the subcommand, and returns how
/// `pvh` ends: an exit status (documented in `docs/hypervisor.md`) or, when
/// the reader of its output has gone, death by `SIGPIPE` (see
/// [`crate::output`]); `fn main() -> Exit` does either.
pub fn main() -> Exit {
    ENDS_PROCESS.store(true, std::sync::atomic::Ordering::Relaxed);
    main_with(std::env::args_os())
}

/// Whether the process ends when the subcommand returns ([`main`], the
/// `pvh` binary), rather than the caller going on ([`main_with`], as tests
/// call it).
static ENDS_PROCESS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the process ends when the subcommand returns: then a VM that
/// has ended is left for the kernel to tear down with the process (see
/// [`boot`]'s end), as the floor program does, instead of deleting its
/// memory slots and unmapping its RAM first.
pub(crate) fn ends_process() -> bool {
    ENDS_PROCESS.load(std::sync::atomic::Ordering::Relaxed)
}

/// [`main`] with explicit arguments (the first is the program name).
pub fn main_with<I, T>(args: I) -> Exit
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let _ = INVOCATION.set(
        args.iter()
            .skip(1)
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" "),
    );
    let command = match parse(args) {
        Ok(command) => command,
        Err(e) if e.use_stderr() => {
            // A diagnostic: best effort, like every write to stderr.
            let _ = e.print();
            return Exit::Status(status::USAGE);
        }
        Err(e) => {
            // --help and --version: the product, on stdout.
            return match e.print() {
                Ok(()) => Exit::Status(status::SUCCESS),
                Err(err) => OutputError::write(crate::output::STDOUT, err).exit(),
            };
        }
    };
    match command {
        Some(Command::Boot(args)) => boot::run(&args),
        Some(Command::Inspect(args)) => inspect::run(&args),
        Some(Command::Wrap(args)) => wrap::run(&args),
        Some(Command::Launch(args)) => crate::launch::run(&args),
        None => boot::run(&boot::BootArgs::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pvh boot ...` parsed through [`BootCli`] and through the whole
    /// [`Cli`]: the same arguments, or the same error, word for word.
    #[test]
    fn boot_parses_alone_as_in_the_whole_command() {
        let cases: &[&[&str]] = &[
            &["boot"],
            &[
                "boot",
                "--kernel",
                "k.elf",
                "--memory",
                "64M",
                "--cmdline",
                "a b",
            ],
            &[
                "boot",
                "--initrd",
                "i",
                "--timeout",
                "3",
                "-v",
                "--serial",
                "out.txt",
            ],
            &["boot", "--help"],
            &["boot", "-h"],
            &["boot", "--version"],
            &["boot", "--bogus"],
            &["boot", "--kernl", "k"],
            &["boot", "--memory", "lots"],
            &["boot", "--kernel"],
            &["boot", "stray"],
            &["boot", "help"],
        ];
        for case in cases {
            let argv: Vec<OsString> = std::iter::once("pvh")
                .chain(case.iter().copied())
                .map(OsString::from)
                .collect();
            let whole = Cli::try_parse_from(argv.clone()).map(|c| c.command);
            let alone = parse(argv);
            match (whole, alone) {
                (Ok(a), Ok(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}"), "{case:?}"),
                (Err(a), Err(b)) => {
                    assert_eq!(a.kind(), b.kind(), "{case:?}");
                    assert_eq!(a.to_string(), b.to_string(), "{case:?}");
                }
                (a, b) => panic!("{case:?}: whole {a:?}, alone {b:?}"),
            }
        }
    }
}
