//! `pvh-conformance`: boots `pvh-probe` under every PVH hypervisor here
//! (pvh, QEMU microvm and q35, Xen 4.17, Firecracker, Cloud Hypervisor)
//! with the same command line and two modules, and prints the matrix of
//! `pvh_entry::conformance` rules x hypervisors as Markdown, then the note
//! of every cell that is not PASS. `scripts/conformance.sh` runs it.
//!
//! `--rules` prints only the table of rules (id, level, source,
//! requirement) that `docs/conformance.md` carries.
//!
//! `--check` also compares the matrix with the one `docs/conformance.md`
//! records and exits 1 on any difference. A hypervisor that is not
//! available is left out with a `skipped:` line on stderr (under `CI=true`,
//! that is an error).

use pvh_tests::conformance::{
    Hypervisor, RunError, Setup, documented, markdown, notes, rules_markdown,
};
use pvh_tests::{nested, repo_root, scratch_dir, under_ci};
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--rules") {
        print!("{}", rules_markdown());
        return ExitCode::SUCCESS;
    }
    let check = args.iter().any(|a| a == "--check");
    let dir = scratch_dir("conformance");
    let setup = Setup::new(&dir, nested::static_pvh());
    let mut columns = Vec::new();
    for hv in Hypervisor::ALL {
        let start = Instant::now();
        match setup.run(hv) {
            Ok(c) => {
                eprintln!("conformance: {} done in {:.1?}", hv.name(), start.elapsed());
                columns.push(c);
            }
            Err(RunError::Unavailable(why)) if !under_ci() => {
                eprintln!("skipped: {}: {why}", hv.name());
            }
            Err(e) => {
                eprintln!("conformance: {}: {e}", hv.name());
                return ExitCode::FAILURE;
            }
        }
    }
    println!("{}", markdown(&columns));
    print!("{}", notes(&columns));
    eprintln!("conformance: logs in {}", dir.display());
    if !check {
        return ExitCode::SUCCESS;
    }
    let doc = std::fs::read_to_string(repo_root().join("docs/conformance.md"))
        .expect("read docs/conformance.md");
    let recorded = match documented(&doc) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("conformance: docs/conformance.md: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut differ = 0;
    for c in &columns {
        for (rule, (outcome, note)) in &c.verdicts {
            let key = (rule.to_string(), c.hypervisor);
            if recorded.get(&key) != Some(outcome) {
                differ += 1;
                eprintln!(
                    "conformance: {} {rule}: measured {} ({note}), docs/conformance.md says {:?}",
                    c.hypervisor.name(),
                    outcome.as_str(),
                    recorded.get(&key).map(|o| o.as_str())
                );
            }
        }
    }
    if differ > 0 {
        return ExitCode::FAILURE;
    }
    eprintln!("conformance: the matrix matches docs/conformance.md");
    ExitCode::SUCCESS
}
