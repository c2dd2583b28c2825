//! A CustomResourceDefinition validated as the apiserver validates it before storing it, rule by
//! rule from `k8s.io/apiextensions-apiserver` v0.32.3 (Kubernetes v1.32.3):
//! `pkg/apis/apiextensions/validation/validation.go` (`ValidateCustomResourceDefinition`, its
//! update and `validateAPIApproval`), `pkg/apihelpers/helpers.go` (the protected groups and the
//! approval annotation's states) and `pkg/apiserver/schema/validation.go` (a structural schema).
//! The rules of those files that no CRD loko renders reaches (conversion webhooks, subresources,
//! printer columns, selectable fields, CEL rules, defaults, value validations under `anyOf`,
//! `allOf`, `oneOf`, `not`) are not modeled.

use serde_json::Value;

use super::field::{FieldError, FieldPath, dns1035_label, dns1123_subdomain};

/// `apiextensionsv1.KubeAPIApprovedAnnotation`.
const APPROVAL_ANNOTATION: &str = "api-approved.kubernetes.io";

/// `openapiV3Types` of validation.go: the `type`s a schema may name.
const OPENAPI_V3_TYPES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];

/// Every reason `crd` (replacing `old`, if stored) would be refused with a 422, in the order the
/// apiserver reports them.
pub(crate) fn validate(crd: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let spec = &crd["spec"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let mut errors = Vec::new();

    // ValidateObjectMeta with the CRD's name function: a DNS subdomain, and exactly
    // spec.names.plural + "." + spec.group.
    let name = text(&crd["metadata"]["name"]);
    let name_path = FieldPath::root("metadata").child("name");
    if name.is_empty() {
        errors.push(FieldError::required(
            name_path,
            "name or generateName is required",
        ));
    } else {
        let mut reasons = dns1123_subdomain(&name);
        if name
            != format!(
                "{}.{}",
                text(&spec["names"]["plural"]),
                text(&spec["group"])
            )
        {
            reasons.push(r#"must be spec.names.plural+"."+spec.group"#.to_owned());
        }
        for reason in reasons {
            errors.push(FieldError::invalid(
                name_path.clone(),
                &Value::from(name.as_str()),
                &reason,
            ));
        }
    }

    errors.extend(validate_spec(spec));

    // validatePreserveUnknownFields: v1 refuses the v1beta1 switch.
    if spec["preserveUnknownFields"] == true
        && old.is_none_or(|old| old["spec"]["preserveUnknownFields"] != true)
    {
        errors.push(FieldError::invalid(
            FieldPath::root("spec").child("preserveUnknownFields"),
            &Value::Bool(true),
            "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead",
        ));
    }
    errors.extend(validate_approval(crd, old));
    errors
}

/// Why the apiserver would refuse to create `crd`: the message of its 422, or `None`.
pub fn refusal(crd: &Value) -> Option<String> {
    let errors = validate(crd, None);
    (!errors.is_empty()).then(|| {
        let name = crd["metadata"]["name"].as_str().unwrap_or_default();
        let status = super::field::invalid_status(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            name,
            &errors,
        );
        status["message"].as_str().unwrap_or_default().to_owned()
    })
}

/// `validateCustomResourceDefinitionSpec`, as far as a v1 CRD without conversion webhooks,
/// subresources or printer columns reaches it.
fn validate_spec(spec: &Value) -> Vec<FieldError> {
    let path = FieldPath::root("spec");
    let mut errors = Vec::new();
    let group = spec["group"].as_str().unwrap_or_default();
    if group.is_empty() {
        errors.push(FieldError::required(path.child("group"), ""));
    } else if let reasons @ [_, ..] = dns1123_subdomain(group).as_slice() {
        errors.push(FieldError::invalid(
            path.child("group"),
            &Value::from(group),
            &reasons.join(","),
        ));
    } else if !group.contains('.') {
        errors.push(FieldError::invalid(
            path.child("group"),
            &Value::from(group),
            "should be a domain with at least one dot",
        ));
    }

    // validateEnumStrings(scope, [Cluster, Namespaced], required).
    let scope = spec["scope"].as_str().unwrap_or_default();
    if scope.is_empty() {
        errors.push(FieldError::required(path.child("scope"), ""));
    } else if scope != "Cluster" && scope != "Namespaced" {
        errors.push(FieldError::not_supported(
            path.child("scope"),
            &Value::from(scope),
            &["Cluster".to_owned(), "Namespaced".to_owned()],
        ));
    }

    let versions = spec["versions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let versions_path = path.child("versions");
    // requireOpenAPISchema is set for every create and update through v1.
    for (i, version) in versions.iter().enumerate() {
        if !version["schema"]["openAPIV3Schema"].is_object() {
            errors.push(FieldError::required(
                versions_path
                    .index(i)
                    .child("schema")
                    .child("openAPIV3Schema"),
                "schemas are required",
            ));
        }
    }
    let mut storage = 0;
    let mut names: Vec<&str> = Vec::new();
    let mut unique = true;
    for (i, version) in versions.iter().enumerate() {
        let at = versions_path.index(i);
        if version["storage"] == true {
            storage += 1;
        }
        let name = version["name"].as_str().unwrap_or_default();
        if names.contains(&name) {
            unique = false;
        } else {
            names.push(name);
        }
        if let reasons @ [_, ..] = dns1035_label(name).as_slice() {
            errors.push(FieldError::invalid(
                at.child("name"),
                &Value::from(name),
                &reasons.join(","),
            ));
        }
        let schema = &version["schema"]["openAPIV3Schema"];
        if schema.is_object() {
            errors.extend(validate_schema(
                schema,
                &at.child("schema").child("openAPIV3Schema"),
            ));
        }
    }
    // Go prints the versions as Go syntax here; the list's JSON stands in for it.
    let all = spec["versions"].clone();
    if !unique {
        errors.push(FieldError::invalid(
            versions_path.clone(),
            &all,
            "must contain unique version names",
        ));
    }
    if storage != 1 {
        errors.push(FieldError::invalid(
            versions_path,
            &all,
            "must have exactly one version marked as storage version",
        ));
    }

    let names_path = path.child("names");
    let names = &spec["names"];
    for field in ["plural", "singular", "kind", "listKind"] {
        if names[field].as_str().unwrap_or_default().is_empty() {
            errors.push(FieldError::required(names_path.child(field), ""));
        }
    }
    errors.extend(validate_names(names, &names_path));
    errors
}

/// `ValidateCustomResourceDefinitionNames`: plural and singular DNS-1035 labels, kind and
/// listKind too once lowercased, and kind different from listKind.
fn validate_names(names: &Value, path: &FieldPath) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let text = |field: &str| names[field].as_str().unwrap_or_default();
    for field in ["plural", "singular"] {
        let value = text(field);
        if let reasons @ [_, ..] = dns1035_label(value).as_slice()
            && !value.is_empty()
        {
            errors.push(FieldError::invalid(
                path.child(field),
                &Value::from(value),
                &reasons.join(","),
            ));
        }
    }
    for field in ["kind", "listKind"] {
        let value = text(field);
        if let reasons @ [_, ..] = dns1035_label(&value.to_lowercase()).as_slice()
            && !value.is_empty()
        {
            errors.push(FieldError::invalid(
                path.child(field),
                &Value::from(value),
                &format!(
                    "may have mixed case, but should otherwise match: {}",
                    reasons.join(",")
                ),
            ));
        }
    }
    for (i, short) in names["shortNames"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let value = short.as_str().unwrap_or_default();
        if let reasons @ [_, ..] = dns1035_label(value).as_slice() {
            errors.push(FieldError::invalid(
                path.child("shortNames").index(i),
                short,
                &reasons.join(","),
            ));
        }
    }
    if !text("kind").is_empty() && text("kind") == text("listKind") {
        errors.push(FieldError::invalid(
            path.child("listKind"),
            &names["listKind"],
            "kind and listKind may not be the same",
        ));
    }
    errors
}

/// `validateCustomResourceDefinitionValidation` of one version's schema: not nullable at the
/// root, structural (`ValidateStructural`, its errors sorted by their text as it sorts them),
/// then every `type` one of OpenAPI v3's (`ValidateCustomResourceDefinitionOpenAPISchema`).
fn validate_schema(schema: &Value, path: &FieldPath) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if schema["nullable"] == true {
        errors.push(FieldError::forbidden(
            path.child("nullable"),
            "nullable cannot be true at the root",
        ));
    }
    let mut structural = Vec::new();
    structural_invariants(schema, Level::Root, path, &mut structural);
    structural.sort_by_key(ToString::to_string);
    errors.extend(structural);
    property_types(schema, path, &mut errors);
    errors
}

/// Where a schema node sits (`level` of schema/validation.go).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Item,
    Field,
}

