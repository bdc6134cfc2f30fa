//! Console output: a polled 8250/16550 UART at COM1 (0x3F8), sixteen bytes
//! per poll once its FIFO is on, or the Xen debug port 0xE9 when running
//! under Xen (COM1 belongs to Xen there).
//!
//! The byte handling ([`ByteSink`], [`LineWriter`], [`UartTx`],
//! [`enable_fifo`], [`Escaped`]) is plain code tested on the host against
//! UART models; the ports are used only on `target_os = "none"`.

use core::fmt;

/// COM1's I/O base.
pub use crate::machine::COM1_PORT as COM1;
/// The Bochs/QEMU/Xen debug console port.
pub use crate::machine::DEBUGCON_PORT as DEBUG_PORT;
/// How many times to poll the UART's "transmitter holding register empty"
/// bit before writing anyway: a missing UART (reads 0xFF) or a stuck one
/// must not hang the guest.
pub const UART_POLL_LIMIT: u32 = 100_000;

/// A UART's registers, by offset from its base: I/O ports on hardware, a
/// model in tests.
pub trait UartRegisters {
    /// Reads register `offset`.
    fn read(&mut self, offset: u16) -> u8;
    /// Writes register `offset`.
    fn write(&mut self, offset: u16, value: u8);
}

/// Transmit holding register (write).
pub const UART_THR: u16 = 0;
/// Interrupt identification register (read).
pub const UART_IIR: u16 = 2;
/// FIFO control register (write; the IIR's offset).
pub const UART_FCR: u16 = 2;
/// Line status register.
pub const UART_LSR: u16 = 5;
/// LSR: the transmit holding register (with FIFOs on: the transmit FIFO)
/// is empty.
pub const LSR_THRE: u8 = 0x20;
/// LSR: the transmitter is idle (nothing held, nothing shifting out).
pub const LSR_TEMT: u8 = 0x40;
/// FCR: enable the FIFOs.
pub const FCR_ENABLE_FIFO: u8 = 0x01;
/// IIR bits 7:6 are both set when the FIFOs are on and work (a 16550A or
/// later; 0b10 is the 16550's broken FIFO, 0b00 an 8250/16450).
pub const IIR_FIFO_ENABLED: u8 = 0xc0;
/// A 16550A's transmit FIFO.
pub const FIFO_16550A: u8 = 16;

/// Polls `regs`' LSR until `bits` are all set, at most [`UART_POLL_LIMIT`]
/// times.
fn wait_for<R: UartRegisters>(regs: &mut R, bits: u8) {
    for _ in 0..UART_POLL_LIMIT {
        if regs.read(UART_LSR) & bits == bits {
            return;
        }
    }
}

/// Turns the UART's FIFOs on and returns how many bytes may be written
/// each time the LSR says the transmitter is empty: [`FIFO_16550A`] when
/// the IIR shows working FIFOs, else 1.
///
/// Every VM exit counts in a guest: polled one byte at a time, each byte
/// costs two port accesses; through a 16550A's FIFO it costs one and a
/// sixteenth. Linux's 8250 driver tells the models apart the same way
/// (`autoconfig`); every UART VMMs emulate (QEMU's, vm-superio's in
/// Firecracker and pvh, Cloud Hypervisor's) reports a 16550A. Waits for
/// the transmitter to go idle first: switching the FIFOs resets them, and
/// whatever the firmware sent must not be lost.
pub fn enable_fifo<R: UartRegisters>(regs: &mut R) -> u8 {
    wait_for(regs, LSR_TEMT | LSR_THRE);
    regs.write(UART_FCR, FCR_ENABLE_FIFO);
    if regs.read(UART_IIR) & IIR_FIFO_ENABLED == IIR_FIFO_ENABLED {
        FIFO_16550A
    } else {
        1
    }
}

/// A polled UART transmitter that writes up to `depth` bytes each time the
/// LSR says the transmitter is empty.
#[derive(Debug)]
pub struct UartTx<R> {
    regs: R,
    depth: u8,
    room: u8,
}

