//! Hash index page layouts and the page-building steps redo replays
//! (`hash.h`, `hashpage.c`, `hashovfl.c`).
//!
//! Every hash page is a standard page with 16 bytes of special space
//! (`HashPageOpaqueData`), found through `pd_special`:
//!
//! | offset in special | field |
//! |---|---|
//! | 0 | hasho_prevblkno u32 (overflow page: previous page; bucket page: maxbucket at the last split) |
//! | 4 | hasho_nextblkno u32 |
//! | 8 | hasho_bucket u32 |
//! | 12 | hasho_flag u16 (page type bits 0..3, then the transient bucket/page flags) |
//! | 14 | hasho_page_id u16 = 0xFF80 |
//!
//! The metapage (block 0) keeps `HashMetaPageData` right after the page
//! header (offset 24), see the `META_*` offsets; `pd_lower` points just past
//! it so that image holes never cut it. Bitmap pages keep a bit array of
//! `bmsize` bytes at offset 24, `pd_lower` just past it.
//!
//! Everything here is bounds-checked: the special space must lie inside the
//! page and after the header, indexes into `hashm_spares` / `hashm_mapp`
//! are checked by the callers through [`spares_offset`] / [`mapp_offset`].

use postgres_ffi::types::INVALID_BLOCK_NUMBER;
use postgres_ffi::BLCKSZ;

use crate::error::PageOpError;
use crate::pageops::{self, Page, SIZE_OF_PAGE_HEADER};

/// sizeof(HashPageOpaqueData).
pub const SPECIAL_SIZE: usize = 16;
/// `HASHO_PAGE_ID`: the last two bytes of every hash page.
pub const HASHO_PAGE_ID: u16 = 0xFF80;
/// `InvalidBucket`.
pub const INVALID_BUCKET: u32 = 0xFFFF_FFFF;

pub const LH_UNUSED_PAGE: u16 = 0;
pub const LH_OVERFLOW_PAGE: u16 = 1 << 0;
pub const LH_BUCKET_PAGE: u16 = 1 << 1;
pub const LH_BITMAP_PAGE: u16 = 1 << 2;
pub const LH_META_PAGE: u16 = 1 << 3;
pub const LH_BUCKET_NEEDS_SPLIT_CLEANUP: u16 = 1 << 6;
pub const LH_PAGE_HAS_DEAD_TUPLES: u16 = 1 << 7;
/// `LH_PAGE_TYPE`: the page-type bits of hasho_flag.
pub const LH_PAGE_TYPE: u16 = LH_OVERFLOW_PAGE | LH_BUCKET_PAGE | LH_BITMAP_PAGE | LH_META_PAGE;

const OP_PREV: usize = 0;
const OP_NEXT: usize = 4;
const OP_BUCKET: usize = 8;
const OP_FLAG: usize = 12;
const OP_PAGE_ID: usize = 14;

/// `PageGetContents`: MAXALIGN(SizeOfPageHeaderData).
pub const CONTENTS: usize = 24;

/// Metapage fields, as offsets from the start of the page.
pub const META_MAGIC: usize = CONTENTS;
pub const META_VERSION: usize = CONTENTS + 4;
pub const META_NTUPLES: usize = CONTENTS + 8;
pub const META_FFACTOR: usize = CONTENTS + 16;
pub const META_BSIZE: usize = CONTENTS + 18;
pub const META_BMSIZE: usize = CONTENTS + 20;
pub const META_BMSHIFT: usize = CONTENTS + 22;
pub const META_MAXBUCKET: usize = CONTENTS + 24;
pub const META_HIGHMASK: usize = CONTENTS + 28;
pub const META_LOWMASK: usize = CONTENTS + 32;
pub const META_OVFLPOINT: usize = CONTENTS + 36;
pub const META_FIRSTFREE: usize = CONTENTS + 40;
pub const META_NMAPS: usize = CONTENTS + 44;
pub const META_PROCID: usize = CONTENTS + 48;
pub const META_SPARES: usize = CONTENTS + 52;
/// `HASH_MAX_SPLITPOINTS`: (32 - 10) groups of 4 phases + 10 single phases.
pub const MAX_SPLITPOINTS: usize = (32 - 10) * 4 + 10;
pub const META_MAPP: usize = META_SPARES + 4 * MAX_SPLITPOINTS;
/// `HASH_MAX_BITMAPS` for 8 KiB pages.
pub const MAX_BITMAPS: usize = 1024;
/// sizeof(HashMetaPageData): the fields end at 4540, padded to the 8-byte
/// alignment the `double` gives the struct.
pub const SIZE_OF_META: usize = 4544;

