//! The panic handler: one line on the console, then
//! [`ExitCode::Panic`](super::exit::ExitCode::Panic).

use super::exit::{ExitCode, exit};

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    match info.location() {
        Some(l) => crate::rt_println!("panic: {} at {}:{}", info.message(), l.file(), l.line()),
        None => crate::rt_println!("panic: {}", info.message()),
    }
    exit(ExitCode::Panic)
}
