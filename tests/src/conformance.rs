//! The conformance matrix: `pvh-probe` booted by every PVH hypervisor
//! available here with the same command line and modules, its
//! `verdict.<rule>=` lines (from `pvh_entry::conformance`) read back into
//! a rules x hypervisors table.
//!
//! `scripts/conformance.sh` prints the table; `tests/tests/conformance_matrix.rs`
//! runs it and holds each column to what `docs/conformance.md` records.

use crate::{artifacts, have, repo_root, run_with_watchdog};
use pvh_entry::conformance::{Level, Outcome, RULES, parse_verdict};
use pvh_guests::report::Report;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The command line every hypervisor passes (no commas: Xen's module
/// strings are split at commas by QEMU's `-initrd`).
pub const CMDLINE: &str = "console=ttyS0 pvh.conformance=1 x=y";
/// The two modules: (file name, contents length, command line where the
/// hypervisor can pass one).
pub const MODULES: [(&str, usize, &str); 2] = [
    ("module0.bin", 5000, "role=initrd"),
    ("module1.bin", 3000, "role=extra"),
];
/// Guest RAM, where the hypervisor takes a size (Xen's dom0 gets
/// `dom0_mem=` of it).
pub const MEMORY_MIB: u32 = 128;
/// vCPUs given to every hypervisor.
pub const CPUS: u32 = 2;
/// The deadline for one run: runs take a few seconds (Xen under TCG the
/// longest); this bounds a hang, it is not a speed check.
pub const DEADLINE: Duration = Duration::from_secs(180);

/// A PVH hypervisor the matrix runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hypervisor {
    /// `pvh boot` on this machine's KVM.
    Pvh,
    /// QEMU `-M microvm`: qboot builds the start_info (TCG).
    QemuMicrovm,
    /// QEMU `-M q35`: SeaBIOS's `pvh.bin` option ROM builds it (TCG).
    QemuQ35,
    /// Xen 4.17's PVH dom0 builder, Xen under QEMU TCG.
    Xen,
    /// Firecracker from the peers directory, on this machine's KVM.
    Firecracker,
    /// Cloud Hypervisor from the peers directory, on this machine's KVM.
    CloudHypervisor,
}

impl Hypervisor {
    /// Every hypervisor, in matrix column order.
    pub const ALL: [Self; 6] = [
        Self::Pvh,
        Self::QemuMicrovm,
        Self::QemuQ35,
        Self::Xen,
        Self::Firecracker,
        Self::CloudHypervisor,
    ];

    /// The column name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Pvh => "pvh",
            Self::QemuMicrovm => "qemu-microvm",
            Self::QemuQ35 => "qemu-q35",
            Self::Xen => "xen-4.17",
            Self::Firecracker => "firecracker",
            Self::CloudHypervisor => "cloud-hypervisor",
        }
    }

    /// The hypervisor a column name names.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|h| h.name() == name)
    }
}

/// Where the peer VMMs are: `$PVH_PEERS`, else `../shared/peers` next to
/// the repository (relative to it, whatever the current directory).
pub fn peers_dir() -> PathBuf {
    match std::env::var_os("PVH_PEERS") {
        Some(dir) => PathBuf::from(dir),
        None => repo_root().join("../shared/peers"),
    }
}

/// Why a hypervisor produced no column.
#[derive(Debug)]
pub enum RunError {
    /// A program or artifact it needs is not here.
    Unavailable(String),
    /// It ran, but the probe did not finish.
    Failed {
        /// What went wrong.
        why: String,
        /// Everything it printed.
        output: String,
    },
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unavailable(why) => write!(f, "unavailable: {why}"),
            Self::Failed { why, output } => write!(f, "{why}\n--- output ---\n{output}"),
        }
    }
}

/// One hypervisor's verdict.
#[derive(Debug, Clone)]
pub struct Column {
    /// Which.
    pub hypervisor: Hypervisor,
    /// Every `key=value` line the probe printed.
    pub report: Report,
    /// Each rule's outcome and note, by rule id.
    pub verdicts: BTreeMap<&'static str, (Outcome, String)>,
}

/// Inputs shared by every run: the probe, the two module files, a scratch
/// directory, and the `pvh` binary to use.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Scratch directory (modules and config files are written here).
    pub dir: PathBuf,
    /// The probe ELF.
    pub probe: PathBuf,
    /// The module files.
    pub modules: [PathBuf; 2],
    /// The `pvh` binary.
    pub pvh: PathBuf,
}

