//! `pvh`: boot PVH guests on KVM. See `docs/hypervisor.md`.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(pvh_hypervisor::cli::main())
}
