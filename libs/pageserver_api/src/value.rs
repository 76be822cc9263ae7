//! The value stored under a key at an LSN, and its binary form.
//!
//! Owns [`Value`] (a page image or a WAL record), [`WalRecord`] (raw Postgres
//! records and the synthetic records WAL ingest emits) and their versioned
//! serialization, which is what layer files and the in-memory layer store.
//!
//! # Format (version 1)
//!
//! All multi-byte integers are **little-endian**. A serialized value is a
//! whole byte slice; its length is framed by the storage layer, so the last
//! variable-length field of a kind runs to the end of the slice.
//!
//! ```text
//! byte 0   format version = 0x01
//! byte 1   kind tag (table below)
//! byte 2   flags: bit 0 = will_init, bit 1 = clear (Test only); other bits 0
//! byte 3.. payload
//! ```
//!
//! | tag  | kind | flags allowed | payload |
//! |------|------|---------------|---------|
//! | 0x00 | `Image` | exactly `0x01` | page bytes to the end |
//! | 0x01 | `Postgres` | bit 0 | raw WAL record to the end |
//! | 0x02 | `Test` | bits 0, 1 | bytes to append, to the end |
//! | 0x03 | `ClogSetStatus` | none | `status u8`, `has_ts u8 (0/1)`, `[ts i64]`, `n u32`, `n × xid u32` |
//! | 0x04 | `ClearVisibilityMapFlags` | none | `present u8 (bit 0 new, bit 1 old)`, `new u32`, `old u32`, `flags u8` |
//! | 0x05 | `MultixactOffsetCreate` | none | `mid u32`, `moff u32` |
//! | 0x06 | `MultixactMembersCreate` | none | `moff u32`, `n u32`, `n × (xid u32, status u8)` |
//!
//! The encoding is canonical: absent block numbers are written as 0, and the
//! decoder rejects anything [`Value::ser_into`] would not produce (unknown
//! flags, non-zero absent fields, trailing bytes). Hence `ser(des(b)) == b`
//! whenever `des(b)` succeeds, and the `will_init` answer of
//! [`Value::ser_will_init`] (flag bit 0) always agrees with a full decode.
//! New kinds get new tags; an incompatible layout change gets a new format
//! version. `docs/value-format.md` describes the same format for readers
//! outside the code.
//!
//! Callers: the write path and in-memory layer (`ser_into`), layer readers
//! and the read path (`des`, `ser_will_init` to stop collecting records once
//! one initialises the page), and WAL redo (matching on [`WalRecord`]).

use bytes::Bytes;

/// The current (and only) format version.
pub const VALUE_FORMAT_V1: u8 = 0x01;

const HEADER_LEN: usize = 3;

const TAG_IMAGE: u8 = 0x00;
const TAG_POSTGRES: u8 = 0x01;
const TAG_TEST: u8 = 0x02;
const TAG_CLOG_SET_STATUS: u8 = 0x03;
const TAG_CLEAR_VM_FLAGS: u8 = 0x04;
const TAG_MULTIXACT_OFFSET_CREATE: u8 = 0x05;
const TAG_MULTIXACT_MEMBERS_CREATE: u8 = 0x06;

const FLAG_WILL_INIT: u8 = 0x01;
const FLAG_CLEAR: u8 = 0x02;

/// What is stored for a key at one LSN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A complete page (or metadata value); needs no older history.
    Image(Bytes),
    /// A change to apply to the older value.
    WalRecord(WalRecord),
}

/// A change to a page, applied by WAL redo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalRecord {
    /// A raw Postgres WAL record. `will_init` records (e.g. a full-page
    /// image or `XLOG_HEAP_INIT_PAGE`) rebuild the page from nothing.
    Postgres { will_init: bool, rec: Bytes },
    /// For storage-engine tests only, never produced by WAL ingest. Redo:
    /// start from an empty page if `will_init` or `clear`, else from the
    /// older value, then append `append`. `clear` without `will_init` still
    /// needs (and discards) the older value, which lets tests tell the two
    /// apart.
    Test {
        append: Bytes,
        will_init: bool,
        clear: bool,
    },
    /// Set the commit status of `xids` in a CLOG page; `timestamp` is the
    /// commit time (Postgres `TimestampTz`) when known.
    ClogSetStatus {
        xids: Vec<u32>,
        status: u8,
        timestamp: Option<i64>,
    },
    /// Clear visibility-map bits `flags` for the heap block(s) a heap record
    /// touched; the record applies to the VM page covering either block.
    ClearVisibilityMapFlags {
        new_heap_blkno: Option<u32>,
        old_heap_blkno: Option<u32>,
        flags: u8,
    },
    /// Record the member offset `moff` of multixact `mid`.
    MultixactOffsetCreate { mid: u32, moff: u32 },
    /// Store `members` (xid, lock status) starting at member offset `moff`.
    MultixactMembersCreate { moff: u32, members: Vec<(u32, u8)> },
}

