//! The unpack cache (`pvh_loader::UnpackCache`): hits give the bytes
//! `unpack` gives, and the cache stays correct against concurrent writers,
//! truncated and corrupt entries, and its size bound.

mod common;

use common::*;
use pvh_bootparams::BzImage;
use pvh_loader::*;
use std::path::{Path, PathBuf};

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pvh-unpack-cache-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A bzImage whose gzip payload unpacks to `raw`.
fn bz_of(raw: &[u8]) -> Vec<u8> {
    Bz::default()
        .payload(with_size(gzip(raw), raw.len()))
        .build()
}

/// Unpacked bytes that differ per `seed` and do not compress to nothing.
fn raw(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

fn files(dir: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        e.metadata().unwrap().len(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn second_unpack_is_a_hit_with_the_same_bytes_and_the_same_plan() {
    let dir = scratch("hit");
    let cache = UnpackCache::new(&dir, 64 << 20);
    let elf = simple_elf().build();
    let image = bz_of(&elf);
    let bz = BzImage::parse(&image).unwrap();
    let first = cache.unpack(&bz).unwrap();
    assert_eq!(first.outcome(), &CacheOutcome::Stored { replaced: None });
    assert_eq!(&*first, &unpack(&bz).unwrap()[..]);
    let second = cache.unpack(&bz).unwrap();
    assert_eq!(second.outcome(), &CacheOutcome::Hit);
    assert_eq!(&*second, &*first);
    assert_eq!(files(&dir).len(), 1, "{:?}", files(&dir));
    assert!(cache.entry_path(bz.payload()).is_file());

    // The cached vmlinux through PVH plans what pvh-unpack plans.
    let ram = kvm_ram(16 << 20).unwrap();
    let unpack_plan = plan(&ram, &BootConfig::new(Kernel::pvh_unpack(&image))).unwrap();
    let cached_plan = plan(&ram, &BootConfig::new(Kernel::pvh_elf(&second))).unwrap();
    assert_eq!(unpack_plan.to_string(), cached_plan.to_string());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_truncated_entry_is_replaced_not_used() {
    let dir = scratch("truncated");
    let cache = UnpackCache::new(&dir, 64 << 20);
    let data = raw(1, 100_000);
    let image = bz_of(&data);
    let bz = BzImage::parse(&image).unwrap();
    cache.unpack(&bz).unwrap();
    let path = cache.entry_path(bz.payload());
    let len = std::fs::metadata(&path).unwrap().len();
    for cut in [len - 1, len / 2, 10, 0] {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let again = cache.unpack(&bz).unwrap();
        assert!(
            matches!(again.outcome(), CacheOutcome::Stored { replaced: Some(_) }),
            "cut to {cut}: {}",
            again.outcome()
        );
        assert_eq!(&*again, &data[..], "cut to {cut}");
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            len,
            "rewritten whole"
        );
        assert_eq!(cache.unpack(&bz).unwrap().outcome(), &CacheOutcome::Hit);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_corrupt_entry_is_replaced_not_used() {
    let dir = scratch("corrupt");
    let cache = UnpackCache::new(&dir, 64 << 20);
    let data = raw(2, 50_000);
    let image = bz_of(&data);
    let bz = BzImage::parse(&image).unwrap();
    cache.unpack(&bz).unwrap();
    let path = cache.entry_path(bz.payload());
    let good = std::fs::read(&path).unwrap();
    let unpacked_at = good.len() - data.len();
    // A flipped byte in the header or the stored payload: a hit refuses
    // the entry and replaces it.
    for at in [3, 20, 45, 70, unpacked_at - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x40;
        std::fs::write(&path, &bad).unwrap();
        let again = cache.unpack(&bz).unwrap();
        assert!(
            matches!(again.outcome(), CacheOutcome::Stored { replaced: Some(_) }),
            "byte {at}: {}",
            again.outcome()
        );
        assert_eq!(&*again, &data[..], "byte {at}");
        assert_eq!(std::fs::read(&path).unwrap(), good);
    }
    // In the unpacked bytes (first, middle, last), which a hit does not
    // re-read: the scrub finds it, removes the entry, and the next boot
    // decompresses afresh.
    for at in [unpacked_at, unpacked_at + data.len() / 2, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x40;
        std::fs::write(&path, &bad).unwrap();
        assert_eq!(
            cache.scrub().unwrap(),
            vec![(
                path.clone(),
                "unpacked bytes do not match their checksum".to_string()
            )],
            "byte {at}"
        );
        assert!(!path.exists(), "byte {at}");
        let again = cache.unpack(&bz).unwrap();
        assert_eq!(again.outcome(), &CacheOutcome::Stored { replaced: None });
        assert_eq!(&*again, &data[..], "byte {at}");
        assert_eq!(std::fs::read(&path).unwrap(), good);
    }
    // Good entries survive a scrub.
    assert_eq!(cache.scrub().unwrap(), vec![]);
    assert_eq!(cache.unpack(&bz).unwrap().outcome(), &CacheOutcome::Hit);
    // An entry made from another payload under this payload's name (what
    // a hash collision would look like) is not a hit.
    let other = bz_of(&raw(3, 50_000));
    let other_bz = BzImage::parse(&other).unwrap();
    cache.unpack(&other_bz).unwrap();
    std::fs::copy(cache.entry_path(other_bz.payload()), &path).unwrap();
    let again = cache.unpack(&bz).unwrap();
    assert_eq!(
        again.outcome(),
        &CacheOutcome::Stored {
            replaced: Some("made from another payload".into())
        }
    );
    assert_eq!(&*again, &data[..]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn concurrent_writers_leave_one_whole_entry() {
    let dir = scratch("concurrent");
    let data = raw(4, 400_000);
    let image = bz_of(&data);
    let outcomes: Vec<CacheOutcome> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let cache = UnpackCache::new(&dir, 64 << 20);
                    let bz = BzImage::parse(&image).unwrap();
                    let mut seen = Vec::new();
                    for _ in 0..5 {
                        let u = cache.unpack(&bz).unwrap();
                        assert_eq!(&*u, &data[..]);
                        seen.push(u.outcome().clone());
                    }
                    seen
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    // Nothing but good entries was ever read: no "bad entry" outcomes.
    for o in &outcomes {
        assert!(
            matches!(
                o,
                CacheOutcome::Hit | CacheOutcome::Stored { replaced: None }
            ),
            "{o}"
        );
    }
    assert!(outcomes.contains(&CacheOutcome::Hit));
    let left = files(&dir);
    assert_eq!(left.len(), 1, "one entry, no temporary files: {left:?}");
    assert!(left[0].0.ends_with(".unpacked"));
    let bz = BzImage::parse(&image).unwrap();
    let cache = UnpackCache::new(&dir, 64 << 20);
    assert_eq!(cache.unpack(&bz).unwrap().outcome(), &CacheOutcome::Hit);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_bound_evicts_least_recently_used_and_refuses_what_cannot_fit() {
    let dir = scratch("bound");
    let len = 100_000;
    let images: Vec<Vec<u8>> = (0..4).map(|i| bz_of(&raw(10 + i, len))).collect();
    let bzs: Vec<BzImage<'_>> = images.iter().map(|i| BzImage::parse(i).unwrap()).collect();
    let entry_len = |bz: &BzImage<'_>| (64 + bz.payload().len() + len) as u64;
    // Room for two entries, not three.
    let bound = entry_len(&bzs[0]) + entry_len(&bzs[1]) + entry_len(&bzs[2]) - 1;
    let cache = UnpackCache::new(&dir, bound);
    let touch_order = |i: usize| {
        // Distinct modification times, whatever the file system's grain.
        std::thread::sleep(std::time::Duration::from_millis(20));
        cache.unpack(&bzs[i]).unwrap()
    };
    touch_order(0);
    touch_order(1);
    assert_eq!(
        touch_order(0).outcome(),
        &CacheOutcome::Hit,
        "0 is now the most recent"
    );
    touch_order(2); // evicts 1, the least recently used
    let total: u64 = files(&dir).iter().map(|(_, l)| l).sum();
    assert!(total <= bound, "{total} > {bound}");
    assert!(cache.entry_path(bzs[0].payload()).exists());
    assert!(!cache.entry_path(bzs[1].payload()).exists());
    assert!(cache.entry_path(bzs[2].payload()).exists());
    assert_eq!(cache.unpack(&bzs[0]).unwrap().outcome(), &CacheOutcome::Hit);

    // An entry larger than the bound is unpacked but not stored.
    let small = UnpackCache::new(&dir, 1000);
    let u = small.unpack(&bzs[3]).unwrap();
    assert!(
        matches!(u.outcome(), CacheOutcome::NotStored(_)),
        "{}",
        u.outcome()
    );
    assert_eq!(&*u, &raw(13, len)[..]);
    assert!(!small.entry_path(bzs[3].payload()).exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unusable_directory_only_costs_the_cache() {
    // A file where the directory should be.
    let base = scratch("unusable");
    std::fs::create_dir_all(&base).unwrap();
    let file = base.join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let cache = UnpackCache::new(file.join("sub"), 64 << 20);
    let data = raw(5, 10_000);
    let image = bz_of(&data);
    let u = cache.unpack(&BzImage::parse(&image).unwrap()).unwrap();
    assert!(
        matches!(u.outcome(), CacheOutcome::NotStored(_)),
        "{}",
        u.outcome()
    );
    assert_eq!(&*u, &data[..]);
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn decompression_errors_are_the_loaders() {
    let dir = scratch("errors");
    let cache = UnpackCache::new(&dir, 64 << 20);
    // The announced size is one byte more than the data.
    let image = Bz::default().payload(with_size(gzip(b"hello"), 6)).build();
    let bz = BzImage::parse(&image).unwrap();
    assert_eq!(cache.unpack(&bz).unwrap_err(), unpack(&bz).unwrap_err());
    assert!(files(&dir).is_empty(), "nothing stored for a failure");
    let _ = std::fs::remove_dir_all(&dir);
}
