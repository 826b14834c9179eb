//! The connection to the cluster, for refresh, apply and the lock alike:
//! the kube client (counting its requests), where it comes from, how its
//! failures are named, and the field manager irsa writes as.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use kube::config::{KubeConfigOptions, Kubeconfig};

/// The field manager irsa writes as, visible in `managedFields`; refresh
/// reads it back to tell the annotations irsa wrote from others'.
pub const FIELD_MANAGER: &str = "irsa";

/// Where the cluster is.
#[derive(Debug, Clone, Default)]
pub struct KubeConnection {
    /// `--kubeconfig`; otherwise `KUBECONFIG`, `~/.kube/config`, or the
    /// in-cluster service account when irsa runs as a pod.
    pub kubeconfig: Option<PathBuf>,
    /// `--context`, else the stack's `[cluster] context`, else the current one.
    pub context: Option<String>,
}

/// A failed Kubernetes request, named by what irsa was doing.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("cannot load the Kubernetes configuration{}", .context.as_ref().map(|c| format!(" (context {c})")).unwrap_or_default())]
    Config {
        context: Option<String>,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{what}")]
    Request {
        what: String,
        #[source]
        source: kube::Error,
    },
}

pub(crate) fn request(what: impl Into<String>) -> impl FnOnce(kube::Error) -> KubeError {
    let what = what.into();
    move |source| KubeError::Request { what, source }
}

/// A kube client that counts its requests.
#[derive(Clone)]
pub struct Kube {
    pub client: kube::Client,
    pub requests: Arc<AtomicU64>,
}

impl Kube {
    pub async fn connect(conn: &KubeConnection) -> Result<Kube, KubeError> {
        let config_error = |source: Box<dyn std::error::Error + Send + Sync>| KubeError::Config {
            context: conn.context.clone(),
            source,
        };
        let options = KubeConfigOptions { context: conn.context.clone(), ..Default::default() };
        let config = match (&conn.kubeconfig, &conn.context) {
            (Some(path), _) => {
                let kubeconfig = Kubeconfig::read_from(path).map_err(|e| config_error(Box::new(e)))?;
                kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|e| config_error(Box::new(e)))?
            }
            (None, Some(_)) => match kube::Config::from_kubeconfig(&options).await {
                Ok(config) => config,
                // Run as a pod there is no kubeconfig, whatever context the
                // stack names: the pod's own service account is the way in.
                Err(_) if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() => {
                    kube::Config::incluster().map_err(|e| config_error(Box::new(e)))?
                }
                Err(e) => return Err(config_error(Box::new(e))),
            },
            (None, None) => kube::Config::infer().await.map_err(|e| config_error(Box::new(e)))?,
        };
        let requests = Arc::new(AtomicU64::new(0));
        let counter = requests.clone();
        let client = kube::client::ClientBuilder::try_from(config)
            .map_err(|e| config_error(Box::new(e)))?
            .with_layer(&tower::util::MapRequestLayer::new(move |req| {
                counter.fetch_add(1, Ordering::Relaxed);
                req
            }))
            .build();
        Ok(Kube { client, requests })
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The issuer the cluster's service-account tokens carry, from its
    /// OIDC discovery document; `None` when the cluster does not serve one.
    pub async fn issuer(&self) -> Result<Option<String>, KubeError> {
        let req = http::Request::get("/.well-known/openid-configuration")
            .body(Vec::new())
            .expect("a static request is valid");
        match self.client.request::<serde_json::Value>(req).await {
            Ok(doc) => Ok(doc.get("issuer").and_then(|i| i.as_str()).map(|i| i.trim_end_matches('/').to_owned())),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 403 => Ok(None),
            Err(e) => Err(request("reading the cluster's OIDC discovery document")(e)),
        }
    }
}

/// Whether a request failed on the way (a dropped connection) rather than
/// being answered: kube retries 429 and 5xx answers itself, but not these.
pub fn lost_on_the_way(e: &kube::Error) -> bool {
    !matches!(e, kube::Error::Api(_) | kube::Error::SerdeError(_) | kube::Error::Discovery(_))
}

/// Run a read again after a connection dropped: reads are safe to repeat.
pub async fn read_again<T, F, Fut>(mut read: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut delay = std::time::Duration::from_millis(100);
    for _ in 0..4 {
        match read().await {
            Err(e) if lost_on_the_way(&e) => {
                tracing::info!("a Kubernetes read failed on the way ({e}); reading again in {delay:?}");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            other => return other,
        }
    }
    read().await
}
