//! Records that change relation files outside block references: Storage
//! CREATE/TRUNCATE, Database CREATE (both strategies)/DROP, RelMap UPDATE.
//!
//! Storage TRUNCATE follows `smgr_redo`: the main fork is created if
//! missing, then each flagged fork is cut. For the FSM, the last remaining
//! leaf page would have its tail cleared (`FreeSpaceMapPrepareTruncateRel`);
//! here it is stored as a zero page instead — the FSM is a hint, a zero
//! page is valid and means "no free space known", and FSM pages are not
//! WAL-logged by Postgres either. For the visibility map the tail must be
//! exact (stale all-visible bits would be wrong after the heap grows
//! again), so the raw TRUNCATE record is stored on that map page and
//! [`crate::walredo::NativeRedo`] clears the tail
//! (`visibilitymap_prepare_truncate`).

use pageserver_api::reltag::{RelTag, FSM_FORKNUM, MAIN_FORKNUM, VISIBILITYMAP_FORKNUM};
use pageserver_api::value::{Value, WalRecord as StoredRecord};
use postgres_ffi::relmap::RELMAPPER_FILESIZE;
use postgres_ffi::v15::info;
use postgres_ffi::wal::WalRecord;

use super::records::{self, ParseError, SMGR_TRUNCATE_FSM, SMGR_TRUNCATE_HEAP, SMGR_TRUNCATE_VM};
use super::{check_tablespace, rel_tag, Ingest, IngestErrorKind, Result};
use crate::pgdatadir_mapping::{DatadirView, ZERO_PAGE};
use crate::walredo::pages::{vm_page_of, vm_truncation_is_partial};

/// Heap blocks one FSM leaf page covers (`SlotsPerFSMPage` for 8 KiB pages).
const FSM_SLOTS_PER_PAGE: u32 = 4069;
/// Levels of the FSM tree (`FSM_TREE_DEPTH` for 8 KiB pages).
const FSM_TREE_DEPTH: u32 = 3;

/// Physical block of FSM leaf page `leafno` (`fsm_logical_to_physical` for
/// a bottom-level address): the leaves are interleaved with the upper
/// levels that address them.
pub fn fsm_leaf_to_physical(leafno: u32) -> u32 {
    let mut pages: u64 = 0;
    let mut n = leafno as u64;
    for _ in 0..FSM_TREE_DEPTH {
        pages += n + 1;
        n /= FSM_SLOTS_PER_PAGE as u64;
    }
    // At most 3 * 2^32 before the division; the result for any valid heap
    // block number is far below u32::MAX.
    u32::try_from(pages - 1).unwrap_or(u32::MAX)
}

impl Ingest {
    pub(super) async fn ingest_smgr(&mut self, rec: &WalRecord, op: u8) -> Result<()> {
        if op == info::smgr::CREATE {
            let (rnode, forknum) = records::parse_smgr_create(rec.main_data())?;
            let fork = u8::try_from(forknum)
                .ok()
                .filter(|f| *f <= postgres_ffi::relfile::MAX_FORKNUM)
                .ok_or_else(|| ParseError {
                    what: "xl_smgr_create",
                    detail: format!("invalid fork number {forknum}"),
                })?;
            self.m.create_rel_if_missing(rel_tag(rnode, fork)?).await?;
            return Ok(());
        }
        let t = records::parse_smgr_truncate(rec.main_data()).map_err(|detail| ParseError {
            what: "xl_smgr_truncate",
            detail,
        })?;
        check_tablespace(t.spcnode)?;
        let rel = |fork| RelTag::new(t.spcnode, t.dbnode, t.relnode, fork);
        let main_size = self.m.create_rel_if_missing(rel(MAIN_FORKNUM)).await?;
        // Truncation never extends (mdtruncate ignores a larger size in
        // recovery).
        if t.flags & SMGR_TRUNCATE_HEAP != 0 && t.blkno < main_size {
            self.m
                .put_rel_truncation(rel(MAIN_FORKNUM), t.blkno)
                .await?;
        }
        if t.flags & SMGR_TRUNCATE_FSM != 0 {
            if let Some(fsm_size) = self.m.rel_size(rel(FSM_FORKNUM)).await? {
                let leaf = t.blkno / FSM_SLOTS_PER_PAGE;
                let first_removed_slot = t.blkno % FSM_SLOTS_PER_PAGE;
                let phys = fsm_leaf_to_physical(leaf);
                let new_size = if first_removed_slot > 0 {
                    (phys < fsm_size).then_some(phys + 1)
                } else {
                    Some(phys)
                };
                if let Some(new_size) = new_size.filter(|n| *n < fsm_size) {
                    if first_removed_slot > 0 {
                        self.m
                            .put_rel_block(rel(FSM_FORKNUM), phys, Value::Image(ZERO_PAGE.clone()))
                            .await?;
                    }
                    self.m
                        .put_rel_truncation(rel(FSM_FORKNUM), new_size)
                        .await?;
                }
            }
        }
        if t.flags & SMGR_TRUNCATE_VM != 0 {
            if let Some(vm_size) = self.m.rel_size(rel(VISIBILITYMAP_FORKNUM)).await? {
                let trunc_block = vm_page_of(t.blkno);
                let new_size = if vm_truncation_is_partial(t.blkno) {
                    (trunc_block < vm_size).then_some(trunc_block + 1)
                } else {
                    Some(trunc_block)
                };
                if let Some(new_size) = new_size.filter(|n| *n <= vm_size) {
                    if vm_truncation_is_partial(t.blkno) {
                        let value = Value::WalRecord(StoredRecord::Postgres {
                            will_init: false,
                            rec: bytes::Bytes::copy_from_slice(&rec.raw),
                        });
                        self.m
                            .put_rel_block(rel(VISIBILITYMAP_FORKNUM), trunc_block, value)
                            .await?;
                    }
                    if new_size < vm_size {
                        self.m
                            .put_rel_truncation(rel(VISIBILITYMAP_FORKNUM), new_size)
                            .await?;
                    }
                }
            }
        }
        Ok(())
    }

