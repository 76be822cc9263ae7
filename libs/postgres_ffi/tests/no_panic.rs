//! Property tests: every parser in the crate takes arbitrary bytes or text
//! without panicking, and the formats with an encoder round-trip.
//!
//! The WAL stream decoder and pglz have their own property tests next to
//! their code; this file covers the other entry points a page server feeds
//! with external input (files from a data directory, WAL record bodies).

use bytes::Bytes;
use proptest::prelude::*;

use postgres_ffi::page::{item_ids, read_item_id, verify_page, PageHeaderData};
use postgres_ffi::relfile::{parse_relation_path, relation_path, ForkNumber, RelFileNode};
use postgres_ffi::relmap::{RelMapFile, RelMapping};
use postgres_ffi::v15::controlfile::{CheckPoint, ControlFileData};
use postgres_ffi::v15::WAL_FORMAT;
use postgres_ffi::wal::page_header::XLogPageHeader;
use postgres_ffi::wal::record::{compute_record_crc, decode_record, XLogRecordHeader};
use postgres_ffi::wal::timeline::TimelineHistory;
use postgres_ffi::wal::{WalSegmentSize, SIZE_OF_XLOG_RECORD};
use postgres_ffi::{slru, twophase, FullTransactionId, Lsn, PgMajorVersion, BLCKSZ};

const V: PgMajorVersion = PgMajorVersion::V15;

/// A record with the given body and a correct header CRC, so decoding gets
/// past the checksum and exercises the body parser.
fn record_with_body(body: &[u8], rmid: u8, info: u8) -> Bytes {
    let mut h = XLogRecordHeader {
        tot_len: (SIZE_OF_XLOG_RECORD + body.len()) as u32,
        rmid,
        info,
        ..Default::default()
    };
    let mut v = h.encode().to_vec();
    v.extend_from_slice(body);
    h.crc = compute_record_crc(&v).unwrap();
    v[..SIZE_OF_XLOG_RECORD].copy_from_slice(&h.encode());
    Bytes::from(v)
}

