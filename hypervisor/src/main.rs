//! `pvh`: boot PVH guests on KVM. See `docs/hypervisor.md`.

fn main() -> pvh_hypervisor::output::Exit {
    pvh_hypervisor::cli::main()
}
