//! Page records: the block references of the page rmgrs (and XLOG FPI)
//! stored per block, and the visibility-map bits heap records clear.
//!
//! Storing is split in two: making sure every relation fork the record
//! touches has its size cached (which may read the timeline, and creates a
//! missing fork), then storing the blocks, which needs no IO. A record whose
//! forks are all cached already (the rule: a batch's first record of a
//! relation loads it) takes [`Ingest::try_page_record_cached`], which does
//! the second step alone without awaiting anything; the others take
//! [`Ingest::ingest_blocks`]. Both produce the same values.

use bytes::Bytes;
use pageserver_api::reltag::{RelTag, VISIBILITYMAP_FORKNUM};
use pageserver_api::value::{Value, WalRecord as StoredRecord};
use postgres_ffi::page::{page_init, page_set_lsn, PageHeaderData};
use postgres_ffi::rmgr;
use postgres_ffi::v15::info;
use postgres_ffi::wal::{BlockRef, WalRecord};
use postgres_ffi::{Lsn, BLCKSZ};

use super::records;
use super::{rel_tag, Ingest, IngestErrorKind, Result};
use crate::walredo::native::stamp_checksum;
use crate::walredo::pages::{vm_page_of, VISIBILITYMAP_VALID_BITS};

/// One map page's change: (map page, new heap block, old heap block).
type VmPageClear = (u32, Option<u32>, Option<u32>);

/// The visibility-map changes a heap record implies: up to two map pages
/// (the new and the old heap block's), each with the heap blocks whose bits
/// it clears.
#[derive(Debug, Clone, Copy)]
pub(super) struct VmClears {
    rel: RelTag,
    flags: u8,
    pages: [Option<VmPageClear>; 2],
}

impl VmClears {
    fn pages(&self) -> impl Iterator<Item = VmPageClear> + '_ {
        self.pages.iter().flatten().copied()
    }

    fn record(&self, new: Option<u32>, old: Option<u32>) -> Value {
        Value::WalRecord(StoredRecord::ClearVisibilityMapFlags {
            new_heap_blkno: new,
            old_heap_blkno: old,
            flags: self.flags,
        })
    }
}

impl Ingest {
    /// Stores every block reference of a page record (and, for heap
    /// records, the visibility-map bits they clear) if nothing it needs
    /// must be read first; Ok(false) when it did nothing.
    pub(super) fn try_page_record_cached(&mut self, rec: &WalRecord) -> Result<bool> {
        for blk in &rec.blocks {
            // Anything unusual is left to the general path and its errors.
            let Ok(rel) = block_rel(blk) else {
                return Ok(false);
            };
            if self.m.cached_rel_size(rel).is_none() {
                return Ok(false);
            }
        }
        let rmid = rec.rmid();
        let vm = if rmid == rmgr::RM_HEAP_ID || rmid == rmgr::RM_HEAP2_ID {
            self.vm_clears(rec)?
        } else {
            None
        };
        if let Some(vm) = &vm {
            let size = self.m.cached_rel_size(vm.rel);
            if !vm
                .pages()
                .all(|(page, _, _)| size.is_some_and(|n| page < n))
            {
                return Ok(false);
            }
        }
        self.store_blocks(rec)?;
        if let Some(vm) = vm {
            for (page, new, old) in vm.pages() {
                self.m
                    .put_rel_block_cached(vm.rel, page, vm.record(new, old))?;
            }
        }
        Ok(true)
    }

    /// Stores every block reference of a page record, loading or creating
    /// the relation forks it touches first.
    pub(super) async fn ingest_blocks(&mut self, rec: &WalRecord) -> Result<()> {
        for blk in &rec.blocks {
            let rel = block_rel(blk)?;
            self.m.prepare_rel(rel).await?;
        }
        self.store_blocks(rec)
    }

