//! WAL ingest on synthetic records (no Postgres needed): what the common
//! record kinds store, and that unknown, unsupported and malformed records
//! stop ingest with a typed error and keep it stopped.
//!
//! Records are built with `postgres_ffi`'s encoder and decoded with its
//! record decoder at made-up LSNs; the timeline starts with a minimal
//! "cluster": a checkpoint, one CLOG page and one database.

use std::sync::Arc;

use bytes::Bytes;
use camino::Utf8Path;
use pageserver::pgdatadir_mapping::{DatadirModification, DatadirView};
use pageserver::tenant::resources::{StorageResources, StorageSettings};
use pageserver::tenant::storage::TenantStorage;
use pageserver::tenant::timeline::Timeline;
use pageserver::walingest::{Ingest, IngestErrorKind};
use pageserver::walredo::NativeRedo;
use pageserver_api::key::{rel_block_to_key, slru_block_to_key};
use pageserver_api::reltag::{RelTag, SlruKind};
use pageserver_api::tenant_config::TenantConfigToml;
use postgres_ffi::page::{page_get_lsn, page_init};
use postgres_ffi::relfile::RelFileNode;
use postgres_ffi::rmgr;
use postgres_ffi::slru::clog::{get_status, XidStatus};
use postgres_ffi::slru::{multixact_members, multixact_offsets};
use postgres_ffi::types::FullTransactionId;
use postgres_ffi::v15::controlfile::CheckPoint;
use postgres_ffi::v15::{info, WAL_FORMAT};
use postgres_ffi::wal::encoder::{BlockSpec, ImageSpec, RecordBuilder};
use postgres_ffi::wal::record::decode_record;
use postgres_ffi::wal::{ImageCompression, WalRecord};
use postgres_ffi::{Lsn, BLCKSZ};
use utils::generation::Generation;
use utils::id::{TenantId, TimelineId};
use utils::shard::TenantShardId;

const START: Lsn = Lsn(0x0100_0000);

struct Env {
    _tmp: tempfile::TempDir,
    storage: Arc<TenantStorage>,
    tl: Arc<Timeline>,
    next: Lsn,
}

impl Env {
    async fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(tmp.path()).unwrap().to_owned();
        let resources = StorageResources::new(StorageSettings {
            no_sync: true,
            ..StorageSettings::default()
        });
        let storage = TenantStorage::new(
            TenantShardId::unsharded(TenantId::from_array([7; 16])),
            &dir,
            Generation(1),
            TenantConfigToml::default(),
            resources,
            Arc::new(NativeRedo::new()),
        );
        let tl = storage
            .create_timeline(TimelineId::from_array([1; 16]), 15, Lsn(0))
            .await
            .unwrap();
        // A minimal cluster at START.
        let mut m = DatadirModification::new(Arc::clone(&tl));
        m.set_lsn(START).unwrap();
        let cp = CheckPoint {
            next_xid: FullTransactionId::new(0, 700),
            next_oid: 16384,
            next_multi: 1,
            next_multi_offset: 0,
            oldest_xid: 3,
            oldest_multi: 1,
            ..Default::default()
        };
        m.put_checkpoint(Bytes::copy_from_slice(&cp.encode()))
            .unwrap();
        m.put_slru_page_image(SlruKind::Clog, 0, 0, Bytes::from(vec![0u8; BLCKSZ]))
            .await
            .unwrap();
        m.put_db_creation(1663, 5).await.unwrap();
        m.commit().await.unwrap();
        Env {
            _tmp: tmp,
            storage,
            tl,
            next: Lsn(START.0 + 0x100),
        }
    }

    /// Decodes `b` as the next record (made-up, increasing LSNs).
    fn record(&mut self, b: RecordBuilder) -> WalRecord {
        let raw = b.encode(Lsn(0));
        let lsn = self.next;
        let end = Lsn(lsn.0 + (raw.len() as u64).div_ceil(8) * 8);
        self.next = end;
        decode_record(raw, lsn, end, &WAL_FORMAT).unwrap()
    }

    fn view(&self) -> DatadirView<'_> {
        DatadirView::new(&self.tl, self.tl.get_last_record_lsn())
    }
}

