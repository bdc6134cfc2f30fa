//! PVH toolstack library (work in progress).
