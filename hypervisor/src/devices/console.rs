//! The host side of guest console output, shared by the UART and the 0xe9
//! debug console so both land in one stream in the order the guest wrote.

use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};

/// A cloneable, thread-safe handle on the console sink (stdout or a file).
#[derive(Clone)]
pub struct ConsoleOut(Arc<Mutex<Box<dyn Write + Send>>>);

impl std::fmt::Debug for ConsoleOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConsoleOut")
    }
}

impl ConsoleOut {
    /// Wrap a writer.
    pub fn new(w: Box<dyn Write + Send>) -> Self {
        Self(Arc::new(Mutex::new(w)))
    }

    /// Guest output goes to the host's standard output.
    pub fn stdout() -> Self {
        Self::new(Box::new(io::stdout()))
    }
}

impl Write for ConsoleOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .flush()
    }
}
