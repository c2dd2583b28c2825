//! The RBAC evaluation, the requirements and the reading of manifests, on small policies and
//! on the embedded upstream data.

use std::path::Path;

use super::documents::parse_documents;
use super::*;

fn policy(yaml: &str) -> Policy {
    let mut policy = Policy::default();
    for object in parse_documents(yaml, Path::new("test.yaml"), false).expect("YAML") {
        policy.add_object(&object, "test").expect("RBAC object");
    }
    policy
}

fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo::authenticated(name, groups)
}

const PODS_READER: &str = "
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: reader}
rules:
- {apiGroups: [''], resources: [pods], verbs: [get, list]}
- {apiGroups: [''], resources: [nodes/status], verbs: [patch]}
- {apiGroups: [coordination.k8s.io], resources: [leases], resourceNames: [mine], verbs: [update]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: reader}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: reader}
subjects:
- {kind: User, name: alice}
- {kind: Group, name: readers}
";

fn allowed(policy: &Policy, user: &UserInfo, request: ResourceRequest) -> bool {
    policy.authorize(user, &request.into()).is_allowed()
}

#[test]
fn a_role_allows_what_it_grants_and_nothing_else() {
    let policy = policy(PODS_READER);
    let alice = user("alice", &[]);
    assert!(allowed(
        &policy,
        &alice,
        ResourceRequest::new("list", "", "pods")
    ));
    assert!(allowed(
        &policy,
        &alice,
        ResourceRequest::new("get", "", "pods")
            .in_namespace("x")
            .named("p")
    ));
    assert!(!allowed(
        &policy,
        &alice,
        ResourceRequest::new("delete", "", "pods")
    ));
    assert!(!allowed(
        &policy,
        &alice,
        ResourceRequest::new("list", "", "nodes")
    ));
    assert!(!allowed(
        &policy,
        &alice,
        ResourceRequest::new("list", "apps", "pods")
    ));
    // By group membership, not by name.
    assert!(allowed(
        &policy,
        &user("bob", &["readers"]),
        ResourceRequest::new("list", "", "pods")
    ));
    assert!(!allowed(
        &policy,
        &user("bob", &[]),
        ResourceRequest::new("list", "", "pods")
    ));
}

#[test]
fn subresources_are_distinct_resources() {
    let policy = policy(PODS_READER);
    let alice = user("alice", &[]);
    let status = ResourceRequest::new("patch", "", "nodes")
        .subresource("status")
        .named("n");
    assert!(allowed(&policy, &alice, status));
    assert!(!allowed(
        &policy,
        &alice,
        ResourceRequest::new("patch", "", "nodes").named("n")
    ));
    assert!(!allowed(
        &policy,
        &alice,
        ResourceRequest::new("get", "", "pods").subresource("log")
    ));
}

#[test]
fn resource_names_restrict_to_named_objects() {
    let policy = policy(PODS_READER);
    let alice = user("alice", &[]);
    let lease = || ResourceRequest::new("update", "coordination.k8s.io", "leases");
    assert!(allowed(&policy, &alice, lease().named("mine")));
    assert!(!allowed(&policy, &alice, lease().named("yours")));
    // No name (a create, a list) never matches a rule that lists names.
    assert!(!allowed(&policy, &alice, lease()));
}