impl WalRecord {
    /// Whether applying this record needs no older value.
    pub fn will_init(&self) -> bool {
        match self {
            WalRecord::Postgres { will_init, .. } | WalRecord::Test { will_init, .. } => *will_init,
            WalRecord::ClogSetStatus { .. }
            | WalRecord::ClearVisibilityMapFlags { .. }
            | WalRecord::MultixactOffsetCreate { .. }
            | WalRecord::MultixactMembersCreate { .. } => false,
        }
    }
}

/// Why bytes are not a serialized [`Value`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueDecodeError {
    #[error("value truncated: {len} bytes, need at least {needed}")]
    Truncated { len: usize, needed: usize },
    #[error("unsupported value format version 0x{0:02X}")]
    UnsupportedVersion(u8),
    #[error("unknown value kind tag 0x{0:02X}")]
    UnknownTag(u8),
    #[error("invalid flags 0x{flags:02X} for value kind tag 0x{tag:02X}")]
    BadFlags { tag: u8, flags: u8 },
    #[error("invalid {field} 0x{byte:02X} in value kind tag 0x{tag:02X}")]
    BadField {
        tag: u8,
        field: &'static str,
        byte: u8,
    },
    #[error("absent {field} is not zero in value kind tag 0x{tag:02X}")]
    NonCanonical { tag: u8, field: &'static str },
    #[error("{extra} trailing bytes after value kind tag 0x{tag:02X}")]
    TrailingBytes { tag: u8, extra: usize },
}

impl Value {
    pub fn is_image(&self) -> bool {
        matches!(self, Value::Image(_))
    }

    /// Whether this value needs no older value to reconstruct the page.
    pub fn will_init(&self) -> bool {
        match self {
            Value::Image(_) => true,
            Value::WalRecord(rec) => rec.will_init(),
        }
    }

    /// Appends the header of a serialized `Value::Image`; the image bytes
    /// follow it, written by the caller (e.g. a page restored in place).
    pub fn ser_image_header(out: &mut Vec<u8>) {
        out.extend_from_slice(&[VALUE_FORMAT_V1, TAG_IMAGE, FLAG_WILL_INIT]);
    }

    /// Appends what `ser_into` gives for a `WalRecord::Postgres` with these
    /// fields, from a borrowed record.
    pub fn ser_postgres_record(out: &mut Vec<u8>, will_init: bool, rec: &[u8]) {
        let flags = if will_init { FLAG_WILL_INIT } else { 0 };
        out.extend_from_slice(&[VALUE_FORMAT_V1, TAG_POSTGRES, flags]);
        out.extend_from_slice(rec);
    }

    /// Appends what `ser_into` gives for a `WalRecord::ClogSetStatus` with
    /// these fields, without building one (ingest writes one per commit).
    pub fn ser_clog_set_status(
        out: &mut Vec<u8>,
        xids: &[u32],
        status: u8,
        timestamp: Option<i64>,
    ) {
        out.extend_from_slice(&[VALUE_FORMAT_V1, TAG_CLOG_SET_STATUS, 0, status]);
        match timestamp {
            Some(ts) => {
                out.push(1);
                out.extend_from_slice(&ts.to_le_bytes());
            }
            None => out.push(0),
        }
        put_count(out, xids.len());
        for xid in xids {
            out.extend_from_slice(&xid.to_le_bytes());
        }
    }