impl Setup {
    /// Writes the modules (deterministic contents) into `dir`.
    pub fn new(dir: &Path, pvh: PathBuf) -> Self {
        std::fs::create_dir_all(dir).expect("create the scratch directory");
        let modules = MODULES.map(|(name, len, _)| {
            let path = dir.join(name);
            let bytes: Vec<u8> = (0..len as u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect();
            std::fs::write(&path, bytes).expect("write a module file");
            path
        });
        Self {
            dir: dir.to_path_buf(),
            probe: pvh_guests::probe_path().to_path_buf(),
            modules,
            pvh,
        }
    }

    fn command(&self, hv: Hypervisor) -> Result<Command, RunError> {
        let unavailable = |what: String| Err(RunError::Unavailable(what));
        let [m0, m1] = &self.modules;
        let qemu_machine = |machine: &str| -> Result<Command, RunError> {
            if !have("qemu-system-x86_64") {
                return unavailable("qemu-system-x86_64 not installed (scripts/setup.sh)".into());
            }
            let mut c = Command::new("qemu-system-x86_64");
            c.args(["-M", &format!("{machine},accel=tcg"), "-cpu", "max"])
                .args(["-m", &MEMORY_MIB.to_string(), "-smp", &CPUS.to_string()])
                .arg("-kernel")
                .arg(&self.probe)
                .arg("-initrd")
                .arg(m0)
                .args(["-append", CMDLINE])
                .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=4"])
                .args([
                    "-nographic",
                    "-nodefaults",
                    "-serial",
                    "stdio",
                    "-no-reboot",
                ]);
            Ok(c)
        };
        let peer = |name: &str| -> Result<PathBuf, RunError> {
            let path = peers_dir().join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(RunError::Unavailable(format!(
                    "{} missing (set PVH_PEERS to the peers directory)",
                    path.display()
                )))
            }
        };
        let kvm = matches!(
            hv,
            Hypervisor::Pvh | Hypervisor::Firecracker | Hypervisor::CloudHypervisor
        );
        if kvm && !Path::new("/dev/kvm").exists() {
            return unavailable("/dev/kvm missing".into());
        }
        Ok(match hv {
            Hypervisor::Pvh => {
                let mut c = Command::new(&self.pvh);
                c.arg("boot")
                    .arg("--kernel")
                    .arg(&self.probe)
                    .arg("--module")
                    .arg(format!("{},{}", m0.display(), MODULES[0].2))
                    .arg("--module")
                    .arg(format!("{},{}", m1.display(), MODULES[1].2))
                    .args(["--cmdline", CMDLINE])
                    .args(["--memory", &format!("{MEMORY_MIB}M")])
                    .args(["--cpus", &CPUS.to_string()])
                    .args(["--timeout", "120"]);
                c
            }
            Hypervisor::QemuMicrovm => qemu_machine("microvm")?,
            Hypervisor::QemuQ35 => qemu_machine("q35")?,
            Hypervisor::Xen => {
                let xen = artifacts().join("xen");
                if !have("qemu-system-x86_64") || !xen.is_file() {
                    return unavailable(format!(
                        "qemu-system-x86_64 or {} missing (scripts/setup.sh, scripts/fetch-artifacts.sh)",
                        xen.display()
                    ));
                }
                // QEMU splits -initrd at commas and each module string at
                // its first space.
                let paths = [&self.probe, m0, m1].map(|p| p.display().to_string());
                if let Some(p) = paths.iter().find(|p| p.contains([',', ' '])) {
                    return unavailable(format!("a path unusable in -initrd: {p}"));
                }
                let modules = format!(
                    "{} {CMDLINE},{} {},{} {}",
                    paths[0], paths[1], MODULES[0].2, paths[2], MODULES[1].2
                );
                crate::xen_under_qemu(&xen, "max", &modules, MEMORY_MIB)
            }
            Hypervisor::Firecracker => {
                let fc = peer("firecracker")?;
                let config = serde_json::json!({
                    "boot-source": {
                        "kernel_image_path": self.probe,
                        "boot_args": CMDLINE,
                        "initrd_path": m0,
                    },
                    "drives": [],
                    "machine-config": { "vcpu_count": CPUS, "mem_size_mib": MEMORY_MIB },
                });
                let path = self.dir.join("firecracker.json");
                std::fs::write(&path, config.to_string()).expect("write firecracker.json");
                let mut c = Command::new(fc);
                // The probe resets the machine when done (i8042), which
                // ends Firecracker.
                c.arg("--no-api").arg("--config-file").arg(path);
                c
            }
            Hypervisor::CloudHypervisor => {
                let ch = peer("cloud-hypervisor")?;
                let mut c = Command::new(ch);
                // The probe powers off through the FADT's sleep control
                // register when done, which ends Cloud Hypervisor.
                c.arg("--kernel")
                    .arg(&self.probe)
                    .arg("--initramfs")
                    .arg(m0)
                    .args(["--cmdline", CMDLINE])
                    .args(["--serial", "tty", "--console", "off"])
                    .args(["--memory", &format!("size={MEMORY_MIB}M")])
                    .args(["--cpus", &format!("boot={CPUS}")]);
                c
            }
        })
    }