fn rnode(rel: u32) -> RelFileNode {
    RelFileNode {
        spcnode: 1663,
        dbnode: 5,
        relnode: rel,
    }
}

fn le(words: &[u32]) -> Bytes {
    Bytes::from(
        words
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect::<Vec<u8>>(),
    )
}

fn commit_record(xid: u32, subxacts: &[u32], drop: &[u32]) -> RecordBuilder {
    let mut d = Vec::new();
    d.extend_from_slice(&1234i64.to_le_bytes());
    let xinfo = (1 << 1) | (1 << 2); // SUBXACTS | RELFILENODES
    d.extend_from_slice(&(xinfo as u32).to_le_bytes());
    d.extend_from_slice(&(subxacts.len() as u32).to_le_bytes());
    for s in subxacts {
        d.extend_from_slice(&s.to_le_bytes());
    }
    d.extend_from_slice(&(drop.len() as u32).to_le_bytes());
    for r in drop {
        d.extend_from_slice(&le(&[1663, 5, *r]));
    }
    RecordBuilder::new(rmgr::RM_XACT_ID, info::xact::COMMIT | info::xact::HAS_INFO)
        .xid(xid)
        .main_data(Bytes::from(d))
}

#[tokio::test]
async fn records_become_pages_and_metadata() {
    let mut env = Env::new().await;
    let mut ingest = Ingest::new(Arc::clone(&env.tl)).await.unwrap();
    let rel = RelTag::new(1663, 5, 16400, 0);

    // Storage CREATE, then a heap INSERT+INIT on block 2 with an FPI on
    // block 2 of another relation: extends with zero pages, image stored
    // with the record's end LSN.
    let create = env.record(
        RecordBuilder::new(rmgr::RM_SMGR_ID, info::smgr::CREATE)
            .main_data(le(&[1663, 5, 16400, 0])),
    );
    ingest.ingest_record(&create).await.unwrap();
    let mut page = [0u8; BLCKSZ];
    page_init(&mut page, 16).unwrap();
    page[8190] = 42;
    let insert = env.record(
        RecordBuilder::new(rmgr::RM_HEAP_ID, info::heap::INSERT | info::heap::INIT_PAGE)
            .xid(700)
            .block(BlockSpec::new(0, rnode(16400), 0, 2).with_data(Bytes::from_static(b"t")))
            .block(
                BlockSpec::new(1, rnode(16401), 0, 0).with_image(ImageSpec::from_page(
                    &page,
                    true,
                    true,
                    ImageCompression::None,
                )),
            )
            .main_data(Bytes::from_static(&[1, 0, 0])),
    );
    ingest.ingest_record(&insert).await.unwrap();
    let commit = env.record(commit_record(700, &[701, 32768 + 5], &[]));
    ingest.ingest_record(&commit).await.unwrap();
    ingest.commit().await.unwrap();
    assert_eq!(env.tl.get_last_record_lsn(), commit.end_lsn);

    let view = env.view();
    assert_eq!(view.rel_size(rel).await.unwrap(), Some(3));
    assert_eq!(view.rel_page(rel, 0).await.unwrap(), vec![0u8; BLCKSZ]);
    let img = view
        .rel_page(RelTag::new(1663, 5, 16401, 0), 0)
        .await
        .unwrap();
    assert_eq!(page_get_lsn(&img).unwrap(), insert.end_lsn);
    assert_eq!(img[8190], 42);
    // The heap record itself needs the Postgres record redo.
    let err = view.rel_page(rel, 2).await.unwrap_err();
    assert!(err.to_string().contains("Heap/INSERT+INIT"), "{err}");
    // Reads at the insert's end LSN see the insert but not the commit.
    let at_insert = DatadirView::new(&env.tl, insert.end_lsn);
    assert_eq!(at_insert.rel_size(rel).await.unwrap(), Some(3));
    let clog0 = env
        .tl
        .get(slru_block_to_key(SlruKind::Clog, 0, 0), insert.end_lsn)
        .await
        .unwrap();
    assert_eq!(
        get_status(clog0.as_ref().try_into().unwrap(), 700),
        XidStatus::InProgress
    );

    // CLOG through NativeRedo; the subxact on page 1 created that page.
    let clog0 = view.slru_page(SlruKind::Clog, 0, 0).await.unwrap();
    let p0: &[u8; BLCKSZ] = clog0.as_ref().try_into().unwrap();
    assert_eq!(get_status(p0, 700), XidStatus::Committed);
    assert_eq!(get_status(p0, 701), XidStatus::Committed);
    assert_eq!(get_status(p0, 702), XidStatus::InProgress);
    let clog1 = view.slru_page(SlruKind::Clog, 0, 1).await.unwrap();
    assert_eq!(
        get_status(clog1.as_ref().try_into().unwrap(), 32768 + 5),
        XidStatus::Committed
    );
    // The stored nextXid is the real one (32768 + 6) rounded up to a
    // multiple of XID_CHECKPOINT_INTERVAL.
    assert_eq!(
        view.checkpoint().await.unwrap().next_xid.xid(),
        32768 + 1024
    );

    // Dropping the relation in a commit removes it from the directory.
    let drop = env.record(commit_record(702, &[], &[16400]));
    ingest.ingest_record(&drop).await.unwrap();
    ingest.commit().await.unwrap();
    let view = env.view();
    assert_eq!(view.rel_size(rel).await.unwrap(), None);
    assert!(!view.list_rels(1663, 5).await.unwrap().contains(&rel));
    assert!(view.rel_page(rel, 0).await.is_err());
    assert_eq!(ingest.counters().records, 4);
    env.storage.shutdown(false).await;
}

