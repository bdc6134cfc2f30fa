//! The `pvh` command line. Each subcommand lives in its own module with its
//! own `Args` struct and `run` function; adding one (`wrap`, `inspect`,
//! `launch`) means a new module and a new [`Command`] variant.

pub mod boot;
pub mod options;
pub mod size;
pub mod terminal;

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
    Inspect(crate::inspect::InspectArgs),
    /// Wrap a bzImage (and initrd, cmdline) into a PVH ELF with the stub.
    Wrap(crate::wrap::WrapArgs),
    /// Boot every domain a dom0less or hyperlaunch device tree describes.
    Launch(crate::bootinfo::launch::LaunchArgs),
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
    main_with(std::env::args_os())
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
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
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
    match cli.command {
        Some(Command::Boot(args)) => boot::run(&args),
        Some(Command::Inspect(args)) => crate::inspect::run(&args),
        Some(Command::Wrap(args)) => crate::wrap::run(&args),
        Some(Command::Launch(args)) => crate::bootinfo::launch::run(&args),
        None => boot::run(&boot::BootArgs::default()),
    }
}
