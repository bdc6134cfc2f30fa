//! A content-addressed cache of unpacked bzImage payloads, so that booting
//! the same bzImage through pvh-unpack a second time costs what booting its
//! vmlinux costs: no decompression.
//!
//! ```no_run
//! use pvh_loader::{BootConfig, Kernel, KernelImage, UnpackCache};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let image = std::fs::read("bzImage")?;
//! let KernelImage::BzImage(bz) = KernelImage::parse(&image)? else { return Ok(()) };
//! let cache = UnpackCache::in_user_cache_dir().expect("HOME or XDG_CACHE_HOME is set");
//! let vmlinux = cache.unpack(&bz)?;
//! eprintln!("unpack cache: {}", vmlinux.outcome());
//! // Booting the vmlinux through PVH plans exactly what
//! // `BootProtocol::PvhUnpack` plans for the bzImage.
//! let config = BootConfig::new(Kernel::pvh_elf(&vmlinux));
//! # let _ = config;
//! # Ok(())
//! # }
//! ```
//!
//! What it promises:
//! - **Content-addressed.** An entry is named by the xxh64 hash and length
//!   of the compressed payload and holds a copy of that payload: a hit
//!   needs the stored payload to equal the caller's byte for byte, so a
//!   hash collision (accidental or crafted) is a miss, never the wrong
//!   kernel.
//! - **Checked on every use.** The header (magic, lengths, hashes; itself
//!   hashed), the file length and the payload, byte for byte, are checked
//!   before the bytes are handed out. A truncated entry, or one whose
//!   header or payload is damaged, is removed and replaced by a fresh
//!   decompression.
//! - **Whole or absent, also across a crash.** An entry is written to a
//!   unique temporary file in the same directory, flushed to disk
//!   (`fsync`) and only then renamed into place, so a reader sees a
//!   complete entry or none, after a power cut too; concurrent writers of
//!   the same entry write identical bytes, and the last rename wins.
//! - **Hashed when written, re-read on request.** The xxh64 of the
//!   unpacked bytes is in the header, but a hit does not re-read them to
//!   check it: that pass over the whole kernel (66 MB for Debian's) was
//!   most of what a hit cost, about as much as the rest of loading the
//!   kernel in the nested benchmark (docs/loader.md). A kernel file booted
//!   directly is trusted the same way. [`UnpackCache::scrub`] reads every
//!   entry in full and removes those that fail their hashes (damage the
//!   disk did after the write).
//! - **Bounded.** After each store, the least recently used entries (by
//!   modification time, which a hit refreshes) are removed until the total
//!   is at most the bound; an entry larger than the bound is not stored.
//!   Temporary files left by a crashed writer are removed after an hour.
//! - **Never in the way.** The cache is an optimisation: a directory that
//!   cannot be created, read or written makes [`UnpackCache::unpack`]
//!   decompress as [`crate::unpack`] does and say why in
//!   [`Unpacked::outcome`]. Only decompression errors are errors.
//!
//! Hits are memory-mapped (read-only): the unpacked kernel is not copied
//! out of the page cache before the loader copies it into guest RAM. The
//! cache never changes an entry in place (it only renames new files over
//! old names and unlinks), so the mapping stays valid; another program
//! truncating an entry while it is mapped would fault the process (SIGBUS),
//! as with any mapped file.
//!
//! xxh64 (crate `xxhash-rust`) names entries (over the payload, on every
//! boot) and checks their contents (when written, and in a scrub): it is
//! among the fastest portable hashes (scalar code, no SIMD needed; xxh3's
//! SSE2 path was slower where SSE2 is emulated, docs/loader.md) and
//! detects corruption; it is not meant to resist an attacker, and need
//! not: the byte comparison of the payload decides hits, and whoever can
//! write the cache directory can replace anything in it anyway.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::ops::{Deref, Range};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use pvh_bootparams::BzImage;
use xxhash_rust::xxh64::xxh64;

use crate::error::LoadError;
use crate::image::{MAX_UNPACKED, unpack_within};

/// The bound [`UnpackCache::in_user_cache_dir`] uses: 512 MiB, about six
/// distribution kernels.
pub const DEFAULT_MAX_BYTES: u64 = 512 << 20;

/// Entry header magic (version 1).
const MAGIC: [u8; 8] = *b"PVHUNPK1";
/// Header length; the payload follows it, then the unpacked bytes.
const HEADER_LEN: usize = 64;
/// File name suffix of entries.
const ENTRY_SUFFIX: &str = ".unpacked";
/// File name suffix of temporary files being written.
const TEMP_SUFFIX: &str = ".tmp";
/// Temporary files older than this are from writers that died.
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// A cache directory and its size bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackCache {
    dir: PathBuf,
    max_bytes: u64,
}

