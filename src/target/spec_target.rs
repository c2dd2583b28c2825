//! [`Target`] on its own, so that [`crate::team`], which [`crate::target`] calls, can name it
//! without importing `target.rs`.

use std::path::PathBuf;

use journal::Location;
use specs::DesiredCluster;

/// A spec with its desired cluster and where its state lives.
pub(crate) struct Target {
    pub(crate) desired: DesiredCluster,
    pub(crate) assets: PathBuf,
    pub(crate) state_dir: PathBuf,
    /// Where the journal lives: the state directory's `journal`, or etcd.
    pub(crate) journal: Location,
    pub(crate) endpoints: specs::Endpoints,
    /// loko's network boot server during a run (`provider: redfish`).
    pub(crate) boot_server: Option<specs::BootServerSettings>,
}

impl Target {
    /// The machines of a rack (`provider: redfish`), in the nodes' order; none on Packet.
    pub(crate) fn machines(&self) -> Vec<specs::Machine> {
        self.desired
            .nodes
            .iter()
            .filter_map(|n| n.machine.clone())
            .collect()
    }
}
