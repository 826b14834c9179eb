use std::path::{Path, PathBuf};

use super::live::{self, AwsArgs, KubeArgs};
use super::{CliError, Ctx, exit};
use crate::cluster::{Kube, KubeConnection};
use crate::import::{self, Found};
use crate::model::desired::markers;
use crate::refresh::aws::{Connection, Iam};

/// Write a stack file for the IRSA setup that exists in a namespace.
///
/// Reads, live and read-only, the namespace's ServiceAccounts that carry
/// eks.amazonaws.com/role-arn (all, or those named), their roles, the
/// customer-managed policies attached to them and the Deployments that run
/// as them, and writes DIR/stack.toml and DIR/policies/*.json such that
/// `irsa plan DIR/stack.toml` only adopts what exists. Nothing is written
/// to AWS or the cluster. See docs/import.md.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The namespace to import.
    #[arg(long, value_name = "NS")]
    namespace: String,

    /// Import only this ServiceAccount (repeatable); otherwise every one of
    /// the namespace that carries the role annotation.
    #[arg(long, value_name = "NAME")]
    service_account: Vec<String>,

    /// The EKS cluster's name for `[cluster] name`; otherwise taken from
    /// the kubeconfig's cluster entry (as `aws eks update-kubeconfig` or
    /// eksctl name it).
    #[arg(long, value_name = "NAME")]
    cluster_name: Option<String>,

    /// The stack's name for `[stack] name`; otherwise the namespace's.
    #[arg(long, value_name = "NAME")]
    stack_name: Option<String>,

    /// The directory to write stack.toml and policies/ into.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,

    /// Overwrite a stack.toml that is already there.
    #[arg(long)]
    force: bool,

    #[command(flatten)]
    aws: AwsArgs,

    #[command(flatten)]
    kube: KubeArgs,
}

fn usage(message: impl Into<String>, help: impl Into<String>) -> CliError {
    CliError::Usage { message: message.into(), help: help.into() }
}

/// The kubeconfig's cluster entry for the context irsa connects through.
fn kubeconfig_cluster(kube: &KubeArgs) -> Option<String> {
    let config = match &kube.kubeconfig {
        Some(path) => kube::config::Kubeconfig::read_from(path).ok()?,
        None => kube::config::Kubeconfig::read().ok()?,
    };
    let context = kube.context.clone().or_else(|| config.current_context.clone())?;
    let entry = config.contexts.iter().find(|c| c.name == context)?;
    entry.context.as_ref().map(|c| c.cluster.clone())
}

