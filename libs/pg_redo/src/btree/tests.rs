//! Hand-built records for what SQL rarely produces, and the invariants of
//! the rebuilt pages. The conformance test (`tests/pg15_btree.rs`) checks
//! everything against real PostgreSQL pages.

use super::*;

#[test]
fn supports_every_record_type() {
    for i in (0x00..=0xE0).step_by(0x10) {
        assert!(supports(i), "{i:#x}");
    }
    assert!(!supports(0xF0));
}

#[test]
fn mask_ignores_unlogged_hints() {
    let mut a = [0u8; BLCKSZ];
    pageops::page_init(&mut a, SPECIAL_SIZE).unwrap();
    let at = special_at(&a).unwrap();
    Opaque {
        flags: BTP_LEAF,
        ..Opaque::default()
    }
    .write(&mut a, at);
    let mut b = a;
    Opaque {
        flags: BTP_LEAF | BTP_HAS_GARBAGE | BTP_SPLIT_END,
        cycleid: 77,
        ..Opaque::default()
    }
    .write(&mut b, at);
    mask(&mut a, 1);
    mask(&mut b, 1);
    assert_eq!(a[..], b[..]);
    // A page with a nonsense special pointer is masked without panicking.
    let mut c = [0xFFu8; BLCKSZ];
    mask(&mut c, 0);
}
