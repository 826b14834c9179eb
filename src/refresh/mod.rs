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

/// Read the observed state: IAM and the cluster at once.
pub async fn read(desired: &Desired, clients: &Clients) -> Result<(Observed, RefreshInfo), ReadError> {
    let (calls_before, requests_before) = (clients.iam.calls.total(), clients.kube.as_ref().map_or(0, Kube::requests));
    let scope = Scope::of(desired, Some(&clients.issuer));
    let iam_read = clients.iam.refresh(&scope, clients.strategy);
    let (observed_iam, cluster) = match &clients.kube {
        Some(kube) => {
            let (i, c) = tokio::join!(iam_read, kube.refresh(desired));
            (i.map_err(ReadError::Aws)?, c.map_err(ReadError::Kube)?)
        }
        None => (iam_read.await.map_err(ReadError::Aws)?, ObservedCluster::default()),
    };
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
