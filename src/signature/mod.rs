//! Signing schemes and receiver-side verification (pure: no clock, no I/O).

pub mod hex;
