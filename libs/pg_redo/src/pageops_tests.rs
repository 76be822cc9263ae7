//! Unit tests of the page toolkit against hand-built pages: exact placement
//! of items and line pointers as bufpage.c does it, and typed errors (no
//! panics) on corrupt pages.

use super::*;
use postgres_ffi::page::PD_PAGE_FULL;

fn empty(special: usize) -> Page {
    let mut p = [0u8; BLCKSZ];
    page_init(&mut p, special).unwrap();
    p
}

fn item(len: usize, fill: u8) -> Vec<u8> {
    vec![fill; len]
}

fn bytes_of(page: &Page, offnum: u16) -> Vec<u8> {
    let lp = item_id(page, offnum).unwrap();
    page[lp.off as usize..lp.off as usize + lp.len as usize].to_vec()
}

const APPEND: AddItemMode = AddItemMode {
    overwrite: false,
    is_heap: false,
};
const HEAP: AddItemMode = AddItemMode {
    overwrite: true,
    is_heap: true,
};

#[test]
fn add_item_appends_from_the_end() {
    let mut p = empty(16);
    assert_eq!(page_add_item(&mut p, &item(10, 1), 0, APPEND).unwrap(), 1);
    assert_eq!(page_add_item(&mut p, &item(20, 2), 0, APPEND).unwrap(), 2);
    assert_eq!(lower(&p), 32);
    // 8192 - 16 special = 8176; first item MAXALIGN(10)=16 → 8160; second 24 → 8136.
    let lp1 = item_id(&p, 1).unwrap();
    let lp2 = item_id(&p, 2).unwrap();
    assert_eq!((lp1.off, lp1.len, lp1.flags), (8160, 10, LpFlags::Normal));
    assert_eq!((lp2.off, lp2.len), (8136, 20));
    assert_eq!(upper(&p), 8136);
    assert_eq!(bytes_of(&p, 2), item(20, 2));
}

#[test]
fn add_item_shuffles_line_pointers_when_inserting_in_the_middle() {
    let mut p = empty(0);
    for i in 1..=3u8 {
        page_add_item(&mut p, &item(8, i), 0, APPEND).unwrap();
    }
    assert_eq!(page_add_item(&mut p, &item(8, 9), 2, APPEND).unwrap(), 2);
    assert_eq!(max_offset(&p), 4);
    assert_eq!(bytes_of(&p, 1), item(8, 1));
    assert_eq!(bytes_of(&p, 2), item(8, 9));
    assert_eq!(bytes_of(&p, 3), item(8, 2));
    assert_eq!(bytes_of(&p, 4), item(8, 3));
}

#[test]
fn add_item_overwrite_semantics() {
    let mut p = empty(0);
    page_add_item(&mut p, &item(8, 1), 1, HEAP).unwrap();
    page_add_item(&mut p, &item(8, 2), 2, HEAP).unwrap();
    // A used slot is refused.
    assert_eq!(
        page_add_item(&mut p, &item(8, 3), 1, HEAP),
        Err(PageOpError::WouldOverwrite { offnum: 1 })
    );
    // An unused slot is reused without growing the line pointer array.
    set_item_id(&mut p, 1, lp_unused()).unwrap();
    let lower_before = lower(&p);
    assert_eq!(page_add_item(&mut p, &item(8, 3), 1, HEAP).unwrap(), 1);
    assert_eq!(lower(&p), lower_before);
    assert_eq!(bytes_of(&p, 1), item(8, 3));
    // Beyond the first free slot.
    assert_eq!(
        page_add_item(&mut p, &item(8, 4), 5, HEAP),
        Err(PageOpError::OffsetTooLarge {
            offnum: 5,
            limit: 3
        })
    );
}

#[test]
fn add_item_reuses_first_free_slot_when_hinted() {
    let mut p = empty(0);
    for i in 1..=4u8 {
        page_add_item(&mut p, &item(8, i), 0, APPEND).unwrap();
    }
    set_item_id(&mut p, 2, lp_unused()).unwrap();
    set_item_id(&mut p, 3, lp_unused()).unwrap();
    // Without the hint the item goes to the end.
    assert_eq!(page_add_item(&mut p, &item(8, 5), 0, APPEND).unwrap(), 5);
    let f = flags(&p) | PD_HAS_FREE_LINES;
    set_flags(&mut p, f);
    assert_eq!(page_add_item(&mut p, &item(8, 6), 0, APPEND).unwrap(), 2);
    assert_eq!(page_add_item(&mut p, &item(8, 7), 0, APPEND).unwrap(), 3);
    // The hint is now wrong; the search fails, the hint is cleared.
    assert_eq!(page_add_item(&mut p, &item(8, 8), 0, APPEND).unwrap(), 6);
    assert_eq!(flags(&p) & PD_HAS_FREE_LINES, 0);
}