    /// Boots the probe on `hv` and reads its verdict.
    pub fn run(&self, hv: Hypervisor) -> Result<Column, RunError> {
        let mut cmd = self.command(hv)?;
        let run = run_with_watchdog(&mut cmd, DEADLINE);
        let output = run.output.replace('\r', "");
        std::fs::write(self.dir.join(format!("{}.log", hv.name())), &output)
            .expect("save the output");
        let failed = |why: String| RunError::Failed {
            why,
            output: output.clone(),
        };
        let report = Report::parse(&output).map_err(|e| failed(e.to_string()))?;
        if !report.done() {
            let end = match run.status {
                Some(s) => format!("exited with {s}"),
                None => format!("killed after {DEADLINE:?}"),
            };
            return Err(failed(format!("{}: no probe.done=1 ({end})", hv.name())));
        }
        let mut verdicts = BTreeMap::new();
        for rule in RULES {
            let key = format!("verdict.{}", rule.id);
            let value = report
                .get(&key)
                .ok_or_else(|| failed(format!("{}: no {key} line", hv.name())))?;
            let (outcome, level, note) = parse_verdict(value)
                .ok_or_else(|| failed(format!("{}: unreadable {key}={value}", hv.name())))?;
            if level != rule.level {
                return Err(failed(format!("{}: {key} has level {level:?}", hv.name())));
            }
            verdicts.insert(rule.id, (outcome, note.to_owned()));
        }
        Ok(Column {
            hypervisor: hv,
            report,
            verdicts,
        })
    }
}

/// Facts the matrix shows under the rules: what each hypervisor passed.
pub const FACTS: [(&str, &str); 8] = [
    ("start_info version", "version"),
    ("flags", "flags"),
    ("modules passed (of 2)", "nr_modules"),
    ("module 0 command line", "module.0.cmdline"),
    ("command line", "cmdline"),
    ("memory map from", "memmap.source"),
    ("rsdp_paddr", "rsdp_paddr"),
    ("entry CS/DS/TR selectors", "entry.selectors"),
];

/// A fact's cell: the probe's value, shortened.
fn fact(column: &Column, key: &str) -> String {
    let value = column.report.get(key).unwrap_or("-");
    match key {
        "cmdline" if value == CMDLINE => "as given".into(),
        "cmdline" => format!("`{value}`"),
        "module.0.cmdline" if value != "-" => "yes".into(),
        "entry.selectors" => {
            let pick = |reg: &str| {
                value
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(&format!("{reg}=")))
                    .unwrap_or("?")
                    .to_owned()
            };
            format!("{}/{}/{}", pick("cs"), pick("ds"), pick("tr"))
        }
        _ => value.to_owned(),
    }
}

/// The measured matrix as the Markdown table `docs/conformance.md`
/// records (rules, then facts), followed by every FAIL and N/A note.
pub fn markdown(columns: &[Column]) -> String {
    let mut s = String::new();
    s.push_str("| rule | level |");
    for c in columns {
        let _ = write!(s, " {} |", c.hypervisor.name());
    }
    s.push_str("\n|---|---|");
    s.push_str(&"---|".repeat(columns.len()));
    s.push('\n');
    for rule in RULES {
        let _ = write!(s, "| `{}` | {} |", rule.id, rule.level.as_str());
        for c in columns {
            let cell = c.verdicts.get(rule.id).map_or("?", |(o, _)| o.as_str());
            let _ = write!(s, " {cell} |");
        }
        s.push('\n');
    }
    for (label, key) in FACTS {
        let _ = write!(s, "| {label} | |");
        for c in columns {
            let _ = write!(s, " {} |", fact(c, key).replace('|', "\\|"));
        }
        s.push('\n');
    }
    s
}

/// Every non-PASS cell with its note, one line each.
pub fn notes(columns: &[Column]) -> String {
    let mut s = String::new();
    for c in columns {
        for rule in RULES {
            if let Some((outcome, note)) = c.verdicts.get(rule.id) {
                if *outcome != Outcome::Pass {
                    let _ = writeln!(
                        s,
                        "- {} `{}` {}: {}",
                        c.hypervisor.name(),
                        rule.id,
                        outcome.as_str(),
                        note
                    );
                }
            }
        }
    }
    s
}

