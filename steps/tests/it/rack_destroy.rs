//! `loko destroy` of a rack: a `retire/<host>` step per machine the cluster has (the spec's and
//! those the journal's runs booted, but not one already retired), no Packet device step, the
//! remote steps invalidated; run by the engine, the retire steps power off machines that are
//! on at the simulator's BMCs.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use engine::{CancellationToken, Dag, Engine, Outcome, RunRequest};
use journal::{Digest, Journal, RunKind};
use sim::rack::{MachineState, Rack, RackMachine};
use specs::DesiredCluster;
use steps::cluster::{destroy_dag, machines_to_retire};
use steps::history::History;
use steps::kinds::MachineParams;
use steps::packet::Timeouts;
use steps::provider::MachineProvider as _;
use steps::provider::netbooted::NetbootedRack;
use steps::provider::rack::RedfishProvider;
use steps::redfish::{BmcCredentials, Polling};
use steps::run_context::{Clients, Machines, RunContext, RunSettings};
use steps::step_name::StepName;

use crate::provider_rack::Recorder;
use crate::rack_support::rack_config;

const PASSWORD: &str = "x-rack-destroy-pass";

fn example(name: &str) -> DesiredCluster {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    specs::load(&path)
        .unwrap_or_else(|e| panic!("{e}"))
        .desired()
}

/// A history whose runs built `built` completely: each node's machine (or device) step, the
/// records and the assets recorded, and, in a rack, each node's machine booted.
fn built(cluster: &DesiredCluster) -> History {
    History {
        previous: Some(cluster.clone()),
        known_nodes: cluster.nodes.iter().map(|n| n.hostname.clone()).collect(),
        recorded: cluster
            .nodes
            .iter()
            .map(|n| StepName::node_machine(n).id())
            .chain([StepName::Dns.id(), StepName::Pki.id()])
            .collect(),
        machines: cluster
            .nodes
            .iter()
            .filter_map(|n| Some((n.hostname.clone(), n.machine.clone()?)))
            .collect(),
        ..History::default()
    }
}

fn ids(dag: &Dag) -> Vec<StepName> {
    dag.steps().map(|s| StepName::from(s.id())).collect()
}

