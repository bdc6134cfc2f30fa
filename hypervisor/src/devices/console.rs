//! The host side of guest console output, shared by the UART and the 0xe9
//! debug console so both land in one stream in the order the guest wrote.

use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};

/// A cloneable, thread-safe handle on the console sink (stdout or a file).
///
/// A failed write comes back with the sink's name in the message and its
/// kind unchanged, so the caller can tell a closed pipe from a full disk
/// (see [`crate::output`]).
#[derive(Clone)]
pub struct ConsoleOut(Arc<Mutex<Sink>>);

struct Sink {
    name: String,
    out: Box<dyn Write + Send>,
}

impl std::fmt::Debug for ConsoleOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConsoleOut")
    }
}

impl ConsoleOut {
    /// Wrap a writer (called "guest console" in messages).
    pub fn new(w: Box<dyn Write + Send>) -> Self {
        Self::named("guest console", w)
    }

    /// Wrap a writer called `name` in error messages (a path, "standard
    /// output").
    pub fn named(name: impl Into<String>, w: Box<dyn Write + Send>) -> Self {
        Self(Arc::new(Mutex::new(Sink {
            name: name.into(),
            out: w,
        })))
    }

    /// Guest output goes to the host's standard output.
    pub fn stdout() -> Self {
        Self::named(crate::output::STDOUT, Box::new(io::stdout()))
    }

    /// A console whose sink is chosen later ([`redirect`](Self::redirect));
    /// until then output is discarded. Lets `pvh boot` create its output
    /// file only once every input has been checked.
    pub fn pending() -> Self {
        Self::named("guest console", Box::new(io::sink()))
    }

    /// Sends all further output, from every clone of this handle, to `w`
    /// (called `name` in messages). What the old sink buffered is flushed
    /// first, ignoring errors.
    pub fn redirect(&self, name: impl Into<String>, w: Box<dyn Write + Send>) {
        let mut sink = self.lock();
        let _ = sink.out.flush();
        *sink = Sink {
            name: name.into(),
            out: w,
        };
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sink> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Sink {
    fn named(&self, e: io::Error) -> io::Error {
        io::Error::new(e.kind(), format!("{}: {e}", self.name))
    }
}

impl Write for ConsoleOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut sink = self.lock();
        sink.out.write(buf).map_err(|e| sink.named(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut sink = self.lock();
        sink.out.flush().map_err(|e| sink.named(e))
    }
}

/// A writer that keeps everything written to it, shared by its clones:
/// what the unit tests read a console's output from.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct Capture(pub(crate) Arc<Mutex<Vec<u8>>>);

#[cfg(test)]
impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Full;
    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from_raw_os_error(libc::ENOSPC))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn errors_name_the_sink_and_keep_their_kind() {
        let mut c = ConsoleOut::named("serial.log", Box::new(Full));
        let e = c.write_all(b"x").unwrap_err();
        assert_eq!(e.raw_os_error(), None, "rewrapped");
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        assert!(e.to_string().starts_with("serial.log: "), "{e}");
    }

    #[test]
    fn redirect_reaches_every_clone() {
        let pending = ConsoleOut::pending();
        let mut uart_side = pending.clone();
        uart_side.write_all(b"lost").unwrap();
        let cap = Capture::default();
        pending.redirect("capture", Box::new(cap.clone()));
        uart_side.write_all(b"kept").unwrap();
        assert_eq!(&*cap.0.lock().unwrap(), b"kept");
    }
}
