//! `verifier daemon`: wires recorder, store, package index, decision engine and socket together.
