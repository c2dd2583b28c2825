//! The integration tests of `sim`, one test binary (ripgrep's layout): the simulator's tests link once,
//! not once per file. A new test file is a module declared here.

mod apiserver_crd;
mod apiserver_etcd_tls;
mod apiserver_support;
mod cloud_nodes;
mod drain;
mod judge_data;
mod judge_pod;
mod node_world;
mod nodes_apiserver;
mod nodes_openssh;
mod nodes_ssh;
mod nodes_support;
mod openapi;
mod packet;
mod packet_faults;
mod packet_state;
mod rack;
mod rack_saved;
mod rbac_data;
mod route53;
mod static_pods;
mod tls_bootstrap;
mod worker_ssh;