#[test]
fn add_item_limits() {
    let mut p = empty(0);
    assert!(matches!(
        page_add_item(&mut p, &item(8200, 1), 0, APPEND),
        Err(PageOpError::ItemTooLarge { .. })
    ));
    page_add_item(&mut p, &item(8000, 1), 0, APPEND).unwrap();
    assert!(matches!(
        page_add_item(&mut p, &item(200, 1), 0, APPEND),
        Err(PageOpError::NoSpace { .. })
    ));
    // Heap pages cap line pointers at 291.
    let mut p = empty(0);
    for _ in 0..291 {
        page_add_item(&mut p, &item(1, 0), 0, HEAP).unwrap();
    }
    assert_eq!(
        page_add_item(&mut p, &item(1, 0), 292, HEAP),
        Err(PageOpError::TooManyHeapItems {
            offnum: 292,
            max: 291
        })
    );
}

#[test]
fn corrupt_pointers_are_errors() {
    let mut p = empty(0);
    set_lower(&mut p, 9000);
    assert!(matches!(
        page_add_item(&mut p, &item(8, 1), 0, APPEND),
        Err(PageOpError::CorruptPointers { .. })
    ));
    assert!(page_repair_fragmentation(&mut p).is_err());
    assert!(page_index_tuple_delete(&mut p, 1).is_err());
    assert!(page_index_multi_delete(&mut p, &[1, 2, 3]).is_err());
    assert!(page_index_tuple_delete_no_compact(&mut p, 1).is_err());
    assert!(page_index_tuple_overwrite(&mut p, 1, &[1]).is_err());
    page_truncate_line_pointer_array(&mut p);
    // A line pointer pointing outside the tuple area.
    let mut p = empty(0);
    page_add_item(&mut p, &item(8, 1), 0, APPEND).unwrap();
    set_item_id(
        &mut p,
        1,
        ItemId {
            off: 30,
            flags: LpFlags::Normal,
            len: 8,
        },
    )
    .unwrap();
    assert!(matches!(
        page_repair_fragmentation(&mut p),
        Err(PageOpError::CorruptLinePointer { offnum: 1, .. })
    ));
    assert!(matches!(
        normal_item_range(&p, 2),
        Err(PageOpError::NoSuchItem { .. })
    ));
}

/// Items 1..=n of `len` bytes filled with their offset number.
fn page_with_items(n: u8, len: usize) -> Page {
    let mut p = empty(0);
    for i in 1..=n {
        page_add_item(&mut p, &item(len, i), 0, APPEND).unwrap();
    }
    p
}

#[test]
fn repair_fragmentation_compacts_in_line_pointer_order() {
    let mut p = page_with_items(6, 10);
    // 2 → dead, 3 → redirect to 5, 4 → unused, 6 → unused (trailing).
    set_item_id(
        &mut p,
        2,
        ItemId {
            off: 0,
            flags: LpFlags::Dead,
            len: 0,
        },
    )
    .unwrap();
    set_item_id(
        &mut p,
        3,
        ItemId {
            off: 5,
            flags: LpFlags::Redirect,
            len: 0,
        },
    )
    .unwrap();
    set_item_id(&mut p, 4, lp_unused()).unwrap();
    set_item_id(&mut p, 6, lp_unused()).unwrap();
    page_repair_fragmentation(&mut p).unwrap();
    // Item 6 cut off; 4 stays as an unused slot (hint set).
    assert_eq!(max_offset(&p), 5);
    assert_ne!(flags(&p) & PD_HAS_FREE_LINES, 0);
    // Survivors with storage: 1 then 5, packed from the end, MAXALIGN 16 each.
    assert_eq!(item_id(&p, 1).unwrap().off, 8192 - 16);
    assert_eq!(item_id(&p, 5).unwrap().off, 8192 - 32);
    assert_eq!(upper(&p), 8192 - 32);
    assert_eq!(bytes_of(&p, 1), item(10, 1));
    assert_eq!(bytes_of(&p, 5), item(10, 5));
    let lp3 = item_id(&p, 3).unwrap();
    assert_eq!((lp3.flags, lp3.off), (LpFlags::Redirect, 5));
}

