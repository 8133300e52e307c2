//! What sidewatch prints for people: terminal tables and one-shot results.

pub(crate) mod check;
pub(crate) mod html;
pub(crate) mod probe;
pub(crate) mod progress;
pub(crate) mod summary;
pub(crate) mod table;
