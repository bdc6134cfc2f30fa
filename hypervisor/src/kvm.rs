//! Opening `/dev/kvm` with a useful error when it is missing or unusable.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use kvm_ioctls::{Cap, Kvm};

use crate::error::Error;

/// The stable KVM API version every usable kernel reports.
pub const KVM_API_VERSION: i32 = 12;

/// The default KVM device.
pub const KVM_DEVICE: &str = "/dev/kvm";

/// Capabilities the VM setup relies on, with names for the error message.
const REQUIRED_CAPS: &[(Cap, &str)] = &[
    (Cap::Irqchip, "KVM_CAP_IRQCHIP"),
    (Cap::Pit2, "KVM_CAP_PIT2"),
    (Cap::Irqfd, "KVM_CAP_IRQFD"),
    (Cap::UserMemory, "KVM_CAP_USER_MEMORY"),
    (Cap::SetTssAddr, "KVM_CAP_SET_TSS_ADDR"),
    (Cap::SetIdentityMapAddr, "KVM_CAP_SET_IDENTITY_MAP_ADDR"),
    (Cap::ExtCpuid, "KVM_CAP_EXT_CPUID"),
];

/// Opens the KVM device at `path` and checks the API version and the
/// capabilities this VMM needs.
pub fn open(path: &Path) -> Result<Kvm, Error> {
    let open_err = |source| Error::KvmOpen {
        path: path.to_owned(),
        source,
    };
    // A path with an interior NUL cannot name a device node.
    let cpath = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| open_err(kvm_ioctls::Error::new(libc::EINVAL)))?;
    let kvm = Kvm::new_with_path(cpath.as_c_str()).map_err(open_err)?;
    let found = kvm.get_api_version();
    if found != KVM_API_VERSION {
        return Err(Error::KvmApiVersion {
            path: path.to_owned(),
            found,
            expected: KVM_API_VERSION,
        });
    }
    for &(cap, name) in REQUIRED_CAPS {
        if !kvm.check_extension(cap) {
            return Err(Error::KvmCap(name));
        }
    }
    Ok(kvm)
}
