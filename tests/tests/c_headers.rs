//! The Rust ABI types against the real C headers.
//!
//! `tests/c/abi_layout.c` is compiled with the system C compiler against
//! Linux's `<asm/bootparam.h>` (Debian `linux-libc-dev`), Xen's
//! `<xen/arch-x86/hvm/start_info.h>` (Debian `libxen-dev`) and Linux's
//! kernel-internal `mpspec_def.h` (the MP table, which scripts/setup.sh
//! takes from Debian's `linux-headers-*-common`) and prints the
//! size of each structure, the offset and size of each field, and the
//! constants. The test asserts that the two sides describe the same layout,
//! field by field, in both directions: a field missing on either side, an
//! extra field, a different offset or size, or a different constant fails.
//!
//! Completeness guards on both sides, so that a field forgotten in a list
//! cannot hide a difference:
//! - Rust: each list is also a struct pattern without `..`, so leaving out a
//!   field of the Rust struct does not compile.
//! - C: the printed fields of each struct must tile it (no gap, no overlap,
//!   ending at `sizeof`); every structure compared here has no implicit
//!   padding, so a field left out of the C program shows up as a gap.
//!
//! Without `cc` or the headers the test prints `skipped: <reason>`; with the
//! environment variable `CI` set, that is a failure instead (scripts/setup.sh
//! installs gcc, linux-libc-dev and libxen-dev).

use pvh_acpi::mptable::{
    self, MpcBus, MpcCpu, MpcIntsrc, MpcIoapic, MpcLintsrc, MpcTable, MpfIntel,
};
use pvh_bootparams::{
    BootParams, E820_MAX_ENTRIES_ZEROPAGE, E820Entry, LoadFlags, SetupData, SetupDataType,
    SetupHeader, XLoadFlags,
};
use pvh_entry::{MemmapEntry, MemmapType, ModlistEntry, START_INFO_MAGIC, StartInfo};
use std::collections::BTreeMap;
use std::mem::{offset_of, size_of, size_of_val};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use zerocopy::FromZeros;

/// One field: its C name, offset and size.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Field {
    name: String,
    offset: usize,
    size: usize,
}

/// One structure: its C name, size and fields in declaration order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Layout {
    size: Option<usize>,
    fields: Vec<Field>,
}

/// What one side says: layouts by C struct name, constants by C name.
#[derive(Debug, Clone, Default)]
struct Abi {
    structs: BTreeMap<String, Layout>,
    consts: BTreeMap<String, u64>,
}

/// A Rust field name as C spells it: a trailing `_` escapes a Rust keyword
/// (`type_` is C's `type`); leading underscores (`_pad2`) are C's too.
fn c_name(rust: &str) -> String {
    rust.strip_suffix('_').unwrap_or(rust).to_owned()
}

/// The layout of a Rust struct, listing every field. The struct pattern
/// makes the list exhaustive at compile time.
macro_rules! rust_layout {
    ($abi:expr, $c:literal, $ty:ident { $($f:ident),* $(,)? }) => {{
        #[allow(clippy::let_unit_value)]
        let _exhaustive = |v: $ty| {
            let $ty { $($f: _),* } = v;
        };
        let v = <$ty as FromZeros>::new_zeroed();
        let fields = vec![$(Field {
            name: c_name(stringify!($f)),
            offset: offset_of!($ty, $f),
            // By value: the packed structs hand out no references to fields.
            size: size_of_val(&{ v.$f }),
        }),*];
        $abi.structs.insert(
            $c.to_owned(),
            Layout { size: Some(size_of::<$ty>()), fields },
        );
    }};
}

