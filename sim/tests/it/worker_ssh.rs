//! Workers without SSH (`Nodes::set_worker_ssh(false)`, as the demo and `loko bench` run the
//! simulator): loko logs into controllers only, so a worker boots no SSH server and no root,
//! yet its kubelet is still judged; a controller always answers SSH.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use sim::nodes::NodeSpec;
use tokio::io::AsyncReadExt;

use crate::node_world::loopback_nodes;

fn spec(hostname: &str, ip: Ipv4Addr, user_data: &str) -> NodeSpec {
    NodeSpec {
        device_id: format!("device-{hostname}"),
        hostname: hostname.to_owned(),
        public_ip: ip,
        private_ip: ip,
        user_data: user_data.to_owned(),
        ssh_refused_for: Duration::ZERO,
        apiserver_start_delay: Duration::ZERO,
        packet_metadata: true,
    }
}

#[tokio::test]
async fn without_worker_ssh_only_controllers_answer_and_workers_are_still_judged() {
    let (_roots, ssh_port, nodes) = loopback_nodes();
    nodes.set_worker_ssh(false);

    let worker_ip = Ipv4Addr::new(127, 0, 91, 1);
    nodes
        .start_node(spec(
            "w-worker-0",
            worker_ip,
            r#"{"ignition":{"version":"3.3.0"}}"#,
        ))
        .await
        .unwrap();
    let controller_ip = Ipv4Addr::new(127, 0, 91, 2);
    nodes
        .start_node(spec(
            "w-controller-0",
            controller_ip,
            r#"{"ignition":{"version":"3.3.0"},"systemd":{"units":[{"name":"etcd-member.service","enabled":true,"contents":"[Service]\nExecStart=/bin/true\n"}]}}"#,
        ))
        .await
        .unwrap();

    assert!(
        tokio::net::TcpStream::connect(SocketAddr::from((worker_ip, ssh_port)))
            .await
            .is_err(),
        "a worker answers SSH"
    );
    assert!(
        !nodes.node_root("w-worker-0").exists(),
        "a worker got a root"
    );
    assert!(
        nodes.kubelets().contains_key("w-worker-0"),
        "the worker's kubelet was not judged: {:?}",
        nodes.kubelets()
    );

    let mut stream = tokio::net::TcpStream::connect(SocketAddr::from((controller_ip, ssh_port)))
        .await
        .expect("the controller answers SSH");
    let mut banner = [0u8; 8];
    stream.read_exact(&mut banner).await.unwrap();
    assert_eq!(&banner, b"SSH-2.0-");
    assert!(nodes.node_root("w-controller-0").is_dir());

    nodes.stop_node("device-w-worker-0").await;
    nodes.stop_node("device-w-controller-0").await;
    assert!(nodes.kubelets().is_empty());
}
