//! Conformance check against PostgreSQL's own page images.
//!
//! With `wal_consistency_checking = 'all'`, every block reference of a
//! record from an rmgr that has a mask carries an image of the page *after*
//! the record (without BKPIMAGE_APPLY). [`Verifier`] walks the WAL in order,
//! keeps the latest state of every block it has seen, and for each such
//! block applies our redo to the previous state and compares the result with
//! the image after both are masked the way PostgreSQL masks them.
//!
//! Where a block's state comes from: an image with APPLY (full-page write),
//! a WILL_INIT record, or — when we had no state and the record carried a
//! verification image — that image (the block is then counted as skipped, not
//! checked). After a mismatch, unsupported record or redo error the state is
//! reset to the primary's image so one problem does not cascade. Non-page
//! records that remove pages from the picture (Storage/TRUNCATE, transaction
//! commits/aborts dropping relations, Database/DROP) prune the state; the
//! visibility map bits heap records clear are applied to tracked VM pages.
//!
//! Besides PostgreSQL's masked comparison, VM pages get a stricter one (the
//! heap mask blanks the whole bitmap as free space): matched VM pages whose
//! bitmaps differ are counted in [`Report::vm_bitmap_mismatched`].
//!
//! [`verify_wal_dir`] runs this over a `pg_wal` directory; the `pagectl
//! wal-verify` CLI prints [`Report::mismatches`] and then
//! [`Report::to_json`] as its last line.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use postgres_ffi::relfile::{RelFileNode, FSM_FORKNUM, MAIN_FORKNUM, VISIBILITYMAP_FORKNUM};
use postgres_ffi::rmgr::{RM_DBASE_ID, RM_SMGR_ID, RM_XACT_ID};
use postgres_ffi::v15::controlfile::ControlFileData;
use postgres_ffi::v15::info::{dbase, smgr, xact};
use postgres_ffi::wal::segment::is_wal_file_name;
use postgres_ffi::wal::{
    BlockImage, BlockRef, WalDecoderConfig, WalDirError, WalDirReader, WalRecord, WalSegmentSize,
    XLR_RMGR_INFO_MASK,
};
use postgres_ffi::{BlockNumber, Lsn, PgMajorVersion, TimeLineId, BLCKSZ};
use serde::Serialize;

use crate::error::RedoError;
use crate::mask::{comparison_mask, first_difference};
use crate::pageops::{self, Page, SIZE_OF_PAGE_HEADER};
use crate::record::{ClusterSettings, Reader, RedoRecord, RedoTarget};
use crate::{apply_in_place, is_supported, vm};

/// Per record type counts, as serialised in the JSON report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RecordCounts {
    pub matched: u64,
    pub mismatched: u64,
    pub unsupported: u64,
}

/// Time spent in redo of one record type (with [`VerifyOptions::time_redo`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RedoTiming {
    /// Block redos timed (one record applied to one page).
    pub blocks: u64,
    pub nanos: u64,
}

/// One block whose reconstruction differs from the primary's image (or
/// could not be computed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub lsn: Lsn,
    /// `Rmgr/TYPE`.
    pub record: String,
    pub rel: RelFileNode,
    pub forknum: u8,
    pub blkno: BlockNumber,
    /// First differing byte after masking; `None` when redo failed.
    pub first_diff: Option<usize>,
    /// The redo error, if redo failed.
    pub error: Option<String>,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "mismatch at {} {} rel {} fork {} blk {}",
            self.lsn, self.record, self.rel, self.forknum, self.blkno
        )?;
        if let Some(off) = self.first_diff {
            write!(f, ": first difference at byte {off}")?;
        }
        if let Some(e) = &self.error {
            write!(f, ": {e}")?;
        }
        Ok(())
    }
}