/// What the cache did for one [`UnpackCache::unpack`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheOutcome {
    /// A checked entry was used: no decompression.
    Hit,
    /// Decompressed and stored (after removing a bad entry, if `replaced`
    /// says why one was rejected).
    Stored {
        /// Why an existing entry was rejected, if there was one.
        replaced: Option<String>,
    },
    /// Decompressed, not stored: why (the directory is not usable, the
    /// entry is larger than the bound, ...). A rejected entry is named too.
    NotStored(String),
}

impl fmt::Display for CacheOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Hit => f.write_str("hit"),
            Self::Stored { replaced: None } => f.write_str("miss, stored"),
            Self::Stored {
                replaced: Some(why),
            } => write!(f, "bad entry replaced ({why})"),
            Self::NotStored(why) => write!(f, "miss, not stored ({why})"),
        }
    }
}

/// The unpacked kernel: mapped from a cache entry or decompressed now.
pub struct Unpacked {
    bytes: Bytes,
    outcome: CacheOutcome,
}

enum Bytes {
    Mapped(memmap2::Mmap, Range<usize>),
    Owned(Vec<u8>),
}

impl Unpacked {
    /// What the cache did.
    pub fn outcome(&self) -> &CacheOutcome {
        &self.outcome
    }
}

impl Bytes {
    fn len(&self) -> u64 {
        match self {
            Bytes::Mapped(_, range) => range.len() as u64,
            Bytes::Owned(v) => v.len() as u64,
        }
    }
}

impl Deref for Unpacked {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.bytes {
            // The range was checked against the mapping's length.
            Bytes::Mapped(map, range) => map.get(range.clone()).unwrap_or_default(),
            Bytes::Owned(v) => v,
        }
    }
}

impl AsRef<[u8]> for Unpacked {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl fmt::Debug for Unpacked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unpacked")
            .field("len", &self.len())
            .field("mapped", &matches!(self.bytes, Bytes::Mapped(..)))
            .field("outcome", &self.outcome)
            .finish()
    }
}

/// The header of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    payload_len: u64,
    unpacked_len: u64,
    payload_hash: u64,
    unpacked_hash: u64,
}

impl Header {
    fn to_bytes(self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..8].copy_from_slice(&MAGIC);
        h[8..16].copy_from_slice(&self.payload_len.to_le_bytes());
        h[16..24].copy_from_slice(&self.unpacked_len.to_le_bytes());
        h[24..32].copy_from_slice(&self.payload_hash.to_le_bytes());
        h[32..40].copy_from_slice(&self.unpacked_hash.to_le_bytes());
        let self_hash = xxh64(&h[..40], 0);
        h[40..48].copy_from_slice(&self_hash.to_le_bytes());
        h
    }

    fn parse(bytes: &[u8]) -> Result<Self, String> {
        let h = bytes
            .get(..HEADER_LEN)
            .ok_or_else(|| format!("{} bytes, shorter than the header", bytes.len()))?;
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&h[i..i + 8]);
            u64::from_le_bytes(w)
        };
        if h[..8] != MAGIC {
            return Err("not an entry of this version (magic)".into());
        }
        if word(40) != xxh64(&h[..40], 0) || h[48..].iter().any(|&b| b != 0) {
            return Err("header checksum mismatch".into());
        }
        Ok(Self {
            payload_len: word(8),
            unpacked_len: word(16),
            payload_hash: word(24),
            unpacked_hash: word(32),
        })
    }
}

impl UnpackCache {
    /// A cache in `dir` (created when first stored into) holding at most
    /// `max_bytes` of entries.
    pub fn new(dir: impl Into<PathBuf>, max_bytes: u64) -> Self {
        Self {
            dir: dir.into(),
            max_bytes,
        }
    }

