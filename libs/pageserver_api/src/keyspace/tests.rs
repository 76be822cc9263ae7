//! Tests of `KeySpace`: fixed cases, and property tests against a
//! `BTreeSet<i128>` oracle over a small contiguous universe of keys that
//! crosses a field carry (field6 wraps into field5).

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

/// Universe: `UNIVERSE` consecutive keys starting 12 keys before a carry
/// from field6 into field5.
const UNIVERSE: i128 = 40;

fn base() -> i128 {
    Key {
        field1: 0,
        field2: 1663,
        field3: 5,
        field4: 16384,
        field5: 0,
        field6: u32::MAX - 12,
    }
    .to_i128()
}

fn k(offset: i128) -> Key {
    Key::from_i128(base() + offset)
}

fn ks(ranges: &[(i128, i128)]) -> KeySpace {
    KeySpace::from_ranges(ranges.iter().map(|&(a, b)| k(a)..k(b)))
}

fn oracle(ranges: &[(i128, i128)]) -> BTreeSet<i128> {
    ranges.iter().flat_map(|&(a, b)| a..b).collect()
}

/// The members of `ks` within the universe, checked with `contains`.
fn members(ks: &KeySpace) -> BTreeSet<i128> {
    (0..UNIVERSE).filter(|&i| ks.contains(&k(i))).collect()
}

fn check(ks: &KeySpace, expected: &BTreeSet<i128>) -> Result<(), TestCaseError> {
    prop_assert!(ks.is_normalized(), "{:?}", ks);
    prop_assert_eq!(&members(ks), expected);
    prop_assert_eq!(ks.total_size(), expected.len() as u64);
    // No member outside the universe.
    prop_assert!(ks.start().is_none_or(|s| s >= k(0)));
    prop_assert!(ks.end().is_none_or(|e| e <= k(UNIVERSE)));
    Ok(())
}

fn ranges_strategy() -> impl Strategy<Value = Vec<(i128, i128)>> {
    proptest::collection::vec((0..UNIVERSE, 0..UNIVERSE), 0..6).prop_map(|v| {
        v.into_iter()
            .map(|(a, b)| (a.min(b), a.max(b)))
            .collect::<Vec<_>>()
    })
}

proptest! {
    #[test]
    fn normalization_matches_oracle(r in ranges_strategy()) {
        check(&ks(&r), &oracle(&r))?;
    }

    #[test]
    fn set_operations_match_oracle(a in ranges_strategy(), b in ranges_strategy()) {
        let (ka, kb) = (ks(&a), ks(&b));
        let (oa, ob) = (oracle(&a), oracle(&b));
        check(&ka.union(&kb), &oa.union(&ob).copied().collect())?;
        check(&ka.intersect(&kb), &oa.intersection(&ob).copied().collect())?;
        check(&ka.subtract(&kb), &oa.difference(&ob).copied().collect())?;

        let mut merged = ka.clone();
        merged.merge(&kb);
        prop_assert_eq!(&merged, &ka.union(&kb));

        let mut rest = ka.clone();
        let removed = rest.remove_overlapping_with(&kb);
        prop_assert_eq!(removed, ka.intersect(&kb));
        prop_assert_eq!(rest, ka.subtract(&kb));
    }

    #[test]
    fn range_queries_match_oracle(a in ranges_strategy(), s in 0..UNIVERSE, len in 0..UNIVERSE) {
        let e = (s + len).min(UNIVERSE);
        let set = oracle(&a);
        let space = ks(&a);
        let range = k(s)..k(e);
        prop_assert_eq!(space.overlaps(&range), (s..e).any(|i| set.contains(&i)));
        prop_assert_eq!(space.contains_range(&range), (s..e).all(|i| set.contains(&i)));
    }

    #[test]
    fn partition_covers_in_order(a in ranges_strategy(), target in 0u64..12) {
        let space = ks(&a);
        let parts = space.partition(target);
        let limit = target.max(1);
        for part in &parts {
            prop_assert!(!part.is_empty());
            prop_assert!(part.is_normalized());
            prop_assert!(part.total_size() <= limit, "{:?} over {}", part, limit);
        }
        for (i, w) in parts.windows(2).enumerate() {
            prop_assert!(w[0].end() <= w[1].start());
            prop_assert_eq!(w[0].total_size(), limit, "part {} not full", i);
        }
        let mut all = KeySpaceRandomAccum::new();
        for part in &parts {
            all.add_keyspace(part.clone());
        }
        prop_assert_eq!(all.to_keyspace(), space.clone());
        let sum: u64 = parts.iter().map(KeySpace::total_size).sum();
        prop_assert_eq!(sum, space.total_size());
    }

    #[test]
    fn accumulators_match_normalization(a in ranges_strategy(), keys in proptest::collection::vec(0..UNIVERSE, 0..6)) {
        let mut expected: Vec<Range<Key>> = a.iter().map(|&(x, y)| k(x)..k(y)).collect();
        expected.extend(keys.iter().map(|&i| singleton_range(k(i))));
        let expected = KeySpace::from_ranges(expected);

        // Any order.
        let mut random = KeySpaceRandomAccum::new();
        let mut unordered = KeySpaceAccum::new();
        for &(x, y) in &a {
            random.add_range(k(x)..k(y));
            unordered.add_range(k(x)..k(y));
        }
        for &i in &keys {
            random.add_key(k(i));
            unordered.add_key(k(i));
        }
        prop_assert_eq!(unordered.size(), expected.total_size());
        prop_assert_eq!(random.to_keyspace(), expected.clone());
        prop_assert_eq!(unordered.to_keyspace(), expected.clone());

        // Ascending order, the intended use of `KeySpaceAccum`.
        let mut sorted: Vec<(i128, i128)> = a.clone();
        sorted.extend(keys.iter().map(|&i| (i, i + 1)));
        sorted.sort();
        let mut accum = KeySpaceAccum::new();
        for &(x, y) in &sorted {
            accum.add_range(k(x)..k(y));
        }
        prop_assert_eq!(accum.size(), expected.total_size());
        let consumed = accum.consume_keyspace();
        prop_assert!(accum.is_empty());
        prop_assert_eq!(consumed, expected);
    }
}

