//! `pvh-hypervisor`: a small KVM hypervisor that boots PVH guests (and, via
//! the loader, Linux bzImages), with the fewest devices Linux needs.
//!
//! The pieces, one file per concern:
//! - [`kvm`]: opening `/dev/kvm` with a useful error;
//! - [`vm`] and [`memory`]: the VM, guest RAM, in-kernel irqchip and PIT;
//! - [`vcpu`], [`cpuid`], [`lapic`]: vCPU setup and the exit loop;
//! - [`runner`]: one thread per vCPU, timeout and stop;
//! - [`devices`]: UART, i8042, CMOS/RTC, debug console, exit port, ACPI
//!   sleep control;
//! - [`outcome`]: why a run ended and the process exit status;
//! - [`output`]: everything `pvh` prints, and what a closed pipe or a full
//!   disk does to it;
//! - [`host`]: what the host can give guests;
//! - [`boot`]: everything `pvh boot` does, as a library call.
//!
//! ```no_run
//! use std::time::Duration;
//! use pvh_hypervisor::boot::{BootOptions, boot};
//! use pvh_hypervisor::devices::ConsoleOut;
//!
//! let config = pvh_loader::BootConfig::new(pvh_loader::Kernel::pvh_elf(pvh_guests::PROBE))
//!     .cmdline(b"console=ttyS0");
//! let opts = BootOptions {
//!     kvm_device: "/dev/kvm".into(),
//!     memory: 64 << 20,
//!     timeout: Some(Duration::from_secs(10)),
//!     console: ConsoleOut::stdout(),
//!     vcpus: 1,
//! };
//! let (report, _vm) = boot(&config, &opts)?;
//! // The probe exits through the exit port with 0 when all is well.
//! assert_eq!(report.end.status(), pvh_hypervisor::status::SUCCESS);
//! # Ok::<(), pvh_hypervisor::boot::BootError>(())
//! ```

pub mod boot;
pub mod cli;
pub mod cpuid;
pub mod devices;
pub mod error;
pub mod host;
pub mod kvm;
pub mod lapic;
pub mod launch;
pub mod memory;
pub mod msr;
pub mod outcome;
pub mod output;
pub mod probe;
pub mod runner;
pub mod vcpu;
pub mod vm;

pub use error::Error;
pub use outcome::{RegsDump, VmEnd, status};
