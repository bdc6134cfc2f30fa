//! `pvh`: boot PVH guests on KVM.
fn main() {
    eprintln!("pvh: not implemented yet");
    std::process::exit(2);
}