    /// Stores the block references of a record whose forks are prepared.
    fn store_blocks(&mut self, rec: &WalRecord) -> Result<()> {
        let rmid = rec.rmid();
        // Heap INSERT/UPDATE+INIT and Heap2 MULTI_INSERT+INIT re-initialise
        // block 0 (Postgres also sets WILL_INIT on it; the bit is checked
        // too in case a record lacks it).
        let init_block0 = match rmid {
            rmgr::RM_HEAP_ID => rec.info() & info::heap::INIT_PAGE != 0,
            rmgr::RM_HEAP2_ID => {
                rec.header.rmgr_info() & info::heap::OPMASK == info::heap2::MULTI_INSERT
                    && rec.info() & info::heap::INIT_PAGE != 0
            }
            _ => false,
        };
        let edits_restored = pg_redo::dispatch::edits_restored_image(rmid);
        let checksums = self.checksums();
        for blk in &rec.blocks {
            let rel = block_rel(blk)?;
            // Values are serialized straight into the pending batch: an
            // image is restored there, a record copied from the WAL buffer.
            let raw = &rec.raw[..];
            match &blk.image {
                // Hash and GiST redo edit some restored pages further: keep
                // the record (it carries the image) for redo to do both.
                Some(img) if img.apply && !edits_restored => {
                    let (end_lsn, blkno) = (rec.end_lsn, blk.blkno);
                    let restore = |out: &mut Vec<u8>| {
                        Value::ser_image_header(out);
                        let start = out.len();
                        rec.restore_block_image_into(img, out).map_err(|source| {
                            IngestErrorKind::Image {
                                block_id: blk.block_id,
                                source,
                            }
                        })?;
                        finish_restored_page(&mut out[start..], end_lsn, blkno, checksums);
                        Ok::<(), IngestErrorKind>(())
                    };
                    self.m.put_rel_block_with(rel, blkno, true, restore)?;
                }
                Some(img) if img.apply => {
                    let copy = |out: &mut Vec<u8>| {
                        Value::ser_postgres_record(out, true, raw);
                        Ok::<(), IngestErrorKind>(())
                    };
                    self.m.put_rel_block_with(rel, blk.blkno, true, copy)?;
                }
                // Never store what could not be reconstructed later.
                _ if !pg_redo::is_supported(rmid, rec.info()) => {
                    return Err(IngestErrorKind::Unsupported {
                        what: format!(
                            "{} has no native redo for its block references",
                            rec.name(self.version)
                        ),
                    })
                }
                // A verification-only image (wal_consistency_checking):
                // redo ignores it and applies the record.
                _ => {
                    let will_init = blk.will_init() || (init_block0 && blk.block_id == 0);
                    let copy = |out: &mut Vec<u8>| {
                        Value::ser_postgres_record(out, will_init, raw);
                        Ok::<(), IngestErrorKind>(())
                    };
                    self.m.put_rel_block_with(rel, blk.blkno, will_init, copy)?;
                }
            }
        }
        Ok(())
    }

    /// Visibility-map bits that heap records clear without referencing the
    /// map page (`heap_xlog_*` call `visibilitymap_clear` themselves).
    pub(super) async fn ingest_heap_vm(&mut self, rec: &WalRecord) -> Result<()> {
        let Some(vm) = self.vm_clears(rec)? else {
            return Ok(());
        };
        for (page, new, old) in vm.pages() {
            self.clear_vm(&vm, page, new, old).await?;
        }
        Ok(())
    }

