//! The public `apply` API on synthetic records: image restore rules, typed
//! refusals, visibility map records, the stored record form, and a few redo
//! routines whose effects are easy to state exactly.

mod common;

use bytes::Bytes;
use pg_redo::pageops::{self, item_id, max_offset};
use pg_redo::vm::{self, VISIBILITYMAP_ALL_FROZEN, VISIBILITYMAP_ALL_VISIBLE};
use pg_redo::{apply, implied_vm_clears, RedoError, RedoRecord};
use postgres_ffi::page::{verify_page, PD_ALL_VISIBLE};
use postgres_ffi::rmgr::{RM_HEAP2_ID, RM_HEAP_ID, RM_SEQ_ID, RM_XLOG_ID};
use postgres_ffi::v15::info::{heap, heap2, seq, xlog};
use postgres_ffi::wal::encoder::{BlockSpec, ImageSpec, RecordBuilder};
use postgres_ffi::wal::record::decode_record;
use postgres_ffi::wal::ImageCompression;
use postgres_ffi::{Lsn, PgMajorVersion, BLCKSZ};

use common::{heap_insert, heap_page, stored, target, tuple_body, REL};

fn item_bytes(page: &[u8; BLCKSZ], off: u16) -> Vec<u8> {
    let lp = item_id(page, off).unwrap();
    page[lp.off as usize..(lp.off + lp.len) as usize].to_vec()
}

#[test]
fn inserts_build_a_page_with_lsn_and_checksum() {
    let mut lsn = Lsn(0x0100_0000);
    let mut recs = Vec::new();
    for off in 1..=3u16 {
        let (r, end) = stored(
            &heap_insert(
                900 + off as u32,
                4,
                off,
                off == 1,
                &tuple_body(off as u32, 5),
            ),
            lsn,
            0,
        );
        recs.push(r);
        lsn = end;
    }
    let page = apply(&target(0, 4, true), None, &recs).unwrap();
    assert_eq!(max_offset(&page), 3);
    assert_eq!(pageops::lsn(&page), lsn);
    verify_page(&page, 4, true).unwrap();
    let t = item_bytes(&page, 2);
    // xmin from the record, cid 0, ctid = own TID (blk 4, off 2), t_hoff 24.
    assert_eq!(&t[0..4], &902u32.to_le_bytes());
    assert_eq!(&t[8..12], &[0; 4]);
    assert_eq!(&t[12..18], &[0, 0, 4, 0, 2, 0]);
    assert_eq!(t[22], 24);
    assert_eq!(&t[23..], &tuple_body(2, 5)[..]);
}

#[test]
fn fpi_is_restored_with_end_lsn_unless_new() {
    let (page, _) = heap_page(4, 9);
    let fpi = |p: &[u8; BLCKSZ]| {
        RecordBuilder::new(RM_XLOG_ID, xlog::FPI).block(
            BlockSpec::new(0, REL, 0, 9).with_image(ImageSpec::from_page(
                p,
                true,
                true,
                ImageCompression::Lz4,
            )),
        )
    };
    let (r, end) = stored(&fpi(&page), Lsn(0x0500_0000), 0);
    let out = apply(&target(0, 9, false), None, &[r]).unwrap();
    assert_eq!(pageops::lsn(&out), end);
    assert_eq!(&out[8..], &page[8..]);
    let (r, _) = stored(&fpi(&[0u8; BLCKSZ]), Lsn(0x0500_0000), 0);
    let out = apply(&target(0, 9, true), Some(&page[..]), &[r]).unwrap();
    assert!(
        out.iter().all(|&b| b == 0),
        "a new page stays all-zero, unchecksummed"
    );

    // FPI_FOR_HINT without an image leaves the page alone.
    let rec =
        RecordBuilder::new(RM_XLOG_ID, xlog::FPI_FOR_HINT).block(BlockSpec::new(0, REL, 0, 9));
    let (r, _) = stored(&rec, Lsn(0x0600_0000), 0);
    assert_eq!(
        apply(&target(0, 9, false), Some(&page[..]), &[r]).unwrap(),
        page
    );
}

#[test]
fn apply_image_on_a_heap_record_replaces_redo() {
    let (page, lsn) = heap_page(3, 0);
    let mut other = [0u8; BLCKSZ];
    pageops::page_init(&mut other, 0).unwrap();
    let mut rec = heap_insert(50, 0, 4, false, &tuple_body(4, 5));
    rec.blocks[0].image = Some(ImageSpec::from_page(
        &other,
        true,
        true,
        ImageCompression::None,
    ));
    let (r, end) = stored(&rec, lsn, 0);
    let out = apply(&target(0, 0, false), Some(&page[..]), &[r]).unwrap();
    assert_eq!(max_offset(&out), 0);
    assert_eq!(pageops::lsn(&out), end);
}