/// The Rust side of the ABI.
fn rust_abi() -> Abi {
    let mut abi = Abi::default();
    rust_layout!(
        abi,
        "boot_params",
        BootParams {
            screen_info,
            apm_bios_info,
            _pad2,
            tboot_addr,
            ist_info,
            acpi_rsdp_addr,
            _pad3,
            hd0_info,
            hd1_info,
            sys_desc_table,
            olpc_ofw_header,
            ext_ramdisk_image,
            ext_ramdisk_size,
            ext_cmd_line_ptr,
            _pad4,
            cc_blob_address,
            edid_info,
            efi_info,
            alt_mem_k,
            scratch,
            e820_entries,
            eddbuf_entries,
            edd_mbr_sig_buf_entries,
            kbd_status,
            secure_boot,
            _pad5,
            sentinel,
            _pad6,
            hdr,
            _pad7,
            edd_mbr_sig_buffer,
            e820_table,
            _pad8,
            eddbuf,
            _pad9,
        }
    );
    rust_layout!(
        abi,
        "setup_header",
        SetupHeader {
            setup_sects,
            root_flags,
            syssize,
            ram_size,
            vid_mode,
            root_dev,
            boot_flag,
            jump,
            header,
            version,
            realmode_swtch,
            start_sys_seg,
            kernel_version,
            type_of_loader,
            loadflags,
            setup_move_size,
            code32_start,
            ramdisk_image,
            ramdisk_size,
            bootsect_kludge,
            heap_end_ptr,
            ext_loader_ver,
            ext_loader_type,
            cmd_line_ptr,
            initrd_addr_max,
            kernel_alignment,
            relocatable_kernel,
            min_alignment,
            xloadflags,
            cmdline_size,
            hardware_subarch,
            hardware_subarch_data,
            payload_offset,
            payload_length,
            setup_data,
            pref_address,
            init_size,
            handover_offset,
            kernel_info_offset,
        }
    );
    rust_layout!(abi, "boot_e820_entry", E820Entry { addr, size, type_ });
    rust_layout!(abi, "setup_data", SetupData { next, type_, len });
    rust_layout!(
        abi,
        "hvm_start_info",
        StartInfo {
            magic,
            version,
            flags,
            nr_modules,
            modlist_paddr,
            cmdline_paddr,
            rsdp_paddr,
            memmap_paddr,
            memmap_entries,
            reserved,
        }
    );
    rust_layout!(
        abi,
        "hvm_modlist_entry",
        ModlistEntry {
            paddr,
            size,
            cmdline_paddr,
            reserved
        }
    );
    rust_layout!(
        abi,
        "hvm_memmap_table_entry",
        MemmapEntry {
            addr,
            size,
            type_,
            reserved
        }
    );

    rust_layout!(
        abi,
        "mpf_intel",
        MpfIntel {
            signature,
            physptr,
            length,
            specification,
            checksum,
            feature1,
            feature2,
            feature3,
            feature4,
            feature5,
        }
    );
    rust_layout!(
        abi,
        "mpc_table",
        MpcTable {
            signature,
            length,
            spec,
            checksum,
            oem,
            productid,
            oemptr,
            oemsize,
            oemcount,
            lapic,
            reserved,
        }
    );
    rust_layout!(
        abi,
        "mpc_cpu",
        MpcCpu {
            type_,
            apicid,
            apicver,
            cpuflag,
            cpufeature,
            featureflag,
            reserved,
        }
    );
    rust_layout!(
        abi,
        "mpc_bus",
        MpcBus {
            type_,
            busid,
            bustype,
        }
    );
    rust_layout!(
        abi,
        "mpc_ioapic",
        MpcIoapic {
            type_,
            apicid,
            apicver,
            flags,
            apicaddr,
        }
    );
    rust_layout!(
        abi,
        "mpc_intsrc",
        MpcIntsrc {
            type_,
            irqtype,
            irqflag,
            srcbus,
            srcbusirq,
            dstapic,
            dstirq,
        }
    );
    rust_layout!(
        abi,
        "mpc_lintsrc",
        MpcLintsrc {
            type_,
            irqtype,
            irqflag,
            srcbusid,
            srcbusirq,
            destapic,
            destapiclint,
        }
    );

    let consts: &[(&str, u64)] = &[
        (
            "SMP_MAGIC_IDENT",
            u32::from_le_bytes(mptable::MPF_SIGNATURE).into(),
        ),
        ("MP_PROCESSOR", mptable::MP_PROCESSOR.into()),
        ("MP_BUS", mptable::MP_BUS.into()),
        ("MP_IOAPIC", mptable::MP_IOAPIC.into()),
        ("MP_INTSRC", mptable::MP_INTSRC.into()),
        ("MP_LINTSRC", mptable::MP_LINTSRC.into()),
        ("CPU_ENABLED", mptable::CPU_ENABLED.into()),
        ("CPU_BOOTPROCESSOR", mptable::CPU_BOOTPROCESSOR.into()),
        ("MPC_APIC_USABLE", mptable::MPC_APIC_USABLE.into()),
        ("mp_INT", mptable::MP_INT.into()),
        ("mp_NMI", mptable::MP_NMI.into()),
        ("mp_ExtINT", mptable::MP_EXTINT.into()),
        ("MP_APIC_ALL", mptable::MP_APIC_ALL.into()),
        ("XEN_HVM_START_MAGIC_VALUE", START_INFO_MAGIC.into()),
        ("XEN_HVM_MEMMAP_TYPE_RAM", MemmapType::RAM.0.into()),
        (
            "XEN_HVM_MEMMAP_TYPE_RESERVED",
            MemmapType::RESERVED.0.into(),
        ),
        ("XEN_HVM_MEMMAP_TYPE_ACPI", MemmapType::ACPI.0.into()),
        ("XEN_HVM_MEMMAP_TYPE_NVS", MemmapType::NVS.0.into()),
        (
            "XEN_HVM_MEMMAP_TYPE_UNUSABLE",
            MemmapType::UNUSABLE.0.into(),
        ),
        (
            "XEN_HVM_MEMMAP_TYPE_DISABLED",
            MemmapType::DISABLED.0.into(),
        ),
        ("XEN_HVM_MEMMAP_TYPE_PMEM", MemmapType::PMEM.0.into()),
        (
            "E820_MAX_ENTRIES_ZEROPAGE",
            E820_MAX_ENTRIES_ZEROPAGE as u64,
        ),
        ("SETUP_NONE", SetupDataType::NONE.0.into()),
        ("SETUP_E820_EXT", SetupDataType::E820_EXT.0.into()),
        ("SETUP_DTB", SetupDataType::DTB.0.into()),
        ("SETUP_PCI", SetupDataType::PCI.0.into()),
        ("SETUP_EFI", SetupDataType::EFI.0.into()),
        (
            "SETUP_APPLE_PROPERTIES",
            SetupDataType::APPLE_PROPERTIES.0.into(),
        ),
        ("SETUP_JAILHOUSE", SetupDataType::JAILHOUSE.0.into()),
        ("SETUP_CC_BLOB", SetupDataType::CC_BLOB.0.into()),
        ("SETUP_IMA", SetupDataType::IMA.0.into()),
        ("SETUP_RNG_SEED", SetupDataType::RNG_SEED.0.into()),
        ("SETUP_INDIRECT", SetupDataType::INDIRECT.into()),
        ("LOADED_HIGH", LoadFlags::LOADED_HIGH.bits().into()),
        ("KASLR_FLAG", LoadFlags::KASLR_FLAG.bits().into()),
        ("QUIET_FLAG", LoadFlags::QUIET_FLAG.bits().into()),
        ("KEEP_SEGMENTS", LoadFlags::KEEP_SEGMENTS.bits().into()),
        ("CAN_USE_HEAP", LoadFlags::CAN_USE_HEAP.bits().into()),
        ("XLF_KERNEL_64", XLoadFlags::KERNEL_64.bits().into()),
        (
            "XLF_CAN_BE_LOADED_ABOVE_4G",
            XLoadFlags::CAN_BE_LOADED_ABOVE_4G.bits().into(),
        ),
        (
            "XLF_EFI_HANDOVER_32",
            XLoadFlags::EFI_HANDOVER_32.bits().into(),
        ),
        (
            "XLF_EFI_HANDOVER_64",
            XLoadFlags::EFI_HANDOVER_64.bits().into(),
        ),
        ("XLF_EFI_KEXEC", XLoadFlags::EFI_KEXEC.bits().into()),
        ("XLF_5LEVEL", XLoadFlags::FIVE_LEVEL.bits().into()),
        (
            "XLF_5LEVEL_ENABLED",
            XLoadFlags::FIVE_LEVEL_ENABLED.bits().into(),
        ),
    ];
    abi.consts = consts.iter().map(|&(n, v)| (n.to_owned(), v)).collect();
    abi
}