impl<R: UartRegisters> UartTx<R> {
    /// A transmitter over `regs` with a transmit FIFO of `depth` bytes
    /// (from [`enable_fifo`]; 0 counts as 1).
    pub fn new(regs: R, depth: u8) -> Self {
        Self {
            regs,
            depth: depth.max(1),
            room: 0,
        }
    }

    /// The registers (for tests to inspect their model).
    pub fn registers(&self) -> &R {
        &self.regs
    }
}

impl<R: UartRegisters> ByteSink for UartTx<R> {
    const CRLF: bool = true;
    fn put(&mut self, byte: u8) {
        if self.room == 0 {
            // A missing UART reads 0xFF (empty at once); a stuck one is
            // polled [`UART_POLL_LIMIT`] times and then written anyway,
            // so neither hangs the guest.
            wait_for(&mut self.regs, LSR_THRE);
            self.room = self.depth;
        }
        self.regs.write(UART_THR, byte);
        self.room -= 1;
    }
}

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

impl<S: ByteSink> ByteSink for &mut S {
    const CRLF: bool = S::CRLF;
    fn put(&mut self, byte: u8) {
        (**self).put(byte);
    }
}

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
pub use hw::{Console, DebugPort, Uart, UartPorts, console, print};

#[cfg(target_os = "none")]
mod hw {
    use super::*;
    use core::sync::atomic::{AtomicU8, Ordering};
    use x86_64::instructions::port::Port;

    /// COM1's eight registers as I/O ports. Safe to hand out because it
    /// reaches nothing else: the base is the machine contract's COM1, and
    /// an offset wraps within the eight registers.
    #[derive(Debug, Clone, Copy)]
    pub struct UartPorts {
        base: u16,
    }

    impl UartPorts {
        /// COM1 ([`COM1`]).
        pub const fn com1() -> Self {
            Self { base: COM1 }
        }

        fn port(&self, offset: u16) -> Port<u8> {
            Port::new(self.base + (offset & 7))
        }
    }

    impl UartRegisters for UartPorts {
        fn read(&mut self, offset: u16) -> u8 {
            // SAFETY: a read of a UART register touches no memory; its side
            // effects stay in the UART (the RBR gives up a received byte,
            // the IIR acknowledges a THR-empty interrupt); a port with no
            // device reads 0xFF.
            unsafe { self.port(offset).read() }
        }
        fn write(&mut self, offset: u16, value: u8) {
            // SAFETY: a write to a UART register touches no memory: it
            // sends a byte or changes the UART's own settings.
            unsafe { self.port(offset).write(value) }
        }
    }

    /// The polled COM1 transmitter.
    pub type Uart = UartTx<UartPorts>;

    /// COM1's transmit FIFO depth, once [`enable_fifo`] has run (0 before).
    static COM1_FIFO: AtomicU8 = AtomicU8::new(0);

