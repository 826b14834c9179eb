use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::PathBuf;

use super::live::KubeArgs;
use super::{CliError, Ctx, exit};
use crate::cluster::{Kube, KubeConnection};
use crate::doctor::checks::{self, host_path};
use crate::doctor::facts::{self, Bound, Context, Read, StackContext, Subject};
use crate::doctor::{Reads, Report, read, render};
use crate::model::desired::markers::ANNOTATION_ROLE_ARN;
use crate::model::desired::{Cluster, Desired, Role};
use crate::refresh::aws::{Connection, Iam, sdk_config};
use crate::render::Format;

/// Check the whole IRSA chain live, and say what is broken and how to fix it.
///
/// For each ServiceAccount (the stack file's bindings, or those of
/// --namespace carrying eks.amazonaws.com/role-arn): the IAM OIDC provider
/// and its client ids, the annotation, the role, its trust policy as STS
/// evaluates it with a real token from the API server (never printed), the
/// Deployments and their pods' injected credentials, the pod identity
/// webhook. Read-only. Exits 0 when every check is ok or a warning, 1 on
/// any error.
#[derive(Debug, clap::Args)]
#[command(
    override_usage = "irsa doctor <FILE> [OPTIONS]\n       irsa doctor --namespace <NS> [--service-account <NAME>] [OPTIONS]"
)]
pub struct DoctorArgs {
    /// The stack file whose bindings to check.
    #[arg(required_unless_present = "namespace", conflicts_with = "namespace")]
    file: Option<PathBuf>,

    /// Check the ServiceAccounts of this namespace that carry
    /// eks.amazonaws.com/role-arn, without a stack file.
    #[arg(long, short = 'n', value_name = "NS")]
    namespace: Option<String>,

    /// With --namespace: only this ServiceAccount (annotated or not).
    #[arg(long, value_name = "NAME", requires = "namespace")]
    service_account: Option<String>,

    /// With a stack file of several clusters ([clusters.<name>]): the
    /// cluster whose bindings to check (one per run; the only one by default).
    #[arg(long, value_name = "NAME", requires = "file")]
    cluster: Option<String>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,

    /// The IAM endpoint, for an emulator such as moto; the SDK also reads
    /// AWS_ENDPOINT_URL. Credentials come from the standard chain.
    #[arg(long, value_name = "URL")]
    endpoint_url: Option<String>,

    /// The AWS profile to use (the SDK also reads AWS_PROFILE).
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,

    /// The cluster's region, instead of the stack file's or the issuer's.
    #[arg(long, value_name = "REGION")]
    region: Option<String>,

    /// Also call STS AssumeRoleWithWebIdentity with each token, as the
    /// pod's SDK would, and report the identity STS answers with (a real
    /// STS call: off by default). --endpoint-url serves it too.
    #[arg(long)]
    assume: bool,

    #[command(flatten)]
    kube: KubeArgs,
}

pub fn run(ctx: &Ctx, args: DoctorArgs) -> Result<u8, CliError> {
    let desired = match &args.file {
        Some(file) => Some(super::load_stack(file, None)?),
        None => None,
    };
    if let Some(ns) = &args.namespace {
        crate::model::names::dns_label("namespace", ns)
            .map_err(|e| CliError::Usage { message: e.message, help: e.help })?;
    }
    let progress = std::io::stderr().is_terminal();
    if progress {
        eprint!("irsa doctor: reading IAM and the cluster…\r");
    }
    let report = super::live::runtime()?.block_on(diagnose(&args, desired.as_ref()));
    if progress {
        eprint!("\x1b[2K\r");
    }
    let report = report?;
    let text = match args.format {
        Format::Text => render::text(&report, ctx.color_stdout),
        Format::Markdown => render::markdown(&report),
        Format::Json => render::json(&report),
    };
    ctx.print(&text)?;
    Ok(if report.failed() { exit::ERROR } else { exit::SUCCESS })
}

/// The stack's cluster doctor checks: `--cluster`, or the only one.
fn checked_cluster<'d>(args: &DoctorArgs, desired: &'d Desired) -> Result<&'d Cluster, CliError> {
    let names: Vec<&str> = desired.clusters.iter().map(Cluster::address_name).collect();
    match &args.cluster {
        None if desired.clusters.len() == 1 => Ok(&desired.clusters[0]),
        None => Err(CliError::Usage {
            message: format!("the stack has clusters {}: doctor checks one at a time", names.join(", ")),
            help: format!("name it with --cluster {}", names[0]),
        }),
        Some(name) => desired.clusters.iter().find(|c| c.address_name() == name).ok_or_else(|| CliError::Usage {
            message: format!("the stack has no cluster `{name}`"),
            help: format!("use one of {}", names.join(", ")),
        }),
    }
}

