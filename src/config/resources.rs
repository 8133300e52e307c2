//! The `service:` and `resources:` sections: what to sample and how often.

use schemars::JsonSchema;
use serde::Deserialize;

use super::*;

/// The colocated service.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServiceConfig {
    /// Process groups to sample; each becomes a `process` label value.
    #[serde(default)]
    pub(crate) processes: Vec<ProcessSelector>,
}

/// Selects a group of processes. Set exactly one of `pid_file`, `comm`,
/// `cmdline` or `all_in_pod`. Selection is re-resolved on every sample, so a
/// restarted service (new pid) is followed.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProcessSelector {
    /// The `process` label. Letters, digits, `_`, `-`, `.`; unique; not `sidewatch`.
    pub(crate) label: String,
    /// A file holding the main pid (the process and none of its children).
    pub(crate) pid_file: Option<PathBuf>,
    /// Processes whose name (`/proc/PID/comm`, at most 15 characters) equals this.
    pub(crate) comm: Option<String>,
    /// Processes whose command line (arguments joined by spaces) matches this regex.
    pub(crate) cmdline: Option<String>,
    /// Every process in the pod (shared process namespace) except sidewatch
    /// itself and the `pause` container.
    #[serde(default)]
    pub(crate) all_in_pod: bool,
}

/// Resource sampling.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResourcesConfig {
    /// Time between samples. Default `5s`; at least `100ms`.
    #[serde(default = "default_resource_interval")]
    pub(crate) interval: Dur,
    /// Sample the host: CPU, load, memory, swap, disks, network, filesystems.
    /// Default `true`.
    #[serde(default = "yes")]
    pub(crate) host: bool,
    /// Mount points whose size and free space are exported. Default `["/"]`.
    #[serde(default = "default_filesystems")]
    pub(crate) filesystems: Vec<String>,
    /// Which block devices get a `device` label. Default excludes `loop`,
    /// `ram`, `zram`, `sr` and `dm-` devices.
    #[serde(default)]
    pub(crate) disks: LabelFilter,
    /// Which network interfaces get an `interface` label. Default excludes
    /// `lo` and virtual interfaces (`veth`, `cali`, `cni`, `flannel`, `docker`,
    /// `br-`, `virbr`, `tun`, `tap`, `ifb`).
    #[serde(default)]
    pub(crate) interfaces: LabelFilter,
    /// The container's cgroup.
    #[serde(default)]
    pub(crate) cgroup: CgroupConfig,
}

impl Default for ResourcesConfig {
    fn default() -> Self {
        ResourcesConfig {
            interval: default_resource_interval(),
            host: true,
            filesystems: default_filesystems(),
            disks: LabelFilter::default(),
            interfaces: LabelFilter::default(),
            cgroup: CgroupConfig::default(),
        }
    }
}

fn default_resource_interval() -> Dur {
    Dur::secs(5)
}

fn default_filesystems() -> Vec<String> {
    vec!["/".into()]
}

/// Include and exclude regexes for a label's values. At most 32 values are
/// exported, to keep cardinality bounded.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LabelFilter {
    /// Only values matching this regex.
    pub(crate) include: Option<String>,
    /// No values matching this regex (replaces the default exclusion).
    pub(crate) exclude: Option<String>,
}

/// The container's cgroup (v2, or v1 where only v1 controllers are mounted).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CgroupConfig {
    /// Sample the cgroup. Default `true`.
    #[serde(default = "yes")]
    pub(crate) enabled: bool,
    /// The cgroup directory. Default: found from `/proc/self/cgroup`.
    pub(crate) path: Option<PathBuf>,
}

impl Default for CgroupConfig {
    fn default() -> Self {
        CgroupConfig {
            enabled: true,
            path: None,
        }
    }
}
