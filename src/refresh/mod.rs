//! Reading the observed state: live from IAM ([`aws`]) and the cluster
//! ([`kube`]) at once, or from a snapshot file ([`snapshot`]); all fill the
//! same [`crate::model::observed::Observed`].

pub mod aws;
pub mod kube;
pub mod snapshot;

use jiff::Timestamp;

use crate::cluster::{Kube, KubeError};
use crate::model::desired::Desired;
use crate::model::observed::{Observed, ObservedCluster, RefreshStats, SNAPSHOT_FORMAT_VERSION};
use crate::plan::RefreshInfo;
use aws::{CallError, Iam, Scope, Strategy};

/// A live read that failed, on the side that failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("reading AWS IAM: {0}")]
    Aws(CallError),
    #[error("reading the cluster")]
    Kube(#[source] KubeError),
}

/// The clients of one run and the issuer they found.
pub struct Clients {
    pub iam: Iam,
    /// `None` when the targets name no cluster resource.
    pub kube: Option<Kube>,
    /// The issuer the cluster's discovery document names, when read.
    pub discovered_issuer: Option<String>,
    pub issuer: String,
    pub strategy: Strategy,
}

/// How far a live read has got, for a progress display: each side's
/// requests so far and, once it is done, what it found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadStatus {
    pub iam: PhaseStatus,
    /// `None` when the run does not contact the cluster.
    pub cluster: Option<PhaseStatus>,
}

/// One side of a read: IAM (calls) or the cluster (requests).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PhaseStatus {
    /// IAM calls or Kubernetes requests made so far.
    pub requests: u64,
    /// Set when the side is done: what it read, as (count, singular, plural)
    /// pairs, such as `(2, "role", "roles")`.
    pub found: Option<Vec<(usize, &'static str, &'static str)>>,
}

/// How often a watched read reports while nothing finishes.
const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Read the observed state: IAM and the cluster at once.
pub async fn read(desired: &Desired, clients: &Clients) -> Result<(Observed, RefreshInfo), ReadError> {
    read_watched(desired, clients, |_| {}).await
}

/// [`read`], telling `watch` how far each side has got: every tenth of a
/// second while both run, and whenever one ends. The caller draws it (or
/// not); this layer only counts.
pub async fn read_watched(
    desired: &Desired,
    clients: &Clients,
    mut watch: impl FnMut(&ReadStatus),
) -> Result<(Observed, RefreshInfo), ReadError> {
    let (calls_before, requests_before) = (clients.iam.calls.total(), clients.kube.as_ref().map_or(0, Kube::requests));
    let scope = Scope::of(desired, Some(&clients.issuer));
    let iam_read = clients.iam.refresh(&scope, clients.strategy);
    let kube_read = async {
        match &clients.kube {
            Some(kube) => kube.refresh(desired).await,
            None => Ok(ObservedCluster::default()),
        }
    };
    let mut status =
        ReadStatus { iam: PhaseStatus::default(), cluster: clients.kube.as_ref().map(|_| PhaseStatus::default()) };
    let (mut iam_result, mut kube_result) = (None, None);
    let (mut iam_read, mut kube_read) = (std::pin::pin!(iam_read), std::pin::pin!(kube_read));
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Both sides run to their end, as with `join!`, even when one fails.
    while iam_result.is_none() || kube_result.is_none() {
        tokio::select! {
            r = &mut iam_read, if iam_result.is_none() => {
                if let Ok(iam) = &r {
                    status.iam.found = Some(vec![
                        (iam.oidc_providers.len(), "OIDC provider", "OIDC providers"),
                        (iam.roles.len(), "role", "roles"),
                        (iam.policies.len(), "policy", "policies"),
                    ]);
                }
                iam_result = Some(r);
            }
            r = &mut kube_read, if kube_result.is_none() => {
                if let (Ok(cluster), Some(phase)) = (&r, status.cluster.as_mut()) {
                    phase.found = Some(vec![
                        (cluster.service_accounts.len(), "service account", "service accounts"),
                        (cluster.deployments.len(), "deployment", "deployments"),
                    ]);
                }
                kube_result = Some(r);
            }
            _ = tick.tick() => {}
        }
        status.iam.requests = clients.iam.calls.total() - calls_before;
        if let (Some(kube), Some(phase)) = (&clients.kube, status.cluster.as_mut()) {
            phase.requests = kube.requests() - requests_before;
        }
        watch(&status);
    }
    let observed_iam = iam_result.expect("the loop ends when IAM is read").map_err(ReadError::Aws)?;
    let cluster = kube_result.expect("the loop ends when the cluster is read").map_err(ReadError::Kube)?;
    let calls = clients.iam.calls.total() - calls_before;
    let requests = clients.kube.as_ref().map_or(0, Kube::requests) - requests_before;
    tracing::info!("read IAM with {calls} calls ({}): {}", clients.strategy.name(), clients.iam.calls.breakdown());
    tracing::info!("read the cluster with {requests} requests");
    let now = Timestamp::now();
    let strategy = clients.strategy.name().to_owned();
    let observed = Observed {
        format_version: SNAPSHOT_FORMAT_VERSION,
        observed_at: Some(now),
        refresh: RefreshStats { strategy: strategy.clone(), iam_calls: calls, kube_requests: requests },
        iam: observed_iam,
        cluster: ObservedCluster { oidc_issuer: clients.discovered_issuer.clone(), ..cluster },
    };
    let refresh = RefreshInfo {
        strategy,
        iam_calls: calls,
        kube_requests: requests,
        snapshot: None,
        observed_at: Some(now.to_string()),
    };
    Ok((observed, refresh))
}
