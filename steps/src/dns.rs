//! Route53: the cluster's A records, written with aws-sdk-route53.
//!
//! Lokomotive created `<cluster>` (controllers' public IPs), `<cluster>-private` (their private
//! IPs) and `<cluster>-etcd<i>` (controller i's private IP), TTL 300. Since AWS provider 2.0 a
//! record that already existed made Terraform's `CREATE` fail, and before that such records
//! were silently overwritten (peer lesson). loko reads each record set first: absent, already
//! right, or holding the values loko itself set last time → it is written with one `UPSERT`
//! batch; holding someone else's values → the step stops and shows the difference, unless the
//! user asked to take the records over.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use aws_sdk_route53::Client;
use aws_sdk_route53::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord, ResourceRecordSet, RrType,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use engine::{StepContext, StepError};
use journal::Outputs;

use crate::kinds::{DeleteRecordsOutputs, DeviceKind, DnsKind, DnsOutputs, RecordSource};

/// Environment variable of the Route53 endpoint override (the AWS SDK's own convention).
pub const ENDPOINT_ENV: &str = "AWS_ENDPOINT_URL_ROUTE_53";

/// One A record set as loko wants it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ARecord {
    /// Fully qualified, with the trailing dot: `supernova.packet.example.com.`.
    pub name: String,
    pub values: Vec<Ipv4Addr>,
    pub ttl: i64,
}

/// A Route53 failure, naming the zone or record.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The API call failed (the SDK's error text, which never holds credentials).
    #[error("Route53 {operation} in zone {zone}: {message}")]
    Api {
        operation: &'static str,
        zone: String,
        message: String,
        retryable: bool,
    },
    /// Records exist with values that loko did not set.
    #[error("Route53 zone {zone}: {} record set(s) already exist with values loko did not set: {}; delete them, or run again with --take-over-dns to overwrite them", .conflicts.len(), .conflicts.join("; "))]
    Foreign {
        zone: String,
        conflicts: Vec<String>,
    },
    /// The change did not reach INSYNC in time.
    #[error("Route53 change {change} in zone {zone} is still PENDING after {}s", .waited.as_secs())]
    NotInSync {
        zone: String,
        change: String,
        waited: Duration,
    },
}

impl From<DnsError> for StepError {
    fn from(e: DnsError) -> StepError {
        match &e {
            DnsError::Api {
                retryable: true, ..
            }
            | DnsError::NotInSync { .. } => StepError::retryable(e),
            DnsError::Api { .. } | DnsError::Foreign { .. } => StepError::permanent(e),
        }
    }
}

/// A Route53 client.
#[derive(Clone)]
pub struct Route53 {
    client: Client,
    /// Why the credential chain gave no credentials, if it did not.
    credentials_missing: Option<String>,
}

impl Route53 {
    /// A client with the standard AWS credential chain (environment, shared config and
    /// credentials files, web identity, ECS and EC2 metadata) and the endpoint from
    /// `endpoint` or `AWS_ENDPOINT_URL_ROUTE_53`. TLS uses rustls with ring. The credentials
    /// it resolves are told to `redactor` (the run's).
    pub async fn from_env(endpoint: Option<&str>, redactor: &journal::Redactor) -> Route53 {
        Route53::build(endpoint, None, redactor).await
    }

    /// A client with fixed credentials, for an endpoint that is not AWS (the simulator); they
    /// are told to `redactor`.
    pub async fn with_static_credentials(
        endpoint: &str,
        access_key_id: &str,
        secret_access_key: &str,
        redactor: &journal::Redactor,
    ) -> Route53 {
        let credentials = aws_credential_types::Credentials::new(
            access_key_id,
            secret_access_key,
            None,
            None,
            "loko-static",
        );
        Route53::build(Some(endpoint), Some(credentials), redactor).await
    }

    async fn build(
        endpoint: Option<&str>,
        credentials: Option<aws_credential_types::Credentials>,
        redactor: &journal::Redactor,
    ) -> Route53 {
        use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build_https();
        // Route53 is a global service signed for us-east-1 whatever the user's region, so the
        // region is fixed rather than looked up (the lookup would also ask EC2 metadata).
        let region = aws_config::Region::from_static("us-east-1");
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(http)
            .region(region);
        if let Some(url) = endpoint {
            loader = loader.endpoint_url(url);
        }
        if let Some(credentials) = credentials {
            loader = loader.credentials_provider(credentials);
        }
        let config = loader.load().await;
        let credentials_missing = match config.credentials_provider() {
            Some(provider) => register_credentials(provider, redactor).await.err(),
            None => Some("no credential provider is configured".to_owned()),
        };
        Route53 {
            client: Client::new(&config),
            credentials_missing,
        }
    }

    /// Why no AWS credentials could be resolved (environment, profile, web identity, ECS or EC2
    /// metadata), if none could: a run cannot write its records.
    pub fn credentials_missing(&self) -> Option<&str> {
        self.credentials_missing.as_deref()
    }

