//! Unit and property tests of the streaming decoder, on WAL built with the
//! encoder (so the expected records are known exactly).

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::relfile::RelFileNode;
use crate::v15::WAL_FORMAT;
use crate::wal::encoder::{BlockSpec, RecordBuilder, WalWriter};
use crate::wal::record::ImageCompression;

const SYSID: u64 = 7_000_000_000_000_000_042;

fn seg1m() -> WalSegmentSize {
    WalSegmentSize::new(1 << 20).unwrap()
}

fn cfg() -> WalDecoderConfig {
    WalDecoderConfig::new(PgMajorVersion::V15, seg1m()).with_system_identifier(SYSID)
}

fn rel() -> RelFileNode {
    RelFileNode {
        spcnode: 1663,
        dbnode: 5,
        relnode: 16384,
    }
}

/// A record of roughly `size` bytes.
fn record_of(i: usize, size: usize) -> RecordBuilder {
    let mut r = RecordBuilder::new(crate::rmgr::RM_LOGICALMSG_ID, 0)
        .xid(1000 + i as u32)
        .main_data(Bytes::from(vec![(i % 251) as u8; size]));
    if i.is_multiple_of(3) {
        r = r.block(
            BlockSpec::new(0, rel(), 0, i as u32).with_data(Bytes::from(vec![i as u8; 1 + i % 50])),
        );
    }
    r
}

/// WAL starting at a segment boundary with the given record sizes; returns
/// the bytes and each record's (start, end).
fn build(sizes: &[usize]) -> (Lsn, Bytes, Vec<(Lsn, Lsn)>) {
    let start = Lsn(0x0100_0000);
    let mut w = WalWriter::new(WAL_FORMAT, seg1m(), 1, SYSID, start, Lsn(0x00FF_FF00));
    let mut spans = Vec::new();
    for (i, &s) in sizes.iter().enumerate() {
        spans.push(w.append(&record_of(i, s)));
    }
    let (start, bytes) = w.finish();
    (start, bytes, spans)
}

fn decode_in_chunks(start: Lsn, bytes: &[u8], chunk: usize) -> (Vec<WalRecord>, WalStreamDecoder) {
    let mut dec = WalStreamDecoder::new(start, cfg()).unwrap();
    let mut out = Vec::new();
    for c in bytes.chunks(chunk.max(1)) {
        dec.feed(c);
        while let Some(r) = dec.next_record().unwrap() {
            out.push(r);
        }
    }
    (out, dec)
}

#[test]
fn decodes_records_across_pages_and_segments() {
    // Includes records spanning several pages and one spanning a segment
    // boundary (1 MiB segments, 300 KiB records).
    let sizes = [
        10, 8000, 8200, 100, 20000, 300_000, 300_000, 300_000, 5, 0, 16_000,
    ];
    let (start, bytes, spans) = build(&sizes);
    for chunk in [1, 7, 8192, 100_000, bytes.len()] {
        let (recs, dec) = decode_in_chunks(start, &bytes, chunk);
        assert_eq!(recs.len(), sizes.len(), "chunk {chunk}");
        for (i, (r, (s, e))) in recs.iter().zip(&spans).enumerate() {
            assert_eq!((r.lsn, r.end_lsn), (*s, *e), "record {i}");
            assert_eq!(r.main_data().len(), sizes[i]);
            assert_eq!(r.xid(), 1000 + i as u32);
            assert_eq!(r.blocks.len(), usize::from(i % 3 == 0));
        }
        assert!(dec.check_end_of_input().is_ok());
        assert_eq!(dec.next_record_lsn(), Some(spans.last().unwrap().1));
        assert_eq!(dec.last_page_tli(), Some(1));
    }
}

