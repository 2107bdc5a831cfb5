//! Event intake: drains the kernel ring buffer without ever making the kernel wait, decodes each
//! record into an [`crate::events::Event`] and counts what it cannot decode.