pub const HASH_MAGIC: u32 = 0x0644_0640;
pub const HASH_VERSION: u32 = 4;

/// `HashGetMaxBitmapSize`: page contents between header and special space.
pub const MAX_BITMAP_BYTES: usize = BLCKSZ - (CONTENTS + SPECIAL_SIZE);

/// Offset of the special space, which must hold a whole
/// `HashPageOpaqueData` and not overlap the page header.
pub fn opaque_offset(page: &Page) -> Result<usize, PageOpError> {
    let s = pageops::special(page) as usize;
    if s < SIZE_OF_PAGE_HEADER || s + SPECIAL_SIZE > BLCKSZ {
        return Err(PageOpError::CorruptPointers {
            lower: pageops::lower(page),
            upper: pageops::upper(page),
            special: pageops::special(page),
        });
    }
    Ok(s)
}

/// A u32 at a constant, in-page offset (metapage fields).
pub fn get_u32(page: &Page, off: usize) -> u32 {
    pageops::read_u32(page, off).unwrap_or(0)
}

/// Writes a u32 at an in-page offset (callers check the offset).
pub fn put_u32(page: &mut Page, off: usize, v: u32) {
    pageops::write_at(page, off, &v.to_le_bytes());
}

pub fn get_f64(page: &Page, off: usize) -> f64 {
    let b = page.get(off..off + 8).unwrap_or(&[0; 8]);
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    f64::from_le_bytes(a)
}

pub fn put_f64(page: &mut Page, off: usize, v: f64) {
    pageops::write_at(page, off, &v.to_le_bytes());
}

fn put_u16(page: &mut Page, off: usize, v: u16) {
    pageops::write_at(page, off, &v.to_le_bytes());
}

/// The special-space fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opaque {
    pub prev: u32,
    pub next: u32,
    pub bucket: u32,
    pub flag: u16,
}

impl Opaque {
    /// Special space of a page that belongs to no bucket (metapage,
    /// bitmap page, freed overflow page).
    pub fn unlinked(flag: u16) -> Opaque {
        Opaque {
            prev: INVALID_BLOCK_NUMBER,
            next: INVALID_BLOCK_NUMBER,
            bucket: INVALID_BUCKET,
            flag,
        }
    }
}

/// Writes the whole special space, page id included.
pub fn write_opaque(page: &mut Page, o: &Opaque) -> Result<(), PageOpError> {
    let s = opaque_offset(page)?;
    put_u32(page, s + OP_PREV, o.prev);
    put_u32(page, s + OP_NEXT, o.next);
    put_u32(page, s + OP_BUCKET, o.bucket);
    put_u16(page, s + OP_FLAG, o.flag);
    put_u16(page, s + OP_PAGE_ID, HASHO_PAGE_ID);
    Ok(())
}

pub fn flag(page: &Page) -> Result<u16, PageOpError> {
    let s = opaque_offset(page)?;
    Ok(pageops::read_u16(page, s + OP_FLAG).unwrap_or(0))
}

pub fn set_flag(page: &mut Page, v: u16) -> Result<(), PageOpError> {
    let s = opaque_offset(page)?;
    put_u16(page, s + OP_FLAG, v);
    Ok(())
}

pub fn set_prev(page: &mut Page, v: u32) -> Result<(), PageOpError> {
    let s = opaque_offset(page)?;
    put_u32(page, s + OP_PREV, v);
    Ok(())
}

pub fn set_next(page: &mut Page, v: u32) -> Result<(), PageOpError> {
    let s = opaque_offset(page)?;
    put_u32(page, s + OP_NEXT, v);
    Ok(())
}

