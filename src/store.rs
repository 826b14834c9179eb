//! The local store: a sled database, `.irsa/` beside the stack file by
//! default (`--store DIR`).
//!
//! It holds the last observed snapshot of each stack (with a lineage id and
//! a serial), saved plans, and the apply journal. Losing it loses nothing:
//! the truth and the ownership markers live in AWS and the cluster, and a
//! fresh store plans correctly. What it adds is memory across runs: which
//! steps of a saved plan a killed run already carried out.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::model::observed::Observed;

/// The store's own format; a newer one is refused, never misread.
pub const STORE_FORMAT_VERSION: u32 = 1;
const VERSION_KEY: &[u8] = b"format_version";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the local store {path}")]
    Open {
        path: String,
        #[source]
        source: sled::Error,
    },
    #[error(
        "the local store {path} has format version {found}, newer than this irsa reads ({STORE_FORMAT_VERSION}); upgrade irsa, or delete the directory (it holds no truth: AWS and the cluster do)"
    )]
    Newer { path: String, found: u32 },
    #[error(
        "the local store {path} is damaged ({what}); delete the directory and run again (it holds no truth: AWS and the cluster do)"
    )]
    Damaged { path: String, what: String },
    #[error("writing the local store {path} failed")]
    Write {
        path: String,
        #[source]
        source: sled::Error,
    },
}

/// A step's state in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Recorded before the step runs: it may or may not have happened.
    Started,
    /// Recorded after the step succeeded.
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub state: StepState,
    pub at: Timestamp,
}

/// The last snapshot of a stack, with where it stands in its history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredSnapshot {
    /// Stays the same for the life of the store; tells two stores apart.
    pub lineage: String,
    /// Counts the snapshots stored for this stack.
    pub serial: u64,
    pub observed: Observed,
}

pub struct Store {
    db: sled::Db,
    path: PathBuf,
}

/// The default store directory of a stack file.
pub fn default_dir(stack_file: &Path) -> PathBuf {
    stack_file.parent().unwrap_or(Path::new(".")).join(".irsa")
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let path = dir.display().to_string();
        let db = open_waiting(dir).map_err(|source| StoreError::Open { path: path.clone(), source })?;
        let store = Store { db, path: dir.to_owned() };
        match store.db.get(VERSION_KEY).map_err(|e| store.damaged(e.to_string()))? {
            None => {
                store
                    .db
                    .insert(VERSION_KEY, &STORE_FORMAT_VERSION.to_be_bytes())
                    .map_err(|source| store.write(source))?;
            }
            Some(v) => {
                let bytes: [u8; 4] =
                    v.as_ref().try_into().map_err(|_| store.damaged("unreadable format version".into()))?;
                let found = u32::from_be_bytes(bytes);
                if found > STORE_FORMAT_VERSION {
                    return Err(StoreError::Newer { path: store.path.display().to_string(), found });
                }
            }
        }
        Ok(store)
    }

    fn damaged(&self, what: String) -> StoreError {
        StoreError::Damaged { path: self.path.display().to_string(), what }
    }

    fn write(&self, source: sled::Error) -> StoreError {
        StoreError::Write { path: self.path.display().to_string(), source }
    }

    fn tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        self.db.open_tree(name).map_err(|e| self.damaged(e.to_string()))
    }

    fn get_json<T: for<'de> Deserialize<'de>>(&self, tree: &str, key: &str) -> Result<Option<T>, StoreError> {
        match self.tree(tree)?.get(key).map_err(|e| self.damaged(e.to_string()))? {
            None => Ok(None),
            Some(bytes) => {
                serde_json::from_slice(&bytes).map(Some).map_err(|e| self.damaged(format!("{tree}/{key}: {e}")))
            }
        }
    }

    fn put_json<T: Serialize>(&self, tree: &str, key: &str, value: &T) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(value).expect("store records serialise to JSON");
        self.tree(tree)?.insert(key, bytes).map_err(|source| self.write(source))?;
        // The journal is only worth having if it reaches the disk before the
        // step it records runs.
        self.db.flush().map_err(|source| self.write(source))?;
        Ok(())
    }

    /// Store a stack's latest snapshot, continuing its lineage and serial.
    pub fn put_snapshot(&self, stack: &str, observed: &Observed) -> Result<StoredSnapshot, StoreError> {
        let previous: Option<StoredSnapshot> = self.get_json("snapshots", stack)?;
        let (lineage, serial) = match previous {
            Some(p) => (p.lineage, p.serial + 1),
            None => (new_lineage(), 1),
        };
        let stored = StoredSnapshot { lineage, serial, observed: observed.clone() };
        self.put_json("snapshots", stack, &stored)?;
        Ok(stored)
    }

    pub fn snapshot(&self, stack: &str) -> Result<Option<StoredSnapshot>, StoreError> {
        self.get_json("snapshots", stack)
    }

    /// Keep a saved plan under its id.
    pub fn put_plan(&self, id: &str, json: &str) -> Result<(), StoreError> {
        self.tree("plans")?.insert(id, json.as_bytes()).map_err(|source| self.write(source))?;
        self.db.flush().map_err(|source| self.write(source))?;
        Ok(())
    }

    /// Record a step of a plan's run, durably, before returning.
    pub fn journal(&self, plan_id: &str, step: &str, state: StepState) -> Result<(), StoreError> {
        self.put_json("journal", &format!("{plan_id}\u{0}{step}"), &JournalEntry { state, at: Timestamp::now() })
    }

    /// What the journal says of a plan's steps, by step key.
    pub fn journal_of(&self, plan_id: &str) -> Result<std::collections::BTreeMap<String, JournalEntry>, StoreError> {
        let prefix = format!("{plan_id}\u{0}");
        let mut out = std::collections::BTreeMap::new();
        for item in self.tree("journal")?.scan_prefix(prefix.as_bytes()) {
            let (k, v) = item.map_err(|e| self.damaged(e.to_string()))?;
            let key = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            let entry: JournalEntry = serde_json::from_slice(&v).map_err(|e| self.damaged(format!("journal: {e}")))?;
            out.insert(key, entry);
        }
        Ok(out)
    }
}