#[test]
fn fixed_cases() {
    let a = ks(&[(0, 5), (5, 8), (10, 12), (11, 15)]);
    assert_eq!(a.ranges, vec![k(0)..k(8), k(10)..k(15)]);
    assert_eq!(a.total_size(), 13);
    assert_eq!((a.start(), a.end()), (Some(k(0)), Some(k(15))));
    assert!(a.contains(&k(12)) && a.contains(&k(14)));
    assert!(!a.contains(&k(8)) && !a.contains(&k(15)));

    let b = ks(&[(6, 11)]);
    assert_eq!(a.intersect(&b).ranges, vec![k(6)..k(8), k(10)..k(11)]);
    assert_eq!(a.subtract(&b).ranges, vec![k(0)..k(6), k(11)..k(15)]);
    assert_eq!(a.union(&b).ranges, vec![k(0)..k(15)]);

    // The carry from field6 into field5 sits at offset 13.
    assert_eq!(k(13).field5, 1);
    assert_eq!(k(13).field6, 0);
    assert_eq!(key_range_size(&(k(12)..k(14))), 2);

    let empty = KeySpace::new();
    assert!(empty.is_empty() && empty.start().is_none());
    assert_eq!(empty.total_size(), 0);
    assert!(empty.partition(10).is_empty());
    assert!(KeySpace::single(k(3)..k(3)).is_empty());
    assert!(!KeySpace {
        ranges: vec![k(2)..k(1)]
    }
    .is_normalized());
    assert!(!KeySpace {
        ranges: vec![k(0)..k(1), k(1)..k(2)]
    }
    .is_normalized());
}

#[test]
fn partition_splits_evenly() {
    let space = ks(&[(0, 10), (12, 20)]);
    let parts = space.partition(4);
    let sizes: Vec<u64> = parts.iter().map(KeySpace::total_size).collect();
    assert_eq!(sizes, vec![4, 4, 4, 4, 2]);
    assert_eq!(parts[2].ranges, vec![k(8)..k(10), k(12)..k(14)]);
    assert_eq!(space.partition(100), vec![space.clone()]);
    assert_eq!(space.partition(0).len(), 18, "target 0 acts as 1");
}

#[test]
fn sizes_at_the_extremes() {
    assert_eq!(key_range_size(&(Key::MIN..Key::MAX)), u64::MAX);
    assert_eq!(KeySpace::single(Key::MIN..Key::MAX).total_size(), u64::MAX);
    // A non-empty range whose ends project onto the same compact key still
    // counts one key.
    let wide = Key {
        field2: 0x1_0000,
        ..Key::MIN
    };
    assert_eq!(wide.to_i128(), Key::MIN.to_i128());
    assert_eq!(key_range_size(&(Key::MIN..wide)), 1);
    assert_eq!(key_range_size(&(wide..Key::MIN)), 0);
    assert!(singleton_range(Key::MAX).is_empty());
}

#[test]
fn partition_keeps_uncuttable_ranges_whole() {
    // The start is not exactly representable, so the range cannot be cut.
    let start = Key {
        field2: 0x1_0000,
        ..Key::MIN
    };
    let end = Key {
        field2: 0x1_0000,
        field6: 100,
        ..Key::MIN
    };
    let odd = start..end;
    let space = KeySpace::from_ranges([k(0)..k(3), odd.clone()]);
    let parts = space.partition(2);
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0].ranges, vec![k(0)..k(2)]);
    assert_eq!(parts[1].ranges, vec![k(2)..k(3)]);
    assert_eq!(parts[2].ranges, vec![odd]);

    // A large cuttable range is cut into exact-size pieces.
    let end = Key {
        field4: 4,
        ..Key::MIN
    };
    let parts = KeySpace::single(Key::MIN..end).partition(1 << 40);
    assert_eq!(parts.len(), 4);
    assert!(parts.iter().all(|p| p.total_size() == 1 << 40));
    assert_eq!(
        parts[1].start(),
        Some(Key {
            field4: 1,
            ..Key::MIN
        })
    );
    assert_eq!(parts[3].end(), Some(end));
}