/// Every rule as a Markdown table (id, level, source, requirement): what
/// `docs/conformance.md` shows between `<!-- rules:begin -->` and
/// `<!-- rules:end -->`, generated from `pvh_entry::conformance::RULES` so
/// the two cannot drift apart.
pub fn rules_markdown() -> String {
    let mut s = String::from("| rule | level | source | requirement |\n|---|---|---|---|\n");
    for r in RULES {
        let _ = writeln!(
            s,
            "| `{}` | {} | {} | {} |",
            r.id,
            r.level.as_str(),
            r.source,
            r.requirement
        );
    }
    s
}

/// The text of `doc` between `<!-- NAME:begin -->` and `<!-- NAME:end -->`.
pub fn section<'a>(doc: &'a str, name: &str) -> Option<&'a str> {
    let (_, rest) = doc.split_once(&format!("<!-- {name}:begin -->"))?;
    let (body, _) = rest.split_once(&format!("<!-- {name}:end -->"))?;
    Some(body)
}

/// The rule rows of the matrix in `doc` (a Markdown table whose header
/// names the hypervisor columns, between `<!-- matrix:begin -->` and
/// `<!-- matrix:end -->`): (rule, hypervisor) -> outcome.
pub fn documented(doc: &str) -> Result<BTreeMap<(String, Hypervisor), Outcome>, String> {
    let body =
        section(doc, "matrix").ok_or("no <!-- matrix:begin --> ... <!-- matrix:end --> section")?;
    let cells = |line: &str| -> Vec<String> {
        line.trim()
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_owned())
            .collect()
    };
    let mut lines = body.lines().filter(|l| l.trim_start().starts_with('|'));
    let header = cells(lines.next().ok_or("empty matrix table")?);
    let columns: Vec<Hypervisor> = header
        .iter()
        .skip(2)
        .map(|h| Hypervisor::from_name(h).ok_or(format!("unknown column {h:?}")))
        .collect::<Result<_, _>>()?;
    let mut out = BTreeMap::new();
    for line in lines {
        let row = cells(line);
        let Some(id) = row
            .first()
            .and_then(|r| r.strip_prefix('`')?.strip_suffix('`'))
        else {
            continue; // separator or fact row
        };
        let rule = RULES
            .iter()
            .find(|r| r.id == id)
            .ok_or(format!("unknown rule {id}"))?;
        if row.get(1).map(String::as_str) != Some(rule.level.as_str()) {
            return Err(format!("{id}: level is not {}", rule.level.as_str()));
        }
        for (hv, cell) in columns.iter().zip(row.iter().skip(2)) {
            let outcome =
                Outcome::parse(cell).ok_or(format!("{id}/{}: cell {cell:?}", hv.name()))?;
            out.insert((id.to_owned(), *hv), outcome);
        }
    }
    Ok(out)
}

/// Whether a column passes every rule that applies, MUST and SHOULD:
/// the failures, if any.
pub fn failures(column: &Column) -> Vec<String> {
    RULES
        .iter()
        .filter_map(|r| {
            let (outcome, note) = column.verdicts.get(r.id)?;
            (*outcome == Outcome::Fail).then(|| {
                let level = if r.level == Level::Must {
                    "MUST"
                } else {
                    "SHOULD"
                };
                format!("{} {level}: {note}", r.id)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_tables_are_read_by_column_name() {
        let doc = "text\n<!-- matrix:begin -->\n| rule | level | pvh | firecracker |\n|---|---|---|---|\n\
                   | `entry.cr0` | MUST | PASS | PASS |\n| `memmap.sorted` | SHOULD | PASS | FAIL |\n\
                   | flags | | 0x0 | 0x0 |\n<!-- matrix:end -->\n";
        let m = documented(doc).unwrap();
        assert_eq!(
            m.get(&("memmap.sorted".into(), Hypervisor::Firecracker)),
            Some(&Outcome::Fail)
        );
        assert_eq!(m.len(), 4);
        assert!(documented("no table").is_err());
        let wrong_level = doc.replace("| `entry.cr0` | MUST", "| `entry.cr0` | SHOULD");
        assert!(documented(&wrong_level).unwrap_err().contains("level"));
        let unknown = doc.replace("firecracker", "bochs");
        assert!(documented(&unknown).unwrap_err().contains("bochs"));
    }
}