#[test]
fn typed_refusals() {
    let (page, lsn) = heap_page(2, 0);
    // A record type with no page effect that carries a block: refused,
    // naming rmgr and record.
    let rec = RecordBuilder::new(RM_XLOG_ID, xlog::NOOP)
        .block(BlockSpec::new(0, REL, 0, 0).with_data(Bytes::from_static(b"xx")))
        .main_data(Bytes::from_static(&[1, 0]));
    let (r, _) = stored(&rec, lsn, 0);
    match apply(&target(0, 0, false), Some(&page[..]), &[r]) {
        Err(RedoError::Unsupported {
            rmgr,
            name,
            rmid,
            info,
            ..
        }) => {
            assert_eq!(
                (rmgr.as_str(), name.as_str(), rmid, info),
                ("XLOG", "XLOG/NOOP", RM_XLOG_ID, xlog::NOOP)
            );
        }
        other => panic!("{other:?}"),
    }
    // Not even an APPLY image of an unsupported record type is restored.
    let mut rec = rec;
    rec.blocks[0].image = Some(ImageSpec::from_page(
        &page,
        true,
        true,
        ImageCompression::None,
    ));
    let (r, _) = stored(&rec, lsn, 0);
    assert!(matches!(
        apply(&target(0, 0, false), None, &[r]),
        Err(RedoError::Unsupported { .. })
    ));

    // A delta needs a base page.
    let mut md = 0u32.to_le_bytes().to_vec();
    md.extend_from_slice(&[1, 0, 0, 0]);
    let del = RecordBuilder::new(RM_HEAP_ID, heap::DELETE)
        .xid(7)
        .block(BlockSpec::new(0, REL, 0, 0))
        .main_data(Bytes::from(md));
    let (r, _) = stored(&del, lsn, 0);
    assert!(matches!(
        apply(&target(0, 0, false), None, std::slice::from_ref(&r)),
        Err(RedoError::MissingBase { .. })
    ));
    assert!(matches!(
        apply(
            &target(0, 0, false),
            Some(&page[..100]),
            std::slice::from_ref(&r)
        ),
        Err(RedoError::BadBasePage { len: 100 })
    ));
    // No such block id / corrupted bytes.
    let (r2, _) = stored(&del, lsn, 3);
    assert!(matches!(
        apply(&target(0, 0, false), Some(&page[..]), &[r2]),
        Err(RedoError::NoSuchBlock { block_id: 3, .. })
    ));
    let mut bad = del.encode(Lsn(0)).to_vec();
    bad[30] ^= 1;
    let r3 = RedoRecord::wal_bytes(lsn, Lsn(lsn.0 + 100), Bytes::from(bad), 0);
    assert!(matches!(
        apply(&target(0, 0, false), Some(&page[..]), &[r3]),
        Err(RedoError::Decode(_))
    ));
    // Deleting an item that does not exist.
    let mut md = 0u32.to_le_bytes().to_vec();
    md.extend_from_slice(&[9, 0, 0, 0]);
    let del9 = RecordBuilder::new(RM_HEAP_ID, heap::DELETE)
        .block(BlockSpec::new(0, REL, 0, 0))
        .main_data(Bytes::from(md));
    let (r, _) = stored(&del9, lsn, 0);
    assert!(matches!(
        apply(&target(0, 0, false), Some(&page[..]), &[r]),
        Err(RedoError::Page { .. })
    ));
}

#[test]
fn delete_sets_xmax_and_already_applied_records_are_skipped() {
    let (page, lsn) = heap_page(2, 0);
    let mut md = 777u32.to_le_bytes().to_vec();
    md.extend_from_slice(&[2, 0, 0x10 /* KEYS_UPDATED */, 0]);
    let del = RecordBuilder::new(RM_HEAP_ID, heap::DELETE)
        .xid(777)
        .block(BlockSpec::new(0, REL, 0, 0))
        .main_data(Bytes::from(md));
    let (r, end) = stored(&del, lsn, 0);
    let out = apply(
        &target(0, 0, false),
        Some(&page[..]),
        std::slice::from_ref(&r),
    )
    .unwrap();
    let t = item_bytes(&out, 2);
    assert_eq!(&t[4..8], &777u32.to_le_bytes());
    assert_eq!(u16::from_le_bytes([t[18], t[19]]) & 0x2000, 0x2000);
    assert_eq!(pageops::prune_xid(&out), 777);
    assert_eq!(pageops::lsn(&out), end);
    // Applying it again is a no-op (page LSN is already at its end).
    let again = apply(&target(0, 0, false), Some(&out[..]), &[r]).unwrap();
    assert_eq!(again, out);
}

