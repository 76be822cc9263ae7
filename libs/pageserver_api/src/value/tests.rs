//! Tests of the value format: fixed byte vectors for each kind, rejection of
//! malformed input, and property tests (roundtrip, canonical form, no panics
//! on arbitrary bytes).

use bytes::Bytes;
use proptest::prelude::*;

use super::*;

fn rec(r: WalRecord) -> Value {
    Value::WalRecord(r)
}

#[test]
fn fixed_vectors() {
    let cases: Vec<(Value, Vec<u8>)> = vec![
        (
            Value::Image(Bytes::from_static(b"pg")),
            vec![1, 0, 1, b'p', b'g'],
        ),
        (
            rec(WalRecord::Postgres {
                will_init: false,
                rec: Bytes::from_static(b"\x07"),
            }),
            vec![1, 1, 0, 7],
        ),
        (
            rec(WalRecord::Test {
                append: Bytes::from_static(b"ab"),
                will_init: false,
                clear: true,
            }),
            vec![1, 2, 2, b'a', b'b'],
        ),
        (
            rec(WalRecord::ClogSetStatus {
                xids: vec![0x0102_0304, 5],
                status: 3,
                timestamp: Some(-2),
            }),
            [
                &[1u8, 3, 0, 3, 1][..],
                &(-2i64).to_le_bytes(),
                &[2, 0, 0, 0, 4, 3, 2, 1, 5, 0, 0, 0],
            ]
            .concat(),
        ),
        (
            rec(WalRecord::ClearVisibilityMapFlags {
                new_heap_blkno: None,
                old_heap_blkno: Some(0x10),
                flags: 0x03,
            }),
            vec![1, 4, 0, 0b10, 0, 0, 0, 0, 0x10, 0, 0, 0, 0x03],
        ),
        (
            rec(WalRecord::MultixactOffsetCreate { mid: 1, moff: 256 }),
            vec![1, 5, 0, 1, 0, 0, 0, 0, 1, 0, 0],
        ),
        (
            rec(WalRecord::MultixactMembersCreate {
                moff: 2,
                members: vec![(9, 4)],
            }),
            vec![1, 6, 0, 2, 0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 4],
        ),
    ];
    for (value, bytes) in cases {
        assert_eq!(value.ser(), bytes, "{value:?}");
        assert_eq!(Value::des(&bytes), Ok(value.clone()));
        assert_eq!(
            Value::des_bytes(&Bytes::from(bytes.clone())),
            Ok(value.clone())
        );
        assert_eq!(Value::ser_will_init(&bytes), Ok(value.will_init()));
    }
}

#[test]
fn will_init_rules() {
    assert!(Value::Image(Bytes::new()).will_init());
    assert!(Value::Image(Bytes::new()).is_image());
    let pg = |will_init| {
        rec(WalRecord::Postgres {
            will_init,
            rec: Bytes::new(),
        })
    };
    assert!(pg(true).will_init() && !pg(false).will_init() && !pg(true).is_image());
    let clear_only = rec(WalRecord::Test {
        append: Bytes::new(),
        will_init: false,
        clear: true,
    });
    assert!(!clear_only.will_init(), "clear alone still reads the base");
    let clog = rec(WalRecord::ClogSetStatus {
        xids: vec![],
        status: 1,
        timestamp: None,
    });
    assert!(!clog.will_init());
    assert_eq!(Value::ser_will_init(&pg(true).ser()), Ok(true));
    assert_eq!(Value::ser_will_init(&clog.ser()), Ok(false));
}

