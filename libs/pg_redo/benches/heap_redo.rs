//! Reconstructing a heap page: a base image plus 16 Heap/INSERT records,
//! stored as record bytes (decoded and CRC-checked on every apply, as the
//! page server does). Target: ≤ 5 µs per page in a release build.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};

#[path = "../tests/common/mod.rs"]
mod common;

fn bench(c: &mut Criterion) {
    let (base, mut lsn) = common::heap_page(20, 7);
    let mut recs = Vec::new();
    for off in 21..=36u16 {
        let rec = common::heap_insert(
            5000 + off as u32,
            7,
            off,
            false,
            &common::tuple_body(off as u32, 40),
        );
        let (r, end) = common::stored(&rec, lsn, 0);
        recs.push(r);
        lsn = end;
    }
    let target = common::target(0, 7, true);
    // Sanity: the result holds all 36 tuples.
    let page = pg_redo::apply(&target, Some(&base[..]), &recs).unwrap();
    assert_eq!(pg_redo::pageops::max_offset(&page), 36);

    c.bench_function("heap page: image + 16 inserts (checksummed)", |b| {
        b.iter(|| {
            pg_redo::apply(
                black_box(&target),
                Some(black_box(&base[..])),
                black_box(&recs),
            )
            .unwrap()
        })
    });
    let plain = common::target(0, 7, false);
    c.bench_function("heap page: image + 16 inserts (no checksums)", |b| {
        b.iter(|| {
            pg_redo::apply(
                black_box(&plain),
                Some(black_box(&base[..])),
                black_box(&recs),
            )
            .unwrap()
        })
    });
}

fn parts(c: &mut Criterion) {
    let (base, mut lsn) = common::heap_page(20, 7);
    let mut raws = Vec::new();
    for off in 21..=36u16 {
        let rec = common::heap_insert(
            5000 + off as u32,
            7,
            off,
            false,
            &common::tuple_body(off as u32, 40),
        );
        let (r, end) = common::stored(&rec, lsn, 0);
        raws.push((rec.encode(postgres_ffi::Lsn(0)), lsn, end, r));
        lsn = end;
    }
    c.bench_function("part: decode 16 records", |b| {
        b.iter(|| {
            for (bytes, l, e, _) in &raws {
                black_box(
                    postgres_ffi::wal::record::decode_record(
                        bytes.clone(),
                        *l,
                        *e,
                        postgres_ffi::PgMajorVersion::V15.wal_format(),
                    )
                    .unwrap(),
                );
            }
        })
    });
    c.bench_function("part: checksum", |b| {
        b.iter(|| pg_redo::pageops::checksum(black_box(&base), 7))
    });
    let decoded: Vec<_> = raws
        .iter()
        .map(|(bytes, l, e, _)| {
            let d = postgres_ffi::wal::record::decode_record(
                bytes.clone(),
                *l,
                *e,
                postgres_ffi::PgMajorVersion::V15.wal_format(),
            )
            .unwrap();
            pg_redo::RedoRecord::decoded(std::sync::Arc::new(d), 0)
        })
        .collect();
    let plain = common::target(0, 7, false);
    c.bench_function("part: apply predecoded, no checksum", |b| {
        b.iter(|| {
            pg_redo::apply(
                black_box(&plain),
                Some(black_box(&base[..])),
                black_box(&decoded),
            )
            .unwrap()
        })
    });
}

criterion_group!(benches, bench, parts);
criterion_main!(benches);
