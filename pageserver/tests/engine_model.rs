//! Model-based property test of the storage engine.
//!
//! Random sequences of put / branch / flush / compact / GC / restart (clean or
//! crash) / read-at-random-LSN run against a [`TenantStorage`] and against a
//! plain in-memory model (per timeline, a `BTreeMap<(key, lsn), value>` plus
//! ancestry). Every read's outcome — page bytes, "missing key", "below GC
//! cutoff" — must equal the model's.
//!
//! Cases: 1000 by default (about 45 s in a debug build); more with
//! `ENGINE_MODEL_CASES=N` in the environment.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use camino::Utf8Path;
use pageserver::tenant::resources::{StorageResources, StorageSettings};
use pageserver::tenant::storage::{TenantStorage, TimelineSpec};
use pageserver::tenant::timeline::read::{GetVectoredError, PageReconstructError};
use pageserver::walredo::TestRedo;
use pageserver_api::key::Key;
use pageserver_api::keyspace::KeySpace;
use pageserver_api::tenant_config::TenantConfigToml;
use pageserver_api::value::{Value, WalRecord};
use proptest::prelude::*;
use utils::generation::Generation;
use utils::id::{TenantId, TimelineId};
use utils::lsn::Lsn;
use utils::shard::TenantShardId;

const KEYS: u32 = 24;
const MAX_TIMELINES: usize = 4;

#[derive(Debug, Clone)]
enum Write {
    Image(u8),
    Init(u8),
    Append(u8),
}

#[derive(Debug, Clone)]
enum Op {
    Put {
        tl: usize,
        writes: Vec<(u32, Write)>,
    },
    Branch {
        parent: usize,
        at: u8,
    },
    Flush {
        tl: usize,
    },
    Compact {
        tl: usize,
    },
    Gc {
        tl: usize,
        keep: u8,
    },
    Restart {
        clean: bool,
    },
    Read {
        tl: usize,
        keys: Vec<u32>,
        at: u8,
    },
}

