//! What sidewatch prints for people: terminal tables and one-shot results.

pub mod probe;
pub mod table;