/// `validateStructuralInvariants`: arrays have `items`, no `additionalProperties` at the root,
/// every node a `type` unless it is int-or-string or keeps unknown fields, `object` at the root
/// and for embedded resources.
fn structural_invariants(node: &Value, level: Level, path: &FieldPath, out: &mut Vec<FieldError>) {
    let kind = node["type"].as_str().unwrap_or_default();
    if kind == "array" && !node["items"].is_object() {
        out.push(FieldError::required(
            path.child("items"),
            "must be specified",
        ));
    }
    if node["items"].is_object() {
        structural_invariants(&node["items"], Level::Item, &path.child("items"), out);
    }
    for (key, property) in node["properties"].as_object().into_iter().flatten() {
        structural_invariants(
            property,
            Level::Field,
            &path.child("properties").key(key),
            out,
        );
    }
    if !node["additionalProperties"].is_null() {
        if level == Level::Root {
            out.push(FieldError::forbidden(
                path.child("additionalProperties"),
                "must not be used at the root",
            ));
        }
        if node["additionalProperties"].is_object() {
            structural_invariants(
                &node["additionalProperties"],
                Level::Field,
                &path.child("additionalProperties"),
                out,
            );
        }
    }
    let embedded = node["x-kubernetes-embedded-resource"] == true;
    let int_or_string = node["x-kubernetes-int-or-string"] == true;
    let preserves = node["x-kubernetes-preserve-unknown-fields"] == true;
    if embedded && kind != "object" {
        let why = "must be object if x-kubernetes-embedded-resource is true";
        out.push(if kind.is_empty() {
            FieldError::required(path.child("type"), why)
        } else {
            FieldError::invalid(path.child("type"), &node["type"], why)
        });
    } else if kind.is_empty() && !int_or_string && !preserves {
        let why = match level {
            Level::Root => "must not be empty at the root",
            Level::Item => "must not be empty for specified array items",
            Level::Field => "must not be empty for specified object fields",
        };
        out.push(FieldError::required(path.child("type"), why));
    }
    if level == Level::Root && !kind.is_empty() && kind != "object" {
        out.push(FieldError::invalid(
            path.child("type"),
            &node["type"],
            "must be object at the root",
        ));
    }
}

