//! Boot inputs from files, bounded by what the guest can hold.
//!
//! [`Input::open`] gives the bytes of a kernel, initrd, module or tree
//! without reading a regular file into the heap: the file is mapped
//! read-only (`memmap2`), so its pages come from the page cache as the
//! loader copies them into guest memory, and planning touches only the
//! headers it reads. Anything else (a pipe, a FIFO, `/dev/zero`, a
//! character device, a `/proc` file, whose size `stat` does not tell) is
//! read at most `limit + 1` bytes, so no input is read without bound: the
//! first 64 KiB onto the heap, anything longer into an unlinked temporary
//! file (`tempfile`, in `$TMPDIR`) that is then mapped like a regular
//! file. The process's own memory is therefore the same small constant
//! for a 48 MiB FIFO as for a 48 MiB file; the spooled bytes are page
//! cache, written back to disk under pressure, and vanish with the
//! process. (A `$TMPDIR` on tmpfs holds them in RAM instead: still not
//! the process's anonymous memory, and still bounded by the limit.)
//!
//! Every input is checked against its limit (for a boot input, the guest's
//! RAM: a file larger than the guest cannot be loaded into it) *before* it
//! is mapped or read past the limit, with one typed error,
//! [`InputError::TooLarge`], that names the file and both sizes.
//!
//! An [`Input`] dereferences to `&[u8]`, so it plugs into
//! [`BootConfig`](crate::BootConfig) and every parser unchanged; clones
//! share the bytes.
//!
//! A mapped file must not be truncated or rewritten while it is in use:
//! as for any mapped file (and as for the unpack cache's entries), reading
//! a page that a truncation removed raises `SIGBUS`, and a rewrite may be
//! seen by the copy into guest memory. Boot inputs are read-only in
//! practice (a kernel being rebuilt is written to a new file and renamed),
//! which is why mapping is worth it: a 65 MB vmlinux is not held on the
//! heap a second time while it is also in guest memory.
//!
//! ```no_run
//! use pvh_loader::input::Input;
//!
//! # fn main() -> Result<(), pvh_loader::input::InputError> {
//! let memory = 512 << 20;
//! let kernel = Input::open("vmlinux", memory)?;
//! let initrd = Input::open("initrd.img", memory - kernel.len() as u64)?;
//! assert!(kernel.len() + initrd.len() <= memory as usize);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pvh_entry::text::Escaped;

/// Bytes read from a non-regular file are read in pieces of this size
/// (the one heap buffer a long non-regular input costs).
const READ_CHUNK: usize = 1 << 20;

/// Regular files at least this large are mapped; smaller ones are read
/// (a mapping costs a whole page and a kernel VMA however small the file:
/// 4,097 one-line modules would cost 16 MiB of page-table-mapped pages).
/// A non-regular input longer than this is spooled to a temporary file
/// and mapped.
const MAP_THRESHOLD: u64 = 64 << 10;

/// The bytes of one boot input: a read-only mapping of a regular file, or
/// bytes in memory (read from a non-regular file, built in, or made by the
/// caller). Cheap to clone; dereferences to `&[u8]`.
#[derive(Clone)]
pub struct Input {
    bytes: Repr,
}

#[derive(Clone)]
enum Repr {
    /// A regular file, or the temporary file a long non-regular input was
    /// spooled to, mapped read-only and private.
    Mapped(Arc<memmap2::Mmap>, InputKind),
    /// Bytes on the heap (a short non-regular file's, or a caller's `Vec`).
    Heap(Arc<Vec<u8>>),
    /// Bytes shared with the caller.
    Shared(Arc<[u8]>),
    /// Bytes built into the program (the probe guest).
    Static(&'static [u8]),
}

/// How an input was obtained, for reports and the RSS benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// A regular file, mapped (not read).
    Mapped,
    /// A non-regular input (pipe, FIFO, device) longer than 64 KiB, copied
    /// to an unlinked temporary file and mapped.
    Spooled,
    /// Read into memory (a short non-regular file, a small regular file,
    /// or bytes a caller made).
    InMemory,
    /// Built into the program.
    BuiltIn,
}