#[test]
fn wildcards_match_anything_and_subresource_wildcards_only_that_subresource() {
    let policy = policy(
        "
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: all}
rules:
- {apiGroups: ['*'], resources: ['*'], verbs: [list]}
- {apiGroups: [''], resources: ['*/status'], verbs: [update]}
- {nonResourceURLs: [/api/*, /healthz], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: all}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: all}
subjects: [{kind: User, name: u}]
",
    );
    let u = user("u", &[]);
    assert!(allowed(
        &policy,
        &u,
        ResourceRequest::new("list", "crd.projectcalico.org", "ipamblocks")
    ));
    assert!(!allowed(
        &policy,
        &u,
        ResourceRequest::new("get", "", "pods")
    ));
    assert!(allowed(
        &policy,
        &u,
        ResourceRequest::new("update", "", "pods").subresource("status")
    ));
    assert!(!allowed(
        &policy,
        &u,
        ResourceRequest::new("update", "", "pods")
    ));
    let get = |path: &str| Request::NonResource {
        verb: "get".to_owned(),
        path: path.to_owned(),
    };
    assert!(policy.authorize(&u, &get("/api/v1")).is_allowed());
    assert!(policy.authorize(&u, &get("/healthz")).is_allowed());
    assert!(!policy.authorize(&u, &get("/healthz/etcd")).is_allowed());
    assert!(!policy.authorize(&u, &get("/version")).is_allowed());
}

#[test]
fn a_role_binding_grants_only_in_its_namespace() {
    let policy = policy(
        "
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: r, namespace: kube-system}
rules: [{apiGroups: [''], resources: [secrets], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: r, namespace: kube-system}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: r}
subjects: [{kind: ServiceAccount, name: sa}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: cr}
rules: [{apiGroups: [''], resources: [configmaps], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: cr, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cr}
subjects: [{kind: ServiceAccount, name: sa, namespace: kube-system}]
",
    );
    // The subject without a namespace is in the binding's namespace.
    let sa = UserInfo::service_account("kube-system", "sa");
    let secret = || ResourceRequest::new("get", "", "secrets").named("s");
    assert!(allowed(&policy, &sa, secret().in_namespace("kube-system")));
    assert!(!allowed(&policy, &sa, secret().in_namespace("default")));
    assert!(!allowed(&policy, &sa, secret()), "not at the cluster scope");
    let configmap = || ResourceRequest::new("get", "", "configmaps").named("c");
    assert!(allowed(&policy, &sa, configmap().in_namespace("default")));
    assert!(!allowed(
        &policy,
        &sa,
        configmap().in_namespace("kube-system")
    ));
    assert!(!allowed(&policy, &sa, configmap()));
}

#[test]
fn a_service_account_is_its_user_and_groups() {
    let sa = UserInfo::service_account("kube-system", "calico-node");
    assert_eq!(sa.name, "system:serviceaccount:kube-system:calico-node");
    assert_eq!(
        sa.groups,
        [
            "system:serviceaccounts",
            "system:serviceaccounts:kube-system",
            "system:authenticated"
        ]
    );
    assert_eq!(sa.describe(), "ServiceAccount kube-system/calico-node");
    let policy = policy(
        "
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: b}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view-nodes}
subjects: [{kind: Group, name: 'system:serviceaccounts:kube-system'}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: view-nodes}
rules: [{apiGroups: [''], resources: [nodes], verbs: [list]}]
",
    );
    assert!(allowed(
        &policy,
        &sa,
        ResourceRequest::new("list", "", "nodes")
    ));
    let other = UserInfo::service_account("default", "calico-node");
    assert!(!allowed(
        &policy,
        &other,
        ResourceRequest::new("list", "", "nodes")
    ));
}

#[test]
fn without_a_binding_nothing_is_allowed_and_missing_roles_are_reported() {
    let mut policy = policy(PODS_READER);
    let carol = user("carol", &[]);
    assert_eq!(
        policy.authorize(&carol, &ResourceRequest::new("list", "", "pods").into()),
        Decision::Denied {
            reason: String::new()
        }
    );
    let dangling = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "d"},
        "roleRef": {"kind": "ClusterRole", "name": "nowhere"},
        "subjects": [{"kind": "User", "name": "carol"}],
    });
    policy.add_object(&dangling, "test").expect("binding");
    assert_eq!(
        policy.authorize(&carol, &ResourceRequest::new("list", "", "pods").into()),
        Decision::Denied {
            reason: "RBAC: clusterrole.rbac.authorization.k8s.io \"nowhere\" not found".to_owned()
        }
    );
}

#[test]
fn system_masters_is_a_superuser_and_bootstrap_bindings_apply() {
    let policy = Policy::bootstrap().expect("bootstrap policy");
    let admin = user("kubernetes-admin", &["system:masters"]);
    assert!(allowed(
        &policy,
        &admin,
        ResourceRequest::new("delete", "x.io", "anything")
    ));
    let scheduler = user("system:kube-scheduler", &[]);
    assert!(allowed(
        &policy,
        &scheduler,
        ResourceRequest::new("update", "", "persistentvolumes").named("pv")
    ));
    assert!(allowed(
        &policy,
        &scheduler,
        ResourceRequest::new("create", "", "pods")
            .subresource("binding")
            .in_namespace("d")
            .named("p")
    ));
    // Nobody is bound to system:node by default.
    let kubelet = user("kubelet", &["system:nodes"]);
    assert!(!allowed(
        &policy,
        &kubelet,
        ResourceRequest::new("get", "", "nodes").named("n")
    ));
    let discovery = Request::NonResource {
        verb: "get".to_owned(),
        path: "/apis/apps/v1".to_owned(),
    };
    assert!(policy.authorize(&kubelet, &discovery).is_allowed());
}

#[test]
fn aggregated_cluster_roles_collect_the_rules_of_matching_roles() {
    let policy = policy(
        "
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: agg}
aggregationRule:
  clusterRoleSelectors: [{matchLabels: {to-agg: 'true'}}]
rules: []
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: part, labels: {to-agg: 'true'}}
rules: [{apiGroups: [''], resources: [services], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: other}
rules: [{apiGroups: [''], resources: [secrets], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: agg}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: agg}
subjects: [{kind: User, name: u}]
",
    );
    let u = user("u", &[]);
    assert!(allowed(
        &policy,
        &u,
        ResourceRequest::new("get", "", "services")
    ));
    assert!(!allowed(
        &policy,
        &u,
        ResourceRequest::new("get", "", "secrets")
    ));
}

#[test]
fn forbidden_messages_read_as_the_apiservers() {
    let kubelet = user("kubelet", &["system:nodes"]);
    let status = forbidden_status(
        &kubelet,
        &ResourceRequest::new("list", "", "nodes").into(),
        "",
    );
    assert_eq!(
        status["message"],
        "nodes is forbidden: User \"kubelet\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"
    );
    assert_eq!(status["code"], 403);
    assert_eq!(status["reason"], "Forbidden");
    let lease = ResourceRequest::new("update", "coordination.k8s.io", "leases")
        .in_namespace("kube-node-lease")
        .named("n1");
    assert_eq!(
        forbidden_status(&kubelet, &lease.into(), "")["message"],
        "leases.coordination.k8s.io \"n1\" is forbidden: User \"kubelet\" cannot update resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"kube-node-lease\""
    );
    let status = ResourceRequest::new("patch", "", "nodes")
        .subresource("status")
        .named("n1");
    assert_eq!(
        forbidden_status(&kubelet, &status.into(), "")["message"],
        "nodes \"n1\" is forbidden: User \"kubelet\" cannot patch resource \"nodes/status\" in API group \"\" at the cluster scope"
    );
    let path = Request::NonResource {
        verb: "get".to_owned(),
        path: "/metrics".to_owned(),
    };
    assert_eq!(
        forbidden_status(&kubelet, &path, "")["message"],
        "forbidden: User \"kubelet\" cannot get path \"/metrics\""
    );
}

#[test]
fn requirements_expand_every_rule_and_substitute_the_node() {
    let requirements = Requirements::load().expect("requirements");
    let calico = requirements.identity("calico-node").expect("calico-node");
    let requests = calico.requests("n1");
    assert!(
        requests
            .contains(&ResourceRequest::new("list", "crd.projectcalico.org", "ipamblocks").into())
    );
    assert!(
        requests.contains(
            &ResourceRequest::new("create", "", "serviceaccounts")
                .subresource("token")
                .named("calico-cni-plugin")
                .into()
        )
    );
    let checkpointer = requirements
        .identity("pod-checkpointer")
        .expect("checkpointer");
    assert!(
        checkpointer.requests("n1").contains(
            &ResourceRequest::new("get", "", "secrets")
                .in_namespace("kube-system")
                .into()
        )
    );
    let delete = requirements.identity("delete-node").expect("delete-node");
    assert_eq!(
        delete.requests("worker-1"),
        [Request::from(
            ResourceRequest::new("delete", "", "nodes").named("worker-1")
        )]
    );
    for name in requirements.names() {
        assert!(
            !requirements
                .identity(name)
                .expect("listed")
                .source
                .is_empty(),
            "{name}"
        );
    }
}

#[test]
fn system_node_grants_what_registering_a_node_takes() {
    // The registration subset must be what the kubelet's own role allows, or the emulator
    // would refuse kubelets that a real cluster admits.
    let mut policy = Policy::bootstrap().expect("bootstrap");
    let binding = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "nodes"},
        "roleRef": {"kind": "ClusterRole", "name": "system:node"},
        "subjects": [{"kind": "Group", "name": "system:nodes"}],
    });
    policy.add_object(&binding, "test").expect("binding");
    let kubelet = user("kubelet", &["system:nodes"]);
    let requirements = Requirements::load().expect("requirements");
    for identity in ["kubelet", "kubelet-registration"] {
        for request in requirements
            .identity(identity)
            .expect("identity")
            .requests("n1")
        {
            assert!(
                policy.authorize(&kubelet, &request).is_allowed(),
                "{identity}: {request}"
            );
        }
    }
    // delete-node is not part of system:node: upstream bound a role of its own for it.
    for request in requirements
        .identity("delete-node")
        .expect("identity")
        .requests("n1")
    {
        assert!(
            !policy.authorize(&kubelet, &request).is_allowed(),
            "{request}"
        );
    }
}

#[test]
fn manifests_are_read_from_json_yaml_lists_and_subdirectories() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("calico")).expect("mkdir");
    std::fs::create_dir_all(dir.path().join(".hidden")).expect("mkdir");
    std::fs::write(
        dir.path().join("calico/role.json"),
        r#"{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{"name":"r"},"rules":[{"apiGroups":[""],"resources":["pods"],"verbs":["get"]}]}"#,
    )
    .expect("write");
    std::fs::write(
        dir.path().join("bindings.yaml"),
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: rbac.authorization.k8s.io/v1\n  kind: ClusterRoleBinding\n  metadata: {name: r}\n  roleRef: {kind: ClusterRole, name: r}\n  subjects: [{kind: User, name: u}]\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join(".hidden/x.yaml"),
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: x}\nroleRef: {kind: ClusterRole, name: cluster-admin}\nsubjects: [{kind: User, name: u}]\n",
    )
    .expect("write");
    let mut policy = Policy::default();
    assert_eq!(policy.add_manifest_dir(dir.path()).expect("manifests"), 2);
    let u = user("u", &[]);
    assert!(allowed(
        &policy,
        &u,
        ResourceRequest::new("get", "", "pods")
    ));
    assert!(!allowed(
        &policy,
        &u,
        ResourceRequest::new("get", "", "secrets")
    ));
    assert_eq!(manifest_objects(dir.path()).expect("objects").len(), 3);
}
