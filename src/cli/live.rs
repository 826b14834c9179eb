//! Reading the observed state live, shared by `plan` and `apply`.

use super::CliError;
use crate::cluster::{Kube, KubeConnection};
use crate::model::desired::Desired;
use crate::model::observed::Observed;
use crate::plan::RefreshInfo;
use crate::refresh::aws::{Connection, Iam, Strategy};
use crate::refresh::{Clients, ClusterClient};

/// How to reach the cluster.
#[derive(Debug, Clone, clap::Args)]
pub struct KubeArgs {
    /// The kubeconfig file; otherwise KUBECONFIG, ~/.kube/config, or the
    /// in-cluster service account when irsa runs in a pod.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<std::path::PathBuf>,

    /// The kubeconfig context; otherwise the stack's `[cluster] context`,
    /// otherwise the current context. A stack of several clusters takes
    /// each one's from its `[clusters.<name>] context`.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

/// How to reach AWS.
#[derive(Debug, Clone, clap::Args)]
pub struct AwsArgs {
    /// The IAM endpoint, for an emulator such as moto; the SDK also reads
    /// AWS_ENDPOINT_URL. Credentials come from the standard chain
    /// (environment, AWS_PROFILE, SSO, web identity, instance role).
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,

    /// The AWS profile to use (the SDK also reads AWS_PROFILE).
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,

    /// The AWS region to sign IAM requests for, instead of the stack file's
    /// (IAM is global; the region picks the partition's endpoint).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,

    /// How to read IAM: bulk (a few paginated account-wide calls) or
    /// per-resource (calls for each resource, as Terraform's AWS provider does).
    #[arg(long, value_enum, default_value_t = Strategy::Bulk)]
    pub refresh_strategy: Strategy,
}

/// Whether `--target` prefixes can select a cluster resource. None at all
/// means everything, the cluster included.
pub fn targets_need_cluster(targets: &[String]) -> bool {
    targets.is_empty()
        || targets
            .iter()
            .any(|t| ["sa/", "deploy/"].iter().any(|kind| kind.starts_with(t.as_str()) || t.starts_with(kind)))
}

pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().map_err(CliError::Runtime)
}

/// Connect to IAM, and to each cluster when the targets can reach one. A
/// cluster's issuer comes from the stack file or, when it has none, from the
/// cluster's discovery document. Clusters are connected to at once.
pub async fn connect(
    desired: &Desired,
    aws: &AwsArgs,
    kube: &KubeArgs,
    targets: &[String],
) -> Result<Clients, CliError> {
    if let (true, Some(_)) = (desired.multi_cluster(), &kube.context) {
        return Err(CliError::Usage {
            message: "--context picks one cluster, and this stack has [clusters.<name>] tables".into(),
            help: "set context in each [clusters.<name>] table instead".into(),
        });
    }
    let reach = targets_need_cluster(targets);
    let connections = desired.clusters.iter().map(|cluster| async move {
        let (client, discovered) = if reach {
            let conn = KubeConnection {
                kubeconfig: kube.kubeconfig.clone(),
                context: kube.context.clone().or_else(|| cluster.context.clone()),
            };
            let in_cluster = |e| CliError::Kube(cluster.key.clone(), e);
            let client = Kube::connect(&conn).await.map_err(in_cluster)?;
            let issuer = client.issuer().await.map_err(in_cluster)?;
            (Some(client), issuer)
        } else {
            (None, None)
        };
        let table = cluster.table();
        let Some(issuer) = cluster.oidc_issuer.clone().or_else(|| discovered.clone()) else {
            return Err(CliError::Usage {
                message: if client.is_some() {
                    format!("the stack file does not set {table} oidc_issuer and the cluster serves no OIDC discovery document")
                } else {
                    format!("the stack file does not set {table} oidc_issuer, and these targets do not reach the cluster to read it")
                },
                help: "set oidc_issuer (aws eks describe-cluster --name NAME --query cluster.identity.oidc.issuer)".into(),
            });
        };
        Ok(ClusterClient { key: cluster.key.clone(), kube: client, discovered_issuer: discovered, issuer })
    });
    let clusters = futures_util::future::join_all(connections).await.into_iter().collect::<Result<Vec<_>, _>>()?;
    let conn = Connection {
        region: aws.region.clone().unwrap_or_else(|| desired.clusters[0].region.clone()),
        endpoint_url: aws.endpoint_url.clone(),
        profile: aws.profile.clone(),
    };
    let iam = Iam::connect(&conn).await;
    Ok(Clients { iam, clusters, strategy: aws.refresh_strategy })
}

/// Connect and read, for commands that only read, with the read's progress
/// on a terminal.
pub async fn observe_shown(
    ctx: &super::Ctx,
    desired: &Desired,
    aws: &AwsArgs,
    kube: &KubeArgs,
    targets: &[String],
) -> Result<(Observed, RefreshInfo), CliError> {
    let clients = connect(desired, aws, kube, targets).await?;
    let mut bars = super::progress::ReadBars::new(ctx);
    let read = crate::refresh::read_watched(desired, &clients, |status| bars.update(status)).await;
    bars.finish();
    Ok(read?)
}

#[cfg(test)]
mod tests {
    use super::targets_need_cluster;

    #[test]
    fn only_iam_targets_spare_the_cluster() {
        let t = |v: &[&str]| targets_need_cluster(&v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        assert!(t(&[]));
        assert!(!t(&["oidc/", "policy/", "role/backend"]));
        assert!(t(&["sa/backend/"]));
        assert!(t(&["s"]));
        assert!(t(&["deploy/x/y"]));
        assert!(!t(&["role/"]));
    }
}
