//! The conformance matrix (`pvh_tests::conformance`, also printed by
//! `scripts/conformance.sh`): `pvh-probe` under pvh, QEMU microvm (qboot),
//! QEMU q35 (SeaBIOS's PVH option ROM), Xen 4.17's dom0 builder,
//! Firecracker and Cloud Hypervisor, with the same command line and two
//! modules. pvh must pass every rule, MUST and SHOULD; every other column
//! must be what `docs/conformance.md` records, so that a change in a
//! hypervisor (or in a rule) is noticed and written down.
//!
//! A hypervisor that is not here is skipped with a `skipped:` line (under
//! `CI=true` that fails: CI has QEMU, Xen, KVM and the peers).

use pvh_entry::conformance::Outcome;
use pvh_tests::conformance::{
    Hypervisor, RunError, Setup, documented, failures, markdown, notes, peers_dir, rules_markdown,
    section,
};
use pvh_tests::{nested, repo_root, require, scratch_dir};

#[test]
fn every_hypervisor_matches_docs_and_pvh_passes_every_rule() {
    let doc = std::fs::read_to_string(repo_root().join("docs/conformance.md"))
        .expect("read docs/conformance.md");
    let recorded = documented(&doc).expect("the matrix in docs/conformance.md");
    let dir = scratch_dir("conformance-matrix");
    let setup = Setup::new(&dir, nested::static_pvh());
    let mut columns = Vec::new();
    for hv in Hypervisor::ALL {
        match setup.run(hv) {
            Ok(c) => columns.push(c),
            Err(RunError::Unavailable(why)) => {
                require(false, &format!("{}: {why}", hv.name()));
            }
            Err(e) => panic!("{}: {e}", hv.name()),
        }
    }
    println!("{}\n{}", markdown(&columns), notes(&columns));

    let mut differences = Vec::new();
    for c in &columns {
        if c.hypervisor == Hypervisor::Pvh {
            assert_eq!(failures(c), Vec::<String>::new(), "pvh fails rules");
            for (rule, (outcome, note)) in &c.verdicts {
                assert_eq!(*outcome, Outcome::Pass, "pvh {rule}: {note}");
            }
        }
        for (rule, (outcome, note)) in &c.verdicts {
            let documented = recorded.get(&(rule.to_string(), c.hypervisor));
            if documented != Some(outcome) {
                differences.push(format!(
                    "{} {rule}: measured {} ({note}), docs/conformance.md: {:?}",
                    c.hypervisor.name(),
                    outcome.as_str(),
                    documented.map(|o| o.as_str())
                ));
            }
        }
    }
    assert!(
        differences.is_empty(),
        "the matrix changed; update docs/conformance.md if this is expected:\n{}",
        differences.join("\n")
    );
}

/// The versions docs/conformance.md names for the peers are the ones in the
/// peers' README: a new build of a peer is a new column to measure.
#[test]
fn docs_name_the_peer_versions_in_use() {
    let readme = peers_dir().join("README.md");
    let Ok(text) = std::fs::read_to_string(&readme) else {
        require(false, &format!("{} missing", readme.display()));
        return;
    };
    let doc = std::fs::read_to_string(repo_root().join("docs/conformance.md"))
        .expect("read docs/conformance.md");
    let mut seen = 0;
    for line in text.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | `firecracker` | v1.17.0-dev | source commit | notes |
        if let [_, name, version, source, ..] = cells.as_slice() {
            let name = name.trim_matches('`');
            if ["firecracker", "cloud-hypervisor"].contains(&name) {
                seen += 1;
                assert!(
                    doc.contains(version) && doc.contains(source),
                    "docs/conformance.md does not name {name} {version} ({source})"
                );
            }
        }
    }
    assert_eq!(seen, 2, "no version table in {}", readme.display());
}

/// docs/conformance.md lists the rules exactly as `pvh_entry::conformance`
/// defines them (regenerate with `scripts/conformance.sh --rules`).
#[test]
fn docs_list_every_rule_as_defined() {
    let doc = std::fs::read_to_string(repo_root().join("docs/conformance.md"))
        .expect("read docs/conformance.md");
    let listed = section(&doc, "rules").expect("a <!-- rules:begin --> section");
    assert_eq!(listed.trim(), rules_markdown().trim());
}
