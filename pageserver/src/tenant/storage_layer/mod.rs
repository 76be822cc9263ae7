//! Layers: the units in which a timeline's history is stored.
//!
//! A layer covers a key range × LSN range. Delta layers hold every value
//! written in their LSN range; image layers hold one materialised value per key
//! at one LSN. [`layer_desc`] names and describes persistent layers (the
//! description is all the layer map needs to plan a read); [`inmemory_layer`]
//! receives new writes (serialized first into a [`batch`]); [`delta_layer`] and [`image_layer`] are the immutable
//! files on the block format of [`format`], handled through [`layer::Layer`];
//! [`reconstruct`] is what a read collects per key.

pub mod batch;
pub mod delta_layer;
pub mod format;
pub mod image_layer;
pub mod inmemory_layer;
pub mod layer;
pub mod layer_desc;
pub mod reconstruct;

use camino::Utf8Path;

/// Reading a layer failed; names the file and what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum LayerReadError {
    #[error("reading layer file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("layer file {path} is corrupt: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("layer {name} is not resident on local disk")]
    NotResident { name: String },
    #[error("read cancelled")]
    Cancelled,
}

impl LayerReadError {
    pub fn io(path: &Utf8Path, source: std::io::Error) -> LayerReadError {
        LayerReadError::Io {
            path: path.to_string(),
            source,
        }
    }
}

/// Writing a layer file failed.
#[derive(Debug, thiserror::Error)]
pub enum LayerWriteError {
    #[error("writing layer file {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("layer file format: {0}")]
    Format(String),
    #[error("values given out of order: {what}")]
    OutOfOrder { what: String },
}
