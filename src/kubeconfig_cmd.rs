//! `loko kubeconfig SPEC [--by-address]`: the path of a kubeconfig that reaches the cluster,
//! for `export KUBECONFIG=$(loko kubeconfig SPEC)`: the admin kubeconfig when the apiserver's
//! name resolves here; else (or with `--by-address`) one written beside it that reaches the
//! first controller with a device at its public address and verifies the apiserver by its name
//! (`tls-server-name`), as for a cluster in the standalone simulator, whose zone no resolver
//! serves.

use std::net::{IpAddr, ToSocketAddrs as _};
use std::process::ExitCode;

use journal::{Journal, Location};
use steps::assets::kubeconfig::{ADMIN_KUBECONFIG, admin_kubeconfig_at};
use steps::assets::pki::apiserver_names;
use steps::assets::{AssetDir, Sensitivity};
use steps::kinds::DeviceOutputs;
use steps::step_name::StepName;

use crate::cli::KubeconfigArgs;
use crate::failure::UserError;
use crate::output::{errln, outln};
use crate::target::target;

/// The kubeconfig `--by-address` writes, beside the admin one.
const BY_ADDRESS: &str = "auth/kubeconfig-by-address";

pub fn kubeconfig(args: &KubeconfigArgs) -> anyhow::Result<ExitCode> {
    let target = target(&args.global, &args.spec)?;
    // A journal in etcd holds the kubeconfig for every operator: cached here first.
    crate::team::fill_from_store(&target)?;
    let admin = target.assets.join(ADMIN_KUBECONFIG);
    let spec = args.spec.display();
    if !admin.exists() {
        return Err(UserError::usage(
            format!("no kubeconfig yet: {} does not exist", admin.display()),
            format!("`loko run {spec}` writes it"),
        )
        .into());
    }
    let (name, _) = apiserver_names(&target.desired);
    if !args.by_address {
        if (name.as_str(), 6443).to_socket_addrs().is_ok() {
            outln!("{}", admin.display());
            return Ok(ExitCode::SUCCESS);
        }
        errln!(
            "note: {name} does not resolve here; this kubeconfig reaches a controller by its address"
        );
    }
    let state = match &target.journal {
        Location::Dir(dir) => journal::read_state(dir)?.state,
        etcd => Journal::open_read_only(etcd)?.state(),
    };
    let address = target
        .desired
        .nodes
        .iter()
        .filter(|n| n.role == specs::Role::Controller)
        .find_map(|n| {
            let recorded = state.ledger.get(&StepName::node_machine(n).id())?;
            DeviceOutputs::recorded(&recorded.outputs)?
                .public_ipv4?
                .parse::<IpAddr>()
                .ok()
        })
        .ok_or_else(|| {
            UserError::usage(
                "the journal records no controller's address",
                format!("`loko run {spec}` creates the controllers' devices"),
            )
        })?;
    let dir = AssetDir::create(&target.assets)?;
    let text = admin_kubeconfig_at(&dir, &target.desired, address)?;
    dir.write(BY_ADDRESS, text.as_bytes(), Sensitivity::Secret)?;
    outln!("{}", dir.path(BY_ADDRESS).display());
    Ok(ExitCode::SUCCESS)
}