fn write_strategy() -> impl Strategy<Value = Write> {
    prop_oneof![
        2 => any::<u8>().prop_map(Write::Image),
        1 => any::<u8>().prop_map(Write::Init),
        5 => any::<u8>().prop_map(Write::Append),
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let tl = 0..MAX_TIMELINES;
    prop_oneof![
        12 => (tl.clone(), prop::collection::vec((0..KEYS, write_strategy()), 1..6))
            .prop_map(|(tl, writes)| Op::Put { tl, writes }),
        1 => (tl.clone(), any::<u8>()).prop_map(|(parent, at)| Op::Branch { parent, at }),
        2 => tl.clone().prop_map(|tl| Op::Flush { tl }),
        2 => tl.clone().prop_map(|tl| Op::Compact { tl }),
        1 => (tl.clone(), any::<u8>()).prop_map(|(tl, keep)| Op::Gc { tl, keep }),
        1 => any::<bool>().prop_map(|clean| Op::Restart { clean }),
        6 => (tl, prop::collection::vec(0..KEYS, 1..5), any::<u8>())
            .prop_map(|(tl, keys, at)| Op::Read { tl, keys, at }),
    ]
}

fn key(i: u32) -> Key {
    Key {
        field1: 0,
        field2: 1663,
        field3: 5,
        field4: 1000,
        field5: 0,
        field6: i,
    }
}

/// The model of one timeline.
#[derive(Debug, Clone)]
struct ModelTimeline {
    id: TimelineId,
    ancestor: Option<(usize, Lsn)>,
    values: BTreeMap<(u32, Lsn), Write>,
    last_lsn: Lsn,
    gc_cutoff: Lsn,
}

#[derive(Debug, PartialEq, Eq)]
enum Expect {
    Page(Vec<u8>),
    Missing,
    NoBase,
}

fn expected(model: &[ModelTimeline], tl: usize, k: u32, lsn: Lsn) -> Expect {
    let mut pending: Vec<&Write> = Vec::new();
    let mut cur = Some((tl, lsn));
    while let Some((t, at)) = cur {
        let m = &model[t];
        for ((_, _), w) in m.values.range((k, Lsn(0))..=(k, at)).rev() {
            match w {
                Write::Image(_) | Write::Init(_) => {
                    pending.push(w);
                    return Expect::Page(apply(&pending));
                }
                Write::Append(_) => pending.push(w),
            }
        }
        cur = m.ancestor.map(|(a, alsn)| (a, alsn.min(at)));
    }
    if pending.is_empty() {
        Expect::Missing
    } else {
        Expect::NoBase
    }
}

/// `newest_first` ends with the base write.
fn apply(newest_first: &[&Write]) -> Vec<u8> {
    let mut page = Vec::new();
    for w in newest_first.iter().rev() {
        match w {
            Write::Image(b) => page = vec![*b; 4],
            Write::Init(b) => page = vec![*b],
            Write::Append(b) => page.push(*b),
        }
    }
    page
}

fn to_value(w: &Write) -> Value {
    match w {
        Write::Image(b) => Value::Image(Bytes::from(vec![*b; 4])),
        Write::Init(b) => Value::WalRecord(WalRecord::Test {
            append: Bytes::from(vec![*b]),
            will_init: true,
            clear: false,
        }),
        Write::Append(b) => Value::WalRecord(WalRecord::Test {
            append: Bytes::from(vec![*b]),
            will_init: false,
            clear: false,
        }),
    }
}

fn tenant_conf() -> TenantConfigToml {
    TenantConfigToml {
        checkpoint_distance: 2048,
        compaction_target_size: 16 * 1024,
        compaction_threshold: 3,
        image_creation_threshold: 2,
        gc_horizon: 0,
        pitr_interval: std::time::Duration::ZERO,
        ..TenantConfigToml::default()
    }
}

fn open_storage(dir: &Utf8Path, resources: &Arc<StorageResources>) -> Arc<TenantStorage> {
    TenantStorage::new(
        TenantShardId::unsharded(TenantId::from_array([7; 16])),
        dir,
        Generation(1),
        tenant_conf(),
        Arc::clone(resources),
        Arc::new(TestRedo),
    )
}

fn pick_lsn(m: &ModelTimeline, at: u8) -> Lsn {
    let lo = m.gc_cutoff.0;
    let hi = m.last_lsn.0.max(lo);
    Lsn(lo + (hi - lo) * at as u64 / 255)
}

async fn run_case(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let tmp = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let dir = Utf8Path::from_path(tmp.path())
        .ok_or_else(|| TestCaseError::fail("utf8"))?
        .to_owned();
    let resources = StorageResources::new(StorageSettings {
        no_sync: true,
        max_get_vectored_keys: 64,
        ..StorageSettings::default()
    });
    let mut storage = open_storage(&dir, &resources);
    let root = TimelineId::from_array([1; 16]);
    storage
        .create_timeline(root, 15, Lsn(0x100))
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut model = vec![ModelTimeline {
        id: root,
        ancestor: None,
        values: BTreeMap::new(),
        last_lsn: Lsn(0x100),
        gc_cutoff: Lsn(0x100),
    }];

    for op in ops {
        match op {
            Op::Put { tl, writes } => {
                let Some(m) = model.get_mut(tl % MAX_TIMELINES) else {
                    continue;
                };
                let t = storage.get(m.id).expect("timeline exists");
                let lsn = Lsn(m.last_lsn.0 + 8);
                let mut batch = Vec::new();
                let mut seen = std::collections::BTreeSet::new();
                for (k, w) in &writes {
                    if seen.insert(*k) {
                        batch.push((key(*k), lsn, to_value(w)));
                        m.values.insert((*k, lsn), w.clone());
                    }
                }
                t.writer()
                    .await
                    .put_batch(&batch, lsn)
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                m.last_lsn = lsn;
            }
            Op::Branch { parent, at } => {
                if model.len() >= MAX_TIMELINES {
                    continue;
                }
                let p = &model[parent % model.len()];
                let pidx = parent % model.len();
                let lsn = pick_lsn(p, at);
                let id = TimelineId::from_array([model.len() as u8 + 1; 16]);
                storage
                    .branch_timeline(id, p.id, Some(lsn))
                    .await
                    .map_err(|e| TestCaseError::fail(format!("branch at {lsn}: {e}")))?;
                model.push(ModelTimeline {
                    id,
                    ancestor: Some((pidx, lsn)),
                    values: BTreeMap::new(),
                    last_lsn: lsn,
                    gc_cutoff: lsn,
                });
            }
            Op::Flush { tl } => {
                let Some(m) = model.get(tl) else { continue };
                storage
                    .get(m.id)
                    .expect("timeline")
                    .freeze_and_flush()
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
            }
            Op::Compact { tl } => {
                let Some(m) = model.get(tl) else { continue };
                storage
                    .get(m.id)
                    .expect("timeline")
                    .compact_forced()
                    .await
                    .map_err(|e| TestCaseError::fail(format!("compact: {e}")))?;
            }
            Op::Gc { tl, keep } => {
                let Some(m) = model.get(tl) else { continue };
                let t = storage.get(m.id).expect("timeline");
                let target = pick_lsn(m, 255 - keep);
                let branch_points = storage.children_branch_points(m.id);
                let outcome = t
                    .gc_with_cutoff(target, &branch_points, SystemTime::now())
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert!(outcome.cutoff >= model[tl].gc_cutoff);
                model[tl].gc_cutoff = outcome.cutoff;
            }
            Op::Restart { clean } => {
                storage.shutdown(clean).await;
                let specs: Vec<TimelineSpec> = model
                    .iter()
                    .map(|m| TimelineSpec {
                        timeline_id: m.id,
                        ancestor: m.ancestor.map(|(a, l)| (model[a].id, l)),
                        pg_version: 15,
                    })
                    .collect();
                drop(storage);
                storage = open_storage(&dir, &resources);
                storage
                    .load_timelines(&specs)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("reload: {e}")))?;
                for m in model.iter_mut() {
                    let t = storage.get(m.id).expect("reloaded");
                    let durable = t.get_disk_consistent_lsn();
                    if clean {
                        prop_assert_eq!(durable, m.last_lsn, "clean shutdown flushes everything");
                    }
                    prop_assert!(durable <= m.last_lsn);
                    // What was only in memory is gone (WAL would be re-ingested).
                    m.values.retain(|(_, l), _| *l <= durable);
                    m.last_lsn = durable;
                    prop_assert_eq!(t.get_gc_cutoff_lsn(), m.gc_cutoff);
                }
            }
            Op::Read { tl, keys, at } => {
                let Some(m) = model.get(tl) else { continue };
                let t = storage.get(m.id).expect("timeline");
                let lsn = pick_lsn(m, at);
                let mut ranges: Vec<_> = keys.iter().map(|k| key(*k)..key(*k).next()).collect();
                ranges.sort_by_key(|r| r.start);
                ranges.dedup();
                let res = t.get_vectored(KeySpace { ranges }, lsn).await;
                let res = match res {
                    Ok(r) => r,
                    Err(e) => return Err(TestCaseError::fail(format!("read at {lsn}: {e}"))),
                };
                for k in keys {
                    let got = match res.get(&key(k)) {
                        Some(Ok(page)) => Expect::Page(page.to_vec()),
                        Some(Err(PageReconstructError::MissingKey { .. })) => Expect::Missing,
                        Some(Err(PageReconstructError::NoBase { .. })) => Expect::NoBase,
                        other => return Err(TestCaseError::fail(format!("key {k}: {other:?}"))),
                    };
                    prop_assert_eq!(
                        got,
                        expected(&model, tl, k, lsn),
                        "timeline {} key {} at {}",
                        tl,
                        k,
                        lsn
                    );
                }
                // Below the cutoff reads are refused.
                if m.gc_cutoff.0 > 0 {
                    let below = Lsn(m.gc_cutoff.0 - 1);
                    let r = t
                        .get_vectored(
                            KeySpace {
                                ranges: vec![key(0)..key(1)],
                            },
                            below,
                        )
                        .await;
                    let refused = matches!(r, Err(GetVectoredError::BelowGcCutoff { .. }));
                    prop_assert!(refused, "read below the GC cutoff was not refused");
                }
            }
        }
    }
    storage.shutdown(false).await;
    Ok(())
}

fn cases() -> u32 {
    std::env::var("ENGINE_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_model(ops in prop::collection::vec(op_strategy(), 1..60)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(run_case(ops))?;
    }
}
