//! The one ELF scanner (`pvh_loader::elf::scan`): strict for the loader,
//! reporting for `pvh inspect`, one verdict either way. Images are built
//! byte by byte (`common::Elf`) so each rule can be broken on its own.

mod common;

use common::*;
use pvh_loader::elf::{MAX_PROBLEMS, Mode, scan};
use pvh_loader::*;

fn ram() -> GuestRam {
    kvm_ram(512 << 20).unwrap()
}

fn boot(kernel: &[u8]) -> Result<BootPlan<'_>, LoadError> {
    plan(&ram(), &BootConfig::new(Kernel::pvh_elf(kernel)))
}

/// The strict verdict is the first problem of the report, and the loader's
/// error: one verdict, whoever asks.
fn one_verdict(bytes: &[u8]) -> Vec<LoadError> {
    let report = scan(bytes, Mode::Report);
    let strict = scan(bytes, Mode::Strict);
    assert!(strict.problems.len() <= 1);
    assert_eq!(strict.problems.first(), report.problems.first());
    match (ElfImage::parse(bytes), report.problems.first()) {
        (Ok(_), None) => {}
        (Err(e), Some(first)) => assert_eq!(&e, first),
        (got, first) => panic!("parse {got:?} but report {first:?}"),
    }
    report.problems
}

#[test]
fn report_lists_every_problem_and_strict_stops_at_the_first() {
    // AArch64, overlapping segments, and a segment with more file than
    // memory bytes: three problems, reported in the order found.
    let mut elf = Elf::new64(vec![
        Seg::code(0x10_0000, &[0x90; 0x40]),
        Seg::data(0x10_0020, &[1; 0x10], 0x10),
        Seg {
            filesz: Some(0x20),
            ..Seg::data(0x20_0000, &[2; 0x20], 0x10)
        },
    ])
    .entry8(0x10_0000);
    elf.machine = 183;
    let bytes = elf.build();
    let problems = one_verdict(&bytes);
    assert_eq!(
        problems,
        [
            LoadError::ElfMachine { machine: 183 },
            LoadError::FileszExceedsMemsz {
                index: 2,
                filesz: 0x20,
                memsz: 0x10
            },
            LoadError::SegmentOverlap {
                first: 0,
                first_start: 0x10_0000,
                first_end: 0x10_0040,
                second: 1,
                second_start: 0x10_0020,
                second_end: 0x10_0030
            },
        ]
    );
    // What it could read is reported too.
    let report = scan(&bytes, Mode::Report);
    assert_eq!(report.machine, Some(183));
    assert_eq!(report.entry.map(|e| e.value), Some(0x10_0000));
    assert_eq!(report.headers.len(), 4);
    assert_eq!(boot(&bytes).unwrap_err(), problems[0]);
}

#[test]
fn two_different_entry_notes_are_one_error_for_everyone() {
    for split in [false, true] {
        let mut elf = simple_elf().entry8(0x10_0020);
        elf.split_notes = split;
        let bytes = elf.build();
        let want = LoadError::ConflictingNotes {
            note: "PHYS32_ENTRY",
            first: 0x10_0010,
            second: 0x10_0020,
        };
        assert_eq!(one_verdict(&bytes), std::slice::from_ref(&want));
        assert_eq!(boot(&bytes).unwrap_err(), want);
    }
    // The same value twice (a 4- and an 8-byte form) is one entry.
    let mut elf = simple_elf().entry4(0x10_0010);
    elf.split_notes = true;
    let bytes = elf.build();
    assert!(one_verdict(&bytes).is_empty());
    assert_eq!(boot(&bytes).unwrap().entry(), 0x10_0010);
    // Two different PHYS32_RELOC notes.
    let mut elf = simple_elf()
        .reloc(0x20_0000, 0, 0xffff_ffff)
        .reloc(0x1000, 0, 0xffff_ffff);
    elf.split_notes = true;
    assert!(matches!(
        one_verdict(&elf.build())[..],
        [LoadError::ConflictingNotes {
            note: "PHYS32_RELOC",
            ..
        }]
    ));
}

#[test]
fn a_later_note_segment_never_erases_an_earlier_entry() {
    // The entry in the first PT_NOTE; later ones hold a GNU note and a
    // RELOC note only.
    let mut elf = simple_elf().reloc(0x20_0000, 0, 0xffff_ffff);
    elf.notes
        .push((b"GNU\0".to_vec(), 3, vec![1, 2, 3, 4, 5, 6, 7, 8]));
    elf.split_notes = true;
    let bytes = elf.build();
    let s = scan(&bytes, Mode::Report);
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    assert_eq!(
        s.entry.map(|e| (e.value, e.desc_size)),
        Some((0x10_0010, 8))
    );
    assert!(s.reloc.is_some());
}

