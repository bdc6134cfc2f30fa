//! `pvh wrap BZIMAGE [--initrd FILE] [--cmdline STR] [--subarch pc|xen] -o OUT`:
//! reads the inputs, wraps them with `pvh_loader::wrap` around the
//! built-in stub (or `--stub FILE`), and writes the PVH ELF.

use std::path::PathBuf;

use pvh_loader::input::{Input, InputError};
use pvh_loader::wrap::{WrapError, WrapOptions, Wrapped, open_image, wrap_with};

/// Arguments of `pvh wrap`.
#[derive(Debug, Clone, clap::Args)]
pub struct WrapArgs {
    /// The bzImage to wrap (e.g. /boot/vmlinuz-*).
    pub bzimage: PathBuf,
    /// An initrd to embed; the stub uses it when the hypervisor passes no
    /// module.
    #[arg(long)]
    pub initrd: Option<PathBuf>,
    /// A default kernel command line; the stub uses it when the
    /// hypervisor passes an empty one.
    #[arg(long)]
    pub cmdline: Option<String>,
    /// The output PVH ELF.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Use this stub ELF instead of the built-in one.
    #[arg(long)]
    pub stub: Option<PathBuf>,
    /// hardware_subarch the stub gives the kernel: `xen` also passes the
    /// start_info's address (the payload keeps this under any hypervisor).
    #[arg(long, value_enum, default_value_t = crate::cli::boot::SubarchArg::Pc)]
    pub subarch: crate::cli::boot::SubarchArg,
}

/// The built-in stub (`pvh_guests::STUB`).
pub fn builtin_stub() -> Option<&'static [u8]> {
    Some(pvh_guests::STUB)
}

fn read(path: &std::path::Path) -> Result<Input, WrapError> {
    open_image(path).map_err(|e| match e {
        InputError::Io { path, source } => WrapError::Io { path, source },
        e => WrapError::Input(e),
    })
}

/// Runs `pvh wrap` and returns how `pvh` ends: 0, `BAD_INPUT` for an
/// input that cannot be read or wrapped, `VMM_ERROR` when a piped input
/// cannot be spooled to a temporary file, `OUTPUT` when `-o` cannot be
/// created or written (nothing is created before the inputs are checked).
pub fn run(args: &WrapArgs) -> crate::output::Exit {
    use crate::output::{self, Exit};
    let w = match run_inner(args) {
        Ok(w) => w,
        Err(e) => {
            crate::diag!("pvh wrap: {e}");
            return Exit::Status(match &e {
                WrapError::Input(e) => crate::outcome::status::for_input(e),
                _ => crate::outcome::status::BAD_INPUT,
            });
        }
    };
    if let Err(e) = output::write_file(&args.output, &w.elf) {
        return e.exit();
    }
    let l = w.layout;
    let summary = format!(
        "pvh wrap: wrote {} ({} bytes): kernel at {:#x} (code {:#x}){}\n",
        args.output.display(),
        w.elf.len(),
        l.kernel,
        l.kernel_code,
        l.initrd
            .map_or(String::new(), |a| format!(", initrd at {a:#x}"))
    );
    match output::print(summary) {
        Ok(()) => Exit::Status(0),
        Err(e) => e.exit(),
    }
}

/// Reads the inputs and wraps them (writes nothing).
fn run_inner(args: &WrapArgs) -> Result<Wrapped, WrapError> {
    let stub_file;
    let stub: &[u8] = match &args.stub {
        Some(p) => {
            stub_file = read(p)?;
            &stub_file
        }
        None => builtin_stub().ok_or(WrapError::NoStub)?,
    };
    let kernel = read(&args.bzimage)?;
    let initrd = args.initrd.as_deref().map(read).transpose()?;
    let mut options = WrapOptions::new().subarch(args.subarch.policy());
    if let Some(initrd) = &initrd {
        options = options.initrd(initrd);
    }
    if let Some(cmdline) = &args.cmdline {
        options = options.cmdline(cmdline);
    }
    wrap_with(stub, &kernel, &options)
}