/// `_hash_pageinit`: an empty page with hash special space (all zeroes).
pub fn page_init(page: &mut Page) -> Result<(), PageOpError> {
    pageops::page_init(page, SPECIAL_SIZE)
}

/// `_hash_initbuf` on a fresh page: a bucket or overflow page.
pub fn init_bucket_page(
    page: &mut Page,
    prev: u32,
    bucket: u32,
    flag: u16,
) -> Result<(), PageOpError> {
    page_init(page)?;
    write_opaque(
        page,
        &Opaque {
            prev,
            next: INVALID_BLOCK_NUMBER,
            bucket,
            flag,
        },
    )
}

/// What an overflow page becomes when it is freed (squeeze): empty, with
/// LH_UNUSED_PAGE special space.
pub fn init_unused_page(page: &mut Page) -> Result<(), PageOpError> {
    page_init(page)?;
    write_opaque(page, &Opaque::unlinked(LH_UNUSED_PAGE))
}

/// `_hash_initbitmapbuffer` on a fresh page: `bmsize` bytes of bitmap, all
/// bits set ("in use"). `bmsize` must be at most [`MAX_BITMAP_BYTES`].
pub fn init_bitmap_page(page: &mut Page, bmsize: usize) -> Result<(), PageOpError> {
    page_init(page)?;
    write_opaque(page, &Opaque::unlinked(LH_BITMAP_PAGE))?;
    let end = CONTENTS + bmsize.min(MAX_BITMAP_BYTES);
    page[CONTENTS..end].fill(0xFF);
    pageops::set_lower(page, end as u16);
    Ok(())
}

/// Byte offset and bit mask of bit `bit` of a bitmap page (32-bit words
/// from offset 24), if that word lies before the special space.
pub fn bitmap_bit(page: &Page, bit: u32) -> Result<Option<(usize, u32)>, PageOpError> {
    let limit = opaque_offset(page)?;
    let off = CONTENTS + 4 * (bit / 32) as usize;
    Ok((off + 4 <= limit).then_some((off, 1u32 << (bit % 32))))
}

/// `pg_ceil_log2_32`.
fn ceil_log2(n: u32) -> u32 {
    if n < 2 {
        0
    } else {
        32 - (n - 1).leading_zeros()
    }
}

/// `_hash_spareindex`: the splitpoint phase a bucket count belongs to.
pub fn spare_index(num_bucket: u32) -> u32 {
    let group = ceil_log2(num_bucket);
    if group < 10 {
        return group;
    }
    let phases_before = 10 + ((group - 10) << 2);
    let within = (num_bucket.wrapping_sub(1) >> (group - 3)) & 3;
    phases_before + within
}

/// `_hash_get_totalbuckets`: buckets allocated up to a splitpoint phase.
pub fn total_buckets(phase: u32) -> u32 {
    if phase < 10 {
        return 1 << phase;
    }
    let group = 10 + ((phase - 10) >> 2);
    let half = 1u32.checked_shl(group - 1).unwrap_or(0);
    let phases_within = ((phase - 10) & 3) + 1;
    half.wrapping_add((half >> 2).wrapping_mul(phases_within))
}

/// `pg_nextpower2_32` (`n` ≥ 1).
fn next_power_of_two(n: u32) -> u32 {
    n.checked_next_power_of_two().unwrap_or(0)
}

/// The initial bucket count `_hash_init_metabuffer` derives from the
/// estimated tuple count and fill factor; `None` when the ratio is NaN.
pub fn initial_buckets(num_tuples: f64, ffactor: u16) -> Option<u32> {
    let d = num_tuples / ffactor as f64;
    if d.is_nan() {
        None
    } else if d <= 2.0 {
        Some(2)
    } else if d >= 1_073_741_824.0 {
        Some(0x4000_0000)
    } else {
        // C converts the double to uint32 by truncation.
        Some(total_buckets(spare_index(d as u32)))
    }
}

