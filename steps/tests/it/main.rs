//! The integration tests of `steps`, one test binary (ripgrep's layout): the crate's tests
//! link once, not once per file. A new test file is a module declared here.

mod api_address;
mod bootstrap_apply;
mod dag_digests;
mod dns_moto;
mod etcd_rejoin;
mod ignition;
mod journal_fixture;
mod kubeconfig_kubectl;
mod manifests;
mod netboot;
mod node_artifacts;
mod packet_client;
mod pki_etcd;
mod pki_golden;
mod pki_openssl;
mod pki_support;
mod poller;
mod provider_packet;
mod provider_rack;
mod rack_boot;
mod rack_changes;
mod rack_dag;
mod rack_destroy;
mod rack_preflight;
mod rack_support;
mod rack_wipe;
mod raid_script;
mod redfish_protocol;
mod redfish_schema;
mod redfish_sushy;
mod ssh_openssh;
mod wipe_script;
