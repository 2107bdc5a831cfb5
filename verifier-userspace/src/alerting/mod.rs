//! Alert delivery beyond the AR log: batched mail through lettre (SMTP or sendmail).
//!
//! The AR log line is the primary record of every verdict; mail is the secondary channel that
//! wakes a human up. See [`mail`].

pub mod mail;