/// `_hash_init_metabuffer` on a fresh page, for `num_buckets` from
/// [`initial_buckets`].
pub fn init_meta_page(
    page: &mut Page,
    num_buckets: u32,
    procid: u32,
    ffactor: u16,
) -> Result<(), PageOpError> {
    page_init(page)?;
    write_opaque(page, &Opaque::unlinked(LH_META_PAGE))?;
    let spare = spare_index(num_buckets) as usize;
    put_u32(page, META_MAGIC, HASH_MAGIC);
    put_u32(page, META_VERSION, HASH_VERSION);
    put_f64(page, META_NTUPLES, 0.0);
    put_u32(page, META_NMAPS, 0);
    put_u16(page, META_FFACTOR, ffactor);
    let bsize = MAX_BITMAP_BYTES as u16;
    put_u16(page, META_BSIZE, bsize);
    // The largest power of two that fits, and its log2 in bits.
    let lshift = 15 - bsize.leading_zeros() as u16;
    put_u16(page, META_BMSIZE, 1 << lshift);
    put_u16(page, META_BMSHIFT, lshift + 3);
    put_u32(page, META_PROCID, procid);
    put_u32(page, META_MAXBUCKET, num_buckets.wrapping_sub(1));
    let highmask = next_power_of_two(num_buckets.wrapping_add(1)).wrapping_sub(1);
    put_u32(page, META_HIGHMASK, highmask);
    put_u32(page, META_LOWMASK, highmask >> 1);
    // spares[] and mapp[] are zero after page_init.
    if let Some(off) = spares_offset(spare) {
        put_u32(page, off, 1);
    }
    put_u32(page, META_OVFLPOINT, spare as u32);
    put_u32(page, META_FIRSTFREE, 0);
    pageops::set_lower(page, (CONTENTS + SIZE_OF_META) as u16);
    Ok(())
}

/// Offset of `hashm_spares[i]`, if `i` is a valid splitpoint.
pub fn spares_offset(i: usize) -> Option<usize> {
    (i < MAX_SPLITPOINTS).then_some(META_SPARES + 4 * i)
}

/// Offset of `hashm_mapp[i]`, if `i` is a valid bitmap number.
pub fn mapp_offset(i: usize) -> Option<usize> {
    (i < MAX_BITMAPS).then_some(META_MAPP + 4 * i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitpoints_match_postgres_examples() {
        // Groups below 10 have one phase each.
        assert_eq!(spare_index(1), 0);
        assert_eq!(spare_index(2), 1);
        assert_eq!(spare_index(3), 2);
        assert_eq!(spare_index(512), 9);
        // 513..=1024 is group 10 with four phases of 128 buckets.
        assert_eq!(spare_index(513), 10);
        assert_eq!(spare_index(640), 10);
        assert_eq!(spare_index(641), 11);
        assert_eq!(spare_index(1024), 13);
        assert_eq!(total_buckets(9), 512);
        assert_eq!(total_buckets(10), 640);
        assert_eq!(total_buckets(13), 1024);
        assert_eq!(initial_buckets(0.0, 307), Some(2));
        assert_eq!(initial_buckets(1000.0, 10), Some(128));
        assert_eq!(initial_buckets(f64::INFINITY, 0), Some(0x4000_0000));
        assert_eq!(initial_buckets(0.0, 0), None);
        assert!(spare_index(0x4000_0000) < MAX_SPLITPOINTS as u32);
    }

    #[test]
    fn layout_constants() {
        assert_eq!(META_MAPP + 4 * MAX_BITMAPS, CONTENTS + 4540);
        assert_eq!(MAX_BITMAP_BYTES, 8152);
        let mut p = [0u8; BLCKSZ];
        init_meta_page(&mut p, 2, 450, 307).unwrap();
        assert_eq!(pageops::lower(&p), 4568);
        assert_eq!(pageops::read_u16(&p, META_BMSIZE), Some(4096));
        assert_eq!(pageops::read_u16(&p, META_BMSHIFT), Some(15));
        assert_eq!(get_u32(&p, META_HIGHMASK), 3);
        assert_eq!(get_u32(&p, META_LOWMASK), 1);
        assert_eq!(get_u32(&p, META_OVFLPOINT), 1);
        assert_eq!(get_u32(&p, spares_offset(1).unwrap()), 1);
        assert_eq!(flag(&p), Ok(LH_META_PAGE));
        assert_eq!(pageops::read_u16(&p, BLCKSZ - 2), Some(HASHO_PAGE_ID));
    }
}