/// How long to wait for the store's file lock.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Open the database, waiting a while for its file lock: sled releases it
/// only once its background threads have stopped, a moment after the
/// database is dropped, so an apply that waited for the cluster lock can
/// find the previous holder's process still letting go of the store.
fn open_waiting(dir: &Path) -> Result<sled::Db, sled::Error> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match sled::open(dir) {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock") && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

fn new_lineage() -> String {
    let now = Timestamp::now();
    crate::model::sha256_hex(format!("{}:{}", now.as_nanosecond(), std::process::id()).as_bytes())[..16].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_carry_a_lineage_and_a_growing_serial() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let o = Observed { format_version: 1, ..Default::default() };
        let first = store.put_snapshot("s", &o).unwrap();
        let second = store.put_snapshot("s", &o).unwrap();
        assert_eq!((first.serial, second.serial), (1, 2));
        assert_eq!(first.lineage, second.lineage);
        assert_eq!(store.snapshot("s").unwrap().unwrap().serial, 2);
        assert!(store.snapshot("other").unwrap().is_none());
    }

    #[test]
    fn the_journal_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store.journal("p1", "+role/a", StepState::Started).unwrap();
            store.journal("p1", "+role/a", StepState::Done).unwrap();
            store.journal("p1", "-role/b", StepState::Started).unwrap();
            store.journal("p2", "+role/a", StepState::Started).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let j = store.journal_of("p1").unwrap();
        assert_eq!(j.len(), 2);
        assert_eq!(j["+role/a"].state, StepState::Done);
        assert_eq!(j["-role/b"].state, StepState::Started);
    }

    #[test]
    fn a_newer_store_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            db.insert(VERSION_KEY, &99u32.to_be_bytes()).unwrap();
            db.flush().unwrap();
        }
        let Err(e) = Store::open(dir.path()) else { panic!("opened a newer store") };
        assert!(e.to_string().contains("format version 99, newer than this irsa reads"), "{e}");
    }

    #[test]
    fn a_damaged_store_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store.put_plan("p", "{}").unwrap();
        }
        // Scribble over the database file, as a full disk or a bad copy might.
        let db = dir.path().join("db");
        let len = std::fs::metadata(&db).unwrap().len() as usize;
        std::fs::write(&db, vec![0xA5u8; len.max(4096)]).unwrap();
        let opened = std::panic::catch_unwind(|| Store::open(dir.path()).map(|s| s.journal_of("p").map(|_| ())));
        let result = opened.expect("opening a damaged store must not panic");
        let err = match result {
            Err(e) | Ok(Err(e)) => e,
            Ok(Ok(())) => return, // sled recovered what it could: also acceptable
        };
        assert!(err.to_string().contains(".irsa") || err.to_string().contains("store"), "{err}");
    }
}
