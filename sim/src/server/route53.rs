//! Route53's REST-XML API (`/2013-04-01/...`), the calls aws-sdk-route53 makes for loko.
//!
//! Errors use the `ErrorResponse` envelope that the Route53 Smithy model (and so every AWS SDK)
//! parses, with the AWS error codes and messages.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;

use crate::route53::model::{
    Action, Change, RecordSet, Route53Error, Zone, display_name, name_servers,
};
use crate::shared::Shared;

/// The namespace of every Route53 document.
pub(crate) const NAMESPACE: &str = "https://route53.amazonaws.com/doc/2013-04-01/";
const MAX_RECORD_SETS: usize = 300;
const MAX_ZONES: usize = 100;

type Reply = Result<Response, Route53Error>;

impl IntoResponse for Route53Error {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status()).unwrap_or(StatusCode::BAD_REQUEST);
        error_response(status, "Sender", self.code(), &self.message())
    }
}

/// An AWS `ErrorResponse` document.
pub(crate) fn error_response(
    status: StatusCode,
    kind: &str,
    code: &str,
    message: &str,
) -> Response {
    let mut x = Xml::document("ErrorResponse");
    x.open("Error");
    x.leaf("Type", kind);
    x.leaf("Code", code);
    x.leaf("Message", message);
    x.close("Error");
    x.leaf(
        "RequestId",
        &uuid::Uuid::from_u128(rand::random()).to_string(),
    );
    x.finish(status)
}

/// A small writer for the fixed, namespaced documents Route53 answers with.
struct Xml {
    root: &'static str,
    text: String,
}

impl Xml {
    fn document(root: &'static str) -> Xml {
        Xml {
            root,
            text: format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{root} xmlns=\"{NAMESPACE}\">"
            ),
        }
    }

    fn open(&mut self, tag: &str) {
        self.text.push_str(&format!("<{tag}>"));
    }

    fn close(&mut self, tag: &str) {
        self.text.push_str(&format!("</{tag}>"));
    }

    fn leaf(&mut self, tag: &str, value: &str) {
        self.text.push_str(&format!(
            "<{tag}>{}</{tag}>",
            quick_xml::escape::partial_escape(value)
        ));
    }

    fn finish(mut self, status: StatusCode) -> Response {
        self.text.push_str(&format!("</{}>", self.root));
        (status, [(header::CONTENT_TYPE, "text/xml")], self.text).into_response()
    }

    fn zone(&mut self, zone: &Zone) {
        self.open("HostedZone");
        self.leaf("Id", &format!("/hostedzone/{}", zone.id));
        self.leaf("Name", &zone.name);
        self.leaf("CallerReference", &zone.caller_reference);
        self.open("Config");
        if let Some(comment) = &zone.comment {
            self.leaf("Comment", comment);
        }
        self.leaf("PrivateZone", "false");
        self.close("Config");
        self.leaf(
            "ResourceRecordSetCount",
            &zone.record_sets.len().to_string(),
        );
        self.close("HostedZone");
    }

    fn delegation_set(&mut self) {
        self.open("DelegationSet");
        self.open("NameServers");
        for ns in name_servers() {
            self.leaf("NameServer", ns.trim_end_matches('.'));
        }
        self.close("NameServers");
        self.close("DelegationSet");
    }

    fn change_info(&mut self, change: &Change, status: &str) {
        self.open("ChangeInfo");
        self.leaf("Id", &format!("/change/{}", change.id));
        self.leaf("Status", status);
        self.leaf("SubmittedAt", &aws_timestamp(change.submitted_at));
        if let Some(comment) = &change.comment {
            self.leaf("Comment", comment);
        }
        self.close("ChangeInfo");
    }

    fn record_set(&mut self, set: &RecordSet) {
        self.open("ResourceRecordSet");
        self.leaf("Name", &display_name(&set.name));
        self.leaf("Type", &set.rtype);
        if let Some(id) = &set.set_identifier {
            self.leaf("SetIdentifier", id);
        }
        if let Some(weight) = set.weight {
            self.leaf("Weight", &weight.to_string());
        }
        if let Some(ttl) = set.ttl {
            self.leaf("TTL", &ttl.to_string());
        }
        self.open("ResourceRecords");
        for value in &set.values {
            self.open("ResourceRecord");
            self.leaf("Value", value);
            self.close("ResourceRecord");
        }
        self.close("ResourceRecords");
        self.close("ResourceRecordSet");
    }
}