/// Outcome of a verification run. Serialises (via [`Report::to_json`]) to
/// exactly `{"records", "blocks_checked", "matched", "mismatched",
/// "unsupported", "by_record"}`; the other fields are diagnostics.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// WAL records read in the range.
    pub records: u64,
    /// Blocks with a verification image that we tried to reproduce
    /// (matched + mismatched + unsupported).
    pub blocks_checked: u64,
    pub matched: u64,
    pub mismatched: u64,
    pub unsupported: u64,
    /// Keyed by `Rmgr/TYPE`.
    pub by_record: BTreeMap<String, RecordCounts>,
    /// Verification images of blocks whose previous state was unknown.
    #[serde(skip)]
    pub skipped_no_base: u64,
    /// VM pages that matched under the heap mask but whose bitmaps differ.
    #[serde(skip)]
    pub vm_bitmap_mismatched: u64,
    /// The first [`VerifyOptions::max_listed`] mismatches.
    #[serde(skip)]
    pub mismatches: Vec<Mismatch>,
    /// LSN of the first and last record read.
    #[serde(skip)]
    pub first_lsn: Option<Lsn>,
    #[serde(skip)]
    pub last_lsn: Option<Lsn>,
    /// A WAL decoding error other than the normal end of WAL, if reading
    /// stopped on one.
    #[serde(skip)]
    pub wal_error: Option<String>,
    /// Per record type redo time, when [`VerifyOptions::time_redo`] is set.
    #[serde(skip)]
    pub redo_timing: BTreeMap<String, RedoTiming>,
}

impl Report {
    /// The one-line JSON form.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    fn counts(&mut self, name: &str) -> &mut RecordCounts {
        self.by_record.entry(name.to_owned()).or_default()
    }

    /// Matched count of one record type (0 if absent).
    pub fn matched_of(&self, name: &str) -> u64 {
        self.by_record.get(name).map_or(0, |c| c.matched)
    }
}

/// What to verify.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Count records starting here (earlier records of the same segment are
    /// still replayed to build page state).
    pub start: Option<Lsn>,
    /// Stop before the first record starting at or after this LSN.
    pub end: Option<Lsn>,
    /// Cluster settings; read from `../global/pg_control` when `None`.
    pub settings: Option<ClusterSettings>,
    /// How many mismatches to keep in [`Report::mismatches`].
    pub max_listed: usize,
    /// Time every block redo, per record type ([`Report::redo_timing`]).
    /// The clock reads add about 40 ns to each timed redo.
    pub time_redo: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            start: None,
            end: None,
            settings: None,
            max_listed: 100,
            time_redo: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no WAL segment files in {0}")]
    NoSegments(PathBuf),
    #[error("{path}: {len} bytes is not a valid WAL segment size")]
    BadSegmentSize { path: PathBuf, len: u64 },
    #[error("no WAL segment in the directory holds start LSN {0}")]
    StartNotFound(Lsn),
    #[error(transparent)]
    Wal(#[from] WalDirError),
}

/// Verifies the WAL in `dir` (a `pg_wal` directory), records in
/// `[start, end)`; see the module docs.
pub fn verify_wal_dir(
    dir: &Path,
    start: Option<Lsn>,
    end: Option<Lsn>,
) -> Result<Report, VerifyError> {
    verify_wal_dir_with(
        dir,
        &VerifyOptions {
            start,
            end,
            ..Default::default()
        },
    )
}

/// [`verify_wal_dir`] with all options.
pub fn verify_wal_dir_with(dir: &Path, opts: &VerifyOptions) -> Result<Report, VerifyError> {
    let (seg, tli, segnos) = find_segments(dir)?;
    let first = match opts.start {
        Some(start) => {
            let s = seg.segno(start);
            if !segnos.contains(&s) {
                return Err(VerifyError::StartNotFound(start));
            }
            s
        }
        None => segnos.iter().copied().min().unwrap_or(0),
    };
    let settings = opts
        .settings
        .unwrap_or_else(|| settings_from_control_file(dir));
    let cfg = WalDecoderConfig::new(PgMajorVersion::V15, seg);
    let mut reader = WalDirReader::new(dir, tli, seg.segment_start(first), cfg)?;
    let mut v = Verifier::new(settings, opts);
    loop {
        match reader.next_record() {
            Ok(Some(rec)) => {
                if !v.process(rec) {
                    break;
                }
            }
            Ok(None) => break,
            Err(WalDirError::Decode(e)) if e.is_end_of_wal() => break,
            Err(e) => {
                v.report.wal_error = Some(e.to_string());
                break;
            }
        }
    }
    Ok(v.finish())
}