    /// The per-user cache: `$XDG_CACHE_HOME/pvh/unpacked`, else
    /// `$HOME/.cache/pvh/unpacked` (the XDG base directory rules; a
    /// relative `XDG_CACHE_HOME` is ignored), bounded by
    /// [`DEFAULT_MAX_BYTES`]. `None` if neither variable gives a directory.
    pub fn in_user_cache_dir() -> Option<Self> {
        let dir = user_cache_dir(std::env::var_os("XDG_CACHE_HOME"), std::env::var_os("HOME"))?;
        Some(Self::new(dir, DEFAULT_MAX_BYTES))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The size bound in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The entry file for `payload`.
    pub fn entry_path(&self, payload: &[u8]) -> PathBuf {
        self.entry_path_for(xxh64(payload, 0), payload.len())
    }

    /// The entry file for a payload of `len` bytes whose xxh64 is `hash`.
    fn entry_path_for(&self, hash: u64, len: usize) -> PathBuf {
        self.dir.join(format!("{hash:016x}-{len:x}{ENTRY_SUFFIX}"))
    }

    /// `bz`'s unpacked vmlinux: from a checked entry if there is one, else
    /// decompressed with [`crate::unpack`] (same checks, same errors) and
    /// stored.
    pub fn unpack(&self, bz: &BzImage<'_>) -> Result<Unpacked, LoadError> {
        self.unpack_within(bz, u64::MAX)
    }

    /// [`UnpackCache::unpack`] for a guest of `ram` bytes: a miss is
    /// decompressed with [`crate::unpack_within`], which stops at the
    /// smaller of `ram` and the image's announced size.
    pub fn unpack_within(&self, bz: &BzImage<'_>, ram: u64) -> Result<Unpacked, LoadError> {
        let payload = bz.payload();
        // Hashed once: the name, and the check of the entry's header.
        let payload_hash = xxh64(payload, 0);
        let path = self.entry_path_for(payload_hash, payload.len());
        let rejected = match self.lookup(&path, payload, payload_hash) {
            // The same verdict as without the cache: an entry the guest
            // cannot hold is refused as its announcement would be.
            Ok(Some(bytes)) if bytes.len() > ram => {
                return Err(LoadError::AnnouncedOverRam {
                    announced: bytes.len(),
                    ram,
                });
            }
            Ok(Some(bytes)) => {
                // Most recently used: eviction goes by modification time.
                // (Failing to note it only makes the entry look older.)
                if let Ok(f) = File::options().write(true).open(&path) {
                    let _ = f.set_modified(SystemTime::now());
                }
                return Ok(Unpacked {
                    bytes,
                    outcome: CacheOutcome::Hit,
                });
            }
            Ok(None) => None,
            Err(why) => {
                // Gone or replaced by a concurrent writer: either way the
                // next lookup decides afresh.
                let _ = fs::remove_file(&path);
                Some(why)
            }
        };
        let unpacked = unpack_within(bz, ram)?;
        let outcome = match self.store(&path, payload, &unpacked) {
            Ok(()) => {
                self.evict(&path);
                CacheOutcome::Stored { replaced: rejected }
            }
            Err(why) => CacheOutcome::NotStored(match rejected {
                Some(r) => format!("{why}; a bad entry was removed: {r}"),
                None => why,
            }),
        };
        Ok(Unpacked {
            bytes: Bytes::Owned(unpacked),
            outcome,
        })
    }

    /// The checked unpacked bytes of the entry at `path` for `payload`;
    /// `Ok(None)` if there is no entry, `Err(why)` if it is bad.
    fn lookup(
        &self,
        path: &Path,
        payload: &[u8],
        payload_hash: u64,
    ) -> Result<Option<Bytes>, String> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            // Unreadable: not usable (and removed if we may).
            Err(e) => return Err(format!("cannot open {}: {e}", path.display())),
        };
        let map = map_entry(&file).map_err(|e| format!("cannot map {}: {e}", path.display()))?;
        let range = check(&map, payload, payload_hash)?;
        Ok(Some(Bytes::Mapped(map, range)))
    }

    /// Reads every entry in full and checks it against the hashes in its
    /// header (which a hit does not: see the module), removing each that
    /// fails, as ZFS's scrub does for its blocks. Returns the removed
    /// entries and why each was bad. Temporary files and other names are
    /// left to eviction. A missing directory is an empty cache.
    pub fn scrub(&self) -> io::Result<Vec<(PathBuf, String)>> {
        let dir = match fs::read_dir(&self.dir) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut removed = Vec::new();
        for e in dir {
            let path = e?.path();
            if !path.to_string_lossy().ends_with(ENTRY_SUFFIX) {
                continue;
            }
            let why = match File::open(&path).and_then(|f| map_entry(&f)) {
                Ok(map) => match check_whole(&map) {
                    Ok(()) => continue,
                    Err(why) => why,
                },
                // Gone since it was listed (another run evicted it).
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => format!("cannot read: {e}"),
            };
            let _ = fs::remove_file(&path);
            removed.push((path, why));
        }
        Ok(removed)
    }

    /// Writes the entry for `payload` -> `unpacked` at `path`, through a
    /// temporary file renamed into place.
    fn store(&self, path: &Path, payload: &[u8], unpacked: &[u8]) -> Result<(), String> {
        let total = (HEADER_LEN + payload.len() + unpacked.len()) as u64;
        if total > self.max_bytes {
            return Err(format!(
                "the entry's {total} bytes exceed the cache bound of {}",
                self.max_bytes
            ));
        }
        create_private_dir(&self.dir)
            .map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        let header = Header {
            payload_len: payload.len() as u64,
            unpacked_len: unpacked.len() as u64,
            payload_hash: xxh64(payload, 0),
            unpacked_hash: xxh64(unpacked, 0),
        };
        let temp = self.temp_path(path);
        let write = || -> io::Result<()> {
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)?;
            f.write_all(&header.to_bytes())?;
            f.write_all(payload)?;
            f.write_all(unpacked)?;
            // On disk before it has the name: a hit does not re-read the
            // unpacked bytes, so a crash must not leave a named entry
            // whose blocks were never written (zeros, on some file
            // systems). Only a miss pays this, once per kernel.
            f.sync_data()?;
            drop(f);
            fs::rename(&temp, path)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&temp);
            format!("cannot write {}: {e}", path.display())
        })
    }

    /// A temporary name next to `path`, unique among processes and threads.
    fn temp_path(&self, path: &Path) -> PathBuf {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = path
            .file_name()
            .map_or_else(|| "entry".into(), |n| n.to_string_lossy().into_owned());
        self.dir.join(format!(
            ".{name}.{}.{n}.{nanos}{TEMP_SUFFIX}",
            std::process::id()
        ))
    }

    /// Removes the least recently used entries until the total is within
    /// the bound (keeping `keep`, the entry just stored, unless it alone is
    /// over), and temporary files of writers that died.
    fn evict(&self, keep: &Path) {
        let Ok(dir) = fs::read_dir(&self.dir) else {
            return;
        };
        let now = SystemTime::now();
        let mut entries: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
        for e in dir.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let Ok(meta) = e.metadata() else { continue };
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            if name.ends_with(TEMP_SUFFIX) {
                if now
                    .duration_since(modified)
                    .is_ok_and(|age| age > STALE_TEMP)
                {
                    let _ = fs::remove_file(e.path());
                }
            } else if name.ends_with(ENTRY_SUFFIX) && meta.is_file() {
                entries.push((modified, meta.len(), e.path()));
            }
        }
        let mut total: u64 = entries.iter().map(|(_, len, _)| len).sum();
        // Oldest first; the entry just stored last whatever its time says.
        entries.sort_by_key(|(modified, _, path)| (path == keep, *modified));
        for (_, len, path) in entries {
            if total <= self.max_bytes {
                break;
            }
            if fs::remove_file(&path).is_ok() {
                total = total.saturating_sub(len);
            }
        }
    }
}