/// Record bodies made of plausible fragments, so many get deep into the
/// block header parser.
fn body_strategy() -> impl Strategy<Value = Vec<u8>> {
    let fragment = prop_oneof![
        // block header: id, fork_flags, data_len
        (0u8..=33, any::<u8>(), 0u16..64).prop_map(|(id, f, l)| {
            let mut v = vec![id, f];
            v.extend_from_slice(&l.to_le_bytes());
            v
        }),
        // image header: bimg_len, hole_offset, bimg_info
        (0u16..9000, 0u16..9000, any::<u8>()).prop_map(|(l, o, i)| {
            let mut v = l.to_le_bytes().to_vec();
            v.extend_from_slice(&o.to_le_bytes());
            v.push(i);
            v
        }),
        Just(vec![0xFF, 4]),
        Just(vec![0xFE, 4, 0, 0, 0]),
        Just(vec![0xFD, 1, 0]),
        Just(vec![0xFC, 1, 0, 0, 0]),
        proptest::collection::vec(any::<u8>(), 0..40),
    ];
    proptest::collection::vec(fragment, 0..8).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn record_bodies(body in body_strategy(), rmid in any::<u8>(), info in any::<u8>()) {
        let raw = record_with_body(&body, rmid, info);
        if let Ok(rec) = decode_record(raw, Lsn(0x1000028), Lsn(0x1000100), &WAL_FORMAT) {
            // Whatever decodes must be internally consistent.
            let payload: usize = rec.blocks.iter().map(|b| {
                rec.block_data(b).len() + b.image.as_ref().map_or(0, |i| i.stored_len())
            }).sum::<usize>() + rec.main_data().len();
            prop_assert!(payload <= body.len());
            for b in &rec.blocks {
                let _ = rec.restore_image(b.block_id);
            }
            let _ = rec.name(V);
        }
    }

    #[test]
    fn control_file_and_checkpoint(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = ControlFileData::decode(&bytes);
        let _ = ControlFileData::decode_unchecked(&bytes);
        if let Ok(cp) = CheckPoint::decode(&bytes) {
            prop_assert_eq!(CheckPoint::decode(&cp.encode()).unwrap(), cp);
        }
    }

    #[test]
    fn relmap(bytes in proptest::collection::vec(any::<u8>(), 0..600), pairs in proptest::collection::vec((any::<u32>(), any::<u32>()), 0..=62)) {
        let _ = RelMapFile::parse(&bytes);
        let map = RelMapFile {
            mappings: pairs.iter().map(|&(o, f)| RelMapping { mapoid: o, mapfilenode: f }).collect(),
        };
        let file = map.serialize().unwrap();
        prop_assert_eq!(RelMapFile::parse(&file).unwrap(), map);
    }

    #[test]
    fn pages(bytes in proptest::collection::vec(any::<u8>(), 0..200), lower in any::<u16>(), blkno in any::<u32>()) {
        let _ = PageHeaderData::read(&bytes);
        let _ = item_ids(&bytes);
        let _ = read_item_id(&bytes, 1);
        let mut page = [0u8; BLCKSZ];
        let n = bytes.len().min(BLCKSZ);
        page[..n].copy_from_slice(&bytes[..n]);
        page[12..14].copy_from_slice(&lower.to_le_bytes());
        let _ = item_ids(&page);
        let _ = read_item_id(&page, lower);
        let _ = verify_page(&page, blkno, true);
    }

    #[test]
    fn text_parsers(s in "\\PC{0,60}", path in "(global|base|pg_tblspc)/[0-9a-z_./]{0,40}") {
        let _ = parse_relation_path(V, &s);
        let _ = parse_relation_path(V, &path);
        let _ = slru::parse_segment_file_name(&s);
        let _ = twophase::parse_file_name(V, &s);
        let _ = TimelineHistory::parse(&s);
        let _ = WalSegmentSize::DEFAULT.parse_file_name(&s);
        let _ = s.parse::<Lsn>();
    }

    #[test]
    fn relation_paths_round_trip(
        spc in prop_oneof![Just(1663u32), Just(1664u32), 1665u32..100_000],
        db in 1u32..100_000,
        rel in 1u32..u32::MAX,
        fork in 0u8..4,
        segno in 0u32..5000,
    ) {
        let db = if spc == 1664 { 0 } else { db };
        let rnode = RelFileNode { spcnode: spc, dbnode: db, relnode: rel };
        let fork = ForkNumber::try_from(fork).unwrap();
        let p = relation_path(V, rnode, fork, segno);
        let parsed = parse_relation_path(V, &p).unwrap();
        prop_assert_eq!((parsed.rnode, parsed.fork, parsed.segno), (rnode, fork, segno));
    }

    #[test]
    fn twophase_files(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
        let _ = twophase::verify_state_file(&bytes);
    }

    #[test]
    fn wal_page_headers(bytes in proptest::collection::vec(any::<u8>(), 0..60), page in 0u64..1000) {
        if let Some(h) = XLogPageHeader::decode(&bytes) {
            let _ = h.validate(Lsn(page * 8192), &WAL_FORMAT, WalSegmentSize::DEFAULT, Some(1));
            prop_assert_eq!(XLogPageHeader::decode(&h.encode()), Some(h));
        }
    }

    #[test]
    fn slru_offsets_stay_in_page(x in any::<u32>()) {
        prop_assert!(slru::clog::xid_to_byte(x) < BLCKSZ);
        prop_assert!(slru::multixact_offsets::multi_to_entry(x) * 4 + 4 <= BLCKSZ);
        prop_assert!(slru::multixact_members::offset_to_member_offset(x) + 4 <= BLCKSZ);
        prop_assert!(slru::commit_ts::xid_to_entry(x) * 10 + 10 <= BLCKSZ);
        let f = FullTransactionId::new(x, x.rotate_left(7));
        prop_assert_eq!((f.epoch(), f.xid()), (x, x.rotate_left(7)));
    }
}
