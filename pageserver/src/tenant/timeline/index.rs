//! `index.json`: the durable state of a timeline's local storage.
//!
//! It lists the persistent layers that make up the timeline and the LSNs that
//! hold for exactly that set: `disk_consistent_lsn` (everything at or below it
//! is in those layers) and the applied GC cutoff. Flush, compaction and GC
//! write the new layer files first (fsynced, renamed into place), then replace
//! this file atomically, and only then delete files it no longer names. So at
//! any crash point the file names a complete, consistent set; files it does
//! not name are leftovers that loading removes.
//!
//! The file also keeps a bounded history of `(unix time, lsn)` samples taken at
//! flushes, which is how GC turns `pitr_interval` into an LSN without
//! Postgres commit timestamps.

use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};
use utils::crashsafe;
use utils::generation::Generation;
use utils::lsn::Lsn;

use crate::tenant::storage_layer::layer_desc::{LayerName, PersistentLayerDesc};

pub const INDEX_FILE_NAME: &str = "index.json";
const INDEX_FORMAT_VERSION: u32 = 1;
/// Samples kept for the PITR LSN lookup.
pub const MAX_LSN_HISTORY: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexLayer {
    pub name: String,
    pub file_size: u64,
    pub generation: Generation,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineIndex {
    pub format_version: u32,
    pub disk_consistent_lsn: Lsn,
    pub prev_record_lsn: Option<Lsn>,
    pub gc_cutoff_lsn: Lsn,
    pub layers: Vec<IndexLayer>,
    #[serde(default)]
    pub lsn_history: Vec<(u64, Lsn)>,
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: Utf8PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid timeline index: {reason}")]
    Invalid { path: Utf8PathBuf, reason: String },
}

impl TimelineIndex {
    pub fn empty(disk_consistent_lsn: Lsn) -> TimelineIndex {
        TimelineIndex {
            format_version: INDEX_FORMAT_VERSION,
            disk_consistent_lsn,
            prev_record_lsn: None,
            gc_cutoff_lsn: Lsn::INVALID,
            layers: Vec::new(),
            lsn_history: Vec::new(),
        }
    }

    /// Reads the index; `Ok(None)` when the timeline has never written one.
    pub fn load(dir: &Utf8Path) -> Result<Option<TimelineIndex>, IndexError> {
        let path = dir.join(INDEX_FILE_NAME);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(IndexError::Io {
                    op: "read",
                    path,
                    source,
                })
            }
        };
        let index: TimelineIndex =
            serde_json::from_slice(&bytes).map_err(|e| IndexError::Invalid {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if index.format_version != INDEX_FORMAT_VERSION {
            return Err(IndexError::Invalid {
                path,
                reason: format!(
                    "format version {} (this build reads {INDEX_FORMAT_VERSION})",
                    index.format_version
                ),
            });
        }
        for layer in &index.layers {
            layer
                .name
                .parse::<LayerName>()
                .map_err(|e| IndexError::Invalid {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
        }
        Ok(Some(index))
    }

    /// Replaces the index atomically (and durably when `sync`).
    pub fn store(&self, dir: &Utf8Path, sync: bool) -> Result<(), IndexError> {
        let path = dir.join(INDEX_FILE_NAME);
        let bytes = serde_json::to_vec(self).map_err(|e| IndexError::Invalid {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        crashsafe::overwrite_with_sync(&path, &bytes, sync).map_err(|source| IndexError::Io {
            op: "write",
            path,
            source,
        })
    }

    /// The layers as descriptions (names validated at load).
    pub fn layer_descs(&self) -> Vec<(PersistentLayerDesc, Generation)> {
        self.layers
            .iter()
            .filter_map(|l| {
                let name = l.name.parse::<LayerName>().ok()?;
                Some((
                    PersistentLayerDesc {
                        name,
                        file_size: l.file_size,
                    },
                    l.generation,
                ))
            })
            .collect()
    }

    /// Adds a `(now, lsn)` sample, thinning old ones to stay bounded.
    pub fn record_lsn_time(&mut self, unix_secs: u64, lsn: Lsn) {
        if let Some((t, l)) = self.lsn_history.last_mut() {
            if *t == unix_secs {
                *l = lsn;
                return;
            }
        }
        self.lsn_history.push((unix_secs, lsn));
        if self.lsn_history.len() > MAX_LSN_HISTORY {
            // Keep every other old sample: resolution decays with age.
            let keep_recent = MAX_LSN_HISTORY / 2;
            let split = self.lsn_history.len() - keep_recent;
            let mut thinned: Vec<_> = self.lsn_history[..split]
                .iter()
                .step_by(2)
                .copied()
                .collect();
            thinned.extend_from_slice(&self.lsn_history[split..]);
            self.lsn_history = thinned;
        }
    }

    /// The newest LSN known to have been reached at or before `unix_secs`.
    pub fn lsn_at_time(&self, unix_secs: u64) -> Option<Lsn> {
        self.lsn_history
            .iter()
            .rev()
            .find(|(t, _)| *t <= unix_secs)
            .map(|(_, l)| *l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_history() {
        let dir = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(dir.path()).unwrap();
        assert!(TimelineIndex::load(dir).unwrap().is_none());
        let mut idx = TimelineIndex::empty(Lsn(0x10));
        idx.layers.push(IndexLayer {
            name: "000000000000000000000000000000000000-FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF__0000000000000011-0000000000000021".into(),
            file_size: 8192,
            generation: Generation(1),
        });
        for t in 0..2000u64 {
            idx.record_lsn_time(t, Lsn(t * 10));
        }
        assert!(idx.lsn_history.len() <= MAX_LSN_HISTORY + 1);
        assert_eq!(idx.lsn_at_time(1999), Some(Lsn(19990)));
        assert!(idx.lsn_at_time(100).unwrap() <= Lsn(1000));
        idx.store(dir, true).unwrap();
        assert_eq!(TimelineIndex::load(dir).unwrap().unwrap(), idx);
        std::fs::write(dir.join(INDEX_FILE_NAME), b"{not json").unwrap();
        assert!(matches!(
            TimelineIndex::load(dir),
            Err(IndexError::Invalid { .. })
        ));
    }
}
