//! The provenance store: per inode and path, who wrote what since the file was last trusted.