/// Why an input cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The file cannot be opened, inspected, mapped or read.
    #[error("cannot read {}: {source}", esc_path(.path))]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A long non-regular input could not be copied to its temporary file
    /// (no space in `$TMPDIR`, or no `$TMPDIR`).
    #[error(
        "cannot hold {} in a temporary file in {}: {source}",
        esc_path(.path),
        esc_path(.dir)
    )]
    Spool {
        /// The input.
        path: PathBuf,
        /// The directory the temporary file was made in.
        dir: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The input is larger than its limit (for a boot input, the guest's
    /// RAM, or what is left of it after the inputs before it): refused
    /// before it was mapped, or after reading one byte more than the limit
    /// from a source that does not tell its size.
    #[error(
        "{} is {}, more than the {} {}",
        esc_path(.path),
        Size(*.size, *.exact),
        Size(*.limit, true),
        .what
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size; with `exact == false`, a lower bound (what was read
        /// before stopping).
        size: u64,
        /// Whether `size` is the file's size (`stat`) or only how far it
        /// was read.
        exact: bool,
        /// The limit.
        limit: u64,
        /// What the limit is, e.g. "of guest RAM (--memory 512 MiB)".
        what: String,
    },
}

impl InputError {
    /// Whether the input is at fault (missing, unreadable, too large),
    /// rather than the host (no room for a temporary file): a tool gives
    /// the two different exit statuses.
    pub fn is_input_fault(&self) -> bool {
        !matches!(self, Self::Spool { .. })
    }

    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Io { path, .. } | Self::Spool { path, .. } | Self::TooLarge { path, .. } => path,
        }
    }
}

/// A path, escaped for messages (a file name can hold any byte but NUL).
fn esc_path(p: &Path) -> Escaped<'_> {
    Escaped(p.as_os_str().as_encoded_bytes())
}

/// A byte count for messages: bytes, with a binary unit when large.
struct Size(u64, bool);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Size(n, exact) = *self;
        if !exact {
            f.write_str("at least ")?;
        }
        write!(f, "{n} bytes")?;
        const UNITS: [(&str, u32); 4] = [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)];
        if let Some((unit, shift)) = UNITS.iter().find(|(_, s)| n >> s > 0) {
            write!(f, " ({:.1} {unit})", n as f64 / (1u64 << shift) as f64)?;
        }
        Ok(())
    }
}

impl Input {
    /// Opens `path` as an input of at most `limit` bytes, described in
    /// errors as "of guest RAM".
    pub fn open(path: impl AsRef<Path>, limit: u64) -> Result<Self, InputError> {
        Self::open_within(path, limit, "of guest RAM")
    }

    /// Opens `path` as an input of at most `limit` bytes; `what` says what
    /// the limit is in [`InputError::TooLarge`] ("of guest RAM left after
    /// the kernel", "a device tree may have", ...).
    ///
    /// A regular file's size is checked before anything is mapped; it is
    /// then mapped read-only. Anything else is read, one chunk at a time,
    /// until its end or until one byte more than `limit` has arrived.
    pub fn open_within(
        path: impl AsRef<Path>,
        limit: u64,
        what: impl fmt::Display,
    ) -> Result<Self, InputError> {
        Self::open_spooling_in(path.as_ref(), limit, &what, &std::env::temp_dir())
    }

    /// [`Input::open_within`], spooling a long non-regular input to a
    /// temporary file in `dir`.
    fn open_spooling_in(
        path: &Path,
        limit: u64,
        what: &dyn fmt::Display,
        dir: &Path,
    ) -> Result<Self, InputError> {
        let io_err = |source| InputError::Io {
            path: path.to_path_buf(),
            source,
        };
        let too_large = |size, exact| InputError::TooLarge {
            path: path.to_path_buf(),
            size,
            exact,
            limit,
            what: what.to_string(),
        };
        let mut file = File::open(path).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        if meta.is_dir() {
            return Err(io_err(io::Error::from(io::ErrorKind::IsADirectory)));
        }
        if meta.is_file() && meta.len() > limit {
            return Err(too_large(meta.len(), true));
        }
        if meta.is_file() && meta.len() >= MAP_THRESHOLD {
            // SAFETY: the mapping is read-only and private, and lives as
            // long as the `Input` (the `Arc`). The file is not changed by
            // this process; a third party truncating it while it is mapped
            // makes a later read of a removed page raise SIGBUS, as for any
            // mapped file: the module documentation says so.
            let map = unsafe { memmap2::MmapOptions::new().map(&file) }.map_err(io_err)?;
            // The file may have grown between `stat` and `mmap`: the
            // mapping's length is what is used.
            if map.len() as u64 > limit {
                return Err(too_large(map.len() as u64, true));
            }
            return Ok(Self {
                bytes: Repr::Mapped(Arc::new(map), InputKind::Mapped),
            });
        }
        // A small regular file, a pipe, a character device, a /proc file
        // (which `stat`s as empty but is not): read with the limit, the
        // first MAP_THRESHOLD bytes onto the heap.
        let cap = limit.saturating_add(1);
        let mut head = Vec::new();
        let head_cap = cap.min(MAP_THRESHOLD + 1);
        (&mut file)
            .take(head_cap)
            .read_to_end(&mut head)
            .map_err(io_err)?;
        if (head.len() as u64) < head_cap {
            head.shrink_to_fit();
            return Ok(Self {
                bytes: Repr::Heap(Arc::new(head)),
            });
        }
        if head.len() as u64 == cap {
            return Err(too_large(cap, false));
        }
        // Longer than a small file: the rest goes to a temporary file, so
        // the heap never holds more than one chunk of it.
        let spool_err = |source| InputError::Spool {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
            source,
        };
        let mut spool = tempfile::tempfile_in(dir).map_err(spool_err)?;
        spool.write_all(&head).map_err(spool_err)?;
        let mut total = head.len() as u64;
        drop(head);
        let mut chunk = vec![0u8; READ_CHUNK];
        loop {
            let room = cap - total;
            if room == 0 {
                return Err(too_large(total, false));
            }
            let want = chunk.len().min(usize::try_from(room).unwrap_or(usize::MAX));
            match file.read(&mut chunk[..want]) {
                Ok(0) => break,
                Ok(n) => {
                    spool.write_all(&chunk[..n]).map_err(spool_err)?;
                    total += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err(e)),
            }
        }
        // SAFETY: the temporary file is unlinked and private to this
        // process (no one else can name it, so no one truncates it); the
        // mapping is read-only and lives as long as the `Input`.
        let map = unsafe { memmap2::MmapOptions::new().map(&spool) }.map_err(spool_err)?;
        Ok(Self {
            bytes: Repr::Mapped(Arc::new(map), InputKind::Spooled),
        })
    }