    pub(super) async fn ingest_dbase(&mut self, rec: &WalRecord, op: u8) -> Result<()> {
        match op {
            info::dbase::CREATE_FILE_COPY => {
                let (db, spc, src_db, src_spc) =
                    records::parse_dbase_create_file_copy(rec.main_data())?;
                check_tablespace(spc)?;
                check_tablespace(src_spc)?;
                self.copy_database(src_spc, src_db, spc, db).await
            }
            info::dbase::CREATE_WAL_LOG => {
                // Only the directory (and PG_VERSION): relations follow as
                // Storage CREATE + XLOG FPI records, the map as RelMap UPDATE.
                let (db, spc) = records::parse_dbase_create_wal_log(rec.main_data())?;
                check_tablespace(spc)?;
                self.m.put_db_creation(spc, db).await?;
                Ok(())
            }
            _ => {
                let (db, spcs) = records::parse_dbase_drop(rec.main_data())?;
                for spc in spcs {
                    check_tablespace(spc)?;
                    let n = self.m.drop_db(spc, db).await?;
                    tracing::info!(spc, db, forks = n, lsn = %rec.lsn, "dropped database");
                }
                Ok(())
            }
        }
    }

    /// CREATE DATABASE ... STRATEGY FILE_COPY: the destination becomes a
    /// copy of the source database directory as of this record (every
    /// relation fork page by page, and the relmapper file). Source pages are
    /// reconstructed at the last committed LSN, which the caller made the
    /// previous record's end.
    async fn copy_database(&mut self, src_spc: u32, src_db: u32, spc: u32, db: u32) -> Result<()> {
        // Postgres removes an existing destination directory first.
        if self.m.db_directory().await?.dbs.contains_key(&(spc, db)) {
            self.m.drop_db(spc, db).await?;
        }
        let src_dbs = self.m.db_directory().await?;
        let Some(&src_has_relmap) = src_dbs.dbs.get(&(src_spc, src_db)) else {
            return Err(IngestErrorKind::Inconsistent {
                what: format!(
                    "CREATE DATABASE copies database {src_spc}/{src_db}, which does not exist"
                ),
            });
        };
        // Make sure no page of this batch is pending: the source is read
        // from committed data.
        self.m
            .committed_view_for_pages("CREATE DATABASE (FILE_COPY)")?;
        let tl = std::sync::Arc::clone(self.m.timeline());
        let view = DatadirView::new(&tl, self.m.committed_lsn());

        self.m.put_db_creation(spc, db).await?;
        if src_has_relmap {
            let map = view.relmap_file(src_spc, src_db).await?.ok_or_else(|| {
                IngestErrorKind::Inconsistent {
                    what: format!("database {src_spc}/{src_db} has no relmapper file"),
                }
            })?;
            self.m.put_relmap_file(spc, db, map).await?;
        }
        let src_rels = self.m.list_rels(src_spc, src_db).await?;
        let mut pages = 0u64;
        for src in &src_rels {
            let nblocks = self.m.rel_size(*src).await?.unwrap_or(0);
            let dst = RelTag::new(spc, db, src.relnode, src.forknum);
            self.m.put_rel_creation(dst, nblocks).await?;
            let chunk = tl.resources.settings.max_get_vectored_keys.max(1) as u32;
            let mut blk = 0;
            while blk < nblocks {
                let end = nblocks.min(blk.saturating_add(chunk));
                let images = view.rel_pages_unchecked(*src, blk..end).await?;
                for (i, page) in images.into_iter().enumerate() {
                    self.m.put_rel_page_image(dst, blk + i as u32, page)?;
                }
                pages += (end - blk) as u64;
                blk = end;
            }
        }
        tracing::info!(
            src_spc,
            src_db,
            spc,
            db,
            forks = src_rels.len(),
            pages,
            "copied database"
        );
        Ok(())
    }

    pub(super) async fn ingest_relmap(&mut self, rec: &WalRecord) -> Result<()> {
        let (db, spc, map) = records::parse_relmap_update(rec.main_data())?;
        check_tablespace(spc)?;
        if map.len() != RELMAPPER_FILESIZE {
            return Err(ParseError {
                what: "xl_relmap_update",
                detail: format!("map is {} bytes, expected {RELMAPPER_FILESIZE}", map.len()),
            }
            .into());
        }
        self.m.put_relmap_file(spc, db, map).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsm_addressing() {
        // Leaf 0 is block 2 (root, one level-1 page, then the leaf).
        assert_eq!(fsm_leaf_to_physical(0), 2);
        assert_eq!(fsm_leaf_to_physical(1), 3);
        // After 4069 leaves a new level-1 page is interleaved.
        assert_eq!(fsm_leaf_to_physical(4068), 4070);
        assert_eq!(fsm_leaf_to_physical(4069), 4072);
    }
}
