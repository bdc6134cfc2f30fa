//! The pvh hypervisor (work in progress).