    /// Built-in bytes (such as a guest program compiled into the binary).
    pub const fn built_in(bytes: &'static [u8]) -> Self {
        Self {
            bytes: Repr::Static(bytes),
        }
    }

    /// How the bytes were obtained.
    pub fn kind(&self) -> InputKind {
        match self.bytes {
            Repr::Mapped(_, kind) => kind,
            Repr::Heap(_) | Repr::Shared(_) => InputKind::InMemory,
            Repr::Static(_) => InputKind::BuiltIn,
        }
    }

    /// Whether `self` and `other` share one copy of their bytes (one is a
    /// clone of the other): a file named twice is read once.
    pub fn shares_bytes_with(&self, other: &Self) -> bool {
        core::ptr::eq(self.as_slice(), other.as_slice())
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match &self.bytes {
            Repr::Mapped(m, _) => m,
            Repr::Heap(v) => v,
            Repr::Shared(a) => a,
            Repr::Static(s) => s,
        }
    }
}

impl Deref for Input {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for Input {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl From<Vec<u8>> for Input {
    fn from(v: Vec<u8>) -> Self {
        Self {
            bytes: Repr::Heap(Arc::new(v)),
        }
    }
}

impl From<Arc<[u8]>> for Input {
    fn from(a: Arc<[u8]>) -> Self {
        Self {
            bytes: Repr::Shared(a),
        }
    }
}

impl From<&[u8]> for Input {
    fn from(s: &[u8]) -> Self {
        s.to_vec().into()
    }
}

impl PartialEq for Input {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Input {}

impl fmt::Debug for Input {
    /// The kind and length, not the bytes (an input may be a 65 MB kernel).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Input")
            .field("kind", &self.kind())
            .field("len", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pvh-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    #[test]
    fn a_regular_file_is_mapped_with_its_bytes_and_a_small_one_read() {
        let p = temp("regular");
        let bytes: Vec<u8> = (0..MAP_THRESHOLD).map(|i| i as u8).collect();
        std::fs::write(&p, &bytes).unwrap();
        let input = Input::open(&p, MAP_THRESHOLD).unwrap();
        assert_eq!(input.kind(), InputKind::Mapped);
        assert_eq!(&input[..], &bytes[..]);
        assert_eq!(input.clone(), input);
        assert!(input.clone().shares_bytes_with(&input));
        std::fs::write(&p, b"kernel bytes").unwrap();
        let input = Input::open(&p, 100).unwrap();
        assert_eq!(input.kind(), InputKind::InMemory);
        assert_eq!(&input[..], b"kernel bytes");
        // The limit holds for small files too.
        assert!(matches!(
            Input::open(&p, 11),
            Err(InputError::TooLarge {
                size: 12,
                exact: true,
                ..
            })
        ));
    }

    #[test]
    fn a_file_over_the_limit_is_refused_by_its_size() {
        let p = temp("sparse");
        let f = File::create(&p).unwrap();
        // Sparse: 4 GiB of size, no blocks.
        f.set_len(4 << 30).unwrap();
        match Input::open(&p, 512 << 20).unwrap_err() {
            InputError::TooLarge {
                size, exact, limit, ..
            } => assert_eq!((size, exact, limit), (4 << 30, true, 512 << 20)),
            e => panic!("{e}"),
        }
        let msg = Input::open(&p, 512 << 20).unwrap_err().to_string();
        assert!(
            msg.contains(
                "4294967296 bytes (4.0 GiB), more than the 536870912 bytes (512.0 MiB) of guest RAM"
            ),
            "{msg}"
        );
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn an_endless_device_is_read_to_one_byte_past_the_limit() {
        match Input::open("/dev/zero", 3 << 20).unwrap_err() {
            InputError::TooLarge {
                size, exact, limit, ..
            } => assert_eq!((size, exact, limit), ((3 << 20) + 1, false, 3 << 20)),
            e => panic!("{e}"),
        }
    }

    /// A pipe whose other end writes `len` bytes of a known pattern
    /// (`i as u8` at offset `i`); the path names the read end.
    fn pipe_of(len: usize) -> (PathBuf, std::thread::JoinHandle<()>, std::io::PipeReader) {
        let (reader, mut writer) = std::io::pipe().unwrap();
        let feeder = std::thread::spawn(move || {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            // The reader may stop early (over its limit): a broken pipe
            // is expected then.
            let _ = writer.write_all(&bytes);
        });
        use std::os::fd::AsRawFd;
        let path = PathBuf::from(format!("/proc/self/fd/{}", reader.as_raw_fd()));
        (path, feeder, reader)
    }

    #[test]
    fn a_pipe_within_the_limit_is_read_whole() {
        let (path, feeder, _reader) = pipe_of(11);
        let input = Input::open(&path, 100).unwrap();
        feeder.join().unwrap();
        assert_eq!(input.kind(), InputKind::InMemory);
        assert_eq!(&input[..], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    }

    #[test]
    fn a_pipe_of_exactly_64_kib_stays_on_the_heap_and_one_byte_more_is_spooled() {
        for (len, kind) in [
            (65536, InputKind::InMemory),
            (65537, InputKind::Spooled),
            (3 << 20, InputKind::Spooled),
        ] {
            let (path, feeder, _reader) = pipe_of(len);
            let input = Input::open(&path, 4 << 20).unwrap();
            feeder.join().unwrap();
            assert_eq!((input.len(), input.kind()), (len, kind));
            assert!(input.iter().enumerate().all(|(i, &b)| b == i as u8));
        }
    }

    #[test]
    fn a_spooled_pipe_over_the_limit_is_refused_one_byte_past_it() {
        let (path, feeder, reader) = pipe_of(2 << 20);
        match Input::open(&path, 1 << 20).unwrap_err() {
            InputError::TooLarge {
                size, exact, limit, ..
            } => assert_eq!((size, exact, limit), ((1 << 20) + 1, false, 1 << 20)),
            e => panic!("{e}"),
        }
        drop(reader);
        feeder.join().unwrap();
    }

    #[test]
    fn a_spool_that_cannot_be_made_is_its_own_error() {
        let (path, feeder, reader) = pipe_of(1 << 20);
        let dir = Path::new("/nonexistent-pvh-spool-dir");
        let e = Input::open_spooling_in(&path, 2 << 20, &"of guest RAM", dir).unwrap_err();
        drop(reader);
        feeder.join().unwrap();
        assert!(
            matches!(&e, InputError::Spool { dir: d, .. } if d == dir),
            "{e}"
        );
        assert_eq!(e.path(), path);
        let msg = e.to_string();
        assert!(
            msg.contains("in a temporary file in /nonexistent-pvh-spool-dir: "),
            "{msg}"
        );
    }

    #[test]
    fn a_proc_file_that_stats_empty_is_read() {
        let input = Input::open("/proc/self/status", 1 << 20).unwrap();
        assert!(input.starts_with(b"Name:"));
    }

    #[test]
    fn empty_files_and_directories() {
        let p = temp("empty");
        File::create(&p).unwrap().flush().unwrap();
        assert!(Input::open(&p, 0).unwrap().is_empty());
        assert!(matches!(
            Input::open(std::env::temp_dir(), 10),
            Err(InputError::Io { .. })
        ));
        assert!(matches!(
            Input::open(temp("missing"), 10),
            Err(InputError::Io { .. })
        ));
    }

    #[test]
    fn names_are_escaped() {
        let e = Input::open("/nonexistent/\x1b[2Jx", 1).unwrap_err();
        assert!(e.to_string().contains("\\x1b[2Jx"), "{e}");
    }
}
