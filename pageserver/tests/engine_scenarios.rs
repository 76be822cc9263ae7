//! Deterministic storage-engine scenarios: every background path really runs
//! (L0 → L1, images, GC removing files), a corrupted layer file gives a clean
//! error naming it, and a crash at any point of a flush leaves a state that
//! loads consistently.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use camino::{Utf8Path, Utf8PathBuf};
use pageserver::tenant::resources::{StorageResources, StorageSettings};
use pageserver::tenant::storage::{TenantStorage, TimelineSpec};
use pageserver::tenant::storage_layer::LayerReadError;
use pageserver::tenant::timeline::read::GetVectoredError;
use pageserver::tenant::timeline::Timeline;
use pageserver::walredo::TestRedo;
use pageserver_api::key::Key;
use pageserver_api::keyspace::KeySpace;
use pageserver_api::tenant_config::TenantConfigToml;
use pageserver_api::value::{Value, WalRecord};
use utils::generation::Generation;
use utils::id::{TenantId, TimelineId};
use utils::lsn::Lsn;
use utils::shard::TenantShardId;

const ROOT: TimelineId = TimelineId::from_array([1; 16]);

fn key(i: u32) -> Key {
    Key {
        field1: 0,
        field2: 1663,
        field3: 5,
        field4: 2000,
        field5: 0,
        field6: i,
    }
}

fn conf() -> TenantConfigToml {
    TenantConfigToml {
        checkpoint_distance: 64 * 1024,
        compaction_target_size: 256 * 1024,
        compaction_threshold: 3,
        image_creation_threshold: 2,
        gc_horizon: 0,
        pitr_interval: std::time::Duration::ZERO,
        ..TenantConfigToml::default()
    }
}

fn storage(dir: &Utf8Path) -> Arc<TenantStorage> {
    let resources = StorageResources::new(StorageSettings {
        no_sync: true,
        ..StorageSettings::default()
    });
    TenantStorage::new(
        TenantShardId::unsharded(TenantId::from_array([9; 16])),
        dir,
        Generation(1),
        conf(),
        resources,
        Arc::new(TestRedo),
    )
}

/// Opens the storage in `dir` again with only the root timeline.
async fn reload_root(dir: &Utf8Path) -> (Arc<TenantStorage>, Arc<Timeline>) {
    let st = storage(dir);
    st.load_timelines(&[TimelineSpec {
        timeline_id: ROOT,
        ancestor: None,
        pg_version: 15,
    }])
    .await
    .expect("load");
    let tl = st.get(ROOT).expect("timeline");
    (st, tl)
}

fn tempdir() -> (tempfile::TempDir, Utf8PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = Utf8Path::from_path(tmp.path()).expect("utf8").to_owned();
    (tmp, dir)
}

/// Page `i` at round `r`: an 8 KiB image every 4th round, else one record.
fn value(i: u32, r: u32) -> Value {
    if r.is_multiple_of(4) {
        Value::Image(Bytes::from(vec![(i + r) as u8; 8192]))
    } else {
        Value::WalRecord(WalRecord::Test {
            append: Bytes::from(vec![r as u8]),
            will_init: false,
            clear: false,
        })
    }
}

fn expected(i: u32, upto_round: u32) -> Vec<u8> {
    let base = upto_round / 4 * 4;
    let mut page = vec![(i + base) as u8; 8192];
    for r in base + 1..=upto_round {
        page.push(r as u8);
    }
    page
}

const PAGES: u32 = 64;

/// Writes `rounds` rounds over all pages, one batch per page; returns the
/// LSN after each round.
async fn write_rounds(tl: &Timeline, rounds: std::ops::Range<u32>, lsn: &mut Lsn) -> Vec<Lsn> {
    let mut ends = Vec::new();
    for r in rounds {
        for i in 0..PAGES {
            *lsn = Lsn(lsn.0 + 8);
            tl.writer()
                .await
                .put_batch(&[(key(i), *lsn, value(i, r))], *lsn)
                .await
                .expect("put");
        }
        ends.push(*lsn);
    }
    ends
}

