//! Package databases: dpkg and rpm readers, the in-memory path index and file verification.