#[test]
fn repair_fragmentation_out_of_order_items_and_empty_page() {
    // Items not in descending offset order (the non-presorted path): move
    // item 1's data below item 2's by swapping line pointers.
    let mut p = page_with_items(3, 8);
    let (a, b) = (item_id(&p, 1).unwrap(), item_id(&p, 3).unwrap());
    set_item_id(&mut p, 1, b).unwrap();
    set_item_id(&mut p, 3, a).unwrap();
    page_repair_fragmentation(&mut p).unwrap();
    assert_eq!(item_id(&p, 1).unwrap().off, 8184);
    assert_eq!(item_id(&p, 2).unwrap().off, 8176);
    assert_eq!(item_id(&p, 3).unwrap().off, 8168);
    assert_eq!(bytes_of(&p, 1), item(8, 3));
    assert_eq!(bytes_of(&p, 3), item(8, 1));
    assert_eq!(flags(&p) & PD_HAS_FREE_LINES, 0);

    let mut p = page_with_items(2, 8);
    set_item_id(&mut p, 1, lp_unused()).unwrap();
    set_item_id(&mut p, 2, lp_unused()).unwrap();
    page_repair_fragmentation(&mut p).unwrap();
    assert_eq!(upper(&p), 8192);
    // All unused: the whole array is truncated (unlike VACUUM's variant).
    assert_eq!(lower(&p), 24);
}

#[test]
fn truncate_line_pointer_array_keeps_first_and_sets_hint() {
    let mut p = page_with_items(5, 8);
    for o in [2, 4, 5] {
        set_item_id(&mut p, o, lp_unused()).unwrap();
    }
    let f = flags(&p) | PD_PAGE_FULL;
    set_flags(&mut p, f);
    page_truncate_line_pointer_array(&mut p);
    assert_eq!(max_offset(&p), 3);
    assert_ne!(flags(&p) & PD_HAS_FREE_LINES, 0);
    // Data is not moved.
    assert_eq!(bytes_of(&p, 3), item(8, 3));

    let mut p = page_with_items(3, 8);
    for o in 1..=3 {
        set_item_id(&mut p, o, lp_unused()).unwrap();
    }
    page_truncate_line_pointer_array(&mut p);
    assert_eq!(max_offset(&p), 1);
    assert_ne!(flags(&p) & PD_HAS_FREE_LINES, 0);

    let mut p = page_with_items(3, 8);
    set_item_id(&mut p, 3, lp_unused()).unwrap();
    let f = flags(&p) | PD_HAS_FREE_LINES;
    set_flags(&mut p, f);
    page_truncate_line_pointer_array(&mut p);
    assert_eq!(max_offset(&p), 2);
    assert_eq!(flags(&p) & PD_HAS_FREE_LINES, 0);
}

#[test]
fn index_tuple_delete_closes_both_gaps() {
    let mut p = page_with_items(4, 12);
    page_index_tuple_delete(&mut p, 2).unwrap();
    assert_eq!(max_offset(&p), 3);
    assert_eq!(bytes_of(&p, 1), item(12, 1));
    assert_eq!(bytes_of(&p, 2), item(12, 3));
    assert_eq!(bytes_of(&p, 3), item(12, 4));
    // Item 1 (above the deleted one) did not move; 3 and 4 moved up by 16.
    assert_eq!(item_id(&p, 1).unwrap().off, 8176);
    assert_eq!(item_id(&p, 2).unwrap().off, 8160);
    assert_eq!(item_id(&p, 3).unwrap().off, 8144);
    assert_eq!(upper(&p), 8144);
    assert!(matches!(
        page_index_tuple_delete(&mut p, 7),
        Err(PageOpError::NoSuchItem { .. })
    ));
}

#[test]
fn index_multi_delete_bulk_and_retail_paths() {
    let mut p = page_with_items(6, 8);
    page_index_multi_delete(&mut p, &[1, 3, 6]).unwrap();
    assert_eq!(max_offset(&p), 3);
    for (o, fill) in [(1, 2u8), (2, 4), (3, 5)] {
        assert_eq!(bytes_of(&p, o), item(8, fill));
        assert_eq!(item_id(&p, o).unwrap().off as usize, 8192 - 8 * o as usize);
    }
    assert_eq!(upper(&p), 8192 - 24);

    let mut q = page_with_items(4, 8);
    page_index_multi_delete(&mut q, &[2, 4]).unwrap();
    assert_eq!(max_offset(&q), 2);
    assert_eq!(bytes_of(&q, 1), item(8, 1));
    assert_eq!(bytes_of(&q, 2), item(8, 3));

    let mut r = page_with_items(4, 8);
    assert_eq!(
        page_index_multi_delete(&mut r, &[3, 2, 1]),
        Err(PageOpError::BadDeleteList)
    );
    page_index_multi_delete(&mut r, &[1, 2, 3, 4]).unwrap();
    assert_eq!((lower(&r), upper(&r)), (24, 8192));
}

