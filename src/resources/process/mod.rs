//! Process groups: selection (pid file, comm, cmdline regex, all in the pod)
//! re-resolved on every sample, readings from `/proc/PID/*`, and per-group
//! series summed over the matched processes.
//!
//! - `select`: which processes a group's selector matches, per sample;
//! - `read`: what one process uses, from `/proc`;
//! - `families`: the `process_` families and how readings set them;
//! - `delta`: group counters grown by each member's growth.

mod delta;
mod families;
mod read;
mod select;

pub(crate) use delta::Group;
pub use families::ProcessMetrics;
pub(crate) use read::uptime_ticks;
pub(crate) use select::{Scan, Selector, SELF_LABEL};