/// Constants the headers of every supported Debian release define and the
/// task names explicitly: their absence from the C output is a failure.
/// The others are compared when the headers have them.
const REQUIRED_CONSTS: &[&str] = &[
    "XEN_HVM_START_MAGIC_VALUE",
    "XEN_HVM_MEMMAP_TYPE_RAM",
    "XEN_HVM_MEMMAP_TYPE_RESERVED",
    "XEN_HVM_MEMMAP_TYPE_ACPI",
    "XEN_HVM_MEMMAP_TYPE_NVS",
    "XEN_HVM_MEMMAP_TYPE_UNUSABLE",
    "XEN_HVM_MEMMAP_TYPE_DISABLED",
    "XEN_HVM_MEMMAP_TYPE_PMEM",
    "SETUP_E820_EXT",
];

/// Parses the C program's output.
fn parse_c_output(text: &str) -> Result<Abi, String> {
    let mut abi = Abi::default();
    let num = |s: &str, line: &str| -> Result<usize, String> {
        s.parse()
            .map_err(|_| format!("bad number {s:?} in line {line:?}"))
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["sizeof", s, n] => {
                let layout = abi.structs.entry((*s).to_owned()).or_default();
                if layout.size.replace(num(n, line)?).is_some() {
                    return Err(format!("sizeof {s} printed twice"));
                }
            }
            ["field", s, f, off, n] => {
                abi.structs
                    .entry((*s).to_owned())
                    .or_default()
                    .fields
                    .push(Field {
                        name: (*f).to_owned(),
                        offset: num(off, line)?,
                        size: num(n, line)?,
                    });
            }
            ["const", name, v] => {
                let v = v.parse().map_err(|_| format!("bad value in {line:?}"))?;
                if abi.consts.insert((*name).to_owned(), v).is_some() {
                    return Err(format!("constant {name} printed twice"));
                }
            }
            _ => return Err(format!("unexpected line {line:?}")),
        }
    }
    Ok(abi)
}