/// `requireValidPropertyType`: a `type` that is not one of OpenAPI v3's is unsupported.
fn property_types(node: &Value, path: &FieldPath, out: &mut Vec<FieldError>) {
    if let Some(kind) = node["type"].as_str()
        && !kind.is_empty()
        && !OPENAPI_V3_TYPES.contains(&kind)
    {
        let supported: Vec<String> = OPENAPI_V3_TYPES.iter().map(|t| (*t).to_owned()).collect();
        out.push(FieldError::not_supported(
            path.child("type"),
            &node["type"],
            &supported,
        ));
    }
    for (key, property) in node["properties"].as_object().into_iter().flatten() {
        property_types(property, &path.child("properties").key(key), out);
    }
    if node["items"].is_object() {
        property_types(&node["items"], &path.child("items"), out);
    }
    if node["additionalProperties"].is_object() {
        property_types(
            &node["additionalProperties"],
            &path.child("additionalProperties"),
            out,
        );
    }
}

/// `apihelpers.IsProtectedCommunityGroup`: `k8s.io`, `kubernetes.io` and their subdomains.
pub(crate) fn is_protected_group(group: &str) -> bool {
    group == "k8s.io"
        || group.ends_with(".k8s.io")
        || group == "kubernetes.io"
        || group.ends_with(".kubernetes.io")
}

/// `apihelpers.APIApprovalState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Approval {
    Invalid,
    Approved,
    Bypassed,
    Missing,
}

/// `apihelpers.GetAPIApprovalState`: empty is missing, `unapproved…` bypasses, a URL with a
/// scheme and a host approves, anything else is invalid.
fn approval_state(crd: &Value) -> Approval {
    let annotation = crd["metadata"]["annotations"][APPROVAL_ANNOTATION]
        .as_str()
        .unwrap_or_default();
    if annotation.is_empty() {
        Approval::Missing
    } else if annotation.starts_with("unapproved") {
        Approval::Bypassed
    } else if is_request_uri_with_host(annotation) {
        Approval::Approved
    } else {
        Approval::Invalid
    }
}

/// `validateAPIApproval`: a CRD of a protected group needs the approval annotation, unless an
/// update leaves its state as the stored object had it.
fn validate_approval(crd: &Value, old: Option<&Value>) -> Vec<FieldError> {
    if !is_protected_group(crd["spec"]["group"].as_str().unwrap_or_default()) {
        return Vec::new();
    }
    let state = approval_state(crd);
    if old.is_some_and(|old| approval_state(old) == state) {
        return Vec::new();
    }
    let path = FieldPath::root("metadata")
        .child("annotations")
        .key(APPROVAL_ANNOTATION);
    match state {
        Approval::Approved | Approval::Bypassed => Vec::new(),
        Approval::Missing => vec![FieldError::required(
            path,
            &format!(
                "protected groups must have approval annotation \"{APPROVAL_ANNOTATION}\", see https://github.com/kubernetes/enhancements/pull/1111"
            ),
        )],
        Approval::Invalid => vec![FieldError::invalid(
            path,
            &crd["metadata"]["annotations"][APPROVAL_ANNOTATION],
            &format!(
                "protected groups must have approval annotation \"{APPROVAL_ANNOTATION}\" with either a URL or a reason starting with \"unapproved\", see https://github.com/kubernetes/enhancements/pull/1111"
            ),
        )],
    }
}