    /// Appends the serialized form (module docs) to `out`.
    pub fn ser_into(&self, out: &mut Vec<u8>) {
        let wi = |b: bool| if b { FLAG_WILL_INIT } else { 0 };
        let rec = match self {
            Value::Image(page) => {
                Value::ser_image_header(out);
                out.extend_from_slice(page);
                return;
            }
            Value::WalRecord(rec) => rec,
        };
        match rec {
            WalRecord::Postgres { will_init, rec } => {
                Value::ser_postgres_record(out, *will_init, rec);
            }
            WalRecord::Test {
                append,
                will_init,
                clear,
            } => {
                let flags = wi(*will_init) | if *clear { FLAG_CLEAR } else { 0 };
                out.extend_from_slice(&[VALUE_FORMAT_V1, TAG_TEST, flags]);
                out.extend_from_slice(append);
            }
            WalRecord::ClogSetStatus {
                xids,
                status,
                timestamp,
            } => Value::ser_clog_set_status(out, xids, *status, *timestamp),
            WalRecord::ClearVisibilityMapFlags {
                new_heap_blkno,
                old_heap_blkno,
                flags,
            } => {
                let present =
                    u8::from(new_heap_blkno.is_some()) | (u8::from(old_heap_blkno.is_some()) << 1);
                out.extend_from_slice(&[VALUE_FORMAT_V1, TAG_CLEAR_VM_FLAGS, 0, present]);
                out.extend_from_slice(&new_heap_blkno.unwrap_or(0).to_le_bytes());
                out.extend_from_slice(&old_heap_blkno.unwrap_or(0).to_le_bytes());
                out.push(*flags);
            }
            WalRecord::MultixactOffsetCreate { mid, moff } => {
                out.extend_from_slice(&[VALUE_FORMAT_V1, TAG_MULTIXACT_OFFSET_CREATE, 0]);
                out.extend_from_slice(&mid.to_le_bytes());
                out.extend_from_slice(&moff.to_le_bytes());
            }
            WalRecord::MultixactMembersCreate { moff, members } => {
                out.extend_from_slice(&[VALUE_FORMAT_V1, TAG_MULTIXACT_MEMBERS_CREATE, 0]);
                out.extend_from_slice(&moff.to_le_bytes());
                put_count(out, members.len());
                for (xid, status) in members {
                    out.extend_from_slice(&xid.to_le_bytes());
                    out.push(*status);
                }
            }
        }
    }

    /// The serialized form as a new vector.
    pub fn ser(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.ser_into(&mut out);
        out
    }

    /// Decodes a serialized value, copying variable-length payloads.
    pub fn des(bytes: &[u8]) -> Result<Value, ValueDecodeError> {
        decode(bytes, Bytes::copy_from_slice)
    }

    /// Decodes a serialized value held in `Bytes`; page images and raw
    /// records share its buffer instead of being copied.
    pub fn des_bytes(bytes: &Bytes) -> Result<Value, ValueDecodeError> {
        decode(bytes, |payload| bytes.slice_ref(payload))
    }

    /// `will_init` of a serialized value from its 3-byte header alone (the
    /// payload is not checked). Agrees with `des(bytes)?.will_init()`
    /// whenever the full decode succeeds.
    pub fn ser_will_init(bytes: &[u8]) -> Result<bool, ValueDecodeError> {
        let (_, flags, _) = header(bytes)?;
        Ok(flags & FLAG_WILL_INIT != 0)
    }
}

fn put_count(out: &mut Vec<u8>, n: usize) {
    // Counts come from records parsed out of WAL records of at most 1 GiB,
    // far below u32::MAX elements. Were one ever larger, the saturated count
    // would make decoding fail with `TrailingBytes`, never yield a wrong
    // value.
    let n = u32::try_from(n).unwrap_or(u32::MAX);
    out.extend_from_slice(&n.to_le_bytes());
}

/// Checks the header; returns `(tag, flags, payload)`.
fn header(bytes: &[u8]) -> Result<(u8, u8, &[u8]), ValueDecodeError> {
    let Some((&[version, tag, flags], payload)) = bytes.split_first_chunk::<HEADER_LEN>() else {
        if let Some(&version) = bytes.first() {
            if version != VALUE_FORMAT_V1 {
                return Err(ValueDecodeError::UnsupportedVersion(version));
            }
        }
        return Err(ValueDecodeError::Truncated {
            len: bytes.len(),
            needed: HEADER_LEN,
        });
    };
    if version != VALUE_FORMAT_V1 {
        return Err(ValueDecodeError::UnsupportedVersion(version));
    }
    let allowed = match tag {
        TAG_IMAGE => {
            if flags != FLAG_WILL_INIT {
                return Err(ValueDecodeError::BadFlags { tag, flags });
            }
            FLAG_WILL_INIT
        }
        TAG_POSTGRES => FLAG_WILL_INIT,
        TAG_TEST => FLAG_WILL_INIT | FLAG_CLEAR,
        TAG_CLOG_SET_STATUS
        | TAG_CLEAR_VM_FLAGS
        | TAG_MULTIXACT_OFFSET_CREATE
        | TAG_MULTIXACT_MEMBERS_CREATE => 0,
        other => return Err(ValueDecodeError::UnknownTag(other)),
    };
    if flags & !allowed != 0 {
        return Err(ValueDecodeError::BadFlags { tag, flags });
    }
    Ok((tag, flags, payload))
}

