//! Reading the observed state live, shared by `plan` and `apply`.

use jiff::Timestamp;

use super::CliError;
use crate::model::desired::Desired;
use crate::model::observed::{Observed, ObservedCluster, RefreshStats, SNAPSHOT_FORMAT_VERSION};
use crate::plan::RefreshInfo;
use crate::refresh::aws::{Connection, Iam, Scope, Strategy};

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

/// The observed state, read live, and how it was read.
pub async fn observe(
    desired: &Desired,
    aws: &AwsArgs,
    targets: &[String],
) -> Result<(Observed, RefreshInfo, Iam), CliError> {
    if targets_need_cluster(targets) {
        return Err(CliError::Usage {
            message: "reading the cluster is not available in this version of irsa".into(),
            help: "plan the IAM half with --target oidc/ --target policy/ --target role/, or plan everything from a snapshot with --observed SNAPSHOT".into(),
        });
    }
    let Some(issuer) = desired.cluster.oidc_issuer.as_deref() else {
        return Err(CliError::Usage {
            message: "the stack file does not set [cluster] oidc_issuer, and reading it from the cluster is not available in this version of irsa".into(),
            help: "set oidc_issuer (aws eks describe-cluster --name NAME --query cluster.identity.oidc.issuer)".into(),
        });
    };
    let conn = Connection {
        region: aws.region.clone().unwrap_or_else(|| desired.cluster.region.clone()),
        endpoint_url: aws.endpoint_url.clone(),
        profile: aws.profile.clone(),
    };
    let iam = Iam::connect(&conn).await;
    let scope = Scope::of(desired, Some(issuer));
    let observed_iam = iam.refresh(&scope, aws.refresh_strategy).await.map_err(CliError::Aws)?;
    let calls = iam.calls.total();
    tracing::info!("read IAM with {calls} calls ({}): {}", aws.refresh_strategy.name(), iam.calls.breakdown());
    let now = Timestamp::now();
    let stats = RefreshStats { strategy: aws.refresh_strategy.name().into(), iam_calls: calls, kube_requests: 0 };
    let observed = Observed {
        format_version: SNAPSHOT_FORMAT_VERSION,
        observed_at: Some(now),
        refresh: stats,
        iam: observed_iam,
        cluster: ObservedCluster::default(),
    };
    let info = RefreshInfo {
        strategy: aws.refresh_strategy.name().into(),
        iam_calls: calls,
        kube_requests: 0,
        snapshot: None,
        observed_at: Some(now.to_string()),
    };
    Ok((observed, info, iam))
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