/// Segment size (from the file size), the newest timeline, and its segments.
fn find_segments(dir: &Path) -> Result<(WalSegmentSize, TimeLineId, Vec<u64>), VerifyError> {
    let io = |source| VerifyError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        if let Some(name) = entry.file_name().to_str() {
            if is_wal_file_name(name) {
                names.push(name.to_owned());
            }
        }
    }
    names.sort();
    let first = names
        .first()
        .ok_or_else(|| VerifyError::NoSegments(dir.to_owned()))?;
    let path = dir.join(first);
    let len = fs::metadata(&path)
        .map_err(|source| VerifyError::Io {
            path: path.clone(),
            source,
        })?
        .len();
    let seg = u32::try_from(len)
        .ok()
        .and_then(|l| WalSegmentSize::new(l).ok())
        .ok_or(VerifyError::BadSegmentSize { path, len })?;
    let parsed: Vec<(TimeLineId, u64)> = names
        .iter()
        .filter_map(|n| seg.parse_file_name(n).ok())
        .collect();
    let tli = parsed.iter().map(|p| p.0).max().unwrap_or(1);
    let segnos = parsed.iter().filter(|p| p.0 == tli).map(|p| p.1).collect();
    Ok((seg, tli, segnos))
}

/// Data checksums / wal_log_hints from the data directory's pg_control
/// (`<dir>/../global/pg_control`); defaults (off) if it cannot be read.
/// They only affect masked fields, so a wrong guess cannot cause mismatches.
fn settings_from_control_file(dir: &Path) -> ClusterSettings {
    let path = dir.join("..").join("global").join("pg_control");
    fs::read(path)
        .ok()
        .and_then(|b| ControlFileData::decode(&b).ok())
        .map(|cf| ClusterSettings {
            data_checksums: cf.data_checksum_version != 0,
            wal_log_hints: cf.wal_log_hints,
        })
        .unwrap_or_default()
}

type Key = (RelFileNode, u8, BlockNumber);

/// Replays records and compares reconstructed blocks; feed it records in
/// LSN order with [`Verifier::process`].
pub struct Verifier {
    pages: BTreeMap<Key, Box<Page>>,
    settings: ClusterSettings,
    start: Lsn,
    end: Option<Lsn>,
    max_listed: usize,
    time_redo: bool,
    pub report: Report,
}

fn zero_page() -> Box<Page> {
    Box::new([0u8; BLCKSZ])
}

impl Verifier {
    pub fn new(settings: ClusterSettings, opts: &VerifyOptions) -> Self {
        Verifier {
            pages: BTreeMap::new(),
            settings,
            start: opts.start.unwrap_or(Lsn(0)),
            end: opts.end,
            max_listed: opts.max_listed,
            time_redo: opts.time_redo,
            report: Report::default(),
        }
    }

    pub fn finish(self) -> Report {
        self.report
    }

    /// Number of blocks whose state is currently tracked.
    pub fn tracked_pages(&self) -> usize {
        self.pages.len()
    }

    /// Processes one record; `false` once the end of the range is reached.
    pub fn process(&mut self, rec: WalRecord) -> bool {
        if self.end.is_some_and(|end| rec.lsn >= end) {
            return false;
        }
        let counting = rec.lsn >= self.start;
        if counting {
            self.report.records += 1;
            self.report.first_lsn.get_or_insert(rec.lsn);
            self.report.last_lsn = Some(rec.lsn);
        }
        let rec = Arc::new(rec);
        self.non_page_effects(&rec);
        for c in vm::implied_vm_clears(&rec).unwrap_or_default() {
            // An untracked VM page may exist on disk with unknown bits:
            // leave it unknown rather than invent one.
            if let Some(p) = self
                .pages
                .get_mut(&(c.rel, VISIBILITYMAP_FORKNUM, c.vm_blkno))
            {
                let _ = vm::clear_vm_bits(p, &[c.heap_blkno], c.flags);
            }
        }
        for blk in &rec.blocks {
            self.block(&rec, blk, counting);
        }
        true
    }

    /// `apply_in_place`, timed under the record's name when asked.
    fn redo(
        &mut self,
        rec: &WalRecord,
        target: &RedoTarget,
        page: &mut Page,
        one: &[RedoRecord],
    ) -> Result<(), RedoError> {
        if !self.time_redo {
            return apply_in_place(target, page, one);
        }
        let t = std::time::Instant::now();
        let r = apply_in_place(target, page, one);
        let nanos = t.elapsed().as_nanos() as u64;
        let timing = self
            .report
            .redo_timing
            .entry(rec.name(PgMajorVersion::V15))
            .or_default();
        timing.blocks += 1;
        timing.nanos += nanos;
        r
    }

    fn target(&self, blk: &BlockRef) -> RedoTarget {
        RedoTarget {
            rel: blk.rnode,
            forknum: blk.forknum,
            blkno: blk.blkno,
            settings: self.settings,
        }
    }