    /// Which visibility-map bits a heap or heap2 record clears.
    fn vm_clears(&self, rec: &WalRecord) -> Result<Option<VmClears>> {
        use records::*;
        const ALL_FROZEN: u8 = 0x02;
        let op = rec.header.rmgr_info() & info::heap::OPMASK;
        let data = &rec.main_data();
        let block = |id: u8| rec.block(id).map(|b| b.blkno);
        // (new heap block, old heap block, bits)
        let clear: Option<(Option<u32>, Option<u32>, u8)> = if rec.rmid() == rmgr::RM_HEAP_ID {
            match op {
                info::heap::INSERT => {
                    let flags = heap_flags("xl_heap_insert", data, 2)?;
                    (flags & XLH_INSERT_ALL_VISIBLE_CLEARED != 0)
                        .then(|| (block(0), None, VISIBILITYMAP_VALID_BITS))
                }
                info::heap::DELETE => {
                    let flags = heap_flags("xl_heap_delete", data, 7)?;
                    (flags & XLH_DELETE_ALL_VISIBLE_CLEARED != 0)
                        .then(|| (block(0), None, VISIBILITYMAP_VALID_BITS))
                }
                info::heap::UPDATE | info::heap::HOT_UPDATE => {
                    let flags = heap_flags("xl_heap_update", data, 7)?;
                    let new = (flags & XLH_UPDATE_NEW_ALL_VISIBLE_CLEARED != 0)
                        .then(|| block(0))
                        .flatten();
                    // The old page is block 1, or block 0 when the update
                    // stayed on one page.
                    let old = (flags & XLH_UPDATE_OLD_ALL_VISIBLE_CLEARED != 0)
                        .then(|| block(1).or(block(0)))
                        .flatten();
                    (new.is_some() || old.is_some()).then_some((new, old, VISIBILITYMAP_VALID_BITS))
                }
                info::heap::LOCK => {
                    let flags = heap_flags("xl_heap_lock", data, 7)?;
                    (flags & XLH_LOCK_ALL_FROZEN_CLEARED != 0).then(|| (block(0), None, ALL_FROZEN))
                }
                _ => None,
            }
        } else {
            match op {
                info::heap2::MULTI_INSERT => {
                    let flags = heap_flags("xl_heap_multi_insert", data, 0)?;
                    (flags & XLH_INSERT_ALL_VISIBLE_CLEARED != 0)
                        .then(|| (block(0), None, VISIBILITYMAP_VALID_BITS))
                }
                info::heap2::LOCK_UPDATED => {
                    let flags = heap_flags("xl_heap_lock_updated", data, 7)?;
                    (flags & XLH_LOCK_ALL_FROZEN_CLEARED != 0).then(|| (block(0), None, ALL_FROZEN))
                }
                _ => None,
            }
        };
        let Some((new, old, flags)) = clear else {
            return Ok(None);
        };
        let Some(first) = rec
            .blocks
            .first()
            .filter(|_| new.is_some() || old.is_some())
        else {
            return Err(IngestErrorKind::BadBlock {
                block_id: 0,
                what: "heap record clears visibility map bits but has no heap block".to_owned(),
            });
        };
        // All heap blocks of one record belong to the relation of block 0.
        let rel = rel_tag(first.rnode, VISIBILITYMAP_FORKNUM)?;
        let new_page = new.map(vm_page_of);
        let old_page = old.map(vm_page_of);
        let pages = if new_page.is_some() && new_page == old_page {
            [new_page.map(|p| (p, new, old)), None]
        } else {
            [
                new_page.map(|p| (p, new, None)),
                old_page.map(|p| (p, None, old)),
            ]
        };
        Ok(Some(VmClears { rel, flags, pages }))
    }

    /// One `ClearVisibilityMapFlags` on map page `vm_blk`. A map page that
    /// does not exist yet is created the way `vm_extend` does (initialised
    /// empty pages, whose bits are already clear).
    async fn clear_vm(
        &mut self,
        vm: &VmClears,
        vm_blk: u32,
        new: Option<u32>,
        old: Option<u32>,
    ) -> Result<()> {
        let exists = self.m.rel_size(vm.rel).await?.is_some_and(|n| vm_blk < n);
        if exists {
            self.m
                .put_rel_block(vm.rel, vm_blk, vm.record(new, old))
                .await?;
        } else {
            let checksums = self.checksums();
            self.m
                .extend_rel_to(vm.rel, vm_blk, &|b| empty_page(b, checksums))
                .await?;
            self.m
                .put_rel_block(vm.rel, vm_blk, Value::Image(empty_page(vm_blk, checksums)))
                .await?;
        }
        Ok(())
    }
}

/// The relation fork of a block reference.
fn block_rel(blk: &BlockRef) -> Result<RelTag> {
    let Some(fork) = blk.fork() else {
        return Err(IngestErrorKind::BadBlock {
            block_id: blk.block_id,
            what: format!("invalid fork number {}", blk.forknum),
        });
    };
    rel_tag(blk.rnode, fork as u8)
}

/// Turns a page just restored from a full-page image into what redo
/// leaves: LSN set to the record's end unless the page is new, and, with
/// data checksums, the checksum of block `blkno` (images carry whatever the
/// primary's buffer held, not a valid checksum).
fn finish_restored_page(page: &mut [u8], end_lsn: Lsn, blkno: u32, checksums: bool) {
    let is_new = PageHeaderData::read(page).map_or(true, |h| h.is_new());
    if !is_new {
        // The page is 8 KiB, longer than the 8-byte LSN field.
        let _ = page_set_lsn(page, end_lsn);
    }
    if checksums {
        stamp_checksum(page, blkno);
    }
}

/// An initialised empty page with no special space (`PageInit(page, BLCKSZ,
/// 0)`), as block `blkno`.
fn empty_page(blkno: u32, checksums: bool) -> Bytes {
    let mut page = [0u8; BLCKSZ];
    // Special size 0 always fits.
    let _ = page_init(&mut page, 0);
    if checksums {
        stamp_checksum(&mut page, blkno);
    }
    Bytes::copy_from_slice(&page)
}