#[test]
fn start_in_the_middle() {
    let sizes = [100, 20000, 300, 50];
    let (start, bytes, spans) = build(&sizes);
    // At a record start inside a page.
    let off = (spans[2].0 .0 - start.0) as usize;
    let (recs, _) = decode_in_chunks(spans[2].0, &bytes[off..], 1000);
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].lsn, spans[2].0);

    // At a page boundary inside the 20000-byte record: its tail is skipped.
    let page = Lsn((spans[1].0 .0 / 8192 + 1) * 8192);
    let off = (page.0 - start.0) as usize;
    let (recs, _) = decode_in_chunks(page, &bytes[off..], 333);
    assert_eq!(
        recs.iter().map(|r| r.lsn).collect::<Vec<_>>(),
        vec![spans[2].0, spans[3].0]
    );

    // At the next page, still inside the same record (a second skip page).
    let page2 = Lsn(page.0 + 8192);
    assert!(page2 < spans[1].1);
    let off = (page2.0 - start.0) as usize;
    let (recs, _) = decode_in_chunks(page2, &bytes[off..], 8192);
    assert_eq!(recs[0].lsn, spans[2].0);

    // Invalid start positions.
    assert!(matches!(
        WalStreamDecoder::new(Lsn(0x0100_0004 + 8192), cfg()),
        Err(WalDecodeError::BadStartLsn { .. })
    ));
    assert!(matches!(
        WalStreamDecoder::new(Lsn(0x0100_0020), cfg()),
        Err(WalDecodeError::BadStartLsn { .. })
    ));
    assert!(WalStreamDecoder::new(Lsn(0x0100_0028), cfg()).is_ok());
    assert!(WalStreamDecoder::new(Lsn(0x0100_2018), cfg()).is_ok());
}

#[test]
fn xlog_switch_skips_rest_of_segment() {
    let start = Lsn(0x0100_0000);
    let mut w = WalWriter::new(WAL_FORMAT, seg1m(), 1, SYSID, start, Lsn(0));
    let a = w.append(&record_of(1, 100));
    let sw = w.append(&RecordBuilder::new(crate::rmgr::RM_XLOG_ID, 0x40));
    let b = w.append(&record_of(2, 100));
    assert_eq!(sw.1, Lsn(0x0110_0000));
    assert_eq!(b.0, Lsn(0x0110_0000 + 40));
    let (_, bytes) = w.finish();
    let (recs, _) = decode_in_chunks(start, &bytes, 4096);
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[0].lsn, a.0);
    assert!(recs[1].is_xlog_switch());
    assert_eq!(recs[1].end_lsn, Lsn(0x0110_0000));
    assert_eq!(recs[2].lsn, b.0);
    assert_eq!(recs[2].header.prev, sw.0);
}

#[test]
fn end_of_wal_and_truncation() {
    let (start, bytes, spans) = build(&[100, 20000]);
    let mut padded = bytes.to_vec();
    // Zeros after the last record: the usual end of valid WAL.
    padded.resize(padded.len() + 64, 0);
    let (recs, err) = decode_all(cfg(), start, &padded);
    assert_eq!(recs.len(), 2);
    let err = err.unwrap();
    assert!(err.is_end_of_wal(), "{err}");
    assert_eq!(err.lsn(), spans[1].1);

    // Cut inside the second record.
    let cut = &bytes[..(spans[1].0 .0 - start.0) as usize + 9000];
    let mut dec = WalStreamDecoder::new(start, cfg()).unwrap();
    dec.feed(cut);
    assert!(dec.next_record().unwrap().is_some());
    assert!(dec.next_record().unwrap().is_none());
    match dec.check_end_of_input() {
        Err(WalDecodeError::Truncated { lsn, need, .. }) => {
            assert_eq!(lsn, spans[1].0);
            assert!(need > 20000);
        }
        other => panic!("{other:?}"),
    }
}

/// Offset in `bytes` (which start at `start`) of the page header at `page`.
fn at(start: Lsn, lsn: Lsn) -> usize {
    (lsn.0 - start.0) as usize
}

