//! Helpers shared by the integration tests and the bench: synthetic heap
//! records built with postgres_ffi's record encoder, wrapped the way the
//! page server stores them (record bytes + block id).
#![allow(dead_code)]

use bytes::Bytes;
use pg_redo::{ClusterSettings, Page, RedoRecord, RedoTarget};
use postgres_ffi::relfile::RelFileNode;
use postgres_ffi::rmgr::RM_HEAP_ID;
use postgres_ffi::v15::info::heap;
use postgres_ffi::wal::encoder::{BlockSpec, RecordBuilder};
use postgres_ffi::{BlockNumber, Lsn, BLCKSZ};

pub const REL: RelFileNode = RelFileNode {
    spcnode: 1663,
    dbnode: 5,
    relnode: 16384,
};

pub fn target(forknum: u8, blkno: BlockNumber, checksums: bool) -> RedoTarget {
    RedoTarget {
        rel: REL,
        forknum,
        blkno,
        settings: ClusterSettings {
            data_checksums: checksums,
            wal_log_hints: false,
        },
    }
}

/// Tuple bytes after the 23-byte fixed header for a row (int, text): one
/// padding byte to t_hoff 24, the int, a short varlena.
pub fn tuple_body(i: u32, text_len: usize) -> Vec<u8> {
    let mut b = vec![0u8];
    b.extend_from_slice(&i.to_le_bytes());
    b.push(((text_len + 1) << 1 | 1) as u8);
    b.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, text_len));
    b
}

/// A Heap/INSERT (+INIT) of one tuple at `offnum` of block `blkno`.
pub fn heap_insert(
    xid: u32,
    blkno: BlockNumber,
    offnum: u16,
    init: bool,
    body: &[u8],
) -> RecordBuilder {
    let mut md = Vec::new();
    md.extend_from_slice(&offnum.to_le_bytes());
    md.push(0); // flags
    let mut data = Vec::new();
    data.extend_from_slice(&2u16.to_le_bytes()); // infomask2: 2 attributes
    data.extend_from_slice(&0x0802u16.to_le_bytes()); // HASVARWIDTH | XMAX_INVALID
    data.push(24); // t_hoff
    data.extend_from_slice(body);
    let mut blk = BlockSpec::new(0, REL, 0, blkno).with_data(Bytes::from(data));
    let mut info = heap::INSERT;
    if init {
        blk = blk.will_init();
        info |= heap::INIT_PAGE;
    }
    RecordBuilder::new(RM_HEAP_ID, info)
        .xid(xid)
        .block(blk)
        .main_data(Bytes::from(md))
}

/// Encodes `rec` as if it started at `lsn`; returns the stored form for
/// `block_id` and the record's end LSN.
pub fn stored(rec: &RecordBuilder, lsn: Lsn, block_id: u8) -> (RedoRecord, Lsn) {
    let bytes = rec.encode(Lsn(lsn.0.saturating_sub(64)));
    let end = Lsn(lsn.0 + bytes.len() as u64).align();
    (RedoRecord::wal_bytes(lsn, end, bytes, block_id), end)
}

/// A heap page with `n` tuples, built by redo of INSERT records; returns the
/// page and the next free LSN.
pub fn heap_page(n: u16, blkno: BlockNumber) -> (Box<Page>, Lsn) {
    let mut lsn = Lsn(0x0100_0000);
    let mut recs = Vec::new();
    for off in 1..=n {
        let (r, end) = stored(
            &heap_insert(
                1000 + off as u32,
                blkno,
                off,
                off == 1,
                &tuple_body(off as u32, 30),
            ),
            lsn,
            0,
        );
        recs.push(r);
        lsn = end;
    }
    let page = pg_redo::apply(&target(0, blkno, false), None, &recs).expect("build heap page");
    assert_eq!(page.len(), BLCKSZ);
    (page, lsn)
}
