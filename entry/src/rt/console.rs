//! Console output: a polled 8250/16550 UART at COM1 (0x3F8), or the Xen
//! debug port 0xE9 when running under Xen (COM1 belongs to Xen there).
//!
//! The byte handling ([`ByteSink`], [`LineWriter`], [`Escaped`]) is plain
//! code tested on the host; the ports are used only on `target_os = "none"`.

use core::fmt;

/// COM1's I/O base.
pub use crate::machine::COM1_PORT as COM1;
/// The Bochs/QEMU/Xen debug console port.
pub use crate::machine::DEBUGCON_PORT as DEBUG_PORT;
/// How many times to poll the UART's "transmitter holding register empty"
/// bit before writing anyway: a missing UART (reads 0xFF) or a stuck one
/// must not hang the guest.
pub const UART_POLL_LIMIT: u32 = 100_000;

/// Something that takes bytes one at a time.
pub trait ByteSink {
    /// Whether `\n` must go out as `\r\n` (a terminal on a UART needs it;
    /// Xen's line-buffered port 0xE9 does not).
    const CRLF: bool;
    /// Sends one byte.
    fn put(&mut self, byte: u8);
}

/// A [`fmt::Write`] over a [`ByteSink`] that adds `\r` before `\n` when the
/// sink asks for it.
#[derive(Debug)]
pub struct LineWriter<S>(pub S);

impl<S: ByteSink> LineWriter<S> {
    /// Writes raw bytes.
    pub fn write_bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if S::CRLF && b == b'\n' {
                self.0.put(b'\r');
            }
            self.0.put(b);
        }
    }
}

impl<S: ByteSink> fmt::Write for LineWriter<S> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}

/// Re-exported from [`crate::text`], where the host uses it too.
pub use crate::text::Escaped;

#[cfg(target_os = "none")]
pub use hw::{Console, DebugPort, Uart, console, print};

#[cfg(target_os = "none")]
mod hw {
    use super::*;
    use x86_64::instructions::port::Port;

    /// A polled 8250-compatible UART, used as the firmware left it (QEMU's
    /// needs no setup to transmit).
    #[derive(Debug, Clone, Copy)]
    pub struct Uart {
        base: u16,
    }

    impl Uart {
        /// The UART at I/O base `base`.
        pub const fn new(base: u16) -> Self {
            Self { base }
        }
    }

    impl ByteSink for Uart {
        const CRLF: bool = true;
        fn put(&mut self, byte: u8) {
            let mut lsr: Port<u8> = Port::new(self.base + 5);
            let mut thr: Port<u8> = Port::new(self.base);
            for _ in 0..UART_POLL_LIMIT {
                // SAFETY: reading the line status register has no side
                // effect on an 8250; on a port with no device it reads 0xFF.
                if unsafe { lsr.read() } & 0x20 != 0 {
                    break;
                }
            }
            // SAFETY: writing the transmit register of COM1 only sends a byte.
            unsafe { thr.write(byte) };
        }
    }

    /// Xen's (and Bochs') debug port 0xE9: one byte per write, printed by
    /// Xen per line as `(d0) ...` with `guest_loglvl=all`.
    #[derive(Debug, Clone, Copy)]
    pub struct DebugPort;

    impl ByteSink for DebugPort {
        const CRLF: bool = false;
        fn put(&mut self, byte: u8) {
            let mut port: Port<u8> = Port::new(DEBUG_PORT);
            // SAFETY: port 0xE9 is a write-only debug console.
            unsafe { port.write(byte) };
        }
    }

    /// The console chosen at boot.
    #[derive(Debug, Clone, Copy)]
    pub enum Console {
        /// COM1.
        Uart(Uart),
        /// Port 0xE9 (under Xen).
        Debug(DebugPort),
    }

    impl fmt::Write for Console {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            match *self {
                Console::Uart(u) => LineWriter(u).write_str(s),
                Console::Debug(d) => LineWriter(d).write_str(s),
            }
        }
    }

    /// The console for this platform: port 0xE9 under Xen, COM1 elsewhere.
    pub fn console() -> Console {
        if crate::rt::xen::detected().is_some() {
            Console::Debug(DebugPort)
        } else {
            Console::Uart(Uart::new(COM1))
        }
    }

    /// Prints formatted text (what [`rt_print!`](crate::rt_print) calls).
    pub fn print(args: fmt::Arguments<'_>) {
        // Output is best effort: a console has nowhere to report failure.
        let _ = fmt::Write::write_fmt(&mut console(), args);
    }
}

/// Prints to the runtime console.
#[macro_export]
macro_rules! rt_print {
    ($($arg:tt)*) => { $crate::rt::console::print(format_args!($($arg)*)) };
}

/// Prints a line to the runtime console.
#[macro_export]
macro_rules! rt_println {
    () => { $crate::rt_print!("\n") };
    ($($arg:tt)*) => { $crate::rt::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::fmt::Write;

    struct Bytes<const CRLF: bool>(Vec<u8>);
    impl<const CRLF: bool> ByteSink for Bytes<CRLF> {
        const CRLF: bool = CRLF;
        fn put(&mut self, byte: u8) {
            self.0.push(byte);
        }
    }

    #[test]
    fn uart_lines_end_in_crlf_debug_port_lines_do_not() {
        let mut w = LineWriter(Bytes::<true>(Vec::new()));
        write!(w, "a=1\nb={}\n", 2).unwrap();
        assert_eq!(w.0.0, b"a=1\r\nb=2\r\n");
        let mut w = LineWriter(Bytes::<false>(Vec::new()));
        w.write_str("a=1\n").unwrap();
        assert_eq!(w.0.0, b"a=1\n");
    }
}
