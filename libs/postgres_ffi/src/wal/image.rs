//! Restoring a page from a full-page image (`RestoreBlockImage`).
//!
//! An image stores the page minus an optional "hole" (the free space between
//! pd_lower and pd_upper of a standard page), possibly compressed with pglz,
//! LZ4 (raw block, no frame) or zstd (a frame). Restoring decompresses to
//! `BLCKSZ - hole_length` bytes, then rebuilds the page with the hole
//! zero-filled. Unlike PostgreSQL (which accepts an LZ4/zstd result shorter
//! than asked for and leaves the rest of its buffer undefined), we require the
//! decompressed size to be exact: a valid image always is. Used by
//! [`super::WalRecord::restore_image`] and redo.

use crate::pglz::{self, PglzError};
use crate::BLCKSZ;

use super::record::{BlockImage, ImageCompression};

/// Why an image could not be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("the record has no block reference with this id")]
    NoSuchBlock,
    #[error("the block reference has no image")]
    NoImage,
    #[error("hole at {hole_offset}+{hole_length} with {stored} stored bytes does not make an 8 KiB page")]
    BadGeometry {
        hole_offset: u16,
        hole_length: u16,
        stored: usize,
    },
    #[error("pglz: {0}")]
    Pglz(#[from] PglzError),
    #[error("lz4: {0}")]
    Lz4(String),
    #[error("zstd: {0}")]
    Zstd(String),
    #[error("{method} image decompressed to {got} bytes, expected {expected}")]
    WrongSize {
        method: &'static str,
        got: usize,
        expected: usize,
    },
}

/// Rebuilds the 8 KiB page an image encodes; `data` are its stored bytes.
pub fn restore_image(image: &BlockImage, data: &[u8]) -> Result<Box<[u8; BLCKSZ]>, ImageError> {
    let mut page = Vec::with_capacity(BLCKSZ);
    restore_image_into(image, data, &mut page)?;
    page.into_boxed_slice()
        .try_into()
        .map_err(|p: Box<[u8]>| ImageError::BadGeometry {
            hole_offset: image.hole_offset,
            hole_length: image.hole_length,
            stored: p.len(),
        })
}

/// Appends the 8 KiB page an image encodes to `out` (e.g. straight into a
/// serialization buffer); on error `out` is left as it was.
pub fn restore_image_into(
    image: &BlockImage,
    data: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), ImageError> {
    let hole_offset = image.hole_offset as usize;
    let hole_length = image.hole_length as usize;
    let geometry = || ImageError::BadGeometry {
        hole_offset: image.hole_offset,
        hole_length: image.hole_length,
        stored: data.len(),
    };
    // Bytes of page content the image holds once decompressed.
    let content_len = BLCKSZ.checked_sub(hole_length).ok_or_else(geometry)?;
    if hole_offset > content_len {
        return Err(geometry());
    }

    let decompressed;
    let content: &[u8] = match image.compression {
        ImageCompression::None => data,
        ImageCompression::Pglz => {
            let mut buf = vec![0u8; content_len];
            pglz::decompress_exact(data, &mut buf)?;
            decompressed = buf;
            &decompressed
        }
        ImageCompression::Lz4 => {
            let mut buf = vec![0u8; content_len];
            let n = lz4_flex::block::decompress_into(data, &mut buf)
                .map_err(|e| ImageError::Lz4(e.to_string()))?;
            if n != content_len {
                return Err(ImageError::WrongSize {
                    method: "lz4",
                    got: n,
                    expected: content_len,
                });
            }
            decompressed = buf;
            &decompressed
        }
        ImageCompression::Zstd => {
            let mut buf = vec![0u8; content_len];
            let n = zstd::bulk::decompress_to_buffer(data, &mut buf)
                .map_err(|e| ImageError::Zstd(e.to_string()))?;
            if n != content_len {
                return Err(ImageError::WrongSize {
                    method: "zstd",
                    got: n,
                    expected: content_len,
                });
            }
            decompressed = buf;
            &decompressed
        }
    };
    if content.len() != content_len {
        return Err(geometry());
    }

    // Built by appending, so each byte is written once (no zeroed page that
    // is then overwritten). The checks above make it exactly BLCKSZ bytes.
    out.reserve(BLCKSZ);
    let start = out.len();
    out.extend_from_slice(&content[..hole_offset]);
    out.resize(start + hole_offset + hole_length, 0);
    out.extend_from_slice(&content[hole_offset..]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::encoder::ImageSpec;
    use bytes::Bytes;

    fn sample_page() -> [u8; BLCKSZ] {
        let mut page = [0u8; BLCKSZ];
        crate::page::page_init(&mut page, 16).unwrap();
        let mut hdr = crate::page::PageHeaderData::read(&page).unwrap();
        hdr.pd_lower = 40;
        hdr.pd_upper = 7000;
        hdr.write(&mut page).unwrap();
        for (i, b) in page[24..40].iter_mut().enumerate() {
            *b = i as u8;
        }
        for (i, b) in page[7000..].iter_mut().enumerate() {
            *b = (i % 7) as u8;
        }
        page
    }

    /// The image and its stored bytes.
    fn to_image(spec: ImageSpec) -> (BlockImage, Bytes) {
        let img = BlockImage::new(
            0,
            spec.data.len(),
            spec.hole_offset,
            spec.hole_length,
            0,
            true,
            spec.compression,
        );
        (img, spec.data)
    }

    #[test]
    fn every_method_restores_the_page() {
        let page = sample_page();
        for method in [
            ImageCompression::None,
            ImageCompression::Pglz,
            ImageCompression::Lz4,
            ImageCompression::Zstd,
        ] {
            for standard in [true, false] {
                let (img, data) = to_image(ImageSpec::from_page(&page, standard, true, method));
                assert_eq!(
                    &restore_image(&img, &data).unwrap()[..],
                    &page[..],
                    "{method:?}"
                );
            }
        }
    }

    #[test]
    fn hole_bytes_come_back_zero() {
        let mut page = sample_page();
        page[100] = 0xAA; // inside the hole: not stored, restored as zero
        let (img, data) = to_image(ImageSpec::from_page(
            &page,
            true,
            true,
            ImageCompression::None,
        ));
        let restored = restore_image(&img, &data).unwrap();
        assert_eq!(restored[100], 0);
    }

    #[test]
    fn corrupt_images_are_errors() {
        let page = sample_page();
        for method in [
            ImageCompression::Pglz,
            ImageCompression::Lz4,
            ImageCompression::Zstd,
        ] {
            let (img, data) = to_image(ImageSpec::from_page(&page, true, true, method));
            let half = &data[..data.len() / 2];
            assert!(restore_image(&img, half).is_err(), "{method:?}");
        }
        let img = BlockImage::new(0, 100, 8000, 8092, 0, true, ImageCompression::None);
        assert!(matches!(
            restore_image(&img, &[0u8; 100]),
            Err(ImageError::BadGeometry { .. })
        ));
    }
}