async fn diagnose(args: &DoctorArgs, desired: Option<&Desired>) -> Result<Report, CliError> {
    let cluster = desired.map(|d| checked_cluster(args, d)).transpose()?;
    let key = cluster.and_then(|c| c.key.clone());
    let kube_error = |e| CliError::Kube(key.clone(), e);
    let conn = KubeConnection {
        kubeconfig: args.kube.kubeconfig.clone(),
        context: args.kube.context.clone().or_else(|| cluster.and_then(|c| c.context.clone())),
    };
    let kube = Kube::connect(&conn).await.map_err(kube_error)?;
    let (issuer, issuer_source) = match cluster.and_then(|c| c.oidc_issuer.clone()) {
        Some(i) => (Some(i.trim_end_matches('/').to_owned()), "stack"),
        None => (kube.issuer().await.map_err(kube_error)?, "discovery"),
    };
    let region = args
        .region
        .clone()
        .or_else(|| cluster.map(|c| c.region.clone()))
        .or_else(|| issuer.as_deref().and_then(checks::issuer_region));
    let aws = Connection {
        region: region.clone().unwrap_or_else(|| "us-east-1".into()),
        endpoint_url: args.endpoint_url.clone(),
        profile: args.profile.clone(),
    };
    let iam = Iam::connect(&aws).await;
    let sts = match args.assume {
        true => Some(aws_sdk_sts::Client::new(&sdk_config(&aws).await)),
        false => None,
    };
    let mut sts_calls = 0;

    // Which ServiceAccounts, in which namespaces.
    let bindings: Vec<(String, String, Option<Bound>)> = match (desired, &args.namespace) {
        (Some(d), _) => d
            .bindings
            .iter()
            .filter(|b| b.cluster == key)
            .map(|b| {
                let role_managed = match &d.roles[&b.role] {
                    Role::Owned(_) => true,
                    Role::Referenced(r) => r.manage_trust,
                };
                let bound = Bound { role_arn: d.binding_role_arn(b), role_managed, deployments: b.deployments.clone() };
                (b.namespace.clone(), b.name.clone(), Some(bound))
            })
            .collect(),
        (None, _) => Vec::new(),
    };
    let namespaces: BTreeSet<String> = match &args.namespace {
        Some(ns) => BTreeSet::from([ns.clone()]),
        None => bindings.iter().map(|(ns, _, _)| ns.clone()).collect(),
    };

    let iam_read = read::iam(&iam, issuer.as_deref());
    let kube_read = async {
        let mut read = BTreeMap::new();
        for ns in &namespaces {
            let names: Option<Vec<String>> = args
                .namespace
                .is_none()
                .then(|| bindings.iter().filter(|(n, _, _)| n == ns).map(|(_, name, _)| name.clone()).collect());
            read.insert(ns.clone(), read::namespace(&kube, ns, names.as_deref()).await?);
        }
        Ok::<_, crate::cluster::KubeError>((read, read::webhook(&kube).await))
    };
    let (iam_facts, kube_facts) = tokio::join!(iam_read, kube_read);
    let (mut by_namespace, webhook) = kube_facts.map_err(kube_error)?;

    let wanted: Vec<(String, String, Option<Bound>)> = match &args.namespace {
        Some(ns) => {
            let sas = &by_namespace[ns].service_accounts;
            match &args.service_account {
                Some(name) => vec![(ns.clone(), name.clone(), None)],
                None => sas
                    .iter()
                    .filter(|(_, sa)| read::annotated(sa))
                    .map(|(n, _)| (ns.clone(), n.clone(), None))
                    .collect(),
            }
        }
        None => bindings,
    };
    let mut subjects = Vec::new();
    for (ns, name, bound) in wanted {
        let service_account = by_namespace.get(&ns).and_then(|n| n.service_accounts.get(&name)).cloned();
        let mut assumed = None;
        let token = match &service_account {
            Some(sa) if read::annotated(sa) => {
                let (claims, token) = read::token(&kube, &ns, &name, sa).await;
                let role_arn = sa.annotations.get(ANNOTATION_ROLE_ARN);
                if let (Some(sts), Some(token), Some(role_arn)) = (&sts, &token, role_arn) {
                    sts_calls += 1;
                    assumed = Some(read::assume(sts, role_arn, token).await);
                }
                Some(claims)
            }
            _ => None,
        };
        subjects.push(Subject { namespace: ns, name, service_account, bound, token, assumed });
    }

    let mut deployments = BTreeMap::new();
    let mut service_accounts = BTreeMap::new();
    for (ns, n) in std::mem::take(&mut by_namespace) {
        service_accounts.insert(ns.clone(), n.service_accounts.keys().cloned().collect());
        deployments.insert(ns, n.deployments);
    }
    let cluster = facts::Cluster { issuer: issuer.clone(), webhook, deployments, service_accounts };
    let context = Context {
        stack: desired.map(|d| StackContext {
            file: args.file.as_ref().map(|f| f.display().to_string()).unwrap_or_default(),
            account_id: d.account_id().to_owned(),
        }),
        region,
    };
    let reports = subjects.iter().map(|s| checks::check(&context, &iam_facts, &cluster, s)).collect();
    let reads = Reads { iam_calls: iam.calls.total(), kube_requests: kube.requests(), sts_calls };
    tracing::info!("doctor read IAM with {} calls: {}", reads.iam_calls, iam.calls.breakdown());
    if let (Read::Got(names), Some(issuer)) = (&cluster.webhook, &issuer) {
        tracing::debug!("webhooks {names:?}, issuer {}", host_path(issuer));
    }
    Ok(Report::new(desired.map(|d| d.stack.name.clone()), issuer, issuer_source, reads, reports))
}