#[test]
fn page_header_errors() {
    let (start, bytes, spans) = build(&[100, 20000, 100]);
    let second_page = Lsn(start.0 + 8192);
    type Corrupt<'a> = Box<dyn Fn(&mut Vec<u8>) + 'a>;
    type Check = fn(&WalDecodeError) -> bool;
    let cases: Vec<(Corrupt, Check)> = vec![
        (Box::new(|b| b[at(start, second_page)] ^= 0xFF), |e| {
            matches!(e, WalDecodeError::BadPageMagic { .. })
        }),
        (Box::new(|b| b[at(start, second_page) + 2] |= 0x10), |e| {
            matches!(e, WalDecodeError::BadPageInfo { .. })
        }),
        (Box::new(|b| b[at(start, second_page) + 9] ^= 0x01), |e| {
            matches!(e, WalDecodeError::BadPageAddr { .. })
        }),
        (
            // Clear the contrecord flag on a continuation page.
            Box::new(|b| b[at(start, second_page) + 2] &= !0x01),
            |e| matches!(e, WalDecodeError::MissingContrecord { .. }),
        ),
        (Box::new(|b| b[at(start, second_page) + 16] ^= 0x01), |e| {
            matches!(e, WalDecodeError::BadContrecordLength { .. })
        }),
        (
            // Timeline 0 after timeline 1.
            Box::new(|b| b[at(start, second_page) + 4] = 0),
            |e| {
                matches!(
                    e,
                    WalDecodeError::TimelineWentBackwards {
                        tli: 0,
                        prev_tli: 1,
                        ..
                    }
                )
            },
        ),
        (
            // System id in the long header.
            Box::new(|b| b[30] ^= 1),
            |e| matches!(e, WalDecodeError::SystemIdMismatch { .. }),
        ),
        (
            // Segment size in the long header.
            Box::new(|b| b[34] ^= 1),
            |e| matches!(e, WalDecodeError::SegmentSizeMismatch { .. }),
        ),
        (
            // First record's prev-link (unknown previous: must point back).
            Box::new(|b| b[40 + 15] = 0x7F),
            |e| matches!(e, WalDecodeError::BadPrevLink { expected: None, .. }),
        ),
        (
            // Third record's prev-link.
            Box::new(move |b| b[at(start, spans[2].0) + 8] ^= 0x08),
            |e| {
                matches!(
                    e,
                    WalDecodeError::BadPrevLink {
                        expected: Some(_),
                        ..
                    }
                )
            },
        ),
        (Box::new(|b| b[40 + 17] = 100), |e| {
            matches!(e, WalDecodeError::BadRmgrId { rmid: 100, .. })
        }),
        (Box::new(|b| b[40 + 30] ^= 0x55), |e| {
            matches!(e, WalDecodeError::BadRecordCrc { .. })
        }),
        (
            Box::new(|b| b[40..44].copy_from_slice(&0x7FFF_FFFFu32.to_le_bytes())),
            |e| matches!(e, WalDecodeError::RecordTooLong { .. }),
        ),
    ];
    for (i, (corrupt, check)) in cases.iter().enumerate() {
        let mut b = bytes.to_vec();
        corrupt(&mut b);
        let (_, err) = decode_all(cfg(), start, &b);
        let err = err.unwrap_or_else(|| panic!("case {i}: no error"));
        assert!(check(&err), "case {i}: {err}");
        // The error is sticky.
        let mut dec = WalStreamDecoder::new(start, cfg()).unwrap();
        dec.feed(&b);
        while dec.next_record().is_ok_and(|r| r.is_some()) {}
        assert_eq!(dec.next_record().unwrap_err(), err, "case {i}");
    }
}

