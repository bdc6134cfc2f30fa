//! The `pvh wrap` payload: its reader over arbitrary memory at the payload
//! address (what the stub and `pvh inspect` read), and its writer's layout
//! from arbitrary sizes (what `pvh wrap` writes), which the reader must
//! accept and read back to the same places.
//! Shared by the fuzz target and the stable corpus replay
//! (`tests/tests/fuzz_corpus.rs`).

use pvh_entry::payload::{Layout, PAYLOAD_ADDR, Sizes, read_payload};
use pvh_entry::{SliceMemory, SubarchPolicy};

fn u64_at(data: &[u8], i: usize) -> u64 {
    let mut b = [0u8; 8];
    for (k, v) in b.iter_mut().enumerate() {
        *v = data.get(i * 8 + k).copied().unwrap_or(0);
    }
    u64::from_le_bytes(b)
}

/// One input.
pub fn run(data: &[u8]) {
    // The reader: every part it accepts lies inside the payload.
    let mem = SliceMemory::new(PAYLOAD_ADDR, data);
    if let Ok(Some((header, p))) = read_payload(&mem, PAYLOAD_ADDR) {
        let inside = |r: &core::ops::Range<u64>| {
            p.whole.start <= r.start && r.start <= r.end && r.end <= p.whole.end
        };
        assert_eq!(p.whole.start, PAYLOAD_ADDR);
        assert!(inside(&p.kernel) && !p.kernel.is_empty());
        assert!(p.initrd.as_ref().is_none_or(inside));
        assert!(
            p.cmdline
                .as_ref()
                .is_none_or(|c| inside(&(c.start..c.end + 1)))
        );
        assert_eq!(p.kernel.end - p.kernel.start, header.kernel_size);
    }

    // The writer: sizes from the bytes (a kernel is never empty: `wrap`
    // only lays out a bzImage it parsed).
    let kernel = u64_at(data, 0) % (1 << 33);
    let setup = u64_at(data, 1) % (kernel + 1);
    let flags = data.get(40).copied().unwrap_or(0);
    let sizes = Sizes {
        kernel: kernel.max(1),
        setup,
        kernel_align: 1 << (u64_at(data, 2) % 40),
        initrd: (flags & 1 != 0).then(|| u64_at(data, 3) % (1 << 33)),
        cmdline: (flags & 2 != 0).then(|| u64_at(data, 4) % (1 << 20)),
    };
    let subarch = if flags & 4 != 0 {
        SubarchPolicy::Xen
    } else {
        SubarchPolicy::Pc
    };
    if let Ok(layout) = Layout::plan(PAYLOAD_ADDR, &sizes) {
        let header = layout.header_for(&sizes, subarch);
        let p = header
            .check(PAYLOAD_ADDR)
            .expect("the reader accepts what the writer lays out");
        assert_eq!(p.kernel, layout.kernel..layout.kernel + sizes.kernel);
        assert_eq!(p.initrd.map(|r| r.start), layout.initrd);
        assert_eq!(p.cmdline.map(|r| r.start), layout.cmdline);
        assert_eq!(p.whole.end, layout.end);
        assert_eq!(p.subarch, subarch);
        assert_eq!((layout.kernel_code - layout.kernel), sizes.setup);
        assert_eq!(layout.kernel_code % sizes.kernel_align, 0);
        assert!(layout.end <= 1 << 32);
    }
}
