//! `pvh inspect IMAGE [--json]`: prints the report `pvh_loader::inspect`
//! makes, as text or JSON.

use std::path::PathBuf;

use pvh_loader::inspect::inspect_file;

/// Arguments of `pvh inspect`.
#[derive(Debug, Clone, clap::Args)]
pub struct InspectArgs {
    /// The image: a PVH ELF (vmlinux, a `pvh wrap` output, a Rust guest)
    /// or a bzImage.
    pub image: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs `pvh inspect`: prints the report, returns how `pvh` ends: 0 for
/// a bootable image, `BAD_INPUT` (as `pvh boot` would return) for one that
/// is not or a file that cannot be read; output errors as
/// [`crate::output`] says.
pub fn run(args: &InspectArgs) -> crate::output::Exit {
    match inspect_file(&args.image) {
        Ok(report) => {
            let text = if args.json {
                report.to_json() + "\n"
            } else {
                report.to_text()
            };
            if let Err(e) = crate::output::print(text) {
                return e.exit();
            }
            crate::output::Exit::Status(if report.bootable {
                0
            } else {
                crate::outcome::status::BAD_INPUT
            })
        }
        Err(e) => {
            crate::diag!("pvh inspect: {e}");
            crate::output::Exit::Status(crate::outcome::status::BAD_INPUT)
        }
    }
}