/// Every way `rust` differs from `c`; empty if they agree.
fn differences(c: &Abi, rust: &Abi) -> Vec<String> {
    let mut out = Vec::new();
    for (name, cl) in &c.structs {
        let Some(rl) = rust.structs.get(name) else {
            out.push(format!("struct {name}: in the C headers, not in Rust"));
            continue;
        };
        let Some(c_size) = cl.size else {
            out.push(format!("struct {name}: the C program printed no sizeof"));
            continue;
        };
        if rl.size != Some(c_size) {
            out.push(format!(
                "struct {name}: C size {c_size}, Rust size {:?}",
                rl.size
            ));
        }
        // The C list must cover the struct exactly (see the module docs).
        let mut sorted = cl.fields.clone();
        sorted.sort_by_key(|f| f.offset);
        let mut at = 0;
        for f in &sorted {
            if f.offset != at {
                out.push(format!(
                    "struct {name}: C fields leave {at}..{} uncovered or overlap before {}",
                    f.offset, f.name
                ));
            }
            at = f.offset + f.size;
        }
        if at != c_size {
            out.push(format!(
                "struct {name}: C fields end at {at}, sizeof is {c_size}"
            ));
        }
        for f in &cl.fields {
            match rl.fields.iter().find(|r| r.name == f.name) {
                None => out.push(format!("{name}.{}: in C, missing in Rust", f.name)),
                Some(r) if (r.offset, r.size) != (f.offset, f.size) => out.push(format!(
                    "{name}.{}: C offset {} size {}, Rust offset {} size {}",
                    f.name, f.offset, f.size, r.offset, r.size
                )),
                Some(_) => {}
            }
        }
        for r in &rl.fields {
            if !cl.fields.iter().any(|f| f.name == r.name) {
                out.push(format!("{name}.{}: in Rust, not in C", r.name));
            }
        }
    }
    for name in rust.structs.keys() {
        if !c.structs.contains_key(name) {
            out.push(format!(
                "struct {name}: in Rust, not printed by the C program"
            ));
        }
    }
    for (name, &v) in &c.consts {
        match rust.consts.get(name) {
            None => out.push(format!("constant {name} = {v:#x} has no Rust counterpart")),
            Some(&r) if r != v => out.push(format!("constant {name}: C {v:#x}, Rust {r:#x}")),
            Some(_) => {}
        }
    }
    for name in REQUIRED_CONSTS {
        if !c.consts.contains_key(*name) {
            out.push(format!("constant {name} not printed by the C program"));
        }
    }
    out
}