#[tokio::test]
async fn multixacts_vm_and_truncation() {
    let mut env = Env::new().await;
    let mut ingest = Ingest::new(Arc::clone(&env.tl)).await.unwrap();
    // Zero the first offsets and members pages, then a multixact whose
    // members straddle members pages 0 and 1.
    for (op, pageno) in [
        (info::multixact::ZERO_OFF_PAGE, 0),
        (info::multixact::ZERO_MEM_PAGE, 0),
        (info::multixact::ZERO_MEM_PAGE, 1),
    ] {
        let r = env.record(RecordBuilder::new(rmgr::RM_MULTIXACT_ID, op).main_data(le(&[pageno])));
        ingest.ingest_record(&r).await.unwrap();
    }
    let moff = multixact_members::MULTIXACT_MEMBERS_PER_PAGE - 1;
    let create = env.record(
        RecordBuilder::new(rmgr::RM_MULTIXACT_ID, info::multixact::CREATE_ID)
            .main_data(le(&[3, moff, 2, 800, 1, 801, 5])),
    );
    ingest.ingest_record(&create).await.unwrap();

    // A heap DELETE clearing the VM bits of block 10 of a relation with no
    // VM fork: the map is created with an empty page.
    let del = env.record(
        RecordBuilder::new(rmgr::RM_HEAP_ID, info::heap::DELETE)
            .xid(705)
            .block(BlockSpec::new(0, rnode(16500), 0, 10).with_data(Bytes::from_static(b"x")))
            .main_data(Bytes::from_static(&[0, 0, 0, 0, 1, 0, 0, 1])),
    );
    ingest.ingest_record(&del).await.unwrap();
    // Then truncate the heap to 6 blocks (all forks): the VM keeps page 0
    // with its tail cleared, the main fork is cut.
    let trunc = env.record(
        RecordBuilder::new(rmgr::RM_SMGR_ID, info::smgr::TRUNCATE)
            .main_data(le(&[6, 1663, 5, 16500, 7])),
    );
    ingest.ingest_record(&trunc).await.unwrap();
    ingest.commit().await.unwrap();

    let view = env.view();
    let off = view
        .slru_page(SlruKind::MultiXactOffsets, 0, 0)
        .await
        .unwrap();
    let off: &[u8; BLCKSZ] = off.as_ref().try_into().unwrap();
    assert_eq!(multixact_offsets::get_offset(off, 3), moff);
    let m0 = view
        .slru_page(SlruKind::MultiXactMembers, 0, 0)
        .await
        .unwrap();
    let m1 = view
        .slru_page(SlruKind::MultiXactMembers, 0, 1)
        .await
        .unwrap();
    assert_eq!(
        multixact_members::get_member(m0.as_ref().try_into().unwrap(), moff),
        (800, 1)
    );
    assert_eq!(
        multixact_members::get_member(m1.as_ref().try_into().unwrap(), moff + 1),
        (801, 5)
    );
    let cp = view.checkpoint().await.unwrap();
    assert_eq!((cp.next_multi, cp.next_multi_offset), (4, moff + 2));
    // 802 rounded up to a multiple of XID_CHECKPOINT_INTERVAL.
    assert_eq!(cp.next_xid.xid(), 1024);

    let heap = RelTag::new(1663, 5, 16500, 0);
    let vm = RelTag::new(1663, 5, 16500, 2);
    assert_eq!(view.rel_size(heap).await.unwrap(), Some(6));
    assert_eq!(view.rel_size(vm).await.unwrap(), Some(1));
    let vm0 = view.rel_page(vm, 0).await.unwrap();
    let mut empty = [0u8; BLCKSZ];
    page_init(&mut empty, 0).unwrap();
    assert_eq!(&vm0[..], &empty[..]);
    // Block 8 of the heap is past the new end; its value stays stored but
    // is not served.
    assert!(view.rel_page(heap, 8).await.is_err());
    assert!(env
        .tl
        .get(rel_block_to_key(heap, 8), env.tl.get_last_record_lsn())
        .await
        .is_ok());
    env.storage.shutdown(false).await;
}

