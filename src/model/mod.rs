//! The data irsa reasons about: addresses, the desired and observed models,
//! canonical policy documents and the IAM quota table. No I/O lives here.

pub mod address;
pub mod desired;
pub mod json_pretty;
pub mod json_span;
pub mod names;
pub mod observed;
pub mod policy_doc;
pub mod presets;
pub mod quotas;
pub mod strmap;
pub mod trust;

pub use address::Address;

use sha2::{Digest, Sha256};

/// Lower-case hex SHA-256: the fingerprints of desired models, plans and
/// stack files.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