#[test]
fn same_page_update_with_prefix_and_suffix() {
    let (page, lsn) = heap_page(1, 0);
    let old = item_bytes(&page, 1);
    // tuple_body's first byte pads the header to t_hoff 24; data follows.
    let old_data = &old[24..];
    let (prefix, suffix) = (3usize, 4usize);
    let middle = b"NEW";
    let mut md = Vec::new();
    md.extend_from_slice(&0u32.to_le_bytes()); // old_xmax
    md.extend_from_slice(&1u16.to_le_bytes()); // old_offnum
    md.push(0); // infobits
    md.push(0x20 | 0x40); // PREFIX_FROM_OLD | SUFFIX_FROM_OLD
    md.extend_from_slice(&0u32.to_le_bytes()); // new_xmax
    md.extend_from_slice(&2u16.to_le_bytes()); // new_offnum
    let mut data = Vec::new();
    data.extend_from_slice(&(prefix as u16).to_le_bytes());
    data.extend_from_slice(&(suffix as u16).to_le_bytes());
    data.extend_from_slice(&0x8002u16.to_le_bytes()); // infomask2: HEAP_ONLY_TUPLE, 2 atts
    data.extend_from_slice(&0x0802u16.to_le_bytes());
    data.push(24);
    data.push(0); // bitmap/padding up to t_hoff (24 - 23 = 1 byte)
    data.extend_from_slice(middle);
    let rec = RecordBuilder::new(RM_HEAP_ID, heap::HOT_UPDATE)
        .xid(4242)
        .block(BlockSpec::new(0, REL, 0, 0).with_data(Bytes::from(data)))
        .main_data(Bytes::from(md));
    let (r, _) = stored(&rec, lsn, 0);
    let out = apply(&target(0, 0, false), Some(&page[..]), &[r]).unwrap();
    let new = item_bytes(&out, 2);
    let mut expect = old_data[..prefix].to_vec();
    expect.extend_from_slice(middle);
    expect.extend_from_slice(&old_data[old_data.len() - suffix..]);
    assert_eq!(&new[24..], &expect[..]);
    assert_eq!(&new[0..4], &4242u32.to_le_bytes());
    let oldv = item_bytes(&out, 1);
    // Old version: HOT_UPDATED, ctid → (0, 2).
    assert_eq!(u16::from_le_bytes([oldv[18], oldv[19]]) & 0x4000, 0x4000);
    assert_eq!(&oldv[12..18], &[0, 0, 0, 0, 2, 0]);
}

#[test]
fn visible_sets_vm_bits_and_heap_flag() {
    let (page, lsn) = heap_page(2, 40000);
    let rec = RecordBuilder::new(RM_HEAP2_ID, heap2::VISIBLE)
        .block(BlockSpec::new(0, REL, 2, 1))
        .block(BlockSpec::new(1, REL, 0, 40000))
        .main_data(Bytes::from(vec![
            0,
            0,
            0,
            0,
            VISIBILITYMAP_ALL_VISIBLE | VISIBILITYMAP_ALL_FROZEN,
        ]));
    let (vm_rec, end) = stored(&rec, lsn, 0);
    let vmp = apply(&target(2, 1, false), None, std::slice::from_ref(&vm_rec)).unwrap();
    assert_eq!(vm::vm_bits(&vmp, 40000), 3);
    assert_eq!(pageops::lsn(&vmp), end);
    // The heap page: flag set; LSN bumped only when hint bits are logged.
    let (heap_rec, _) = stored(&rec, lsn, 1);
    let h = apply(
        &target(0, 40000, false),
        Some(&page[..]),
        std::slice::from_ref(&heap_rec),
    )
    .unwrap();
    assert_ne!(pageops::flags(&h) & PD_ALL_VISIBLE, 0);
    assert_eq!(pageops::lsn(&h), pageops::lsn(&page));
    let h = apply(&target(0, 40000, true), Some(&page[..]), &[heap_rec]).unwrap();
    assert_eq!(pageops::lsn(&h), end);

    // Clearing, as implied by a later insert with ALL_VISIBLE_CLEARED.
    let mut ins = heap_insert(9, 40000, 3, false, &tuple_body(3, 3));
    ins.main_data = Bytes::from(vec![3, 0, 1]);
    let bytes = ins.encode(Lsn(0));
    let dec = decode_record(
        bytes,
        end,
        Lsn(end.0 + 200),
        PgMajorVersion::V15.wal_format(),
    )
    .unwrap();
    let clears = implied_vm_clears(&dec).unwrap();
    assert_eq!(clears.len(), 1);
    assert_eq!(
        (clears[0].vm_blkno, clears[0].heap_blkno, clears[0].flags),
        (1, 40000, 3)
    );
    let c = RedoRecord::ClearVmBits {
        heap_blkno: 40000,
        flags: clears[0].flags,
    };
    let vmp2 = apply(&target(2, 1, false), Some(&vmp[..]), &[c]).unwrap();
    assert_eq!(vm::vm_bits(&vmp2, 40000), 0);
    assert_eq!(pageops::lsn(&vmp2), end, "clearing keeps the LSN");
    let t = RedoRecord::TruncateVm {
        heap_blocks: 32672 + 10,
    };
    let vmp3 = apply(&target(2, 1, false), Some(&vmp[..]), &[t]).unwrap();
    assert_eq!(vm::vm_bits(&vmp3, 40000), 0);
}