    /// Reads the hosted zone `zone`: proves the endpoint answers, the credentials are accepted
    /// and the zone exists.
    pub async fn check_zone(&self, zone: &str) -> Result<(), DnsError> {
        self.client
            .get_hosted_zone()
            .id(zone)
            .send()
            .await
            .map_err(|e| api_error("GetHostedZone", zone, e))?;
        Ok(())
    }

    /// The current values of the A record `name`, if it exists.
    pub async fn a_record(&self, zone: &str, name: &str) -> Result<Option<ARecord>, DnsError> {
        let out = self
            .client
            .list_resource_record_sets()
            .hosted_zone_id(zone)
            .start_record_name(name)
            .start_record_type(RrType::A)
            .max_items(1)
            .send()
            .await
            .map_err(|e| api_error("ListResourceRecordSets", zone, e))?;
        Ok(out
            .resource_record_sets()
            .iter()
            .find(|set| same_name(set.name(), name) && *set.r#type() == RrType::A)
            .map(|set| ARecord {
                name: name.to_owned(),
                values: set
                    .resource_records()
                    .iter()
                    .filter_map(|r| r.value().parse().ok())
                    .collect(),
                ttl: set.ttl().unwrap_or_default(),
            }))
    }

    /// Writes `records` in one UPSERT batch and returns the change id.
    pub async fn upsert(&self, zone: &str, records: &[ARecord]) -> Result<String, DnsError> {
        self.change(zone, ChangeAction::Upsert, records, "loko: cluster records")
            .await
    }

    /// Deletes `records` (their current values must be given, as Route53 requires).
    pub async fn delete(&self, zone: &str, records: &[ARecord]) -> Result<String, DnsError> {
        self.change(zone, ChangeAction::Delete, records, "loko: destroy")
            .await
    }

    async fn change(
        &self,
        zone: &str,
        action: ChangeAction,
        records: &[ARecord],
        comment: &str,
    ) -> Result<String, DnsError> {
        let invalid = |e: aws_sdk_route53::error::BuildError| DnsError::Api {
            operation: "ChangeResourceRecordSets",
            zone: zone.to_owned(),
            message: e.to_string(),
            retryable: false,
        };
        let mut batch = ChangeBatch::builder().comment(comment);
        for record in records {
            let mut set = ResourceRecordSet::builder()
                .name(&record.name)
                .r#type(RrType::A)
                .ttl(record.ttl);
            for ip in &record.values {
                set = set.resource_records(
                    ResourceRecord::builder()
                        .value(ip.to_string())
                        .build()
                        .map_err(invalid)?,
                );
            }
            batch = batch.changes(
                Change::builder()
                    .action(action.clone())
                    .resource_record_set(set.build().map_err(invalid)?)
                    .build()
                    .map_err(invalid)?,
            );
        }
        let out = self
            .client
            .change_resource_record_sets()
            .hosted_zone_id(zone)
            .change_batch(batch.build().map_err(invalid)?)
            .send()
            .await
            .map_err(|e| api_error("ChangeResourceRecordSets", zone, e))?;
        Ok(out
            .change_info()
            .map(|c| c.id().to_owned())
            .unwrap_or_default())
    }

    /// Waits until change `id` is INSYNC, polling every `every`, for at most `deadline`.
    pub async fn wait_in_sync(
        &self,
        zone: &str,
        id: &str,
        every: Duration,
        deadline: Duration,
    ) -> Result<(), DnsError> {
        let start = Instant::now();
        loop {
            let out = self
                .client
                .get_change()
                .id(id)
                .send()
                .await
                .map_err(|e| api_error("GetChange", zone, e))?;
            if out.change_info().map(|c| c.status()) == Some(&ChangeStatus::Insync) {
                return Ok(());
            }
            if start.elapsed() >= deadline {
                return Err(DnsError::NotInSync {
                    zone: zone.to_owned(),
                    change: id.to_owned(),
                    waited: start.elapsed(),
                });
            }
            tokio::time::sleep(every).await;
        }
    }
}

/// Tells `redactor` the resolved AWS credentials, so no error, event or log line
/// (the SDK's trace logs print the signed request) can carry them. The access key id is not
/// secret by itself, but it names the account's key: it is not printed either.
async fn register_credentials(
    provider: aws_credential_types::provider::SharedCredentialsProvider,
    redactor: &journal::Redactor,
) -> Result<(), String> {
    use aws_credential_types::provider::ProvideCredentials;
    let creds = provider
        .provide_credentials()
        .await
        .map_err(|e| journal::redact_shapes(&e.to_string()))?;
    redactor.add(creds.access_key_id());
    redactor.add(creds.secret_access_key());
    if let Some(token) = creds.session_token() {
        redactor.add(token);
    }
    Ok(())
}

fn api_error<E>(operation: &'static str, zone: &str, e: SdkError<E, HttpResponse>) -> DnsError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let throttled = matches!(
        e.code(),
        Some("Throttling" | "ThrottlingException" | "PriorRequestNotComplete")
    );
    let retryable = throttled
        || status.is_some_and(|s| s == 429 || s >= 500)
        || matches!(
            e,
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
        );
    let message = match &e {
        SdkError::ServiceError(s) => {
            let err = s.err();
            match (err.code(), err.message()) {
                (Some(code), Some(msg)) => format!("{code}: {msg}"),
                _ => err.to_string(),
            }
        }
        other => crate::error_chain(other),
    };
    DnsError::Api {
        operation,
        zone: zone.to_owned(),
        message: journal::redact_shapes(&message),
        retryable,
    }
}

fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// The records a DNS step owns: written together, waited for together.
pub struct DnsStep {
    pub route53: Route53,
    pub zone_id: String,
    /// Each record's name and TTL; values come from the dependencies' outputs.
    pub records: Vec<RecordSource>,
    /// Overwrite records that hold values loko did not set.
    pub take_over: bool,
    pub poll_every: Duration,
    pub in_sync_deadline: Duration,
}

impl DnsStep {
    /// One attempt: resolve values, read what is there, UPSERT, wait for INSYNC.
    pub async fn run(&self, ctx: StepContext) -> Result<DnsOutputs, StepError> {
        let zone = &self.zone_id;
        let mut wanted = Vec::with_capacity(self.records.len());
        for source in &self.records {
            let mut values = Vec::new();
            for (step, which) in &source.values_from {
                values.push(DeviceKind::address(&ctx, step, *which)?);
            }
            values.sort();
            wanted.push(ARecord {
                name: source.name.clone(),
                values,
                ttl: source.ttl,
            });
        }
        let ours: BTreeMap<String, Vec<Ipv4Addr>> = ctx
            .recorded_outputs_of::<DnsKind>()
            .map(|recorded| recorded.records)
            .unwrap_or_default();
        let mut conflicts = Vec::new();
        let mut to_write = Vec::new();
        for record in &wanted {
            match self.route53.a_record(zone, &record.name).await? {
                None => to_write.push(record.clone()),
                Some(mut current) => {
                    current.values.sort();
                    if current.values == record.values && current.ttl == record.ttl {
                        continue;
                    }
                    let set_by_us = ours.get(&record.name) == Some(&current.values);
                    if !set_by_us && !self.take_over && current.values != record.values {
                        conflicts.push(format!(
                            "{} has {} (wanted {})",
                            record.name,
                            join(&current.values),
                            join(&record.values)
                        ));
                    } else {
                        to_write.push(record.clone());
                    }
                }
            }
        }
        if !conflicts.is_empty() {
            return Err(DnsError::Foreign {
                zone: zone.clone(),
                conflicts,
            }
            .into());
        }
        let mut out = DnsOutputs {
            records: wanted
                .iter()
                .map(|r| (r.name.clone(), r.values.clone()))
                .collect(),
            change_id: None,
        };
        if !to_write.is_empty() {
            let change = self.route53.upsert(zone, &to_write).await?;
            ctx.progress(format!(
                "wrote {} record set(s); waiting for change {change} to be INSYNC",
                to_write.len()
            ));
            // Waiting for INSYNC holds no place of the `route53` class.
            ctx.wait(self.route53.wait_in_sync(
                zone,
                &change,
                self.poll_every,
                self.in_sync_deadline,
            ))
            .await??;
            out.change_id = Some(change);
        }
        Ok(out)
    }
}

fn join(ips: &[Ipv4Addr]) -> String {
    ips.iter()
        .map(|ip| ip.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Deletes the cluster's records for `loko destroy`. Records are named after the cluster, so
/// every A record of those names is the cluster's; one that is already gone is success.
pub struct DnsDeleteStep {
    pub route53: Route53,
    pub zone_id: String,
    pub names: Vec<String>,
    pub poll_every: Duration,
    pub in_sync_deadline: Duration,
}

impl DnsDeleteStep {
    /// One attempt: read each record's current values (Route53 deletes only exact matches),
    /// DELETE those that exist in one batch, wait for INSYNC.
    pub async fn run(&self, ctx: StepContext) -> Result<DeleteRecordsOutputs, StepError> {
        let zone = &self.zone_id;
        let mut existing = Vec::new();
        for name in &self.names {
            if let Some(record) = self.route53.a_record(zone, name).await? {
                existing.push(record);
            }
        }
        let deleted: Vec<String> = existing.iter().map(|r| r.name.clone()).collect();
        let mut out = DeleteRecordsOutputs {
            deleted_records: deleted.clone(),
            change_id: None,
        };
        if existing.is_empty() {
            return Ok(out);
        }
        ctx.intent("delete records", Outputs::new().with("records", &deleted)?)
            .await?;
        let change = self.route53.delete(zone, &existing).await?;
        ctx.progress(format!(
            "deleted {} record set(s); waiting for change {change} to be INSYNC",
            existing.len()
        ));
        // Waiting for INSYNC holds no place of the `route53` class.
        ctx.wait(
            self.route53
                .wait_in_sync(zone, &change, self.poll_every, self.in_sync_deadline),
        )
        .await??;
        out.change_id = Some(change);
        Ok(out)
    }
}