#[test]
fn unexpected_contrecord_at_record_start() {
    let start = Lsn(0x0100_0000);
    let mut w = WalWriter::new(WAL_FORMAT, seg1m(), 1, SYSID, start, Lsn(0));
    // 40-byte long header + 24-byte record header + 5-byte data header.
    let span = w.append(&record_of(1, 8192 - 40 - 24 - 5));
    // The record ends exactly at the first page's end.
    assert_eq!(span.1, Lsn(start.0 + 8192));
    let spans = [span];
    let mut b = w.bytes().to_vec();
    let mut w = WalWriter::new(
        WAL_FORMAT,
        seg1m(),
        1,
        SYSID,
        Lsn(start.0 + 8192),
        spans[0].0,
    );
    w.append(&record_of(5, 10));
    b.extend_from_slice(w.bytes());
    b[8192 + 2] |= 0x01;
    b[8192 + 16] = 1;
    let (recs, err) = decode_all(cfg(), start, &b);
    assert_eq!(recs.len(), 1);
    assert!(matches!(
        err,
        Some(WalDecodeError::UnexpectedContrecord { .. })
    ));
}

#[test]
fn overwrite_contrecord_drops_the_partial_record() {
    // Record A is complete; record B starts on page 1 and continues; page 2
    // says the continuation was overwritten, and a new record C starts there.
    let start = Lsn(0x0100_0000);
    let mut w = WalWriter::new(WAL_FORMAT, seg1m(), 1, SYSID, start, Lsn(0));
    let a = w.append(&record_of(1, 7000));
    let (b_start, _) = w.append(&record_of(2, 3000));
    let mut bytes = w.bytes()[..8192].to_vec();
    // Page 2 with the overwrite flag, then C (prev-link = A, as PostgreSQL
    // writes it after recovery).
    let page2 = Lsn(start.0 + 8192);
    let mut w2 = WalWriter::new(WAL_FORMAT, seg1m(), 1, SYSID, page2, a.0);
    let c = w2.append(&record_of(3, 10));
    let mut p2 = w2.bytes().to_vec();
    p2[2] = XLP_FIRST_IS_OVERWRITE_CONTRECORD as u8;
    bytes.extend_from_slice(&p2);
    let mut dec = WalStreamDecoder::new(start, cfg()).unwrap();
    dec.feed(&bytes);
    let r1 = dec.next_record().unwrap().unwrap();
    let r2 = dec.next_record().unwrap().unwrap();
    assert_eq!(r1.lsn, a.0);
    assert_eq!(r2.lsn, c.0);
    assert_eq!(dec.aborted_record(), Some(b_start));
}