async fn check_round(tl: &Timeline, at: Lsn, round: u32) {
    for chunk in (0..PAGES).collect::<Vec<_>>().chunks(16) {
        let ks = KeySpace {
            ranges: vec![key(chunk[0])..key(chunk[chunk.len() - 1] + 1)],
        };
        let res = tl.get_vectored(ks, at).await.expect("read");
        for i in chunk {
            let page = res[&key(*i)].as_ref().expect("page");
            assert_eq!(
                page.as_ref(),
                expected(*i, round).as_slice(),
                "page {i} at {at} (round {round})"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_images_and_gc_run_and_keep_reads_correct() {
    let (_tmp, dir) = tempdir();
    let st = storage(&dir);
    let tl = st
        .create_timeline(ROOT, 15, Lsn(0x1000))
        .await
        .expect("create");
    let mut lsn = Lsn(0x1000);
    let ends = write_rounds(&tl, 0..12, &mut lsn).await;
    tl.freeze_and_flush().await.expect("flush");
    assert!(tl.layer_names().await.len() >= 3, "several L0s");

    let out = tl.compact().await.expect("compact");
    assert!(out.l0_compacted >= 3, "{out:?}");
    assert!(out.l1_created >= 1, "{out:?}");
    assert!(out.images_created >= 1, "{out:?}");
    for (round, end) in ends.iter().enumerate() {
        check_round(&tl, *end, round as u32).await;
    }

    // More history above the image, and a branch in it.
    let mut ends = ends;
    ends.extend(write_rounds(&tl, 12..16, &mut lsn).await);
    tl.freeze_and_flush().await.expect("flush");
    let child = TimelineId::from_array([2; 16]);
    st.branch_timeline(child, ROOT, Some(ends[13]))
        .await
        .expect("branch");

    // GC at the last LSN: the L1s lie below the image at ends[11], which
    // serves both the cutoff and the branch point, so they go; the L0s
    // above the image stay.
    let files_before = std::fs::read_dir(tl.dir()).expect("ls").count();
    let gc = tl
        .gc_with_cutoff(
            ends[15],
            &st.children_branch_points(ROOT),
            SystemTime::now(),
        )
        .await
        .expect("gc");
    assert_eq!(gc.cutoff, ends[15]);
    assert!(gc.layers_removed >= out.l1_created, "{gc:?} after {out:?}");
    let files_after = std::fs::read_dir(tl.dir()).expect("ls").count();
    assert!(
        files_after < files_before,
        "files removed: {files_before} -> {files_after}"
    );
    check_round(&tl, ends[15], 15).await;
    let child_tl = st.get(child).expect("child");
    check_round(&child_tl, ends[13], 13).await;
    let below = tl
        .get_vectored(
            KeySpace {
                ranges: vec![key(0)..key(1)],
            },
            ends[14],
        )
        .await;
    assert!(matches!(below, Err(GetVectoredError::BelowGcCutoff { .. })));

    // And after a restart everything still reads the same.
    st.shutdown(true).await;
    let st = storage(&dir);
    st.load_timelines(&[
        TimelineSpec {
            timeline_id: child,
            ancestor: Some((ROOT, ends[13])),
            pg_version: 15,
        },
        TimelineSpec {
            timeline_id: ROOT,
            ancestor: None,
            pg_version: 15,
        },
    ])
    .await
    .expect("load");
    check_round(&st.get(ROOT).expect("root"), ends[15], 15).await;
    check_round(&st.get(child).expect("child"), ends[13], 13).await;
    st.shutdown(true).await;
}

#[tokio::test]
async fn corrupt_layer_file_gives_an_error_naming_it() {
    let (_tmp, dir) = tempdir();
    let ends = {
        let st = storage(&dir);
        let tl = st
            .create_timeline(ROOT, 15, Lsn(0x1000))
            .await
            .expect("create");
        let mut lsn = Lsn(0x1000);
        let ends = write_rounds(&tl, 0..2, &mut lsn).await;
        st.shutdown(true).await;
        ends
    };
    let tl_dir = dir.join("timelines").join(ROOT.to_string());
    let mut layer_files: Vec<Utf8PathBuf> = tl_dir
        .read_dir_utf8()
        .expect("ls")
        .map(|e| e.expect("entry").path().to_owned())
        .filter(|p| p.file_name().is_some_and(|n| n.contains("__")))
        .collect();
    layer_files.sort();
    assert!(!layer_files.is_empty());
    // Flip one byte in every layer file, in the middle of its data.
    for path in &layer_files {
        let mut bytes = std::fs::read(path).expect("read");
        let at = bytes.len() / 2;
        bytes[at] ^= 0x5A;
        std::fs::write(path, bytes).expect("write");
    }
    let (st, tl) = reload_root(&dir).await;
    let mut errors = 0;
    for i in 0..PAGES {
        match tl
            .get_vectored(
                KeySpace {
                    ranges: vec![key(i)..key(i + 1)],
                },
                ends[1],
            )
            .await
        {
            Ok(res) => {
                // A page whose blocks were not hit must still be right.
                let page = res[&key(i)].as_ref().expect("page");
                assert_eq!(page.as_ref(), expected(i, 1).as_slice());
            }
            Err(GetVectoredError::Layer(LayerReadError::Corrupt { path, .. })) => {
                assert!(
                    layer_files.iter().any(|p| p.as_str() == path),
                    "error names {path}"
                );
                errors += 1;
            }
            Err(other) => panic!("unexpected error {other}"),
        }
    }
    assert!(errors > 0, "the flipped bytes were detected");
    st.shutdown(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_at_any_point_of_a_flush_loads_consistently() {
    for abort_after_us in [0u64, 50, 200, 500, 1000, 2000, 5000, 10_000] {
        let (_tmp, dir) = tempdir();
        let (durable_before, ends) = {
            let st = storage(&dir);
            let tl = st
                .create_timeline(ROOT, 15, Lsn(0x1000))
                .await
                .expect("create");
            let mut lsn = Lsn(0x1000);
            let mut ends = write_rounds(&tl, 0..2, &mut lsn).await;
            tl.freeze_and_flush().await.expect("flush");
            let durable_before = tl.get_disk_consistent_lsn();
            ends.extend(write_rounds(&tl, 2..4, &mut lsn).await);
            // Flush in a task and "crash" it part way: the task is dropped
            // at an arbitrary await point.
            let flushing = {
                let tl = Arc::clone(&tl);
                tokio::spawn(async move { tl.freeze_and_flush().await })
            };
            tokio::time::sleep(std::time::Duration::from_micros(abort_after_us)).await;
            flushing.abort();
            let _ = flushing.await;
            // Leftovers a killed process could leave: an unfinished layer
            // file and a finished one the index never got to name.
            std::fs::write(tl.dir().join("layer-999-1.___temp"), b"partial").expect("write");
            std::fs::write(
                tl.dir().join(
                    "000000000000000000000000000000000000-FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF__0000000000FFFF00-0000000000FFFF09-00000001",
                ),
                b"not a layer",
            )
            .expect("write");
            st.shutdown(false).await;
            (durable_before, ends)
        };
        let (st, tl) = reload_root(&dir).await;
        let durable = tl.get_disk_consistent_lsn();
        assert!(durable >= durable_before);
        // Every round end at or below what is durable reads back exactly.
        for (round, end) in ends.iter().enumerate() {
            if *end <= durable {
                check_round(&tl, *end, round as u32).await;
            }
        }
        let leftovers: Vec<String> = tl
            .dir()
            .read_dir_utf8()
            .expect("ls")
            .map(|e| e.expect("entry").file_name().to_owned())
            .filter(|n| n.contains("___temp") || n.contains("FFFF00"))
            .collect();
        assert!(
            leftovers.is_empty(),
            "leftovers removed at load: {leftovers:?}"
        );
        st.shutdown(false).await;
    }
}