fn aws_timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateHostedZoneRequest {
    name: String,
    caller_reference: String,
    hosted_zone_config: Option<HostedZoneConfig>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HostedZoneConfig {
    comment: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ChangeResourceRecordSetsRequest {
    change_batch: ChangeBatch,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ChangeBatch {
    comment: Option<String>,
    changes: Changes,
}

#[derive(Deserialize)]
struct Changes {
    #[serde(rename = "Change", default)]
    change: Vec<ChangeXml>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ChangeXml {
    action: String,
    resource_record_set: RecordSetXml,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RecordSetXml {
    name: String,
    #[serde(rename = "Type")]
    rtype: String,
    #[serde(rename = "TTL")]
    ttl: Option<u64>,
    resource_records: Option<ResourceRecords>,
    set_identifier: Option<String>,
    weight: Option<u64>,
    alias_target: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct ResourceRecords {
    #[serde(rename = "ResourceRecord", default)]
    resource_record: Vec<ResourceRecord>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResourceRecord {
    value: String,
}

fn parse_xml<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, Route53Error> {
    let text = std::str::from_utf8(body)
        .map_err(|_| Route53Error::InvalidInput(format!("{what} is not UTF-8")))?;
    quick_xml::de::from_str(text)
        .map_err(|e| Route53Error::InvalidInput(format!("cannot parse {what}: {e}")))
}

fn max_items(query: &BTreeMap<String, String>, max: usize) -> Result<usize, Route53Error> {
    match query.get("maxitems") {
        None => Ok(max),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .map(|n| n.min(max))
            .ok_or_else(|| {
                Route53Error::InvalidInput(format!(
                    "maxitems must be a positive integer, got {v:?}"
                ))
            }),
    }
}

pub(crate) async fn create_hosted_zone(State(shared): State<Arc<Shared>>, body: Bytes) -> Reply {
    let request: CreateHostedZoneRequest = parse_xml(&body, "CreateHostedZoneRequest")?;
    let comment = request.hosted_zone_config.and_then(|c| c.comment);
    shared
        .mutate(|world, now| {
            let (zone_id, change_id) = world.route53.create_zone(
                &request.name,
                &request.caller_reference,
                comment,
                None,
                now,
            )?;
            let mut x = Xml::document("CreateHostedZoneResponse");
            x.zone(world.route53.zone(&zone_id)?);
            x.change_info(world.route53.get_change(&change_id)?, "PENDING");
            x.delegation_set();
            let mut response = x.finish(StatusCode::CREATED);
            if let Ok(location) = format!("/2013-04-01/hostedzone/{zone_id}").parse() {
                response.headers_mut().insert(header::LOCATION, location);
            }
            Ok(response)
        })
        .await
}

pub(crate) async fn list_hosted_zones(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Reply {
    let max = max_items(&query, MAX_ZONES)?;
    let world = shared.world();
    let marker = query.get("marker").map(String::as_str).unwrap_or("");
    let mut zones = world
        .route53
        .zones
        .values()
        .filter(|z| z.id.as_str() >= marker);
    let page: Vec<&Zone> = zones.by_ref().take(max).collect();
    let next = zones.next();
    let mut x = Xml::document("ListHostedZonesResponse");
    x.open("HostedZones");
    for zone in &page {
        x.zone(zone);
    }
    x.close("HostedZones");
    if !marker.is_empty() {
        x.leaf("Marker", marker);
    }
    x.leaf("IsTruncated", if next.is_some() { "true" } else { "false" });
    if let Some(next) = next {
        x.leaf("NextMarker", &next.id);
    }
    x.leaf("MaxItems", &max.to_string());
    Ok(x.finish(StatusCode::OK))
}

pub(crate) async fn list_hosted_zones_by_name(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Reply {
    let max = max_items(&query, MAX_ZONES)?;
    let world = shared.world();
    let dns_name = query
        .get("dnsname")
        .map(|n| crate::route53::model::normalize_name(n));
    let start = dns_name
        .as_deref()
        .map(|n| crate::route53::model::RecordKey::new(n, "", None));
    let mut zones = world.route53.zones_by_name().into_iter().filter(|z| {
        start
            .as_ref()
            .is_none_or(|s| crate::route53::model::RecordKey::new(&z.name, "", None) >= *s)
    });
    let page: Vec<&Zone> = zones.by_ref().take(max).collect();
    let next = zones.next();
    let mut x = Xml::document("ListHostedZonesByNameResponse");
    x.open("HostedZones");
    for zone in &page {
        x.zone(zone);
    }
    x.close("HostedZones");
    if let Some(name) = &dns_name {
        x.leaf("DNSName", name);
    }
    x.leaf("IsTruncated", if next.is_some() { "true" } else { "false" });
    if let Some(next) = next {
        x.leaf("NextDNSName", &next.name);
        x.leaf("NextHostedZoneId", &next.id);
    }
    x.leaf("MaxItems", &max.to_string());
    Ok(x.finish(StatusCode::OK))
}

pub(crate) async fn get_hosted_zone(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Reply {
    let world = shared.world();
    let zone = world.route53.zone(&id)?;
    let mut x = Xml::document("GetHostedZoneResponse");
    x.zone(zone);
    x.delegation_set();
    Ok(x.finish(StatusCode::OK))
}

pub(crate) async fn change_resource_record_sets(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Reply {
    let request: ChangeResourceRecordSetsRequest =
        parse_xml(&body, "ChangeResourceRecordSetsRequest")?;
    let mut changes = Vec::new();
    for change in request.change_batch.changes.change {
        let action = match change.action.as_str() {
            "CREATE" => Action::Create,
            "UPSERT" => Action::Upsert,
            "DELETE" => Action::Delete,
            other => {
                return Err(Route53Error::InvalidInput(format!(
                    "Invalid XML ; cvc-enumeration-valid: Value '{other}' is not facet-valid with respect to enumeration '[CREATE, DELETE, UPSERT]'"
                )));
            }
        };
        let set = change.resource_record_set;
        if set.alias_target.is_some() {
            return Err(Route53Error::InvalidInput(format!(
                "alias record sets are not simulated (record set {})",
                set.name
            )));
        }
        changes.push((
            action,
            RecordSet {
                name: set.name,
                rtype: set.rtype,
                ttl: set.ttl,
                values: set
                    .resource_records
                    .map(|r| r.resource_record.into_iter().map(|v| v.value).collect())
                    .unwrap_or_default(),
                set_identifier: set.set_identifier,
                weight: set.weight,
            },
        ));
    }
    shared
        .mutate(|world, now| {
            let change_id =
                world
                    .route53
                    .change(&id, changes, request.change_batch.comment, now)?;
            let mut x = Xml::document("ChangeResourceRecordSetsResponse");
            x.change_info(world.route53.get_change(&change_id)?, "PENDING");
            Ok(x.finish(StatusCode::OK))
        })
        .await
}

pub(crate) async fn list_resource_record_sets(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> Reply {
    let max = max_items(&query, MAX_RECORD_SETS)?;
    let name = query.get("name").map(String::as_str);
    let rtype = query.get("type").map(String::as_str);
    if rtype.is_some() && name.is_none() {
        return Err(Route53Error::InvalidInput(
            "The input is not valid: type requires name".to_owned(),
        ));
    }
    let world = shared.world();
    let zone = world.route53.zone(&id)?;
    let (page, next) = zone.list(name, rtype, max);
    let mut x = Xml::document("ListResourceRecordSetsResponse");
    x.open("ResourceRecordSets");
    for set in page {
        x.record_set(set);
    }
    x.close("ResourceRecordSets");
    x.leaf("IsTruncated", if next.is_some() { "true" } else { "false" });
    if let Some(next) = next {
        x.leaf("NextRecordName", &display_name(&next.name));
        x.leaf("NextRecordType", &next.rtype);
        if let Some(id) = &next.set_identifier {
            x.leaf("NextRecordIdentifier", id);
        }
    }
    x.leaf("MaxItems", &max.to_string());
    Ok(x.finish(StatusCode::OK))
}

pub(crate) async fn get_change(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Reply {
    let now = shared.now();
    let world = shared.world();
    let change = world.route53.get_change(&id)?;
    let mut x = Xml::document("GetChangeResponse");
    x.change_info(change, change.status(now, shared.timings()));
    Ok(x.finish(StatusCode::OK))
}
