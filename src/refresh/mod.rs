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
    #[error("reading the cluster{}", .0.as_ref().map(|k| format!(" {k}")).unwrap_or_default())]
    Kube(Option<String>, #[source] KubeError),
}

/// The clients of one run and the issuers they found.
pub struct Clients {
    pub iam: Iam,
    /// One per cluster of the stack, in the stack's order.
    pub clusters: Vec<ClusterClient>,
    pub strategy: Strategy,
}

/// One cluster's connection and issuer.
pub struct ClusterClient {
    /// The cluster's key, as [`crate::model::desired::Cluster::key`].
    pub key: Option<String>,
    /// `None` when the targets name no cluster resource.
    pub kube: Option<Kube>,
    /// The issuer the cluster's discovery document names, when read.
    pub discovered_issuer: Option<String>,
    pub issuer: String,
}

impl Clients {
    /// The clusters the run contacts, in the stack's (key) order: the order
    /// locks are taken in.
    pub fn kubes(&self) -> impl Iterator<Item = (Option<&str>, &Kube)> {
        self.clusters.iter().filter_map(|c| Some((c.key.as_deref(), c.kube.as_ref()?)))
    }

    /// Requests made so far to every cluster.
    fn kube_requests(&self) -> u64 {
        self.kubes().map(|(_, k)| k.requests()).sum()
    }
}

/// How far a live read has got, for a progress display: each side's
/// requests so far and, once it is done, what it found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadStatus {
    pub iam: PhaseStatus,
    /// `None` when the run does not contact the cluster (several clusters: all of them, counted together).
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
    let (calls_before, requests_before) = (clients.iam.calls.total(), clients.kube_requests());
    let scope = Scope::of(desired, clients.clusters.iter().map(|c| c.issuer.as_str()));
    let iam_read = clients.iam.refresh(&scope, clients.strategy);
    // Every cluster at once, each to its end even when another fails.
    let kube_read = futures_util::future::join_all(clients.clusters.iter().map(|c| async move {
        let read = match &c.kube {
            Some(kube) => kube.refresh(desired, c.key.as_deref()).await,
            None => Ok(ObservedCluster::default()),
        };
        (c, read)
    }));
    let contacts = clients.kubes().next().is_some();
    let mut status = ReadStatus { iam: PhaseStatus::default(), cluster: contacts.then(PhaseStatus::default) };
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
                if let Some(phase) = status.cluster.as_mut() {
                    let read: Vec<&ObservedCluster> = r.iter().filter_map(|(_, c)| c.as_ref().ok()).collect();
                    phase.found = Some(vec![
                        (read.iter().map(|c| c.service_accounts.len()).sum(), "service account", "service accounts"),
                        (read.iter().map(|c| c.deployments.len()).sum(), "deployment", "deployments"),
                    ]);
                }
                kube_result = Some(r);
            }
            _ = tick.tick() => {}
        }
        status.iam.requests = clients.iam.calls.total() - calls_before;
        if let Some(phase) = status.cluster.as_mut() {
            phase.requests = clients.kube_requests() - requests_before;
        }
        watch(&status);
    }
    let observed_iam = iam_result.expect("the loop ends when IAM is read").map_err(ReadError::Aws)?;
    let mut cluster = ObservedCluster::default();
    let mut clusters = std::collections::BTreeMap::new();
    for (c, read) in kube_result.expect("the loop ends when the clusters are read") {
        let read = read.map_err(|e| ReadError::Kube(c.key.clone(), e))?;
        let state = ObservedCluster { oidc_issuer: c.discovered_issuer.clone(), ..read };
        match &c.key {
            Some(key) => {
                clusters.insert(key.clone(), state);
            }
            None => cluster = state,
        }
    }
    let calls = clients.iam.calls.total() - calls_before;
    let requests = clients.kube_requests() - requests_before;
    tracing::info!("read IAM with {calls} calls ({}): {}", clients.strategy.name(), clients.iam.calls.breakdown());
    tracing::info!("read the cluster{} with {requests} requests", if clients.clusters.len() > 1 { "s" } else { "" });
    let now = Timestamp::now();
    let strategy = clients.strategy.name().to_owned();
    let observed = Observed {
        format_version: SNAPSHOT_FORMAT_VERSION,
        observed_at: Some(now),
        refresh: RefreshStats { strategy: strategy.clone(), iam_calls: calls, kube_requests: requests },
        iam: observed_iam,
        cluster,
        clusters,
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
