//! `Layer`: the handle of one persistent layer file of a timeline.
//!
//! A handle knows the layer's description, local path and generation, opens
//! the file lazily on first read, and tracks its state:
//!
//! - *resident*: the file is on local disk and readable;
//! - *evicted*: known to the timeline but not on local disk (reads fail with
//!   [`LayerReadError::NotResident`] until remote storage can download it);
//! - *deleted*: removed from the timeline; the file is unlinked when the
//!   last reader drops its handle ([`Layer::delete_when_unused`]), so a
//!   read that planned a visit never finds its file gone.
//!
//! Local file name: the layer name plus the generation suffix (`-xxxxxxxx`).

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

use camino::{Utf8Path, Utf8PathBuf};
use pageserver_api::key::Key;
use pageserver_api::keyspace::KeySpace;
use utils::generation::Generation;
use utils::lsn::Lsn;

use super::delta_layer;
use super::format::{LayerFile, LayerFileWriter};
use super::image_layer;
use super::layer_desc::{LayerName, PersistentLayerDesc};
use super::reconstruct::ValuesReconstructState;
use super::{LayerReadError, LayerWriteError};
use crate::tenant::resources::IoConcurrency;

/// Suffix of layer files being written.
pub const TEMP_SUFFIX: &str = ".___temp";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LayerState {
    Resident = 0,
    Evicted = 1,
    Deleted = 2,
}

pub struct Layer {
    desc: Arc<PersistentLayerDesc>,
    path: Utf8PathBuf,
    generation: Generation,
    file: tokio::sync::OnceCell<Arc<LayerFile>>,
    state: AtomicU8,
    delete_on_drop: AtomicBool,
}

impl std::fmt::Debug for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Layer({})", self.desc.name)
    }
}

impl Layer {
    pub fn local_path(
        dir: &Utf8Path,
        desc: &PersistentLayerDesc,
        generation: Generation,
    ) -> Utf8PathBuf {
        dir.join(format!("{}{}", desc.name, generation.suffix()))
    }

    /// A handle for a file that exists in `dir`.
    pub fn for_existing(
        dir: &Utf8Path,
        desc: PersistentLayerDesc,
        generation: Generation,
    ) -> Layer {
        Layer {
            path: Self::local_path(dir, &desc, generation),
            desc: Arc::new(desc),
            generation,
            file: tokio::sync::OnceCell::new(),
            state: AtomicU8::new(LayerState::Resident as u8),
            delete_on_drop: AtomicBool::new(false),
        }
    }

    /// Finishes `writer` as layer `name` in `dir` and returns its handle
    /// (the file already open).
    pub(super) async fn finish_writing(
        writer: LayerFileWriter,
        dir: &Utf8Path,
        generation: Generation,
        name: LayerName,
    ) -> Result<Layer, LayerWriteError> {
        let desc = PersistentLayerDesc { name, file_size: 0 };
        let path = Self::local_path(dir, &desc, generation);
        let (desc, file) = writer.finish(desc, &path).await?;
        Ok(Layer {
            path,
            desc: Arc::new(desc),
            generation,
            file: tokio::sync::OnceCell::new_with(Some(Arc::new(file))),
            state: AtomicU8::new(LayerState::Resident as u8),
            delete_on_drop: AtomicBool::new(false),
        })
    }

    pub fn desc(&self) -> &Arc<PersistentLayerDesc> {
        &self.desc
    }

    pub fn path(&self) -> &Utf8Path {
        &self.path
    }

    pub fn generation(&self) -> Generation {
        self.generation
    }

    pub fn state(&self) -> LayerState {
        match self.state.load(Ordering::Relaxed) {
            0 => LayerState::Resident,
            1 => LayerState::Evicted,
            _ => LayerState::Deleted,
        }
    }

    /// Marks the layer deleted: its file goes when the last handle drops.
    pub fn delete_when_unused(&self) {
        self.state
            .store(LayerState::Deleted as u8, Ordering::Relaxed);
        self.delete_on_drop.store(true, Ordering::Relaxed);
    }

    async fn file(&self) -> Result<&Arc<LayerFile>, LayerReadError> {
        if self.state() == LayerState::Evicted {
            return Err(LayerReadError::NotResident {
                name: self.desc.name.to_string(),
            });
        }
        self.file
            .get_or_try_init(|| async {
                LayerFile::open(&self.path, &self.desc).await.map(Arc::new)
            })
            .await
    }

    /// Appends what this layer holds for `keyspace` in `lsn_range` to
    /// `state` (see [`ValuesReconstructState`]).
    pub async fn get_values_reconstruct_data(
        &self,
        keyspace: &KeySpace,
        lsn_range: Range<Lsn>,
        state: &mut ValuesReconstructState,
        concurrency: IoConcurrency,
    ) -> Result<(), LayerReadError> {
        let file = self.file().await?;
        if self.desc.is_delta() {
            delta_layer::get_values_reconstruct_data(file, keyspace, lsn_range, state, concurrency)
                .await
        } else {
            image_layer::get_values_reconstruct_data(
                file,
                self.desc.lsn_range().start,
                keyspace,
                state,
                concurrency,
            )
            .await
        }
    }

    /// Adds every key that has a value at or below `lsn` here.
    pub async fn collect_keys(
        &self,
        lsn: Lsn,
        keys: &mut BTreeSet<Key>,
    ) -> Result<(), LayerReadError> {
        let file = self.file().await?;
        if self.desc.is_delta() {
            delta_layer::collect_keys(file, lsn, keys).await
        } else if self.desc.lsn_range().start <= lsn {
            image_layer::collect_keys(file, keys).await
        } else {
            Ok(())
        }
    }

    pub(crate) async fn open_file(&self) -> Result<Arc<LayerFile>, LayerReadError> {
        self.file().await.cloned()
    }
}

impl Drop for Layer {
    fn drop(&mut self) {
        if self.delete_on_drop.load(Ordering::Relaxed) {
            if let Err(e) = std::fs::remove_file(&self.path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %self.path, "cannot remove deleted layer file: {e}");
                }
            }
        }
    }
}
