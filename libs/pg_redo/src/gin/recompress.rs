//! Replaying "recompress" actions on a posting-tree leaf page
//! (`ginRedoRecompress`): the block data of Gin/INSERT on a data leaf and
//! of Gin/VACUUM_DATA_LEAF_PAGE.
//!
//! A compressed leaf keeps its posting-list segments back to back from
//! [`DATA_START`] (after the page header and the 8-byte right bound) up to
//! `pd_lower`. The record lists actions on those segments by their index in
//! the page *before* the change, in ascending order:
//!
//! | action byte | follows in the record | effect |
//! |---|---|---|
//! | 1 DELETE | – | drop segment `segno` |
//! | 2 INSERT | a segment (8 + SHORTALIGN(nbytes) bytes) | put it before segment `segno` (or at the end) |
//! | 3 REPLACE | a segment | put it in place of segment `segno` |
//! | 4 ADDITEMS | nitems u16, nitems × 6-byte item pointers | merge the items into segment `segno` and re-encode it |
//!
//! Each action is preceded by `segno` u8 and the action byte; the list
//! starts with `nactions` u16. Segments the actions skip over are kept.
//! We read the old segments from a copy of the list area and write the new
//! list into the page from the start: the bytes are the same as
//! PostgreSQL's in-place copy, because until the first modified segment the
//! two positions coincide. One PostgreSQL behaviour kept on purpose: the
//! unmodified tail is carried over only once some action touched an
//! existing segment, so an action list that never does (nothing valid
//! produces one) ends the list where the last write ended.
//!
//! A leaf in the pre-9.4 format (no GIN_COMPRESSED flag; `maxoff` plain
//! item pointers from [`DATA_START`]) is first converted into one
//! compressed segment, as PostgreSQL does.

use postgres_ffi::BLCKSZ;

use super::postinglist::{self, Tid, TID_SIZE};
use super::{Opaque, DATA_START, GIN_COMPRESSED};
use crate::pageops::{self, Page};
use crate::record::Reader;

const SEGMENT_DELETE: u8 = 1;
const SEGMENT_INSERT: u8 = 2;
const SEGMENT_REPLACE: u8 = 3;
const SEGMENT_ADDITEMS: u8 = 4;