pub fn run(ctx: &Ctx, args: ImportArgs) -> Result<u8, CliError> {
    let names = crate::model::names::dns_label("namespace", &args.namespace).err();
    if let Some(e) = names {
        return Err(usage(format!("--namespace {}: {}", args.namespace, e.message), e.help));
    }
    let stack = args.stack_name.clone().unwrap_or_else(|| args.namespace.clone());
    if let Err(e) = crate::model::names::stack_name(&stack) {
        return Err(usage(format!("the stack name `{stack}`: {}", e.message), "name it with --stack-name".to_owned()));
    }
    let stack_file = args.out.join("stack.toml");
    let not_empty = std::fs::metadata(&stack_file).is_ok_and(|m| m.len() > 0);
    if not_empty && !args.force {
        return Err(usage(
            format!("{} exists and is not empty", stack_file.display()),
            "choose another --out directory, or pass --force to overwrite it",
        ));
    }
    let (kube_cluster, kube_region) =
        kubeconfig_cluster(&args.kube).map(|n| import::cluster_of_kubeconfig_name(&n)).unzip();
    let cluster_name = match args.cluster_name.clone().or(kube_cluster) {
        Some(n) => n,
        None => return Err(usage("cannot tell the cluster's name", "name it with --cluster-name")),
    };
    if let Err(e) = crate::model::names::cluster_name(&cluster_name) {
        return Err(usage(format!("the cluster name `{cluster_name}`: {}", e.message), "name it with --cluster-name"));
    }

    let rt = live::runtime()?;
    let read = rt.block_on(async {
        let conn = KubeConnection { kubeconfig: args.kube.kubeconfig.clone(), context: args.kube.context.clone() };
        let kube = Kube::connect(&conn).await.map_err(|e| CliError::Kube(None, e))?;
        let (issuer, listed) = tokio::join!(kube.issuer(), kube.read_namespace(&args.namespace));
        let (issuer, (service_accounts, deployments)) =
            (issuer.map_err(|e| CliError::Kube(None, e))?, listed.map_err(|e| CliError::Kube(None, e))?);
        Ok::<_, CliError>((kube, issuer, service_accounts, deployments))
    })?;
    let (kube, discovered, all_service_accounts, deployments) = read;
    let mut service_accounts: Vec<_> = all_service_accounts
        .into_iter()
        .filter(|sa| sa.annotations.contains_key(markers::ANNOTATION_ROLE_ARN))
        .filter(|sa| args.service_account.is_empty() || args.service_account.contains(&sa.name))
        .collect();
    service_accounts.sort_by(|a, b| a.name.cmp(&b.name));
    for wanted in &args.service_account {
        if !service_accounts.iter().any(|sa| &sa.name == wanted) {
            return Err(usage(
                format!(
                    "service account {}/{wanted} does not exist or carries no {} annotation",
                    args.namespace,
                    markers::ANNOTATION_ROLE_ARN
                ),
                "import only service accounts annotated with the role they use",
            ));
        }
    }
    if service_accounts.is_empty() {
        return Err(usage(
            format!(
                "namespace {} has no service account annotated with {}",
                args.namespace,
                markers::ANNOTATION_ROLE_ARN
            ),
            "check the namespace (and --context); irsa import takes what the manual walkthrough made",
        ));
    }
    let mut role_names: Vec<String> = service_accounts
        .iter()
        .filter_map(|sa| sa.annotations.get(markers::ANNOTATION_ROLE_ARN))
        .filter_map(|arn| arn.rsplit('/').next().map(str::to_owned))
        .collect();
    role_names.sort();
    role_names.dedup();

    let region = args
        .aws
        .region
        .clone()
        .or(kube_region.flatten())
        .or_else(|| discovered.as_deref().and_then(import::region_of_issuer).map(str::to_owned))
        .or_else(|| std::env::var("AWS_REGION").ok().filter(|r| !r.is_empty()))
        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok().filter(|r| !r.is_empty()));
    let Some(region) = region else {
        return Err(usage("cannot tell the cluster's region", "give it with --region"));
    };
    let conn = Connection {
        region: region.clone(),
        endpoint_url: args.aws.endpoint_url.clone(),
        profile: args.aws.profile.clone(),
    };
    let host = discovered.as_deref().map(|i| crate::model::desired::Desired::issuer_host_path(i).to_owned());
    let iam = rt.block_on(Iam::connect(&conn));
    let found = rt.block_on(iam.read_for_import(&role_names, host.as_deref())).map_err(CliError::Aws)?;
    tracing::info!("read IAM with {} calls: {}", iam.calls.total(), iam.calls.breakdown());
    tracing::info!("read the cluster with {} requests", kube.requests());

    let Some(issuer) = discovered.or_else(|| import::issuer_from_trust(&found.roles)) else {
        return Err(usage(
            "the cluster serves no OIDC discovery document and the roles' trust policies name no one provider",
            "check --context; irsa reads the issuer from /.well-known/openid-configuration",
        ));
    };
    let issuer = issuer.trim_end_matches('/').to_owned();
    // The account is the roles': that of most of them, the first in order on a tie.
    let mut accounts: std::collections::BTreeMap<&str, usize> = Default::default();
    for r in &found.roles {
        *accounts.entry(r.arn.split(':').nth(4).unwrap_or_default()).or_default() += 1;
    }
    let Some(account_id) = accounts.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))).map(|(a, _)| (*a).to_owned())
    else {
        return Err(usage(
            format!("none of the roles the service accounts name exists: {}", role_names.join(", ")),
            "check that AWS credentials reach the account the roles are in (AWS_PROFILE, --profile)",
        ));
    };
    let generated = import::generate(&Found {
        namespace: &args.namespace,
        cluster_name: &cluster_name,
        region: &region,
        account_id: &account_id,
        issuer: &issuer,
        context: args.kube.context.as_deref(),
        stack: &stack,
        service_accounts: &service_accounts,
        deployments: &deployments,
        roles: &found.roles,
        policies: &found.policies,
        attachment_counts: &found.attachment_counts,
        role_users: &found.role_users,
        provider_exists: !found.oidc_providers.is_empty() || host.is_none(),
    });
    write(&args.out, &stack_file, &generated)?;
    // What was written must load: a file `irsa validate` rejects is a bug here.
    crate::config::load(&stack_file)?;
    for note in &generated.notes {
        ctx.say(&format!("note: {note}"));
    }
    ctx.say(&format!(
        "Wrote {}: {} owned role{}, {} referenced role{}, {} polic{}, {} service account{} (read with {} IAM calls, {} Kubernetes requests). Next: irsa plan {}",
        stack_file.display(),
        generated.owned_roles,
        if generated.owned_roles == 1 { "" } else { "s" },
        generated.referenced_roles,
        if generated.referenced_roles == 1 { "" } else { "s" },
        generated.policies,
        if generated.policies == 1 { "y" } else { "ies" },
        generated.bindings,
        if generated.bindings == 1 { "" } else { "s" },
        iam.calls.total(),
        kube.requests(),
        stack_file.display(),
    ));
    Ok(exit::SUCCESS)
}

fn write(dir: &Path, stack_file: &Path, generated: &import::Imported) -> Result<(), CliError> {
    let err = |path: &Path| {
        let path = path.display().to_string();
        move |source| CliError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(err(dir))?;
    for (rel, text) in &generated.files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(err(parent))?;
        }
        std::fs::write(&path, text).map_err(err(&path))?;
    }
    std::fs::write(stack_file, &generated.stack_toml).map_err(err(stack_file))
}
