//! The apply lock: a `coordination.k8s.io/v1` Lease in the cluster.
//!
//! It lives in the cluster rather than on disk so that two CI runners on two
//! machines cannot both apply one stack. The holder renews it while it runs
//! and deletes it at the end; a crashed holder's lease expires after its
//! duration, and the next apply takes it over. Every write is a
//! compare-and-swap on the Lease's resourceVersion.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, DeleteParams, PostParams, Preconditions};

use crate::cluster::{Kube, lost_on_the_way, read_again};

/// How long a lease lasts without renewal.
pub const LEASE_SECONDS: i32 = 30;

#[derive(Debug, Clone)]
pub struct LockOptions {
    pub namespace: String,
    /// How long to wait for another holder to finish; zero fails at once.
    pub timeout: Duration,
    /// How long the lease lasts without renewal: how long a crashed
    /// holder blocks the next apply.
    pub lease_seconds: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "stack {stack} is locked by {holder} (lease {namespace}/{name}{}, held since {since}); another apply is running",
        .cluster.as_ref().map(|c| format!(" in cluster {c}")).unwrap_or_default()
    )]
    Held {
        stack: String,
        holder: String,
        namespace: String,
        name: String,
        since: String,
        /// The cluster's key, in a stack of several.
        cluster: Option<String>,
    },
    #[error("{what} lease {namespace}/{name} failed: {source}")]
    Request {
        what: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// The Lease name of a stack: a DNS subdomain derived from its name.
pub fn lease_name(stack: &str) -> String {
    let name: String =
        stack.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    format!("irsa-{}", name.trim_matches('-'))
}

/// Who holds the lock, as shown to the one who waits: host and process.
pub fn holder_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into());
    format!("irsa@{host}/pid-{}/{}", std::process::id(), Timestamp::now().as_nanosecond() % 1_000_000)
}

/// A held lock; release it with [`LeaseLock::release`].
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    namespace: String,
    holder: String,
    lost: Arc<AtomicBool>,
    renewal: tokio::task::JoinHandle<()>,
}

fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let holder = spec.holder_identity.as_deref().unwrap_or_default();
    let Some(renewed) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else { return true };
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS));
    holder.is_empty() || renewed.0.as_second() + duration < now.as_second()
}

fn spec_for(holder: &str, transitions: i32, seconds: i32) -> LeaseSpec {
    let now = MicroTime(Timestamp::now());
    LeaseSpec {
        holder_identity: Some(holder.to_owned()),
        lease_duration_seconds: Some(seconds),
        acquire_time: Some(now.clone()),
        renew_time: Some(now),
        lease_transitions: Some(transitions),
        ..Default::default()
    }
}

/// Whether a write of the lease took it: `false` means read it again and
/// retry (someone else wrote first). A write whose answer was lost may have
/// landed, so the lease is read back before it counts as lost.
async fn took(
    api: &Api<Lease>,
    name: &str,
    holder: &str,
    written: Result<Lease, kube::Error>,
) -> Result<bool, kube::Error> {
    match written {
        Ok(_) => Ok(true),
        Err(e) if conflict(&e) => Ok(false),
        Err(e) if lost_on_the_way(&e) => Ok(holds(api, name, holder).await),
        Err(e) => Err(e),
    }
}

/// Whether the lease is held by `holder` now (a read that fails counts as no).
async fn holds(api: &Api<Lease>, name: &str, holder: &str) -> bool {
    matches!(
        read_again(|| api.get_opt(name)).await,
        Ok(Some(l)) if l.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some(holder)
    )
}

fn conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(a) if a.code == 409)
}

