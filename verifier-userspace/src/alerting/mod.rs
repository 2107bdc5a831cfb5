//! Alert delivery beyond the AR log: batched mail through lettre (SMTP or sendmail).