#[tokio::test]
async fn unknown_unsupported_and_malformed_records_stop_ingest() {
    async fn first_error(env: &mut Env, b: RecordBuilder) -> IngestErrorKind {
        let mut ingest = Ingest::new(Arc::clone(&env.tl)).await.unwrap();
        let rec = env.record(b);
        let err = ingest.ingest_record(&rec).await.unwrap_err();
        assert_eq!(err.lsn, rec.lsn);
        assert!(err.to_string().contains(&rec.lsn.to_string()), "{err}");
        // Stopped for good.
        let next = env.record(RecordBuilder::new(rmgr::RM_LOGICALMSG_ID, 0x00).main_data(le(&[0])));
        assert!(matches!(
            ingest.ingest_record(&next).await.unwrap_err().kind,
            IngestErrorKind::Stopped { .. }
        ));
        err.kind
    }
    let mut env = Env::new().await;

    let custom = first_error(&mut env, RecordBuilder::new(130, 0x00).main_data(le(&[1]))).await;
    assert!(
        matches!(custom, IngestErrorKind::Unsupported { .. }),
        "{custom}"
    );
    assert!(custom.is_unsupported_record());

    let unknown_type = first_error(&mut env, RecordBuilder::new(rmgr::RM_XLOG_ID, 0xC0)).await;
    assert!(
        matches!(
            unknown_type,
            IngestErrorKind::UnknownRecordType { info: 0xC0, .. }
        ),
        "{unknown_type}"
    );

    let tblspc = first_error(
        &mut env,
        RecordBuilder::new(rmgr::RM_TBLSPC_ID, info::tblspc::CREATE).main_data(le(&[16999, 0])),
    )
    .await;
    assert!(
        matches!(tblspc, IngestErrorKind::Unsupported { .. }),
        "{tblspc}"
    );

    let other_spc = first_error(
        &mut env,
        RecordBuilder::new(rmgr::RM_HEAP_ID, info::heap::INSERT)
            .xid(710)
            .block(
                BlockSpec::new(
                    0,
                    RelFileNode {
                        spcnode: 70000,
                        dbnode: 5,
                        relnode: 1,
                    },
                    0,
                    0,
                )
                .with_data(Bytes::from_static(b"x")),
            )
            .main_data(Bytes::from_static(&[1, 0, 0])),
    )
    .await;
    assert!(
        matches!(other_spc, IngestErrorKind::Unsupported { .. }),
        "{other_spc}"
    );

    // A commit whose main data ends inside the subtransaction list.
    let mut d = 0i64.to_le_bytes().to_vec();
    d.extend_from_slice(&2u32.to_le_bytes());
    d.extend_from_slice(&5u32.to_le_bytes());
    d.extend_from_slice(&1u32.to_le_bytes());
    let malformed = first_error(
        &mut env,
        RecordBuilder::new(rmgr::RM_XACT_ID, info::xact::COMMIT | info::xact::HAS_INFO)
            .xid(711)
            .main_data(Bytes::from(d)),
    )
    .await;
    assert!(
        matches!(malformed, IngestErrorKind::Malformed(_)),
        "{malformed}"
    );
    assert!(!malformed.is_unsupported_record());

    // Block references where the rmgr has none.
    let blocks_on_clog = first_error(
        &mut env,
        RecordBuilder::new(rmgr::RM_CLOG_ID, info::clog::ZEROPAGE)
            .block(BlockSpec::new(0, rnode(1), 0, 0).with_data(Bytes::from_static(b"x")))
            .main_data(le(&[1])),
    )
    .await;
    assert!(matches!(
        blocks_on_clog,
        IngestErrorKind::Unsupported { .. }
    ));

    // Nothing above was committed.
    assert_eq!(env.tl.get_last_record_lsn(), START);
    env.storage.shutdown(false).await;
}