/// Whether Go's `url.ParseRequestURI` (net/url, Go 1.23) accepts `text` with a non-empty scheme
/// and host: no control bytes; a scheme (a letter, then letters, digits, `+`, `-`, `.`) and
/// `:`; then `//` and an authority whose host, after any `userinfo@`, is not empty, holds no
/// byte `shouldEscape(c, encodeHost)` refuses, and whose port, if any, is digits (`url.Host`
/// counts the port: `https://:80` has a host). Without `//`
/// a URL with a scheme is opaque and has no host.
fn is_request_uri_with_host(text: &str) -> bool {
    if text.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return false;
    }
    let Some((scheme, rest)) = text.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok {
        return false;
    }
    let rest = rest.split_once('?').map_or(rest, |(before, _)| before);
    let Some(after) = rest.strip_prefix("//") else {
        return false;
    };
    let authority = after.split_once('/').map_or(after, |(a, _)| a);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    // validOptionalPort: empty, or `:` and digits.
    let (host, colon_port) = if host_port.starts_with('[') {
        match host_port.split_once(']') {
            Some((host, rest)) => (host, rest),
            None => return false,
        }
    } else {
        match host_port.rfind(':') {
            Some(at) => host_port.split_at(at),
            None => (host_port, ""),
        }
    };
    let port_ok = colon_port.is_empty()
        || colon_port
            .strip_prefix(':')
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()));
    let host_byte_ok =
        |b: u8| b >= 0x80 || b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]<>\"%".contains(&b);
    // `url.Host` is the host with its port: `https://:80` has one.
    !host_port.is_empty() && port_ok && host.bytes().all(host_byte_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    /// Calico v3.29.2's AdminNetworkPolicy CRD as far as these rules read it.
    fn admin_network_policies() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "adminnetworkpolicies.policy.networking.k8s.io", "annotations": {
                "api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/network-policy-api/pull/30"}},
            "spec": {"group": "policy.networking.k8s.io", "scope": "Cluster",
                "names": {"kind": "AdminNetworkPolicy", "listKind": "AdminNetworkPolicyList",
                          "plural": "adminnetworkpolicies", "singular": "adminnetworkpolicy"},
                "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "required": ["priority"], "properties": {
                            "priority": {"type": "integer"},
                            "ingress": {"type": "array", "items": {"type": "object",
                                "x-kubernetes-preserve-unknown-fields": true}}}}}}}}]},
        })
    }

    fn texts(crd: &Value, old: Option<&Value>) -> Vec<String> {
        validate(crd, old).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn an_approved_or_unapproved_protected_group_passes_and_a_missing_approval_does_not() {
        let mut crd = admin_network_policies();
        assert_eq!(texts(&crd, None), Vec::<String>::new());
        crd["metadata"]["annotations"][APPROVAL_ANNOTATION] = json!("unapproved, experimental");
        assert_eq!(texts(&crd, None), Vec::<String>::new());
        crd["metadata"]["annotations"][APPROVAL_ANNOTATION] = json!("yes please");
        assert_eq!(
            texts(&crd, None),
            [
                r#"metadata.annotations[api-approved.kubernetes.io]: Invalid value: "yes please": protected groups must have approval annotation "api-approved.kubernetes.io" with either a URL or a reason starting with "unapproved", see https://github.com/kubernetes/enhancements/pull/1111"#
            ]
        );
        crd["metadata"]
            .as_object_mut()
            .map(|m| m.remove("annotations"));
        let missing = [
            r#"metadata.annotations[api-approved.kubernetes.io]: Required value: protected groups must have approval annotation "api-approved.kubernetes.io", see https://github.com/kubernetes/enhancements/pull/1111"#,
        ];
        assert_eq!(texts(&crd, None), missing);
        // An update that leaves the state as stored is let through, whatever the state.
        assert_eq!(texts(&crd, Some(&crd.clone())), Vec::<String>::new());
        assert_eq!(texts(&crd, Some(&admin_network_policies())), missing);
    }

    #[test]
    fn the_name_must_be_plural_dot_group_and_the_names_dns_labels() {
        let mut crd = admin_network_policies();
        crd["metadata"]["name"] = json!("anps.policy.networking.k8s.io");
        crd["spec"]["names"]["singular"] = json!("Admin_Policy");
        crd["spec"]["names"]["listKind"] = json!("AdminNetworkPolicy");
        let texts = texts(&crd, None);
        assert_eq!(
            texts[0],
            r#"metadata.name: Invalid value: "anps.policy.networking.k8s.io": must be spec.names.plural+"."+spec.group"#
        );
        assert!(
            texts.iter().any(|t| t.starts_with(
                r#"spec.names.singular: Invalid value: "Admin_Policy": a DNS-1035 label must consist of lower case"#
            )),
            "{texts:?}"
        );
        assert!(
            texts.contains(&r#"spec.names.listKind: Invalid value: "AdminNetworkPolicy": kind and listKind may not be the same"#.to_owned()),
            "{texts:?}"
        );
    }

    #[test]
    fn one_storage_version_a_known_scope_and_a_group_with_a_dot() {
        let mut crd = admin_network_policies();
        crd["spec"]["versions"][0]["storage"] = json!(false);
        crd["spec"]["scope"] = json!("Global");
        crd["spec"]["group"] = json!("policy");
        crd["metadata"]["name"] = json!("adminnetworkpolicies.policy");
        let texts = texts(&crd, None);
        for expected in [
            r#"spec.group: Invalid value: "policy": should be a domain with at least one dot"#,
            r#"spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced""#,
        ] {
            assert!(
                texts.contains(&expected.to_owned()),
                "{expected} in {texts:?}"
            );
        }
        assert!(
            texts
                .iter()
                .any(|t| t.starts_with("spec.versions: Invalid value: ")
                    && t.ends_with(": must have exactly one version marked as storage version")),
            "{texts:?}"
        );
    }

    #[test]
    fn a_schema_must_be_structural() {
        let mut crd = admin_network_policies();
        let schema = &mut crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        schema["properties"]["spec"]["properties"]["ingress"]["items"] = json!({"properties": {}});
        schema["properties"]["spec"]["properties"]["priority"] = json!({"type": "int"});
        schema["properties"]["status"] = json!({"type": "array"});
        schema["additionalProperties"] = json!(true);
        let texts = texts(&crd, None);
        let at = "spec.versions[0].schema.openAPIV3Schema";
        assert_eq!(
            texts,
            [
                format!("{at}.additionalProperties: Forbidden: must not be used at the root"),
                format!(
                    "{at}.properties[spec].properties[ingress].items.type: Required value: must not be empty for specified array items"
                ),
                format!("{at}.properties[status].items: Required value: must be specified"),
                format!(
                    r#"{at}.properties[spec].properties[priority].type: Unsupported value: "int": supported values: "array", "boolean", "integer", "number", "object", "string""#
                ),
            ]
        );
        let mut crd = admin_network_policies();
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = json!({"type": "string"});
        assert_eq!(
            validate(&crd, None)[0].to_string(),
            format!(r#"{at}.type: Invalid value: "string": must be object at the root"#)
        );
        crd["spec"]["versions"][0]["schema"] = json!({});
        assert_eq!(
            validate(&crd, None)[0].to_string(),
            format!("{at}: Required value: schemas are required")
        );
    }

    #[test]
    fn approval_urls_are_judged_as_go_parses_request_uris() {
        for approved in [
            "https://github.com/kubernetes-sigs/network-policy-api/pull/30",
            "http://example.com",
            "https://user@example.com:8443/x?y",
            "https://:80/x",
            "https://[::1]:6443",
        ] {
            assert!(is_request_uri_with_host(approved), "{approved}");
        }
        for refused in [
            "approved",
            "github.com/kubernetes/enhancements/pull/1111",
            "https:/github.com/x",
            "https://",
            "https://user@/x",
            "https://[::1]x",
            "1http://example.com",
            "https://exa mple.com",
            "https://example.com:80a",
        ] {
            assert!(!is_request_uri_with_host(refused), "{refused}");
        }
    }

    #[test]
    fn protected_groups_are_k8s_io_and_kubernetes_io_and_their_subdomains() {
        for group in [
            "k8s.io",
            "policy.networking.k8s.io",
            "kubernetes.io",
            "x.kubernetes.io",
        ] {
            assert!(is_protected_group(group), "{group}");
        }
        for group in ["crd.projectcalico.org", "notk8s.io", "k8s.io.example.com"] {
            assert!(!is_protected_group(group), "{group}");
        }
    }
}
