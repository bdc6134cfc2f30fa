//! Host input for the guest's serial console: a thread that copies a byte
//! stream (the host's stdin) into COM1's receive FIFO as the guest drains it,
//! and, for an interactive console, the escape key that talks to `pvh`
//! instead of the guest.
//!
//! The escape key is QEMU's (`-nographic`): **Ctrl-A**, then
//! - `x`: quit `pvh` (the guest is stopped; status 78),
//! - `h` or `?`: list these keys (on standard error),
//! - Ctrl-A: send one Ctrl-A to the guest.
//!
//! Any other key after Ctrl-A is dropped, with the Ctrl-A.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use super::serial::Uart;

/// How long to wait before offering bytes again when the FIFO is full.
const FULL_FIFO_RETRY: Duration = Duration::from_millis(1);

/// The escape key: Ctrl-A.
pub const ESCAPE: u8 = 0x01;

/// What the escape keys are, for the `h` key and the docs.
pub const ESCAPE_HELP: &str = "Ctrl-A x  quit pvh (stops the guest)\r\n\
                               Ctrl-A h  this help\r\n\
                               Ctrl-A Ctrl-A  send Ctrl-A to the guest\r\n";

/// A command typed after the escape key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EscapeCommand {
    /// `x`: quit.
    Quit,
    /// `h` or `?`: show the keys.
    Help,
}

/// Splits typed bytes into what goes to the guest and escape commands.
/// Keeps its state across calls, so Ctrl-A and its key may arrive in
/// separate reads.
#[derive(Debug, Default, Clone)]
pub struct EscapeFilter {
    after_escape: bool,
}

impl EscapeFilter {
    /// A filter with no pending escape.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds `input`; bytes for the guest are appended to `guest`. Returns
    /// the first command found; the bytes after it are left unread, and
    /// their count is the second value (feed them again to go on).
    pub fn feed(&mut self, input: &[u8], guest: &mut Vec<u8>) -> (Option<EscapeCommand>, usize) {
        for (i, &b) in input.iter().enumerate() {
            if !self.after_escape {
                if b == ESCAPE {
                    self.after_escape = true;
                } else {
                    guest.push(b);
                }
                continue;
            }
            self.after_escape = false;
            let command = match b {
                b'x' | b'X' => EscapeCommand::Quit,
                b'h' | b'H' | b'?' => EscapeCommand::Help,
                ESCAPE => {
                    guest.push(ESCAPE);
                    continue;
                }
                _ => continue,
            };
            return (Some(command), input.len() - i - 1);
        }
        (None, 0)
    }
}

/// What the feeder does with the escape key: nothing (every byte goes to
/// the guest), or filter it and hand commands to this function.
pub type EscapeHandler = Box<dyn FnMut(EscapeCommand) + Send>;

/// Starts a thread copying `input` into `uart` until end of input, a read
/// error, or `stop`. A guest that never reads keeps the thread waiting for
/// FIFO room (checking `stop` every millisecond), never spinning. With
/// `escape`, Ctrl-A sequences are taken out of the stream and given to it.
pub fn spawn_feeder(
    uart: Arc<Mutex<Uart>>,
    mut input: impl Read + Send + 'static,
    stop: Arc<AtomicBool>,
    mut escape: Option<EscapeHandler>,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("serial-input".into())
        .spawn(move || {
            let mut buf = [0u8; 256];
            let mut filter = EscapeFilter::new();
            let mut guest = Vec::with_capacity(buf.len());
            while !stop.load(Ordering::SeqCst) {
                let n = match input.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let mut read = buf.get(..n).unwrap_or_default();
                loop {
                    guest.clear();
                    let command = match &mut escape {
                        Some(handler) => {
                            let (command, left) = filter.feed(read, &mut guest);
                            read = read.get(read.len() - left..).unwrap_or_default();
                            command.map(|c| (handler, c))
                        }
                        None => {
                            guest.extend_from_slice(read);
                            read = &[];
                            None
                        }
                    };
                    if !deliver(&uart, &guest, &stop) {
                        return;
                    }
                    match command {
                        Some((handler, EscapeCommand::Quit)) => {
                            handler(EscapeCommand::Quit);
                            return;
                        }
                        Some((handler, c)) => handler(c),
                        None => break,
                    }
                }
            }
        })
}

/// Hands `pending` to the UART as the guest makes room; false when the
/// feeder should stop (asked to, or the VM is gone).
fn deliver(uart: &Mutex<Uart>, mut pending: &[u8], stop: &AtomicBool) -> bool {
    while !pending.is_empty() {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        let taken = uart
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .receive(pending);
        match taken {
            Ok(0) => std::thread::sleep(FULL_FIFO_RETRY),
            Ok(k) => pending = pending.get(k..).unwrap_or_default(),
            // The interrupt line is gone: the VM is over.
            Err(_) => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(filter: &mut EscapeFilter, input: &[u8]) -> (Vec<u8>, Vec<EscapeCommand>) {
        let mut guest = Vec::new();
        let mut commands = Vec::new();
        let mut rest = input;
        loop {
            let (c, left) = filter.feed(rest, &mut guest);
            rest = &rest[rest.len() - left..];
            match c {
                Some(c) => commands.push(c),
                None => return (guest, commands),
            }
        }
    }

    #[test]
    fn plain_bytes_pass_through() {
        let mut f = EscapeFilter::new();
        assert_eq!(run(&mut f, b"ls -l\r"), (b"ls -l\r".to_vec(), vec![]));
    }

    #[test]
    fn ctrl_a_x_quits_and_leaves_the_rest_unread() {
        let mut f = EscapeFilter::new();
        let mut guest = Vec::new();
        let (c, left) = f.feed(b"ab\x01xcd", &mut guest);
        assert_eq!(c, Some(EscapeCommand::Quit));
        assert_eq!(left, 2);
        assert_eq!(guest, b"ab");
    }

    #[test]
    fn escape_split_across_reads() {
        let mut f = EscapeFilter::new();
        assert_eq!(run(&mut f, b"a\x01"), (b"a".to_vec(), vec![]));
        assert_eq!(
            run(&mut f, b"hb"),
            (b"b".to_vec(), vec![EscapeCommand::Help])
        );
    }

    #[test]
    fn double_ctrl_a_sends_one_and_unknown_keys_are_dropped() {
        let mut f = EscapeFilter::new();
        assert_eq!(
            run(&mut f, b"\x01\x01\x01zq\x01?"),
            (b"\x01q".to_vec(), vec![EscapeCommand::Help])
        );
    }

    proptest::proptest! {
        #[test]
        fn without_ctrl_a_everything_reaches_the_guest(bytes: Vec<u8>) {
            let clean: Vec<u8> = bytes.into_iter().filter(|&b| b != ESCAPE).collect();
            let mut f = EscapeFilter::new();
            proptest::prop_assert_eq!(run(&mut f, &clean), (clean.clone(), vec![]));
        }
    }
}