#[test]
fn compressed_images_in_the_stream() {
    let mut page = [0u8; crate::BLCKSZ];
    crate::page::page_init(&mut page, 0).unwrap();
    for (i, b) in page[4000..].iter_mut().enumerate() {
        *b = (i % 13) as u8;
    }
    let mut hdr = crate::page::PageHeaderData::read(&page).unwrap();
    hdr.pd_upper = 4000;
    hdr.write(&mut page).unwrap();
    let start = Lsn(0x0100_0000);
    let mut w = WalWriter::new(WAL_FORMAT, seg1m(), 1, SYSID, start, Lsn(0));
    for (i, m) in [
        ImageCompression::None,
        ImageCompression::Pglz,
        ImageCompression::Lz4,
        ImageCompression::Zstd,
    ]
    .into_iter()
    .enumerate()
    {
        w.append(&RecordBuilder::new(crate::rmgr::RM_XLOG_ID, 0xB0).block(
            BlockSpec::new(0, rel(), 0, i as u32).with_image(
                crate::wal::encoder::ImageSpec::from_page(&page, true, true, m),
            ),
        ));
    }
    let (_, bytes) = w.finish();
    let (recs, err) = decode_all(cfg(), start, &bytes);
    assert!(err.is_none());
    assert_eq!(recs.len(), 4);
    for (i, r) in recs.iter().enumerate() {
        let img = r.blocks[0].image.as_ref().unwrap();
        if i > 0 {
            assert_ne!(img.compression, ImageCompression::None);
        }
        assert_eq!(&r.restore_image(0).unwrap()[..], &page[..]);
        assert_eq!(r.name(PgMajorVersion::V15), "XLOG/FPI");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    /// Any record sizes, any chunking: every record comes back.
    #[test]
    fn round_trip(sizes in proptest::collection::vec(0usize..40_000, 1..20), chunk in 1usize..20_000) {
        let (start, bytes, spans) = build(&sizes);
        let (recs, dec) = decode_in_chunks(start, &bytes, chunk);
        prop_assert_eq!(recs.len(), sizes.len());
        for (r, (s, e)) in recs.iter().zip(&spans) {
            prop_assert_eq!((r.lsn, r.end_lsn), (*s, *e));
        }
        prop_assert!(dec.check_end_of_input().is_ok());
    }

    /// Corrupting bytes never panics, and records that end before the first
    /// corrupted byte are still returned intact.
    #[test]
    fn corruption_is_detected_not_panicking(
        sizes in proptest::collection::vec(0usize..20_000, 1..10),
        flips in proptest::collection::vec((any::<proptest::sample::Index>(), 1u8..=255), 1..4),
    ) {
        let (start, bytes, spans) = build(&sizes);
        let mut b = bytes.to_vec();
        let mut first = usize::MAX;
        for (idx, x) in &flips {
            let i = idx.index(b.len());
            b[i] ^= x;
            first = first.min(i);
        }
        let first_lsn = Lsn(start.0 + first as u64);
        let (recs, _err) = decode_all(cfg(), start, &b);
        let intact = spans.iter().filter(|(_, e)| *e <= first_lsn).count();
        prop_assert!(recs.len() >= intact.min(recs.len()));
        for (r, (s, e)) in recs.iter().zip(&spans).take(intact) {
            prop_assert_eq!((r.lsn, r.end_lsn), (*s, *e));
        }
        // A record that contains a flipped byte can only come back if the
        // flip hit padding (CRC covers everything else).
        for (r, (s, _)) in recs.iter().zip(&spans) {
            prop_assert_eq!(r.lsn, *s);
        }
    }

    /// Random garbage from any start position: errors or nothing, no panic.
    #[test]
    fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..20_000), page in 0u64..4, off in 0u64..1024) {
        let start = Lsn(0x0100_0000 + page * 8192 + off * 8);
        let (_recs, _err) = decode_all(cfg(), start, &data);
    }

    /// Garbage that starts with a valid page header.
    #[test]
    fn garbage_after_valid_header(data in proptest::collection::vec(any::<u8>(), 0..20_000), tot_len in 24u32..30_000, rmid in any::<u8>()) {
        let start = Lsn(0x0100_0000);
        let (_, valid, _) = build(&[1]);
        let mut b = valid[..40].to_vec();
        b.extend_from_slice(&tot_len.to_le_bytes());
        b.extend_from_slice(&[0; 12]);
        b.push(0);
        b.push(rmid);
        b.extend_from_slice(&data);
        let (_recs, _err) = decode_all(cfg(), start, &b);
    }
}

#[test]
fn decoding_into_one_slot_gives_the_same_records() {
    // Records with and without blocks, small and spanning pages, so the
    // slot's block list shrinks and grows from record to record.
    let sizes: Vec<usize> = (0..60).map(|i| [10, 9000, 200, 40][i % 4]).collect();
    let (start, bytes, spans) = build(&sizes);
    let (expected, _) = decode_all(cfg(), start, &bytes);
    assert_eq!(expected.len(), spans.len());
    let mut dec = WalStreamDecoder::new(start, cfg()).unwrap();
    let mut slot = WalRecord::default();
    let mut got = Vec::new();
    for c in bytes.chunks(3000) {
        dec.feed(c);
        while dec.next_record_into(&mut slot).unwrap() {
            got.push(slot.clone());
        }
    }
    assert_eq!(got, expected);
    // Nothing more: the slot is left as it was.
    let last = slot.clone();
    assert!(!dec.next_record_into(&mut slot).unwrap());
    assert_eq!(slot, last);
}
