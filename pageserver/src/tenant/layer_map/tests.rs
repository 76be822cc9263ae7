//! Layer map searches checked against a brute-force oracle that applies the
//! same rule over every layer, on random well-formed histories and on 100k
//! layers.

use super::*;
use proptest::prelude::*;

fn key(n: u32) -> Key {
    Key {
        field6: n,
        ..Key::MIN
    }
}

fn delta(k: Range<u32>, l: Range<u64>) -> PersistentLayerDesc {
    PersistentLayerDesc {
        name: LayerName::Delta {
            key_range: key(k.start)..key(k.end),
            lsn_range: Lsn(l.start)..Lsn(l.end),
        },
        file_size: 0,
    }
}

fn image(k: Range<u32>, lsn: u64) -> PersistentLayerDesc {
    PersistentLayerDesc {
        name: LayerName::Image {
            key_range: key(k.start)..key(k.end),
            lsn: Lsn(lsn),
        },
        file_size: 0,
    }
}

/// The search rule applied to every layer, no index.
fn oracle(layers: &[PersistentLayerDesc], k: Key, end_lsn: Lsn) -> Option<(LayerName, Lsn)> {
    let newest = |want_delta: bool| {
        layers
            .iter()
            .filter(|l| l.is_delta() == want_delta)
            .filter(|l| l.key_range().contains(&k) && l.lsn_range().start < end_lsn)
            .max_by_key(|l| l.lsn_range().end)
            .map(|l| Arc::new(l.clone()))
    };
    let slot = Slot {
        delta: newest(true),
        image: newest(false),
    };
    slot.choose(end_lsn)
        .map(|r| (r.layer.name.clone(), r.lsn_floor))
}

fn found(map: &LayerMap, k: Key, end_lsn: Lsn) -> Option<(LayerName, Lsn)> {
    map.search(k, end_lsn)
        .map(|r| (r.layer.name.clone(), r.lsn_floor))
}

/// A plausible history: L0 deltas over consecutive LSN ranges, some of them
/// replaced by key-partitioned L1 deltas, plus images of key partitions.
fn history(steps: usize, parts: u32, seed: &[u8]) -> Vec<PersistentLayerDesc> {
    let mut layers = Vec::new();
    let width = 1000 / parts;
    for step in 0..steps {
        let lsn = (step as u64 + 1) * 100;
        let pick = seed.get(step).copied().unwrap_or(0);
        match pick % 3 {
            0 => layers.push(delta(0..u32::MAX, lsn..lsn + 100)),
            1 => {
                for p in 0..parts {
                    layers.push(delta(p * width..(p + 1) * width, lsn..lsn + 100));
                }
            }
            _ => {
                layers.push(delta(0..u32::MAX, lsn..lsn + 100));
                let p = u32::from(pick) % parts;
                layers.push(image(p * width..(p + 1) * width, lsn + 50));
            }
        }
    }
    layers
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn search_matches_oracle(
        seed in proptest::collection::vec(any::<u8>(), 1..20),
        parts in 1u32..8,
        queries in proptest::collection::vec((0u32..1100, 0u64..2300), 1..40),
        incremental in any::<bool>(),
    ) {
        let layers = history(seed.len(), parts, &seed);
        let mut map = LayerMap::default();
        if incremental {
            for l in &layers {
                map.apply(vec![l.clone()], &[]);
            }
        } else {
            map.apply(layers.clone(), &[]);
        }
        for (k, lsn) in queries {
            prop_assert_eq!(found(&map, key(k), Lsn(lsn)), oracle(&layers, key(k), Lsn(lsn)));
        }
    }
}

#[test]
fn descending_walk_reaches_image_and_stops() {
    // delta [100,200) over everything, image at 150 for keys [0,10).
    let layers = vec![delta(0..u32::MAX, 100..200), image(0..10, 150)];
    let mut map = LayerMap::default();
    map.apply(layers, &[]);
    let first = map.search(key(5), Lsn(300)).unwrap();
    assert!(first.layer.is_delta());
    assert_eq!(first.lsn_floor, Lsn(151));
    let second = map.search(key(5), first.lsn_floor).unwrap();
    assert!(!second.layer.is_delta());
    // Outside the image's keys the delta is read in full, then nothing.
    let other = map.search(key(50), Lsn(300)).unwrap();
    assert_eq!(other.lsn_floor, Lsn(100));
    assert!(map.search(key(50), Lsn(100)).is_none());
}

#[test]
fn removal_rebuilds() {
    let l0 = delta(0..u32::MAX, 100..200);
    let l1a = delta(0..500, 100..200);
    let l1b = delta(500..u32::MAX, 100..200);
    let mut map = LayerMap::default();
    map.apply(vec![l0.clone()], &[]);
    map.apply(
        vec![l1a.clone(), l1b.clone()],
        std::slice::from_ref(&l0.name),
    );
    assert_eq!(found(&map, key(10), Lsn(150)).unwrap().0, l1a.name);
    assert_eq!(found(&map, key(900), Lsn(150)).unwrap().0, l1b.name);
    assert_eq!(map.len(), 2);
    assert!(map.level0_deltas().is_empty());
}

#[test]
fn range_search_merges_segments() {
    let mut map = LayerMap::default();
    map.apply(
        vec![
            delta(0..100, 100..200),
            delta(100..200, 100..200),
            image(50..150, 150),
        ],
        &[],
    );
    let res = map.range_search(key(0)..key(300), Lsn(151));
    let summary: Vec<(u32, u32, bool)> = res
        .iter()
        .map(|(r, s)| (r.start.field6, r.end.field6, s.layer.is_delta()))
        .collect();
    assert_eq!(
        summary,
        vec![(0, 50, true), (50, 150, false), (150, 200, true)]
    );
}

#[test]
fn hundred_thousand_layers() {
    let mut layers = Vec::new();
    // 1000 LSN steps x 100 key partitions = 100k L1 deltas, plus images.
    for step in 0..1000u64 {
        let lsn = (step + 1) * 100;
        for p in 0..100u32 {
            if step % 100 == 99 && p % 2 == 0 {
                layers.push(image(p * 10..(p + 1) * 10, lsn + 50));
            } else {
                layers.push(delta(p * 10..(p + 1) * 10, lsn..lsn + 100));
            }
        }
    }
    let mut map = LayerMap::default();
    map.apply(layers.clone(), &[]);
    assert_eq!(map.len(), layers.len());
    let mut x: u64 = 12345;
    for _ in 0..200 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let k = key(((x >> 33) % 1005) as u32);
        let lsn = Lsn((x >> 11) % 100_300);
        assert_eq!(found(&map, k, lsn), oracle(&layers, k, lsn));
    }
}