#[test]
fn sequence_log_rebuilds_the_page() {
    let tuple = vec![7u8; 41];
    let mut md = vec![0u8; 12];
    md.extend_from_slice(&tuple);
    let rec = RecordBuilder::new(RM_SEQ_ID, seq::LOG)
        .block(BlockSpec::new(0, REL, 0, 0).will_init())
        .main_data(Bytes::from(md));
    let (r, end) = stored(&rec, Lsn(0x0700_0000), 0);
    let (garbage, _) = heap_page(5, 0);
    let p = apply(&target(0, 0, true), Some(&garbage[..]), &[r]).unwrap();
    assert_eq!(max_offset(&p), 1);
    assert_eq!(item_bytes(&p, 1), tuple);
    assert_eq!(pageops::special(&p), 8184);
    assert_eq!(&p[8184..8188], &0x1717u32.to_le_bytes());
    assert_eq!(pageops::lsn(&p), end);
    verify_page(&p, 0, true).unwrap();
}

#[test]
fn stored_form_round_trips() {
    let (r, _) = stored(&heap_insert(1, 2, 1, true, &tuple_body(1, 1)), Lsn(0x10), 0);
    for rec in [
        r,
        RedoRecord::ClearVmBits {
            heap_blkno: 77,
            flags: 2,
        },
        RedoRecord::TruncateVm { heap_blocks: 5 },
    ] {
        let enc = rec.encode();
        let dec = RedoRecord::decode(Bytes::from(enc.clone())).unwrap();
        assert_eq!(dec.encode(), enc);
        assert_eq!(dec.end_lsn(), rec.end_lsn());
    }
    assert!(RedoRecord::decode(Bytes::from_static(&[9])).is_none());
    assert!(RedoRecord::decode(Bytes::from_static(&[2, 1])).is_none());
}

#[test]
fn storage_truncate_vm_effect() {
    let rec = |nblocks: u32, flags: u32| {
        let mut md = nblocks.to_le_bytes().to_vec();
        for v in [REL.spcnode, REL.dbnode, REL.relnode, flags] {
            md.extend_from_slice(&v.to_le_bytes());
        }
        let bytes = RecordBuilder::new(postgres_ffi::rmgr::RM_SMGR_ID, 0x20)
            .main_data(Bytes::from(md))
            .encode(Lsn(0));
        decode_record(
            bytes,
            Lsn(0x100),
            Lsn(0x200),
            PgMajorVersion::V15.wal_format(),
        )
        .unwrap()
    };
    let t = pg_redo::implied_vm_truncate(&rec(32672 + 5, 7)).unwrap();
    assert_eq!(
        (t.rel, t.heap_blocks, t.vm_blocks, t.partial_page),
        (REL, 32677, 2, Some(1))
    );
    let t = pg_redo::implied_vm_truncate(&rec(32672, 2)).unwrap();
    assert_eq!((t.vm_blocks, t.partial_page), (1, None));
    assert!(
        pg_redo::implied_vm_truncate(&rec(10, 1)).is_none(),
        "main fork only"
    );
}