#[test]
fn malformed_inputs_are_typed_errors() {
    use ValueDecodeError as E;
    assert_eq!(Value::des(&[]), Err(E::Truncated { len: 0, needed: 3 }));
    assert_eq!(Value::des(&[1, 0]), Err(E::Truncated { len: 2, needed: 3 }));
    assert_eq!(Value::des(&[2]), Err(E::UnsupportedVersion(2)));
    assert_eq!(Value::des(&[9, 0, 1]), Err(E::UnsupportedVersion(9)));
    assert_eq!(Value::des(&[1, 0x42, 0]), Err(E::UnknownTag(0x42)));
    assert_eq!(
        Value::des(&[1, 0, 0]),
        Err(E::BadFlags { tag: 0, flags: 0 })
    );
    assert_eq!(
        Value::ser_will_init(&[1, 1, 0x80]),
        Err(E::BadFlags {
            tag: 1,
            flags: 0x80
        })
    );
    assert_eq!(
        Value::des(&[1, 5, 1, 0, 0, 0, 0, 0, 0, 0, 0]),
        Err(E::BadFlags { tag: 5, flags: 1 })
    );
    assert_eq!(
        Value::des(&[1, 5, 0, 1, 0, 0, 0, 0, 1, 0]),
        Err(E::Truncated {
            len: 10,
            needed: 11
        })
    );
    assert_eq!(
        Value::des(&[1, 5, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0xAA]),
        Err(E::TrailingBytes { tag: 5, extra: 1 })
    );
    // A huge member count is rejected before anything is allocated.
    assert!(matches!(
        Value::des(&[1, 6, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]),
        Err(E::Truncated { .. })
    ));
    assert!(matches!(
        Value::des(&[1, 3, 0, 1, 2, 0, 0, 0, 0]),
        Err(E::BadField { tag: 3, .. })
    ));
    // Absent block numbers must be written as zero.
    assert_eq!(
        Value::des(&[1, 4, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]),
        Err(E::NonCanonical {
            tag: 4,
            field: "new_heap_blkno"
        })
    );
    assert!(matches!(
        Value::des(&[1, 4, 0, 0b100, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        Err(E::BadField { tag: 4, .. })
    ));
}

fn bytes_strategy() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from)
}

fn value_strategy() -> impl Strategy<Value = Value> {
    let rec = prop_oneof![
        (any::<bool>(), bytes_strategy())
            .prop_map(|(will_init, rec)| WalRecord::Postgres { will_init, rec }),
        (bytes_strategy(), any::<bool>(), any::<bool>()).prop_map(|(append, will_init, clear)| {
            WalRecord::Test {
                append,
                will_init,
                clear,
            }
        }),
        (
            proptest::collection::vec(any::<u32>(), 0..16),
            any::<u8>(),
            any::<Option<i64>>()
        )
            .prop_map(|(xids, status, timestamp)| WalRecord::ClogSetStatus {
                xids,
                status,
                timestamp
            }),
        (any::<Option<u32>>(), any::<Option<u32>>(), any::<u8>()).prop_map(
            |(new_heap_blkno, old_heap_blkno, flags)| WalRecord::ClearVisibilityMapFlags {
                new_heap_blkno,
                old_heap_blkno,
                flags
            }
        ),
        (any::<u32>(), any::<u32>())
            .prop_map(|(mid, moff)| WalRecord::MultixactOffsetCreate { mid, moff }),
        (
            any::<u32>(),
            proptest::collection::vec((any::<u32>(), any::<u8>()), 0..16)
        )
            .prop_map(|(moff, members)| WalRecord::MultixactMembersCreate { moff, members }),
    ];
    prop_oneof![
        bytes_strategy().prop_map(Value::Image),
        rec.prop_map(Value::WalRecord),
    ]
}

proptest! {
    #[test]
    fn roundtrip(value in value_strategy()) {
        let bytes = value.ser();
        prop_assert_eq!(Value::des(&bytes), Ok(value.clone()));
        prop_assert_eq!(Value::ser_will_init(&bytes), Ok(value.will_init()));
        // Appending to a non-empty buffer leaves the prefix alone.
        let mut buf = vec![0xEE];
        value.ser_into(&mut buf);
        prop_assert_eq!(&buf[1..], &bytes[..]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..48)) {
        let decoded = Value::des(&bytes);
        let cheap = Value::ser_will_init(&bytes);
        if let Ok(value) = decoded {
            // Canonical: whatever decodes re-encodes to the same bytes.
            prop_assert_eq!(value.ser(), bytes.clone());
            prop_assert_eq!(cheap, Ok(value.will_init()));
        }
    }

    #[test]
    fn header_like_bytes_never_panic(
        tag in 0u8..8,
        flags in 0u8..4,
        tail in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        // Random bytes rarely pass the header; this drives the payload
        // decoders with valid headers instead.
        let bytes = [&[VALUE_FORMAT_V1, tag, flags][..], &tail].concat();
        if let Ok(value) = Value::des(&bytes) {
            prop_assert_eq!(value.ser(), bytes.clone());
            prop_assert_eq!(Value::ser_will_init(&bytes), Ok(value.will_init()));
        }
    }
}