#[tokio::test]
async fn modification_reads_its_own_batch() {
    let env = Env::new().await;
    let mut m = DatadirModification::new(Arc::clone(&env.tl));
    let rel = RelTag::new(1663, 6, 20000, 0);
    let r1 = Lsn(START.0 + 0x10);
    let r2 = Lsn(START.0 + 0x20);

    // Record 1 creates a database and a 2-block relation.
    m.set_lsn(r1).unwrap();
    m.put_db_creation(1663, 6).await.unwrap();
    m.put_rel_creation(rel, 2).await.unwrap();
    m.put_rel_page_image(rel, 0, Bytes::from(vec![1u8; BLCKSZ]))
        .unwrap();
    m.put_rel_page_image(rel, 1, Bytes::from(vec![2u8; BLCKSZ]))
        .unwrap();
    // Record 2 extends it and prepares a transaction; reads see both.
    let mut m2 = DatadirModification::new(Arc::clone(&env.tl));
    m2.set_lsn(r1).unwrap();
    m.set_lsn(r2).unwrap();
    m.put_rel_block(
        rel,
        4,
        pageserver_api::value::Value::Image(Bytes::from(vec![4u8; BLCKSZ])),
    )
    .await
    .unwrap();
    assert_eq!(m.rel_size(rel).await.unwrap(), Some(5));
    assert_eq!(m.list_rels(1663, 6).await.unwrap(), vec![rel]);
    m.put_twophase_file(900, Bytes::from_static(b"state"))
        .await
        .unwrap();
    assert_eq!(m.twophase_xids().await.unwrap(), vec![900]);
    assert!(m.db_directory().await.unwrap().dbs.contains_key(&(1663, 6)));
    // Nothing is visible to readers before the commit.
    assert_eq!(env.view().rel_size(rel).await.unwrap(), None);
    m.commit().await.unwrap();
    assert_eq!(env.tl.get_last_record_lsn(), r2);

    // Each record's values are at its own end LSN.
    let at_r1 = DatadirView::new(&env.tl, r1);
    assert_eq!(at_r1.rel_size(rel).await.unwrap(), Some(2));
    assert!(at_r1.twophase_directory().await.unwrap().xids.is_empty());
    let at_r2 = env.view();
    assert_eq!(at_r2.rel_size(rel).await.unwrap(), Some(5));
    assert_eq!(
        &at_r2.rel_page(rel, 3).await.unwrap()[..],
        &[0u8; BLCKSZ][..]
    );
    assert_eq!(at_r2.rel_page(rel, 4).await.unwrap()[0], 4);
    assert_eq!(&at_r2.twophase_file(900).await.unwrap()[..], b"state");
    assert_eq!(at_r2.db_size(1663, 6).await.unwrap(), 5 * BLCKSZ as u64);

    // A second writer that started before the commit has a stale view.
    let err = m2.commit().await;
    assert!(err.is_err(), "{err:?}");

    // Two values for one key in one record are refused, and the
    // modification is unusable afterwards.
    let r3 = Lsn(START.0 + 0x30);
    m.set_lsn(r3).unwrap();
    m.put_rel_page_image(rel, 0, Bytes::from(vec![9u8; BLCKSZ]))
        .unwrap();
    let dup = m.put_rel_page_image(rel, 0, Bytes::from(vec![9u8; BLCKSZ]));
    assert!(
        matches!(
            dup,
            Err(pageserver::pgdatadir_mapping::DatadirError::DuplicatePut { .. })
        ),
        "{dup:?}"
    );
    assert!(matches!(
        m.rel_size(rel).await,
        Err(pageserver::pgdatadir_mapping::DatadirError::Poisoned)
    ));
    // LSNs must advance.
    let mut m3 = DatadirModification::new(Arc::clone(&env.tl));
    assert!(m3.set_lsn(r2).is_err());

    // Dropping the database drops its relations.
    let mut m4 = DatadirModification::new(Arc::clone(&env.tl));
    m4.set_lsn(Lsn(START.0 + 0x40)).unwrap();
    assert_eq!(m4.drop_db(1663, 6).await.unwrap(), 1);
    m4.commit().await.unwrap();
    let v = env.view();
    assert_eq!(v.rel_size(rel).await.unwrap(), None);
    assert!(!v.db_directory().await.unwrap().dbs.contains_key(&(1663, 6)));
    assert!(v.list_rels(1663, 6).await.unwrap().is_empty());
    env.storage.shutdown(false).await;
}

