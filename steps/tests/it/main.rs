//! The integration tests of `steps`, one test binary (ripgrep's layout): the crate's tests
//! link once, not once per file. A new test file is a module declared here.

mod dns_moto;
mod ignition;
mod kubeconfig_kubectl;
mod manifests;
mod pki_etcd;
mod pki_golden;
mod pki_openssl;
mod pki_support;
mod ssh_openssh;