/// Skips (prints why) or, under CI, fails.
fn skip(reason: &str) -> Option<String> {
    if std::env::var_os("CI").is_some() {
        panic!("CI is set and the C header test cannot run: {reason} (run scripts/setup.sh)");
    }
    println!("skipped: {reason}");
    None
}

fn source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("c/abi_layout.c")
}

/// Compiles and runs the C program once; `None` if skipped.
fn c_output() -> Option<&'static str> {
    static OUTPUT: OnceLock<Option<String>> = OnceLock::new();
    OUTPUT.get_or_init(compile_and_run).as_deref()
}

fn compile_and_run() -> Option<String> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    if Command::new(&cc).arg("--version").output().is_err() {
        return skip(&format!("no C compiler ({cc:?} cannot be run)"));
    }
    let exe = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pvh-abi-layout");
    let out = Command::new(&cc)
        .args(["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&exe)
        .arg(source())
        .output()
        .expect("running the C compiler");
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        for (header, package) in [
            ("asm/bootparam.h", "linux-libc-dev"),
            ("xen/arch-x86/hvm/start_info.h", "libxen-dev"),
            (
                "pvh-linux-kernel/mpspec_def.h",
                "linux-headers-*-common, extracted by scripts/setup.sh",
            ),
        ] {
            if stderr.contains(header) && stderr.contains("No such file") {
                return skip(&format!("<{header}> not found (Debian package {package})"));
            }
        }
        panic!("compiling {} failed:\n{stderr}", source().display());
    }
    let run = Command::new(&exe).output().expect("running the C program");
    assert!(run.status.success(), "the C layout program failed: {run:?}");
    Some(String::from_utf8(run.stdout).expect("C output is ASCII"))
}

#[test]
fn layouts_and_constants_match_the_c_headers() {
    let Some(text) = c_output() else { return };
    let c = parse_c_output(text).unwrap();
    // The C program covers every structure named in the task.
    let names: Vec<&str> = c.structs.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "boot_e820_entry",
            "boot_params",
            "hvm_memmap_table_entry",
            "hvm_modlist_entry",
            "hvm_start_info",
            "mpc_bus",
            "mpc_cpu",
            "mpc_intsrc",
            "mpc_ioapic",
            "mpc_lintsrc",
            "mpc_table",
            "mpf_intel",
            "setup_data",
            "setup_header"
        ]
    );
    let diffs = differences(&c, &rust_abi());
    assert!(
        diffs.is_empty(),
        "Rust differs from the C headers:\n{}",
        diffs.join("\n")
    );
}

