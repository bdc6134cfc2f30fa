//! Errors setting up or running a VM.

use std::path::PathBuf;

use kvm_ioctls::Error as KvmError;

/// Setting up or running the VM failed (the guest did nothing wrong).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The KVM device could not be opened.
    #[error("cannot open {path}: {source} (is KVM available and are you allowed to use it?)")]
    KvmOpen {
        /// The device path tried.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: KvmError,
    },
    /// The KVM device answered with an API version other than the stable one.
    #[error("{path}: KVM_GET_API_VERSION returned {found}, expected {expected}")]
    KvmApiVersion {
        /// The device path.
        path: PathBuf,
        /// What the kernel returned.
        found: i32,
        /// `KVM_API_VERSION` (12).
        expected: i32,
    },
    /// A KVM capability this VMM needs is missing.
    #[error("KVM lacks capability {0}")]
    KvmCap(&'static str),
    /// A KVM ioctl failed.
    #[error("KVM {op} failed: {source}")]
    Kvm {
        /// What was being done.
        op: &'static str,
        /// The errno.
        #[source]
        source: KvmError,
    },
    /// Guest memory could not be created.
    #[error("creating guest memory failed: {0}")]
    Memory(#[source] vm_memory::mmap::FromRangesError),
    /// A guest RAM region could not be mapped.
    #[error("mapping guest RAM at {addr:#x} ({size:#x} bytes) failed: {reason}")]
    MemoryRegion {
        /// Guest-physical start.
        addr: u64,
        /// Size in bytes.
        size: u64,
        /// Why.
        reason: String,
    },
    /// A device could not be registered on the I/O bus.
    #[error("device setup failed: {0}")]
    Bus(#[from] crate::devices::bus::BusError),
    /// An eventfd or other OS object could not be created.
    #[error("{op} failed: {source}")]
    Os {
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A vCPU thread could not be started.
    #[error("spawning vCPU thread {id} failed: {source}")]
    Thread {
        /// vCPU index.
        id: u8,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Zero vCPUs, or more than this VMM or KVM allows, were asked for.
    #[error("{requested} vCPUs requested, 1 to {max} supported")]
    TooManyVcpus {
        /// Requested count.
        requested: usize,
        /// Limit.
        max: usize,
    },
}

/// Shorthand for a KVM ioctl error mapper.
pub(crate) fn kvm_op(op: &'static str) -> impl FnOnce(KvmError) -> Error {
    move |source| Error::Kvm { op, source }
}
