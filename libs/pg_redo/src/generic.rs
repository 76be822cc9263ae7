//! Redo for the Generic resource manager (rmgr 20, `generic_redo`): the
//! generic WAL API (`GenericXLogStart` … `GenericXLogFinish`) that contrib
//! bloom and other extensions use to log arbitrary page changes without a
//! resource manager of their own.
//!
//! There is one record type (info 0x00) with up to four block references
//! and no main data. Each block is either
//! - logged as a forced full-page image (`GENERIC_XLOG_FULL_IMAGE`, new or
//!   rewritten pages): the dispatcher restores it and this module never
//!   sees it, or
//! - logged as a delta in the block data: a sequence of fragments
//!
//! | field | bytes |
//! |---|---|
//! | offset | u16: first page byte the fragment replaces |
//! | length | u16: number of bytes |
//! | data | `length` bytes, copied to `page[offset..offset + length]` |
//!
//! The primary computes the delta only over the used parts of the page
//! (`[0, pd_lower)` and `[pd_upper, BLCKSZ)`); the page it logged had zeroes
//! in between, so after the fragments redo zeroes `pd_lower..pd_upper` to get
//! the same bytes. The mask (`generic_mask`) hides only LSN, checksum and
//! that free space.
//!
//! Invariants: a fragment must lie inside the page and be complete; the
//! resulting `pd_lower ≤ pd_upper ≤ BLCKSZ` (PostgreSQL would write out of
//! bounds otherwise). Any violation is a typed error and the page is to be
//! discarded.

use postgres_ffi::v15::info::generic;
use postgres_ffi::{BlockNumber, BLCKSZ};

use crate::dispatch::prepare_existing;
use crate::error::RedoError;
use crate::mask;
use crate::pageops::{self, Page};
use crate::record::Ctx;

/// `MAX_GENERIC_XLOG_PAGES`: block ids 0..4.
pub const MAX_GENERIC_XLOG_PAGES: u8 = 4;

/// Whether the record type `info` (rmgr bits of xl_info) has native redo.
pub fn supports(info: u8) -> bool {
    info == generic::GENERIC
}

/// Redo of one block reference (not restored from an image): apply the
/// delta, then clear the free space the delta does not describe.
pub fn redo(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    if ctx.blk.block_id >= MAX_GENERIC_XLOG_PAGES {
        return Err(ctx.malformed(format!(
            "block id {} exceeds the generic WAL limit of {MAX_GENERIC_XLOG_PAGES} pages",
            ctx.blk.block_id
        )));
    }
    if !prepare_existing(ctx, page)? {
        return Ok(());
    }
    apply_delta(ctx, page)?;
    let (lower, upper) = (pageops::lower(page) as usize, pageops::upper(page) as usize);
    if lower > upper || upper > BLCKSZ {
        return Err(ctx.malformed(format!(
            "delta leaves an insane page: pd_lower {lower}, pd_upper {upper}"
        )));
    }
    page[lower..upper].fill(0);
    pageops::set_lsn(page, ctx.end_lsn());
    Ok(())
}

/// Copies every fragment of the block data into the page.
fn apply_delta(ctx: &Ctx<'_>, page: &mut Page) -> Result<(), RedoError> {
    let mut r = ctx.block_data();
    while !r.at_end() {
        let at = r.pos();
        let (offset, length) = match (r.u16(), r.u16()) {
            (Some(o), Some(l)) => (o as usize, l as usize),
            _ => return Err(ctx.malformed(format!("truncated fragment header at delta byte {at}"))),
        };
        let bytes = r.bytes(length).ok_or_else(|| {
            ctx.malformed(format!(
                "fragment at delta byte {at} announces {length} bytes, {} left",
                r.remaining()
            ))
        })?;
        if !pageops::write_at(page, offset, bytes) {
            return Err(ctx.malformed(format!(
                "fragment {offset}+{length} runs past the end of the page"
            )));
        }
    }
    Ok(())
}

/// PostgreSQL's `generic_mask`: LSN, checksum and the free space.
pub fn mask(page: &mut Page, _blkno: BlockNumber) {
    mask::mask_lsn_and_checksum(page);
    mask::mask_unused_space(page);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use postgres_ffi::relfile::RelFileNode;
    use postgres_ffi::rmgr::RM_GENERIC_ID;
    use postgres_ffi::wal::encoder::{BlockSpec, RecordBuilder};
    use postgres_ffi::wal::record::decode_record;
    use postgres_ffi::{Lsn, PgMajorVersion};

    use crate::record::ClusterSettings;

    const REL: RelFileNode = RelFileNode {
        spcnode: 1663,
        dbnode: 5,
        relnode: 16400,
    };

    fn fragment(offset: u16, bytes: &[u8]) -> Vec<u8> {
        let mut v = offset.to_le_bytes().to_vec();
        v.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        v.extend_from_slice(bytes);
        v
    }

    fn run(page: &mut Page, delta: Vec<u8>) -> Result<(), RedoError> {
        let rec = RecordBuilder::new(RM_GENERIC_ID, 0)
            .block(BlockSpec::new(0, REL, 0, 1).with_data(Bytes::from(delta)));
        let lsn = Lsn(0x0100_0000);
        let bytes = rec.encode(Lsn(0));
        let end = Lsn(lsn.0 + bytes.len() as u64).align();
        let rec = decode_record(bytes, lsn, end, PgMajorVersion::V15.wal_format()).unwrap();
        let ctx = Ctx {
            rec: &rec,
            blk: &rec.blocks[0],
            settings: &ClusterSettings::default(),
        };
        redo(&ctx, page)
    }

    #[test]
    fn fragments_applied_and_hole_zeroed() {
        let mut page = [0u8; BLCKSZ];
        pageops::page_init(&mut page, 8).unwrap();
        page[100] = 0xAA; // stale byte in the free space
        let mut delta = fragment(12, &40u16.to_le_bytes()); // pd_lower 24 → 40
        delta.extend(fragment(8186, b"hello")); // special space
        delta.extend(fragment(5000, b"gone")); // free space: zeroed again
        run(&mut page, delta).unwrap();
        assert_eq!(pageops::lower(&page), 40);
        assert_eq!(&page[8186..8191], b"hello");
        assert_eq!(&page[5000..5004], &[0; 4]);
        assert_eq!(page[100], 0);
        assert!(pageops::lsn(&page) > Lsn(0x0100_0000));
    }

    #[test]
    fn bad_deltas_are_errors() {
        let mut base = [0u8; BLCKSZ];
        pageops::page_init(&mut base, 8).unwrap();
        for delta in [
            vec![1u8, 0, 3],                    // truncated header
            fragment(8190, b"abc"),             // past the page end
            vec![0, 1, 10, 0, 1, 2],            // fewer bytes than announced
            fragment(14, &10u16.to_le_bytes()), // pd_upper below pd_lower
        ] {
            let mut page = base;
            assert!(run(&mut page, delta).is_err());
        }
        let mut new = [0u8; BLCKSZ];
        assert!(matches!(
            run(&mut new, fragment(30, b"x")),
            Err(RedoError::MissingBase { .. })
        ));
    }
}