#[test]
fn c_header_facts_match_the_documented_abi() {
    // Independent anchors from docs/abi.md, so that a C program that printed
    // nonsense consistently with Rust would still be caught.
    let Some(text) = c_output() else { return };
    let c = parse_c_output(text).unwrap();
    let field = |s: &str, f: &str| {
        let l = &c.structs[s];
        let f = l.fields.iter().find(|x| x.name == f).unwrap();
        (f.offset, f.size)
    };
    assert_eq!(c.structs["boot_params"].size, Some(4096));
    assert_eq!(c.structs["setup_header"].size, Some(0x26c - 0x1f1));
    assert_eq!(c.structs["hvm_start_info"].size, Some(56));
    assert_eq!(field("boot_params", "hdr"), (0x1f1, 0x26c - 0x1f1));
    assert_eq!(field("boot_params", "e820_table"), (0x2d0, 128 * 20));
    assert_eq!(field("boot_params", "acpi_rsdp_addr"), (0x70, 8));
    assert_eq!(field("setup_header", "cmd_line_ptr"), (0x228 - 0x1f1, 4));
    assert_eq!(field("hvm_start_info", "memmap_entries"), (48, 4));
    assert_eq!(field("hvm_memmap_table_entry", "type"), (16, 4));
    assert_eq!(c.consts["XEN_HVM_START_MAGIC_VALUE"], 0x336e_c578);
    assert_eq!(c.consts["SETUP_E820_EXT"], 1);
}

/// The checker itself must be able to fail: feed it C output with one field
/// missing, one extra, one moved, one resized and one constant changed.
#[test]
fn checker_reports_every_kind_of_difference() {
    let good = "sizeof hvm_modlist_entry 32\n\
                field hvm_modlist_entry paddr 0 8\n\
                field hvm_modlist_entry size 8 8\n\
                field hvm_modlist_entry cmdline_paddr 16 8\n\
                field hvm_modlist_entry reserved 24 8\n\
                const XEN_HVM_START_MAGIC_VALUE 862897528\n";
    let mut rust = rust_abi();
    rust.structs.retain(|k, _| k == "hvm_modlist_entry");
    let c = parse_c_output(good).unwrap();
    let mut expect_required_only = differences(&c, &rust);
    expect_required_only.retain(|d| !d.contains("not printed by the C program"));
    assert_eq!(expect_required_only, Vec::<String>::new());

    let bad = "sizeof hvm_modlist_entry 32\n\
               field hvm_modlist_entry paddr 0 8\n\
               field hvm_modlist_entry size 8 4\n\
               field hvm_modlist_entry cmd 16 8\n\
               field hvm_modlist_entry reserved 28 8\n\
               const XEN_HVM_START_MAGIC_VALUE 1\n\
               const SOMETHING_NEW 3\n";
    let diffs = differences(&parse_c_output(bad).unwrap(), &rust);
    let has = |needle: &str| diffs.iter().any(|d| d.contains(needle));
    assert!(
        has("hvm_modlist_entry.size: C offset 8 size 4"),
        "{diffs:?}"
    );
    assert!(
        has("hvm_modlist_entry.cmd: in C, missing in Rust"),
        "{diffs:?}"
    );
    assert!(
        has("hvm_modlist_entry.cmdline_paddr: in Rust, not in C"),
        "{diffs:?}"
    );
    assert!(has("hvm_modlist_entry.reserved: C offset 28"), "{diffs:?}");
    assert!(has("C fields end at 36, sizeof is 32"), "{diffs:?}");
    assert!(has("uncovered or overlap"), "{diffs:?}");
    assert!(
        has("constant XEN_HVM_START_MAGIC_VALUE: C 0x1"),
        "{diffs:?}"
    );
    assert!(
        has("constant SOMETHING_NEW = 0x3 has no Rust counterpart"),
        "{diffs:?}"
    );
    assert!(has("constant SETUP_E820_EXT not printed"), "{diffs:?}");
    assert!(parse_c_output("garbage line\n").is_err());
}
