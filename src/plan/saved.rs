//! Saved plans (`irsa plan --out PLAN`): the JSON plan wrapped with what it
//! was made from, so it can travel as a CI artifact and be shown or applied
//! elsewhere.

use serde::{Deserialize, Serialize};

use super::Plan;

/// Marks the file as an irsa plan, whatever its name.
pub const KIND: &str = "irsa-saved-plan";
/// The saved-plan envelope's version; readers refuse newer ones.
pub const SAVED_FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedPlan {
    pub kind: String,
    pub saved_format_version: u32,
    /// The stack file, as named on the command line.
    pub stack_file: String,
    /// SHA-256 of the stack file's bytes, hex.
    pub stack_sha256: String,
    /// SHA-256 of the desired model: the stack file *and* its policy
    /// documents, by meaning. `apply PLAN` refuses a plan whose inputs changed.
    pub desired_sha256: String,
    /// How the plan was made, so that applying it re-reads the same way.
    pub adopt: bool,
    pub destroy: bool,
    /// `--rename-from`, when the plan moves the stack from an old name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rename_from: Option<String>,
    pub plan: Plan,
}

impl SavedPlan {
    pub fn new(
        plan: Plan,
        stack_file: &str,
        desired: &crate::model::desired::Desired,
        adopt: bool,
        destroy: bool,
    ) -> SavedPlan {
        SavedPlan {
            kind: KIND.into(),
            saved_format_version: SAVED_FORMAT_VERSION,
            stack_file: stack_file.into(),
            stack_sha256: crate::model::sha256_hex(desired.source.text.as_bytes()),
            desired_sha256: desired.fingerprint(),
            adopt,
            destroy,
            rename_from: desired.stack.renamed_from.clone(),
            plan,
        }
    }

    /// The plan's identity in the journal.
    pub fn id(&self) -> String {
        self.plan.id()
    }

    /// Read a saved plan, refusing anything that is not one or is newer.
    pub fn from_json(text: &str) -> Result<SavedPlan, String> {
        #[derive(Deserialize)]
        struct Head {
            kind: Option<String>,
            saved_format_version: Option<u32>,
        }
        let head: Head = serde_json::from_str(text).map_err(|e| format!("not JSON ({e})"))?;
        if head.kind.as_deref() != Some(KIND) {
            return Err(format!("its `kind` is not \"{KIND}\"; write one with `irsa plan FILE --out PLAN`"));
        }
        match head.saved_format_version {
            Some(v) if v > SAVED_FORMAT_VERSION => {
                return Err(format!(
                    "it has format version {v}, newer than this irsa reads ({SAVED_FORMAT_VERSION}); upgrade irsa"
                ));
            }
            None => return Err("it has no saved_format_version".into()),
            _ => {}
        }
        let saved: SavedPlan = serde_json::from_str(text).map_err(|e| format!("it is damaged ({e})"))?;
        if saved.plan.format_version != super::FORMAT_VERSION {
            return Err(format!(
                "its plan has format version {}, which this irsa does not read ({}); upgrade irsa or plan again",
                saved.plan.format_version,
                super::FORMAT_VERSION
            ));
        }
        Ok(saved)
    }
}