    fn block(&mut self, rec: &Arc<WalRecord>, blk: &BlockRef, counting: bool) {
        let key = (blk.rnode, blk.forknum, blk.blkno);
        let supported = is_supported(rec.rmid(), rec.info());
        let target = self.target(blk);
        let one = [RedoRecord::decoded(rec.clone(), blk.block_id)];
        match &blk.image {
            Some(img) if img.apply => {
                let mut page = self.pages.remove(&key).unwrap_or_else(zero_page);
                let redone = supported && self.redo(rec, &target, &mut page, &one).is_ok();
                if !redone {
                    // Unknown rmgr: track the restored image as a plain FPI.
                    match rec.restore_block_image(img) {
                        Ok(p) => {
                            page = p;
                            if !pageops::is_new(&page) {
                                pageops::set_lsn(&mut page, rec.end_lsn);
                            }
                        }
                        Err(_) => return,
                    }
                }
                self.pages.insert(key, page);
            }
            Some(img) => self.check(rec, blk, key, &target, &one, img, supported, counting),
            None => {
                if !supported {
                    self.pages.remove(&key);
                    return;
                }
                let page = match self.pages.remove(&key) {
                    Some(p) => Some(p),
                    None if blk.will_init() => Some(zero_page()),
                    None => None,
                };
                if let Some(mut page) = page {
                    if self.redo(rec, &target, &mut page, &one).is_ok() {
                        self.pages.insert(key, page);
                    }
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn check(
        &mut self,
        rec: &Arc<WalRecord>,
        blk: &BlockRef,
        key: Key,
        target: &RedoTarget,
        one: &[RedoRecord],
        img: &BlockImage,
        supported: bool,
        counting: bool,
    ) {
        let name = rec.name(PgMajorVersion::V15);
        let primary = match rec.restore_block_image(img) {
            Ok(p) => p,
            Err(e) => {
                self.pages.remove(&key);
                if counting {
                    self.mismatch(rec, blk, &name, None, Some(format!("bad image: {e}")));
                }
                return;
            }
        };
        if !supported {
            if counting {
                self.report.unsupported += 1;
                self.report.blocks_checked += 1;
                self.report.counts(&name).unsupported += 1;
            }
            self.pages.insert(key, primary);
            return;
        }
        let base = self.pages.remove(&key);
        if base.is_none() && !blk.will_init() {
            if counting {
                self.report.skipped_no_base += 1;
            }
            self.pages.insert(key, primary);
            return;
        }
        let mut page = base.unwrap_or_else(zero_page);
        let result = self.redo(rec, target, &mut page, one);
        if !counting {
            self.pages
                .insert(key, if result.is_ok() { page } else { primary });
            return;
        }
        match result {
            Ok(()) => {
                let (mut ours, mut theirs) = (*page, *primary);
                if let Some(mask) = comparison_mask(rec.rmid()) {
                    mask(&mut ours, blk.blkno);
                    mask(&mut theirs, blk.blkno);
                }
                match first_difference(&ours, &theirs) {
                    None => {
                        self.report.matched += 1;
                        self.report.blocks_checked += 1;
                        self.report.counts(&name).matched += 1;
                        if blk.forknum == VISIBILITYMAP_FORKNUM
                            && page[SIZE_OF_PAGE_HEADER..] != primary[SIZE_OF_PAGE_HEADER..]
                        {
                            self.report.vm_bitmap_mismatched += 1;
                            let off = page[SIZE_OF_PAGE_HEADER..]
                                .iter()
                                .zip(&primary[SIZE_OF_PAGE_HEADER..])
                                .position(|(a, b)| a != b)
                                .map(|i| i + SIZE_OF_PAGE_HEADER);
                            self.list(rec, blk, &name, off, Some("VM bitmap differs".into()));
                        }
                        self.pages.insert(key, page);
                    }
                    Some(off) => {
                        self.mismatch(rec, blk, &name, Some(off), None);
                        self.pages.insert(key, primary);
                    }
                }
            }
            Err(RedoError::Unsupported { .. }) => {
                self.report.unsupported += 1;
                self.report.blocks_checked += 1;
                self.report.counts(&name).unsupported += 1;
                self.pages.insert(key, primary);
            }
            Err(e) => {
                self.mismatch(rec, blk, &name, None, Some(e.to_string()));
                self.pages.insert(key, primary);
            }
        }
    }

    fn mismatch(
        &mut self,
        rec: &WalRecord,
        blk: &BlockRef,
        name: &str,
        first_diff: Option<usize>,
        error: Option<String>,
    ) {
        self.report.mismatched += 1;
        self.report.blocks_checked += 1;
        self.report.counts(name).mismatched += 1;
        self.list(rec, blk, name, first_diff, error);
    }

    fn list(
        &mut self,
        rec: &WalRecord,
        blk: &BlockRef,
        name: &str,
        first_diff: Option<usize>,
        error: Option<String>,
    ) {
        if self.report.mismatches.len() < self.max_listed {
            self.report.mismatches.push(Mismatch {
                lsn: rec.lsn,
                record: name.to_owned(),
                rel: blk.rnode,
                forknum: blk.forknum,
                blkno: blk.blkno,
                first_diff,
                error,
            });
        }
    }

    /// Forgets (or trims) tracked pages that records outside block
    /// references remove or change.
    fn non_page_effects(&mut self, rec: &WalRecord) {
        let info = rec.info() & XLR_RMGR_INFO_MASK;
        let mut md = Reader::new(rec.main_data());
        if let Some(t) = vm::implied_vm_truncate(rec) {
            if let Some(last) = t.partial_page {
                if let Some(p) = self.pages.get_mut(&(t.rel, VISIBILITYMAP_FORKNUM, last)) {
                    let _ = vm::truncate_vm_page(p, t.heap_blocks);
                }
            }
            self.drop_where(|k| k.0 == t.rel && k.1 == VISIBILITYMAP_FORKNUM && k.2 >= t.vm_blocks);
        }
        match rec.rmid() {
            RM_SMGR_ID if info == smgr::TRUNCATE => {
                let parsed = (|| {
                    let nblocks = md.u32()?;
                    let rel = RelFileNode {
                        spcnode: md.u32()?,
                        dbnode: md.u32()?,
                        relnode: md.u32()?,
                    };
                    Some((nblocks, rel, md.u32()?))
                })();
                if let Some((nblocks, rel, flags)) = parsed {
                    self.truncate(rel, nblocks, flags);
                }
            }
            RM_XACT_ID => {
                let op = info & xact::OPMASK;
                let drops = matches!(
                    op,
                    xact::COMMIT | xact::ABORT | xact::COMMIT_PREPARED | xact::ABORT_PREPARED
                );
                if drops && rec.info() & xact::HAS_INFO != 0 {
                    for rel in dropped_rels(&mut md).unwrap_or_default() {
                        self.drop_where(|k| k.0 == rel);
                    }
                }
            }
            RM_DBASE_ID if info == dbase::DROP => {
                if let Some(db) = md.u32() {
                    self.drop_where(|k| k.0.dbnode == db);
                }
            }
            _ => {}
        }
    }

    fn drop_where(&mut self, f: impl Fn(&Key) -> bool) {
        self.pages.retain(|k, _| !f(k));
    }

    /// Storage/TRUNCATE: main fork to `nblocks`, FSM forgotten (its
    /// truncation is not replayed); the VM part is done in
    /// [`Self::non_page_effects`] from [`vm::implied_vm_truncate`].
    fn truncate(&mut self, rel: RelFileNode, nblocks: BlockNumber, flags: u32) {
        const HEAP: u32 = 1;
        const FSM: u32 = 4;
        if flags & HEAP != 0 {
            self.drop_where(|k| k.0 == rel && k.1 == MAIN_FORKNUM && k.2 >= nblocks);
        }
        if flags & FSM != 0 {
            self.drop_where(|k| k.0 == rel && k.1 == FSM_FORKNUM);
        }
    }
}

/// Relations a commit/abort record drops (`XACT_XINFO_HAS_RELFILENODES`).
fn dropped_rels(md: &mut Reader<'_>) -> Option<Vec<RelFileNode>> {
    const HAS_DBINFO: u32 = 1 << 0;
    const HAS_SUBXACTS: u32 = 1 << 1;
    const HAS_RELFILENODES: u32 = 1 << 2;
    md.bytes(8)?; // xact_time
    let xinfo = md.u32()?;
    if xinfo & HAS_DBINFO != 0 {
        md.bytes(8)?;
    }
    if xinfo & HAS_SUBXACTS != 0 {
        let n = md.u32()? as usize;
        md.bytes(n.checked_mul(4)?)?;
    }
    if xinfo & HAS_RELFILENODES == 0 {
        return Some(Vec::new());
    }
    let n = md.u32()? as usize;
    let mut out = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        out.push(RelFileNode {
            spcnode: md.u32()?,
            dbnode: md.u32()?,
            relnode: md.u32()?,
        });
    }
    Some(out)
}
