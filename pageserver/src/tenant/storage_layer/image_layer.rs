//! Image layers: one page image per key of a key range at one LSN.
//!
//! On top of the block file format ([`super::format`]): each image is one
//! blob (zstd-compressed when configured and smaller), the index maps the
//! 18-byte key to the blob offset. An image layer is authoritative for its
//! key range: a key it does not hold did not exist at its LSN, so a read
//! stops there either way.

use std::collections::BTreeSet;
use std::ops::Range;

use camino::Utf8Path;
use pageserver_api::key::{Key, KEY_SIZE};
use pageserver_api::keyspace::KeySpace;
use pageserver_api::value::Value;
use utils::generation::Generation;
use utils::lsn::Lsn;

use super::format::{DataCache, LayerFile, LayerFileWriter, LayerKind};
use super::layer::Layer;
use super::layer_desc::LayerName;
use super::reconstruct::ValuesReconstructState;
use super::{LayerReadError, LayerWriteError};
use crate::tenant::resources::IoConcurrency;

pub struct ImageLayerWriter {
    dir: camino::Utf8PathBuf,
    generation: Generation,
    key_range: Range<Key>,
    lsn: Lsn,
    compress: bool,
    last: Option<Key>,
    file: LayerFileWriter,
}

impl ImageLayerWriter {
    pub async fn new(
        dir: &Utf8Path,
        generation: Generation,
        key_range: Range<Key>,
        lsn: Lsn,
        compress: bool,
    ) -> Result<ImageLayerWriter, LayerWriteError> {
        Ok(ImageLayerWriter {
            dir: dir.to_owned(),
            generation,
            key_range,
            lsn,
            compress,
            last: None,
            file: LayerFileWriter::create(dir, LayerKind::Image).await?,
        })
    }

    /// Appends the image of `key`; keys must ascend within the key range.
    pub async fn put_image(&mut self, key: Key, img: &[u8]) -> Result<(), LayerWriteError> {
        if self.last.is_some_and(|l| l >= key) || !self.key_range.contains(&key) {
            return Err(LayerWriteError::OutOfOrder {
                what: format!(
                    "image of {key} after {:?} in {:?}",
                    self.last, self.key_range
                ),
            });
        }
        let blob = self.file.append_blob(img, self.compress).await?;
        self.file.index_push(&key.to_bytes(), blob).await?;
        self.last = Some(key);
        Ok(())
    }

    pub fn size(&self) -> u64 {
        self.file.size()
    }

    pub async fn finish(self) -> Result<Layer, LayerWriteError> {
        let name = LayerName::Image {
            key_range: self.key_range,
            lsn: self.lsn,
        };
        Layer::finish_writing(self.file, &self.dir, self.generation, name).await
    }
}

/// Reads the images of the keys of `keyspace`; keys without one are absent.
pub async fn get_values_reconstruct_data(
    file: &LayerFile,
    lsn: Lsn,
    keyspace: &KeySpace,
    state: &mut ValuesReconstructState,
    concurrency: IoConcurrency,
) -> Result<(), LayerReadError> {
    let mut found: Vec<(Key, u64)> = Vec::new();
    for range in &keyspace.ranges {
        let mut scan = file.index_scan(&range.start.to_bytes());
        while let Some((raw, blob)) = scan.next().await? {
            let key = parse_key(file, &raw)?;
            if key >= range.end {
                break;
            }
            found.push((key, blob));
        }
    }
    let blobs: Vec<u64> = found.iter().map(|(_, b)| *b).collect();
    let images = if blobs.is_empty() {
        Vec::new()
    } else {
        // Images are pages: cache them decoded, a hit is a reference.
        file.read_blobs(&blobs, concurrency, DataCache::Blobs)
            .await?
    };
    for ((key, _), img) in found.into_iter().zip(images) {
        state.add_value(key, lsn, Value::Image(img));
    }
    // Keys of the request this image does not hold did not exist at `lsn`.
    for range in &keyspace.ranges {
        let mut key = range.start;
        while key < range.end {
            state.add_absent(key);
            key = key.next();
        }
    }
    Ok(())
}

fn parse_key(file: &LayerFile, raw: &[u8]) -> Result<Key, LayerReadError> {
    if raw.len() != KEY_SIZE {
        return Err(file.corrupt(format!(
            "index key of {} bytes in an image layer",
            raw.len()
        )));
    }
    Key::from_slice(raw).map_err(|e| file.corrupt(e.to_string()))
}

pub async fn collect_keys(
    file: &LayerFile,
    keys: &mut BTreeSet<Key>,
) -> Result<(), LayerReadError> {
    let mut scan = file.index_scan(&[0u8; KEY_SIZE]);
    while let Some((raw, _)) = scan.next().await? {
        keys.insert(parse_key(file, &raw)?);
    }
    Ok(())
}