fn retire_params(dag: &Dag, host: &str) -> MachineParams {
    let id = StepName::Retire(host.to_owned()).id();
    let def = dag
        .steps()
        .find(|s| s.id() == &id)
        .unwrap_or_else(|| panic!("no {id} in {:?}", ids(dag)));
    assert_eq!(def.kind().to_string(), "retire-machine");
    serde_json::from_value(def.params_value().clone()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_rack_destroy_retires_every_machine_the_cluster_has_and_deletes_no_device() {
    let all = example("rack.yaml");
    let mut history = built(&all);
    let mut spec = all.clone();
    // Two workers left the spec: the first was retired by its run, the second never was (the
    // run that would have retired it failed before).
    let never_retired = spec.nodes.pop().unwrap();
    let retired = spec.nodes.pop().unwrap();
    history
        .recorded
        .insert(StepName::Retire(retired.hostname.clone()).id());

    let dag = destroy_dag(&spec, &history).unwrap_or_else(|e| panic!("{e}"));
    let names = ids(&dag);
    let mut expected: Vec<StepName> = spec
        .nodes
        .iter()
        .chain([&never_retired])
        .map(|n| StepName::Retire(n.hostname.clone()))
        .chain([StepName::DestroyDns])
        .collect();
    expected.sort();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(
        sorted, expected,
        "no destroy/devices, no retire of a retired machine"
    );

    let params = retire_params(&dag, &never_retired.hostname);
    assert_eq!(Some(&params.machine), never_retired.machine.as_ref());
    assert_eq!(params.replaces, None);

    // Each step forgets the cluster's remote steps (a later run builds it again), not the
    // local ones (the CA stays), and not the destroy's own.
    for def in dag.steps() {
        let forgets = def.invalidated();
        for remote in [
            StepName::Machine(spec.nodes[0].hostname.clone()),
            StepName::Machine(never_retired.hostname.clone()),
            StepName::Dns,
            StepName::Retire(retired.hostname.clone()),
        ] {
            assert!(
                forgets.contains(&remote.id()),
                "{} forgets {remote}: {forgets:?}",
                def.id()
            );
        }
        assert!(!forgets.contains(&StepName::Pki.id()), "{forgets:?}");
        assert!(!forgets.contains(def.id()), "{forgets:?}");
    }

    // A destroy runs its steps again: a machine may have been powered on since.
    let again = destroy_dag(&spec, &history).unwrap_or_else(|e| panic!("{e}"));
    let inputs = |dag: &Dag| dag.steps().map(|s| s.inputs()).collect::<Vec<Digest>>();
    assert_ne!(inputs(&dag), inputs(&again));
}

#[test]
fn a_node_whose_spec_names_another_machine_than_the_booted_one_powers_both_off() {
    let booted = example("rack.yaml");
    let history = built(&booted);
    let mut spec = booted.clone();
    let swapped = spec.nodes[0].machine.as_mut().unwrap();
    swapped.mac = specs::MacAddress([0x52, 0x54, 0, 0x29, 0x99, 1]);
    let moved = spec.nodes[1].machine.as_mut().unwrap();
    moved.bmc.url = "https://10.0.9.99".into();

    let retired = machines_to_retire(&spec, &history);
    assert_eq!(retired.len(), spec.nodes.len());
    let of = |host: &str| retired.iter().find(|p| p.hostname == host).unwrap();
    let first = of(&spec.nodes[0].hostname);
    assert_eq!(Some(&first.machine), spec.nodes[0].machine.as_ref());
    assert_eq!(first.replaces.as_ref(), booted.nodes[0].machine.as_ref());
    // The same MAC is the same machine: powered off once, at the BMC the spec names now.
    let second = of(&spec.nodes[1].hostname);
    assert_eq!(second.machine.bmc.url, "https://10.0.9.99");
    assert_eq!(second.replaces, None);
}

#[test]
fn a_packet_destroy_deletes_the_tagged_devices_and_retires_nothing() {
    let desired = example("tutorial.yaml");
    let history = built(&desired);
    assert!(machines_to_retire(&desired, &history).is_empty());
    let dag = destroy_dag(&desired, &history).unwrap_or_else(|e| panic!("{e}"));
    let mut names = ids(&dag);
    names.sort();
    assert_eq!(names, [StepName::DestroyDevices, StepName::DestroyDns]);
    let device = StepName::Device(desired.nodes[0].hostname.clone()).id();
    for def in dag.steps() {
        assert!(
            def.invalidated().contains(&device),
            "{:?}",
            def.invalidated()
        );
    }
}

/// The machines of `desired` and `extra` (those the spec no longer names), behind the
/// simulator's BMCs; each machine's BMC moved to them.
async fn simulated(desired: &mut DesiredCluster, extra: &mut [specs::Machine]) -> Rack {
    let machines: Vec<&specs::Machine> = desired
        .nodes
        .iter()
        .filter_map(|n| n.machine.as_ref())
        .chain(extra.iter())
        .collect();
    let rack = Rack::start(
        rack_config(
            PASSWORD,
            Duration::from_millis(20),
            Duration::from_millis(20),
        ),
        machines
            .iter()
            .map(|m| RackMachine {
                name: m.name.to_string(),
                system_id: m.name.to_string(),
                mac: m.mac.to_string(),
                disks: vec![m.install_disk.clone()],
                public_ip: m.public_ipv4,
                private_ip: m.private_ipv4,
            })
            .collect(),
        Arc::new(sim::NoNodes),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let at_rack = |m: &mut specs::Machine| {
        let system = rack.system_url(m.name.as_str()).unwrap();
        let (bmc, path) = system.split_at(system.find("/redfish").unwrap());
        m.bmc = specs::BmcSystem {
            url: bmc.to_owned(),
            system: path.to_owned(),
        };
    };
    for node in &mut desired.nodes {
        at_rack(node.machine.as_mut().unwrap());
    }
    extra.iter_mut().for_each(at_rack);
    rack
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_destroy_s_retire_steps_power_off_machines_that_are_on() {
    let mut spec = example("rack.yaml");
    let left = spec.nodes.pop().unwrap();
    // The machine the second node had before the spec named another (a new MAC).
    let mut replaced = spec.nodes[1].machine.clone().unwrap();
    replaced.name = serde_json::from_value(serde_json::json!("rack-a9")).unwrap();
    replaced.mac = specs::MacAddress([0x52, 0x54, 0, 0xa1, 0, 9]);
    let mut extra = [left.machine.clone().unwrap(), replaced];
    let rack = simulated(&mut spec, &mut extra).await;
    let [left_machine, replaced] = extra;
    let mut history = built(&spec);
    // The node that left the spec was booted by an earlier run and never retired; the second
    // node's booted machine is the one it had before.
    history
        .machines
        .insert(left.hostname.clone(), left_machine.clone());
    history
        .machines
        .insert(spec.nodes[1].hostname.clone(), replaced.clone());

    let provider = RedfishProvider {
        credentials: BmcCredentials::new("admin", PASSWORD, &journal::Redactor::new()),
        timeouts: Timeouts::default(),
        polling: Polling {
            every: Duration::from_millis(20),
            ..Polling::default()
        },
        machines: Vec::new(),
    };
    let first = spec.nodes[0].machine.clone().unwrap();
    for (host, machine) in [
        (&spec.nodes[0].hostname, &first),
        (&left.hostname, &left_machine),
        (&spec.nodes[1].hostname, &replaced),
    ] {
        provider
            .ensure(&Recorder::default(), host, machine)
            .await
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(rack.status(machine.name.as_str()).unwrap().powered);
    }

    let dag = destroy_dag(&spec, &history).unwrap_or_else(|e| panic!("{e}"));
    // The retire steps only: the records' step has its own tests against moto.
    let retire = Dag::new(
        dag.steps()
            .filter(|s| matches!(StepName::from(s.id()), StepName::Retire(_)))
            .cloned()
            .collect(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let route53 = steps::dns::Route53::with_static_credentials(
        "http://127.0.0.1:9",
        "unused",
        "x-unused-secret",
        &journal::Redactor::new(),
    )
    .await;
    // A destroy boots nothing: its rack has no boot server.
    let machines = Machines::Rack(Arc::new(NetbootedRack {
        provider,
        server: None,
        install_deadline: Duration::from_secs(1),
        retire: specs::RetirePolicy::PowerOff,
        poll: Duration::from_millis(20),
    }));
    let actions = steps::actions::actions(RunContext {
        desired: spec.clone(),
        assets: steps::assets::AssetDir::create(dir.path().join("assets")).unwrap(),
        clients: Clients {
            machines,
            route53,
            ssh: steps::ssh::Ssh::default(),
        },
        settings: RunSettings::default(),
    });
    let journal = Arc::new(Journal::open(&dir.path().join("journal")).unwrap());
    let report = Engine::new(journal)
        .run(
            &retire,
            &actions,
            RunRequest {
                kind: RunKind::Destroy,
                spec_digest: Digest::of_json(&spec).unwrap(),
                spec: spec.to_record().unwrap(),
            },
            CancellationToken::new(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.outcome, Outcome::Succeeded, "{report:?}");
    for machine in spec
        .nodes
        .iter()
        .filter_map(|n| n.machine.as_ref())
        .chain([&left_machine, &replaced])
    {
        let status = rack.status(machine.name.as_str()).unwrap();
        assert!(!status.powered, "{}: {status:?}", machine.name);
        assert_eq!(status.state, MachineState::Off, "{}", machine.name);
    }
}