/// A cursor over a payload with bounds-checked little-endian reads.
struct Reader<'a> {
    whole_len: usize,
    rest: &'a [u8],
    tag: u8,
}

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], ValueDecodeError> {
        match self.rest.split_first_chunk::<N>() {
            Some((chunk, rest)) => {
                self.rest = rest;
                Ok(*chunk)
            }
            None => Err(self.truncated(N)),
        }
    }

    fn truncated(&self, more: usize) -> ValueDecodeError {
        let consumed = self.whole_len - self.rest.len();
        ValueDecodeError::Truncated {
            len: self.whole_len,
            needed: consumed + more,
        }
    }

    fn u8(&mut self) -> Result<u8, ValueDecodeError> {
        Ok(self.take::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, ValueDecodeError> {
        Ok(u32::from_le_bytes(self.take()?))
    }

    fn i64(&mut self) -> Result<i64, ValueDecodeError> {
        Ok(i64::from_le_bytes(self.take()?))
    }

    /// Reads an element count and checks that `count * elem_size` bytes
    /// remain, so a corrupt count cannot trigger a huge allocation.
    fn count(&mut self, elem_size: usize) -> Result<usize, ValueDecodeError> {
        let n = self.u32()? as usize;
        let needed = n.saturating_mul(elem_size);
        if self.rest.len() < needed {
            return Err(self.truncated(needed));
        }
        Ok(n)
    }

    fn finish(self) -> Result<(), ValueDecodeError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(ValueDecodeError::TrailingBytes {
                tag: self.tag,
                extra: self.rest.len(),
            })
        }
    }
}

fn decode<'a>(
    bytes: &'a [u8],
    payload_bytes: impl Fn(&'a [u8]) -> Bytes,
) -> Result<Value, ValueDecodeError> {
    let (tag, flags, payload) = header(bytes)?;
    let will_init = flags & FLAG_WILL_INIT != 0;
    let mut r = Reader {
        whole_len: bytes.len(),
        rest: payload,
        tag,
    };
    let rec = match tag {
        TAG_IMAGE => return Ok(Value::Image(payload_bytes(payload))),
        TAG_POSTGRES => WalRecord::Postgres {
            will_init,
            rec: payload_bytes(payload),
        },
        TAG_TEST => WalRecord::Test {
            append: payload_bytes(payload),
            will_init,
            clear: flags & FLAG_CLEAR != 0,
        },
        TAG_CLOG_SET_STATUS => {
            let status = r.u8()?;
            let timestamp = match r.u8()? {
                0 => None,
                1 => Some(r.i64()?),
                byte => {
                    return Err(ValueDecodeError::BadField {
                        tag,
                        field: "timestamp presence",
                        byte,
                    })
                }
            };
            let n = r.count(4)?;
            let xids = (0..n).map(|_| r.u32()).collect::<Result<_, _>>()?;
            r.finish()?;
            WalRecord::ClogSetStatus {
                xids,
                status,
                timestamp,
            }
        }
        TAG_CLEAR_VM_FLAGS => {
            let present = r.u8()?;
            if present & !0b11 != 0 {
                return Err(ValueDecodeError::BadField {
                    tag,
                    field: "block presence",
                    byte: present,
                });
            }
            let mut blkno = |bit: u8, field| -> Result<Option<u32>, ValueDecodeError> {
                let v = r.u32()?;
                match (present & bit != 0, v) {
                    (true, v) => Ok(Some(v)),
                    (false, 0) => Ok(None),
                    (false, _) => Err(ValueDecodeError::NonCanonical { tag, field }),
                }
            };
            let new_heap_blkno = blkno(0b01, "new_heap_blkno")?;
            let old_heap_blkno = blkno(0b10, "old_heap_blkno")?;
            let flags = r.u8()?;
            r.finish()?;
            WalRecord::ClearVisibilityMapFlags {
                new_heap_blkno,
                old_heap_blkno,
                flags,
            }
        }
        TAG_MULTIXACT_OFFSET_CREATE => {
            let mid = r.u32()?;
            let moff = r.u32()?;
            r.finish()?;
            WalRecord::MultixactOffsetCreate { mid, moff }
        }
        TAG_MULTIXACT_MEMBERS_CREATE => {
            let moff = r.u32()?;
            let n = r.count(5)?;
            let members = (0..n)
                .map(|_| Ok((r.u32()?, r.u8()?)))
                .collect::<Result<_, ValueDecodeError>>()?;
            r.finish()?;
            WalRecord::MultixactMembersCreate { moff, members }
        }
        other => return Err(ValueDecodeError::UnknownTag(other)),
    };
    Ok(Value::WalRecord(rec))
}

#[cfg(test)]
mod tests;
