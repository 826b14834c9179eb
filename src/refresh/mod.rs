//! Reading the observed state. For now from a snapshot file; the live AWS
//! and Kubernetes providers fill the same [`crate::model::observed::Observed`].

pub mod aws;
pub mod kube;
pub mod snapshot;
