//! The decision engine: evidence from the provenance store plus the package index → a verdict.