#[test]
fn the_owner_name_is_checked_not_only_the_type() {
    // A type-18 note owned by someone else is not an entry.
    let mut elf = simple_elf();
    elf.notes.insert(
        0,
        (
            b"Xem\0".to_vec(),
            PHYS32_ENTRY,
            0x10_0020u64.to_le_bytes().to_vec(),
        ),
    );
    let s = scan(&elf.build(), Mode::Report);
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    assert_eq!(s.entry.map(|e| e.value), Some(0x10_0010));
    // Without the Xen one, there is no entry at all.
    let mut elf = Elf::new64(simple_elf().segs);
    elf.notes.push((
        b"NotXen\0".to_vec(),
        PHYS32_ENTRY,
        0x10_0010u64.to_le_bytes().to_vec(),
    ));
    assert_eq!(one_verdict(&elf.build()), [LoadError::NoPvhEntry]);
}

#[test]
fn notes_pad_to_4_bytes_and_stay_inside_their_segment() {
    // "Xen" without its NUL (namesz 3): the descriptor starts at the next
    // 4-byte boundary (16), whatever p_align (0x1000 here) says.
    let mut elf = Elf::new64(simple_elf().segs);
    elf.notes.push((
        b"Xen".to_vec(),
        PHYS32_ENTRY,
        0x10_0010u32.to_le_bytes().to_vec(),
    ));
    let s = scan(&elf.build(), Mode::Report);
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    assert_eq!(
        s.entry.map(|e| (e.value, e.desc_size)),
        Some((0x10_0010, 4))
    );
    // A PT_NOTE cut 4 bytes short: the note's descriptor runs past its
    // segment (though not past the file): an error, not a read of the
    // bytes after it.
    let mut bytes = simple_elf().build();
    let (phoff, phent) = (64usize, 56usize);
    let note_ph = phoff + 2 * phent;
    assert_eq!(bytes[note_ph], 4, "PT_NOTE is the third header");
    let filesz = u64::from_le_bytes(bytes[note_ph + 32..note_ph + 40].try_into().unwrap());
    bytes[note_ph + 32..note_ph + 40].copy_from_slice(&(filesz - 4).to_le_bytes());
    assert!(matches!(
        one_verdict(&bytes)[..],
        [
            LoadError::Note(pvh_entry::elfnote::NoteError::Truncated { .. }),
            ..
        ]
    ));
}

#[test]
fn descriptor_sizes_4_and_8_only() {
    for (len, ok) in [(4, true), (8, true), (2, false), (6, false), (12, false)] {
        let mut elf = Elf::new64(simple_elf().segs);
        let mut desc = 0x10_0010u64.to_le_bytes().to_vec();
        desc.resize(len, 0);
        elf.notes.push((b"Xen\0".to_vec(), PHYS32_ENTRY, desc));
        let problems = one_verdict(&elf.build());
        assert_eq!(problems.is_empty(), ok, "{len}: {problems:?}");
    }
}

#[test]
fn tens_of_thousands_of_program_headers_scan_and_plan() {
    // 65,533 PT_LOADs (one with code, the rest one BSS page each) plus the
    // note: what took seconds when every segment was checked against every
    // other. The scan sorts; the plan places them without a pairwise check.
    let n = 65_532u64;
    let mut segs = vec![Seg::code(0x10_0000, &[0x90; 0x40])];
    segs.extend((1..=n).map(|i| Seg::data(0x10_0000 + i * 0x1000, &[], 0x1000)));
    let bytes = Elf::new64(segs).entry8(0x10_0000).build();
    let s = scan(&bytes, Mode::Report);
    assert!(s.problems.is_empty(), "{:?}", &s.problems[..1]);
    assert_eq!(s.headers.len(), 65_534);
    let p = boot(&bytes).unwrap();
    let last = p.find(Purpose::Segment(n as usize)).unwrap();
    assert_eq!(last.start, 0x10_0000 + n * 0x1000);
    // Every one of them overlapping its neighbour: each pair is a problem,
    // the report keeps MAX_PROBLEMS and counts the rest.
    let segs = (0..n)
        .map(|i| Seg::data(0x10_0000 + i * 0x800, &[], 0x1000))
        .collect();
    let bytes = Elf::new64(segs).entry8(0x10_0000).build();
    let s = scan(&bytes, Mode::Report);
    assert_eq!(s.problems.len(), MAX_PROBLEMS);
    // n - 1 overlapping pairs and the entry outside executable segments.
    assert_eq!(s.problems.len() + s.more_problems, n as usize);
}
