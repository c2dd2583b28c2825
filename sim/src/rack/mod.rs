//! A rack of bare-metal machines behind Redfish BMCs, booted from the network.
//!
//! Each machine has a NIC (its MAC), disks, the addresses its node will have, and a BMC served
//! by [`Rack`] under `/redfish/v1/Systems/<id>` (`redfish.rs`: the ComputerSystem with
//! `PowerState`, `Boot` and `EthernetInterfaces`, the `Boot` PATCH and
//! `#ComputerSystem.Reset`, as the DMTF schema and sushy-tools' fake driver answer them, HTTP
//! basic auth). Power changes take effect after [`RackConfig::power_delay`], as sushy-tools'
//! and real BMCs' do; clients read `PowerState` back.
//!
//! A machine powered on with a PXE boot override boots as the firmware would (`boot.rs`): it
//! fetches the DHCP boot filename ([`Rack::set_boot_filename`], the boot server's
//! `/boot.ipxe`), follows the iPXE script, fetches the installer Ignition its kernel line names
//! and the node Ignition the installer downloads, judges each as the real program would, then
//! "installs" (the disk now holds the node's Ignition) and reboots into the node, which starts
//! through the same [`NodeLifecycle`] as the Packet simulator's devices: SSH-reachable, its
//! kubelet judged. Without an override it boots its disk, or finds no bootable device. A
//! machine served a wipe instead (`wipe.rs`) empties the disk its script names and powers off.
//!
//! Faults ([`BmcFault`]): a BMC that refuses (401 or 503, for good or for some requests), a
//! power state that never changes, a NIC that boots with another MAC than the one listed.
//!
//! With [`RackConfig::state_file`] the rack keeps its machines (`model.rs`'s `SavedRack`): started again on
//! it, it holds every machine it ever had, those listed now too, each powered as it was and
//! booting its installed disk, as a real rack's machines stay where they are between runs.

mod boot;
mod model;
mod redfish;
mod service;
mod shell;
mod wipe;

pub use crate::faults::BmcFault;
pub use model::{MachineState, MachineStatus, RackConfig, RackError, RackMachine, saved_machines};
pub use service::Rack;