/// Take the stack's lock in one cluster (`cluster`: its key in a stack of
/// several), waiting up to `options.timeout` for a holder.
pub async fn acquire(
    kube: &Kube,
    cluster: Option<&str>,
    stack: &str,
    options: &LockOptions,
) -> Result<LeaseLock, LockError> {
    let api: Api<Lease> = Api::namespaced(kube.client.clone(), &options.namespace);
    let name = lease_name(stack);
    let holder = holder_identity();
    let fail = |what: &'static str| {
        let (namespace, name) = (options.namespace.clone(), name.clone());
        move |source| LockError::Request { what, namespace, name, source }
    };
    let deadline = tokio::time::Instant::now() + options.timeout;
    loop {
        match read_again(|| api.get_opt(&name)).await.map_err(fail("reading"))? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta { name: Some(name.clone()), ..Default::default() },
                    spec: Some(spec_for(&holder, 0, options.lease_seconds)),
                };
                if took(&api, &name, &holder, api.create(&PostParams::default(), &lease).await)
                    .await
                    .map_err(fail("creating"))?
                {
                    break;
                }
            }
            Some(mut lease) => {
                let spec = lease.spec.clone().unwrap_or_default();
                if expired(&spec, Timestamp::now()) {
                    // Take over: a crashed holder's lease has run out.
                    lease.spec =
                        Some(spec_for(&holder, spec.lease_transitions.unwrap_or(0) + 1, options.lease_seconds));
                    let written = api.replace(&name, &PostParams::default(), &lease).await;
                    if took(&api, &name, &holder, written).await.map_err(fail("taking over"))? {
                        break;
                    }
                    continue;
                }
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    return Err(LockError::Held {
                        stack: stack.to_owned(),
                        holder: spec.holder_identity.unwrap_or_default(),
                        namespace: options.namespace.clone(),
                        name,
                        since: spec.acquire_time.map(|t| t.0.to_string()).unwrap_or_else(|| "an unknown time".into()),
                        cluster: cluster.map(str::to_owned),
                    });
                }
                tracing::info!("waiting for the lock held by {}", spec.holder_identity.unwrap_or_default());
                tokio::time::sleep((deadline - now).min(Duration::from_secs(2))).await;
            }
        }
    }
    let lost = Arc::new(AtomicBool::new(false));
    let period = Duration::from_secs(u64::try_from(options.lease_seconds / 3).unwrap_or(10).max(1));
    let renewal = tokio::spawn(renew(api.clone(), name.clone(), holder.clone(), lost.clone(), period));
    Ok(LeaseLock { api, name, namespace: options.namespace.clone(), holder, lost, renewal })
}

/// Renew the lease every third of its duration; flag it lost if someone
/// else holds it (it expired while this process stalled).
async fn renew(api: Api<Lease>, name: String, holder: String, lost: Arc<AtomicBool>, period: Duration) {
    loop {
        tokio::time::sleep(period).await;
        let Ok(Some(mut lease)) = api.get_opt(&name).await else { continue };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(holder.as_str()) {
            lost.store(true, Ordering::Relaxed);
            return;
        }
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        // A conflict means a concurrent write; the next tick reads again.
        let _ = api.replace(&name, &PostParams::default(), &lease).await;
    }
}

impl LeaseLock {
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Whether the lease was lost to someone else during the run.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    /// Stop renewing and delete the lease, if it is still ours.
    pub async fn release(self) -> Result<(), LockError> {
        self.renewal.abort();
        let fail = |source| LockError::Request {
            what: "releasing",
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            source,
        };
        // A lease left behind blocks every apply until it expires, so a
        // delete whose answer was lost is checked and tried again.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let Some(lease) = read_again(|| self.api.get_opt(&self.name)).await.map_err(fail)? else { return Ok(()) };
            if lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) != Some(self.holder.as_str()) {
                return Ok(());
            }
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    resource_version: lease.metadata.resource_version.clone(),
                    uid: None,
                }),
                ..Default::default()
            };
            match self.api.delete(&self.name, &params).await {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => return Ok(()),
                Err(e) if lost_on_the_way(&e) && attempts < 4 => continue,
                Err(e) => return Err(fail(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_names_are_dns_names() {
        assert_eq!(lease_name("ekshandson"), "irsa-ekshandson");
        assert_eq!(lease_name("My_Cluster"), "irsa-my-cluster");
    }

    #[test]
    fn a_lease_expires_after_its_duration_without_renewal() {
        let now: Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let spec = |renewed: &str| LeaseSpec {
            holder_identity: Some("a".into()),
            lease_duration_seconds: Some(30),
            renew_time: Some(MicroTime(renewed.parse().unwrap())),
            ..Default::default()
        };
        assert!(!expired(&spec("2026-01-01T00:00:45Z"), now));
        assert!(expired(&spec("2026-01-01T00:00:20Z"), now));
        assert!(expired(&LeaseSpec::default(), now), "no holder: free");
    }
}