/// Random main data for every record type of every built-in rmgr: ingest
/// returns `Ok` or a typed error, never panics.
#[test]
fn random_main_data_never_panics() {
    use proptest::prelude::*;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let env = std::cell::RefCell::new(rt.block_on(Env::new()));
    let outcomes = std::cell::RefCell::new((0u32, 0u32));
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: 400,
        ..Default::default()
    });
    let strategy = (
        0u8..=21,
        0u8..16,
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..96),
        any::<u32>(),
    );
    runner
        .run(&strategy, |(rmid, op, high, data, xid)| {
            let info = (op << 4) | if high { 0x80 } else { 0 };
            let info = info & 0xF0;
            let mut env = env.borrow_mut();
            let rec = env.record(
                RecordBuilder::new(rmid, info)
                    .xid(xid)
                    .main_data(Bytes::from(data)),
            );
            let tl = Arc::clone(&env.tl);
            rt.block_on(async {
                let mut ingest = Ingest::new(tl).await.unwrap();
                // Errors are fine; panics are not. Nothing is committed.
                match ingest.ingest_record(&rec).await {
                    Ok(()) => outcomes.borrow_mut().0 += 1,
                    Err(_) => outcomes.borrow_mut().1 += 1,
                }
            });
            Ok(())
        })
        .unwrap();
    let (ok, err) = outcomes.into_inner();
    eprintln!("{ok} records accepted, {err} refused");
    assert!(ok > 0 && err > 0);
    let env = env.into_inner();
    assert_eq!(env.tl.get_last_record_lsn(), START);
    rt.block_on(env.storage.shutdown(false));
}

/// A walreceiver runs ingest in a spawned task: its futures must be `Send`.
#[allow(dead_code)]
fn ingest_futures_are_send(ingest: &mut Ingest, rec: &WalRecord, m: &mut DatadirModification) {
    fn send<T: Send>(_: &T) {}
    send(&ingest.ingest_record(rec));
    send(&ingest.commit());
    send(&m.commit());
    send(&pageserver::import_datadir::import_datadir(
        m.timeline(),
        std::path::Path::new("/"),
    ));
}