/// `<XDG_CACHE_HOME or HOME/.cache>/pvh/unpacked`, from those variables
/// values; relative values are ignored, as the XDG rules say.
fn user_cache_dir(
    xdg_cache_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Option<PathBuf> {
    let absolute = |v: std::ffi::OsString| {
        let p = PathBuf::from(v);
        p.is_absolute().then_some(p)
    };
    let base = xdg_cache_home
        .and_then(absolute)
        .or_else(|| home.and_then(absolute).map(|h| h.join(".cache")))?;
    Some(base.join("pvh").join("unpacked"))
}

/// `file` mapped read-only.
fn map_entry(file: &File) -> io::Result<memmap2::Mmap> {
    // SAFETY: the file is mapped read-only and private. This cache never
    // writes to an entry after renaming it into place (new versions are
    // new files renamed over the name; old ones are unlinked, which leaves
    // existing mappings intact), so the bytes do not change under the
    // mapping. A third party truncating the file would make later reads
    // fault (SIGBUS), as for any mapped file; this is documented in the
    // module. Not populated: a hit reads the header and the payload, and
    // the loader only the parts of the kernel it copies.
    unsafe { memmap2::MmapOptions::new().map(file) }
}

/// Checks an entry's header, length and payload against `payload` (whose
/// xxh64 is `payload_hash`), as a hit does; the range of the unpacked
/// bytes, which are not read.
fn check(entry: &[u8], payload: &[u8], payload_hash: u64) -> Result<Range<usize>, String> {
    let (h, range) = layout(entry)?;
    let stored_payload = &entry[HEADER_LEN..range.start];
    if stored_payload != payload || h.payload_hash != payload_hash {
        return Err("made from another payload".into());
    }
    Ok(range)
}

/// Checks everything in an entry against its header: lengths, the xxh64
/// of the payload and of the unpacked bytes ([`UnpackCache::scrub`]).
fn check_whole(entry: &[u8]) -> Result<(), String> {
    let (h, range) = layout(entry)?;
    if xxh64(&entry[HEADER_LEN..range.start], 0) != h.payload_hash {
        return Err("the payload does not match its checksum".into());
    }
    if xxh64(&entry[range], 0) != h.unpacked_hash {
        return Err("unpacked bytes do not match their checksum".into());
    }
    Ok(())
}

/// An entry's header, if its lengths add up to the entry's, and the range
/// of its unpacked bytes.
fn layout(entry: &[u8]) -> Result<(Header, Range<usize>), String> {
    let h = Header::parse(entry)?;
    let lens = (
        usize::try_from(h.payload_len),
        usize::try_from(h.unpacked_len),
    );
    let (Ok(payload_len), Ok(unpacked_len)) = lens else {
        return Err("lengths do not fit in memory".into());
    };
    if h.unpacked_len > MAX_UNPACKED {
        return Err(format!(
            "unpacked length {} is over the limit",
            h.unpacked_len
        ));
    }
    let expected = HEADER_LEN
        .checked_add(payload_len)
        .and_then(|n| n.checked_add(unpacked_len));
    if expected != Some(entry.len()) {
        return Err(format!(
            "{} bytes, the header announces {}",
            entry.len(),
            HEADER_LEN as u128 + u128::from(h.payload_len) + u128::from(h.unpacked_len)
        ));
    }
    Ok((h, HEADER_LEN + payload_len..entry.len()))
}

/// Creates `dir` and its parents, the last with mode 0700 (cache contents
/// are the user's own).
fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            payload_len: 3,
            unpacked_len: 5,
            payload_hash: xxh64(b"abc", 0),
            unpacked_hash: xxh64(b"hello", 0),
        }
    }

    fn entry() -> Vec<u8> {
        let mut e = header().to_bytes().to_vec();
        e.extend_from_slice(b"abc");
        e.extend_from_slice(b"hello");
        e
    }

    #[test]
    fn a_good_entry_verifies_to_its_unpacked_bytes() {
        let e = entry();
        let r = check(&e, b"abc", xxh64(b"abc", 0)).unwrap();
        assert_eq!(&e[r], b"hello");
        assert_eq!(check_whole(&e), Ok(()));
        assert_eq!(Header::parse(&e).unwrap(), header());
    }

    #[test]
    fn every_kind_of_damage_is_refused() {
        let e = entry();
        // Truncated anywhere, or extended.
        for cut in 0..e.len() {
            assert!(
                check(&e[..cut], b"abc", xxh64(b"abc", 0)).is_err(),
                "cut at {cut}"
            );
            assert!(check_whole(&e[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = e.clone();
        longer.push(0);
        assert!(check(&longer, b"abc", xxh64(b"abc", 0)).is_err());
        assert!(check_whole(&longer).is_err());
        // Any single flipped byte: in the header or the payload a hit
        // refuses it; anywhere, the scrub does.
        let unpacked_at = e.len() - b"hello".len();
        for i in 0..e.len() {
            let mut bad = e.clone();
            bad[i] ^= 0x01;
            if i < unpacked_at {
                assert!(check(&bad, b"abc", xxh64(b"abc", 0)).is_err(), "byte {i}");
            }
            assert!(check_whole(&bad).is_err(), "byte {i}");
        }
        // Another payload of the same length (a colliding name).
        assert_eq!(
            check(&e, b"abd", xxh64(b"abd", 0)).unwrap_err(),
            "made from another payload"
        );
    }

    #[test]
    fn xdg_cache_home_wins_and_must_be_absolute() {
        let dir =
            |x: Option<&str>, h: Option<&str>| user_cache_dir(x.map(Into::into), h.map(Into::into));
        assert_eq!(
            dir(Some("/x/cache"), Some("/home/u")),
            Some(PathBuf::from("/x/cache/pvh/unpacked"))
        );
        assert_eq!(
            dir(Some("relative"), Some("/home/u")),
            Some(PathBuf::from("/home/u/.cache/pvh/unpacked"))
        );
        assert_eq!(
            dir(None, Some("/home/u")),
            Some(PathBuf::from("/home/u/.cache/pvh/unpacked"))
        );
        assert_eq!(dir(None, Some("home")), None);
        assert_eq!(dir(None, None), None);
    }
}
