//! Layers: the units in which a timeline's history is stored.
//!
//! A layer covers a key range × LSN range. Delta layers hold every value
//! written in their LSN range; image layers hold one materialised value per key
//! at one LSN. [`layer_desc`] names and describes persistent layers (the
//! description is all the layer map needs to plan a read).

pub mod layer_desc;