#[test]
fn index_delete_no_compact_keeps_offsets() {
    let mut p = page_with_items(3, 8);
    page_index_tuple_delete_no_compact(&mut p, 2).unwrap();
    assert_eq!(max_offset(&p), 3);
    assert!(!item_id(&p, 2).unwrap().is_used());
    assert_eq!(bytes_of(&p, 3), item(8, 3));
    assert_eq!(item_id(&p, 3).unwrap().off, 8176);
    page_index_tuple_delete_no_compact(&mut p, 3).unwrap();
    assert_eq!(max_offset(&p), 2);
    assert_eq!(upper(&p), 8184);
}

#[test]
fn index_tuple_overwrite_resizes_in_place() {
    let mut p = page_with_items(3, 8);
    // Same aligned size: no movement.
    assert!(page_index_tuple_overwrite(&mut p, 2, &item(6, 7)).unwrap());
    assert_eq!(item_id(&p, 2).unwrap().off, 8176);
    assert_eq!(bytes_of(&p, 2), item(6, 7));
    // Larger: data before it (item 3) moves down.
    assert!(page_index_tuple_overwrite(&mut p, 2, &item(20, 8)).unwrap());
    assert_eq!(bytes_of(&p, 2), item(20, 8));
    assert_eq!(bytes_of(&p, 3), item(8, 3));
    assert_eq!(bytes_of(&p, 1), item(8, 1));
    assert_eq!(item_id(&p, 2).unwrap().off, 8192 - 8 - 24);
    assert_eq!(upper(&p), 8192 - 8 - 24 - 8);
    // Smaller again.
    assert!(page_index_tuple_overwrite(&mut p, 2, &item(3, 9)).unwrap());
    assert_eq!(bytes_of(&p, 3), item(8, 3));
    assert_eq!(upper(&p), 8192 - 24);
    // Too big.
    assert!(!page_index_tuple_overwrite(&mut p, 1, &item(8190, 1)).unwrap());
}

#[test]
fn header_helpers() {
    let mut p = empty(8);
    assert!(!is_new(&p));
    assert_eq!(special(&p), 8184);
    set_lsn(&mut p, Lsn(0x1_0000_0020));
    assert_eq!(lsn(&p), Lsn(0x1_0000_0020));
    set_prunable(&mut p, 100);
    set_prunable(&mut p, 90);
    set_prunable(&mut p, 200);
    assert_eq!(prune_xid(&p), 90);
    // Wrap-around comparison for normal xids.
    assert!(xid_precedes(u32::MAX - 5, 10));
    assert!(!xid_precedes(10, u32::MAX - 5));
    assert!(xid_precedes(2, 3));
    set_all_visible(&mut p);
    assert_ne!(flags(&p) & PD_ALL_VISIBLE, 0);
    clear_all_visible(&mut p);
    assert_eq!(flags(&p), 0);
    set_checksum(&mut p, 7);
    assert!(postgres_ffi::page::verify_page(&p, 7, true).is_ok());
    let mut z = [0u8; BLCKSZ];
    set_checksum(&mut z, 7);
    assert!(z.iter().all(|&b| b == 0));
    assert!(page_init(&mut z, BLCKSZ).is_err());
}

#[test]
fn checksum_matches_reference() {
    let mut p = [0u8; BLCKSZ];
    let mut x = 0x1234_5678u32;
    for b in p.iter_mut() {
        x = x.wrapping_mul(1103515245).wrapping_add(12345);
        *b = (x >> 16) as u8;
    }
    for blkno in [0, 1, 7, 131072, u32::MAX] {
        let reference = postgres_ffi::page::pg_checksum_page(&p, blkno);
        assert_eq!(checksum(&p, blkno), reference);
        assert_eq!(checksum_portable(&p, blkno), reference);
    }
    p[8] ^= 0xFF; // the stored checksum does not count
    assert_eq!(checksum(&p, 3), postgres_ffi::page::pg_checksum_page(&p, 3));
}