/// Applies the recompress actions in `data` to the leaf `page` (whose
/// special space `opaque` describes). Errors name what was wrong.
pub fn apply(page: &mut Page, opaque: Opaque, data: &[u8]) -> Result<(), String> {
    // The page's data area ends at the special space (which `opaque`
    // guarantees lies inside the page).
    let limit = opaque.pos();
    if opaque.flags(page) & GIN_COMPRESSED == 0 {
        convert_uncompressed(page, opaque, limit)?;
    }
    let lower = pageops::lower(page) as usize;
    if lower < DATA_START || lower > limit {
        return Err(format!(
            "posting list end pd_lower {lower} outside {DATA_START}..={limit}"
        ));
    }
    let old = page[DATA_START..lower].to_vec();
    let mut out = Writer {
        page,
        pos: DATA_START,
        limit,
    };

    let mut r = Reader::new(data);
    let nactions = r.u16().ok_or("recompress data shorter than nactions")?;
    let mut oldpos = 0usize;
    let mut segno = 0usize;
    let mut touched = false;
    for i in 0..nactions {
        let trunc = || format!("recompress action {i} of {nactions} truncated");
        let a_segno = r.u8().ok_or_else(trunc)? as usize;
        let action = r.u8().ok_or_else(trunc)?;
        let mut newseg: Option<Vec<u8>> = None;
        let mut items = Vec::new();
        match action {
            SEGMENT_INSERT | SEGMENT_REPLACE => {
                let rest = data.get(r.pos()..).unwrap_or_default();
                let size = postinglist::segment_size(rest, 0)
                    .map_err(|e| format!("action {i}: new segment: {e}"))?;
                newseg = Some(r.bytes(size).ok_or_else(trunc)?.to_vec());
            }
            SEGMENT_ADDITEMS => {
                let n = r.u16().ok_or_else(trunc)? as usize;
                let raw = r.bytes(n * TID_SIZE).ok_or_else(trunc)?;
                items = raw.chunks_exact(TID_SIZE).filter_map(Tid::read).collect();
            }
            SEGMENT_DELETE => {}
            other => return Err(format!("unexpected GIN leaf action {other}")),
        }
        if a_segno < segno {
            return Err(format!(
                "action {i} for segment {a_segno} after segment {segno}"
            ));
        }
        // Keep the segments before the one this action concerns.
        while segno < a_segno {
            if oldpos >= old.len() {
                return Err(format!(
                    "action {i} for segment {a_segno}, but the page has only {segno}"
                ));
            }
            let size = postinglist::segment_size(&old, oldpos).map_err(|e| e.to_string())?;
            out.put(&old[oldpos..oldpos + size])?;
            oldpos += size;
            segno += 1;
        }
        let at_end = oldpos >= old.len();
        let mut action = action;
        if action == SEGMENT_ADDITEMS {
            if at_end {
                return Err(format!("ADDITEMS for segment {a_segno} past the last one"));
            }
            let mut olditems = Vec::new();
            postinglist::decode_segment(&old, oldpos, &mut olditems).map_err(|e| e.to_string())?;
            let merged = postinglist::merge(&items, &olditems);
            let (seg, packed) = postinglist::compress(&merged, BLCKSZ);
            if packed != merged.len() {
                return Err(format!(
                    "merged segment of {} items does not fit in one segment",
                    merged.len()
                ));
            }
            newseg = Some(seg);
            action = SEGMENT_REPLACE;
        }
        // At the end there is no old segment (only INSERT is valid there;
        // like PostgreSQL, DELETE and REPLACE then consume nothing).
        let oldsize = if at_end {
            0
        } else {
            touched = true;
            postinglist::segment_size(&old, oldpos).map_err(|e| e.to_string())?
        };
        match action {
            SEGMENT_DELETE => {
                oldpos += oldsize;
                segno += 1;
            }
            SEGMENT_INSERT => out.put(newseg.as_deref().unwrap_or_default())?,
            _ => {
                out.put(newseg.as_deref().unwrap_or_default())?;
                oldpos += oldsize;
                segno += 1;
            }
        }
    }
    if !r.at_end() {
        return Err(format!(
            "{} bytes after the last recompress action",
            r.remaining()
        ));
    }
    if touched && oldpos < old.len() {
        out.put(&old[oldpos..])?;
    }
    let end = out.pos;
    pageops::set_lower(page, end as u16);
    Ok(())
}

/// Sequential writer of the new segment list into the page.
struct Writer<'a> {
    page: &'a mut Page,
    pos: usize,
    limit: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), String> {
        let end = self.pos + bytes.len();
        if end > self.limit {
            return Err(format!(
                "posting list grows to {} bytes, past the special space at {}",
                end - DATA_START,
                self.limit
            ));
        }
        self.page[self.pos..end].copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }
}

/// Rewrites a pre-9.4 leaf (an array of `maxoff` item pointers) as one
/// compressed segment and marks the page compressed.
fn convert_uncompressed(page: &mut Page, opaque: Opaque, limit: usize) -> Result<(), String> {
    let n = opaque.maxoff(page) as usize;
    let mut size = 0;
    if n > 0 {
        let raw = page
            .get(DATA_START..DATA_START + n * TID_SIZE)
            .ok_or_else(|| format!("{n} uncompressed items do not fit in the page"))?;
        let items: Vec<Tid> = raw.chunks_exact(TID_SIZE).filter_map(Tid::read).collect();
        let (seg, packed) = postinglist::compress(&items, BLCKSZ);
        if packed != n || DATA_START + seg.len() > limit {
            return Err(format!(
                "{n} uncompressed items do not fit in one compressed segment"
            ));
        }
        page[DATA_START..DATA_START + seg.len()].copy_from_slice(&seg);
        size = seg.len();
    }
    pageops::set_lower(page, (DATA_START + size) as u16);
    opaque.set_flags(page, opaque.flags(page) | GIN_COMPRESSED);
    opaque.set_maxoff(page, 0);
    Ok(())
}
