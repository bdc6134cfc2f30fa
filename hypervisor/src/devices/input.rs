//! Host input for the guest's serial console: a thread that copies a byte
//! stream (the host's stdin) into COM1's receive FIFO as the guest drains it.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use super::serial::Uart;

/// How long to wait before offering bytes again when the FIFO is full.
const FULL_FIFO_RETRY: Duration = Duration::from_millis(1);

/// Starts a thread copying `input` into `uart` until end of input, a read
/// error, or `stop`. A guest that never reads keeps the thread waiting for
/// FIFO room (checking `stop` every millisecond), never spinning.
pub fn spawn_feeder(
    uart: Arc<Mutex<Uart>>,
    mut input: impl Read + Send + 'static,
    stop: Arc<AtomicBool>,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("serial-input".into())
        .spawn(move || {
            let mut buf = [0u8; 256];
            while !stop.load(Ordering::SeqCst) {
                let n = match input.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let mut pending = buf.get(..n).unwrap_or_default();
                while !pending.is_empty() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let taken = uart
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .receive(pending);
                    match taken {
                        Ok(0) => std::thread::sleep(FULL_FIFO_RETRY),
                        Ok(k) => pending = pending.get(k..).unwrap_or_default(),
                        // The interrupt line is gone: the VM is over.
                        Err(_) => return,
                    }
                }
            }
        })
}