    /// COM1, its FIFOs turned on the first time.
    fn com1() -> Uart {
        let mut ports = UartPorts::com1();
        let depth = match COM1_FIFO.load(Ordering::Relaxed) {
            0 => {
                let d = enable_fifo(&mut ports);
                COM1_FIFO.store(d, Ordering::Relaxed);
                d
            }
            d => d,
        };
        UartTx::new(ports, depth)
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
    #[derive(Debug)]
    pub enum Console {
        /// COM1.
        Uart(Uart),
        /// Port 0xE9 (under Xen).
        Debug(DebugPort),
    }

    impl fmt::Write for Console {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            // By reference: the UART's FIFO room carries over from one
            // piece of a formatted line to the next.
            match self {
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
            Console::Uart(com1())
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

    /// A UART model: a transmit FIFO of `fifo` bytes when its FIFOs are
    /// on (else a holding register of one), from which the line takes
    /// `drain` bytes between two reads of the LSR (time passing while the
    /// guest polls). A byte written into a full FIFO is lost (an overrun).
    struct Model {
        fifo: usize,
        drain: usize,
        enabled: bool,
        queued: Vec<u8>,
        line: Vec<u8>,
        lost: usize,
        reads: usize,
        writes: usize,
    }

    impl Model {
        fn new(fifo: usize, drain: usize) -> Self {
            Self {
                fifo,
                drain,
                enabled: false,
                queued: Vec::new(),
                line: Vec::new(),
                lost: 0,
                reads: 0,
                writes: 0,
            }
        }
        fn capacity(&self) -> usize {
            if self.enabled { self.fifo } else { 1 }
        }
    }

    impl UartRegisters for Model {
        fn read(&mut self, offset: u16) -> u8 {
            self.reads += 1;
            match offset {
                UART_LSR => {
                    let n = self.drain.min(self.queued.len());
                    self.line.extend(self.queued.drain(..n));
                    if self.queued.is_empty() {
                        LSR_THRE | LSR_TEMT
                    } else {
                        0
                    }
                }
                UART_IIR if self.enabled && self.fifo > 1 => 0xc1,
                UART_IIR => 0x01,
                _ => 0,
            }
        }
        fn write(&mut self, offset: u16, value: u8) {
            self.writes += 1;
            match offset {
                UART_THR if self.queued.len() < self.capacity() => self.queued.push(value),
                UART_THR => self.lost += 1,
                UART_FCR => {
                    self.enabled = value & FCR_ENABLE_FIFO != 0;
                    self.queued.clear();
                }
                _ => {}
            }
        }
    }

    fn send(mut model: Model, text: &[u8]) -> Model {
        let depth = enable_fifo(&mut model);
        let mut tx = UartTx::new(model, depth);
        LineWriter(&mut tx).write_bytes(text);
        let mut m = tx.regs;
        while m.drain > 0 && !m.queued.is_empty() {
            m.read(UART_LSR);
        }
        m
    }

    const TEXT: &[u8] = b"stub: kernel from payload at 0x400000 (in place), zero page 0x7000\n";

    #[test]
    fn a_16550a_takes_sixteen_bytes_per_poll_and_loses_none() {
        let expected = [&TEXT[..TEXT.len() - 1], b"\r\n"].concat();
        for drain in [1, 3, 16] {
            let m = send(Model::new(16, drain), TEXT);
            assert_eq!(m.lost, 0, "drain {drain}");
            assert_eq!(m.line, expected, "drain {drain}");
            assert_eq!(m.writes, 1 + expected.len(), "FCR once, then each byte");
        }
        // With the line fast enough to empty the FIFO between polls: one
        // LSR read per 16 bytes (plus enable_fifo's LSR and IIR reads).
        let mut m = Model::new(16, 16);
        let depth = enable_fifo(&mut m);
        assert_eq!(depth, FIFO_16550A);
        let before = m.reads;
        let mut tx = UartTx::new(m, depth);
        LineWriter(&mut tx).write_bytes(&[b'x'; 64]);
        assert_eq!(tx.registers().reads - before, 4);
    }

    #[test]
    fn an_8250_without_fifos_gets_one_byte_per_poll() {
        let mut m = Model::new(1, 1);
        assert_eq!(enable_fifo(&mut m), 1);
        let m = send(Model::new(1, 1), TEXT);
        assert_eq!(m.lost, 0);
        assert_eq!(m.line.len(), TEXT.len() + 1);
        // A slow line: the holding register is full until the next poll.
        let m = send(Model::new(1, 0), b"ab");
        assert_eq!(m.line, b"", "nothing drains");
        assert_eq!(
            m.lost, 1,
            "the second byte overran a stuck UART after the poll limit"
        );
    }

    #[test]
    fn a_missing_uart_reading_all_ones_does_not_hang() {
        struct Absent(usize);
        impl UartRegisters for Absent {
            fn read(&mut self, _: u16) -> u8 {
                self.0 += 1;
                0xff
            }
            fn write(&mut self, _: u16, _: u8) {}
        }
        let mut a = Absent(0);
        let depth = enable_fifo(&mut a);
        let mut tx = UartTx::new(a, depth);
        LineWriter(&mut tx).write_bytes(&[b'x'; 40]);
        assert!(tx.registers().0 <= 2 + 3, "{} reads", tx.registers().0);
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
