//! Loading and attaching the kernel programs, and the maps userspace fills or reads.
