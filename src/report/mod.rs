//! What sidewatch prints for people: terminal tables and one-shot results.

pub mod check;
pub mod html;
pub mod probe;
pub mod progress;
pub mod summary;
pub mod table;
