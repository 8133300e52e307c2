//! Baselines: the result store ([`store`]) and the comparison of a run with
//! its check's accepted baseline ([`regression`]).

pub mod regression;
pub mod store;
