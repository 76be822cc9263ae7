//! `LayerManager`: the set of layers a timeline reads from, behind one lock.
//!
//! It owns the open in-memory layer, the frozen in-memory layers waiting for
//! flush (oldest first), the [`LayerMap`] of persistent layers and the handle
//! of each persistent layer. Every change is applied under the timeline's
//! write lock on the manager, so a reader planning a visit sees either the
//! state before or after a flush/compaction/GC step, never a mix.
//!
//! In-memory layers are contiguous in LSN (`frozen[i].end == frozen[i+1].start`,
//! the open layer starts at the last frozen end) and newer than every
//! persistent layer.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use utils::lsn::Lsn;

use crate::tenant::layer_map::LayerMap;
use crate::tenant::storage_layer::inmemory_layer::InMemoryLayer;
use crate::tenant::storage_layer::layer::Layer;
use crate::tenant::storage_layer::layer_desc::LayerName;

#[derive(Default)]
pub struct LayerManager {
    pub open: Option<Arc<InMemoryLayer>>,
    pub frozen: VecDeque<Arc<InMemoryLayer>>,
    map: LayerMap,
    layers: HashMap<LayerName, Arc<Layer>>,
}

impl LayerManager {
    pub fn map(&self) -> &LayerMap {
        &self.map
    }

    pub fn get(&self, name: &LayerName) -> Option<&Arc<Layer>> {
        self.layers.get(name)
    }

    pub fn persistent_layers(&self) -> impl Iterator<Item = &Arc<Layer>> {
        self.layers.values()
    }

    /// The newest in-memory layer holding LSNs below `end_lsn`.
    pub fn in_memory_below(&self, end_lsn: Lsn) -> Option<Arc<InMemoryLayer>> {
        self.open
            .iter()
            .chain(self.frozen.iter().rev())
            .find(|l| l.start_lsn() < end_lsn)
            .cloned()
    }

    /// Adds and removes persistent layers as one step. Removed layers are
    /// returned so the caller can delete their files once the change is
    /// durable.
    pub fn apply(&mut self, inserts: Vec<Arc<Layer>>, removes: &[LayerName]) -> Vec<Arc<Layer>> {
        let mut removed = Vec::with_capacity(removes.len());
        for name in removes {
            if let Some(layer) = self.layers.remove(name) {
                removed.push(layer);
            }
        }
        let descs = inserts.iter().map(|l| l.desc().clone()).collect();
        for layer in inserts {
            self.layers.insert(layer.desc().name.clone(), layer);
        }
        self.map.apply(descs, removes);
        removed
    }

    /// Total bytes of resident persistent layer files.
    pub fn physical_size(&self) -> u64 {
        self.layers.values().map(|l| l.desc().file_size).sum()
    }
}
