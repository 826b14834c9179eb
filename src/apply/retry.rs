//! Waiting out IAM's eventual consistency.
//!
//! IAM is eventually consistent: right after a role or OIDC provider is
//! created, a trust policy naming it can be rejected as an "Invalid
//! principal", an attachment can find no such entity, and concurrent writes
//! to one role collide. Mature tools (Terraform's AWS provider, eksctl) retry
//! exactly these errors with bounded backoff; everything else fails at once.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::refresh::aws::CallError;

/// Which transient errors a call may retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transient {
    /// Only `ConcurrentModification`.
    Concurrency,
    /// Also "Invalid principal" and `NoSuchEntity`: the call names something
    /// created moments ago in this run.
    FreshEntity,
    /// Also `DeleteConflict`: a detach or delete racing an earlier detach.
    Deleting,
}

/// How long to keep retrying, in total.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    pub total: Duration,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for Patience {
    /// IAM usually settles within seconds; two minutes covers the slow tail
    /// that Terraform's provider also waits for.
    fn default() -> Self {
        Patience {
            total: Duration::from_secs(120),
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
        }
    }
}

fn retryable(e: &CallError, kind: Transient) -> bool {
    if e.is("ConcurrentModification") || e.is("ConcurrentModificationException") {
        return true;
    }
    let fresh = e.is("NoSuchEntity")
        || (e.is("MalformedPolicyDocument") && e.message.to_ascii_lowercase().contains("invalid principal"));
    match kind {
        Transient::Concurrency => false,
        Transient::FreshEntity => fresh,
        Transient::Deleting => e.is("DeleteConflict"),
    }
}

/// Run `f` until it succeeds, fails with a non-transient error, or patience runs out.
pub async fn retrying<T, F, Fut>(patience: Patience, kind: Transient, mut f: F) -> Result<T, CallError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CallError>>,
{
    let start = Instant::now();
    let mut delay = patience.first_delay;
    loop {
        match f().await {
            Err(e) if retryable(&e, kind) && start.elapsed() + delay <= patience.total => {
                tracing::info!("{e}; retrying in {delay:?} (IAM is eventually consistent)");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(patience.max_delay);
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn err(code: &str, message: &str) -> CallError {
        CallError { operation: "Op", code: Some(code.into()), message: message.into() }
    }

    fn quick() -> Patience {
        Patience {
            total: Duration::from_millis(200),
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        }
    }

    #[tokio::test]
    async fn transient_errors_are_retried_until_success() {
        let tries = AtomicU32::new(0);
        let r = retrying(quick(), Transient::FreshEntity, || async {
            if tries.fetch_add(1, Ordering::Relaxed) < 2 {
                Err(err("MalformedPolicyDocument", "Invalid principal in policy: \"Federated\":\"arn\""))
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(tries.load(Ordering::Relaxed), 3);
    }

    #[tokio::test]
    async fn other_errors_fail_at_once() {
        let tries = AtomicU32::new(0);
        let r: Result<(), _> = retrying(quick(), Transient::FreshEntity, || async {
            tries.fetch_add(1, Ordering::Relaxed);
            Err(err("MalformedPolicyDocument", "Syntax errors in policy"))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(tries.load(Ordering::Relaxed), 1);
        // NoSuchEntity is final unless the call names a fresh entity.
        let r: Result<(), _> =
            retrying(quick(), Transient::Concurrency, || async { Err(err("NoSuchEntity", "x")) }).await;
        assert!(r.is_err());
    }

    #[tokio::test]
    async fn patience_runs_out() {
        let tries = AtomicU32::new(0);
        let r: Result<(), _> = retrying(quick(), Transient::Deleting, || async {
            tries.fetch_add(1, Ordering::Relaxed);
            Err(err("DeleteConflict", "still attached"))
        })
        .await;
        assert!(r.unwrap_err().is("DeleteConflict"));
        assert!(tries.load(Ordering::Relaxed) > 2);
    }
}
