//! PostgreSQL 15: the constants and layouts that belong to this major version.
//!
//! - version numbers and magic values (WAL page magic, catalog and control
//!   file versions, tablespace directory name);
//! - [`WAL_FORMAT`]: WAL constants the generic decoder/encoder needs;
//! - [`controlfile`]: `ControlFileData` and `CheckPoint` byte layouts;
//! - [`info`]: record type codes (`xl_info` high nibble) per resource manager;
//! - [`rmgr_names`]: the record type names `pg_waldump` prints.
//!
//! Values were read from the PostgreSQL 15.18 headers (`xlog_internal.h`,
//! `pg_control.h`, `catversion.h`, `xlogrecord.h`, the `*_xlog.h` files and
//! `rmgrdesc/*.c`). Nothing outside this module hard-codes them.

pub mod controlfile;
pub mod info;
pub mod rmgr_names;

use crate::wal::{BkpImageFlags, WalFormat};
use crate::PgMajorVersion;

/// `XLOG_PAGE_MAGIC`: first two bytes of every WAL page of a v15 server.
pub const XLOG_PAGE_MAGIC: u16 = 0xD110;

/// `PG_CONTROL_VERSION`.
pub const PG_CONTROL_VERSION: u32 = 1300;

/// `CATALOG_VERSION_NO` of the 15.x series.
pub const CATALOG_VERSION_NO: u32 = 202209061;

/// `TABLESPACE_VERSION_DIRECTORY`: `PG_<major>_<catversion>`.
pub const TABLESPACE_VERSION_DIRECTORY: &str = "PG_15_202209061";

/// Content of the `PG_VERSION` files (without the trailing newline).
pub const PG_MAJORVERSION: &str = "15";

/// `bimg_info` bits of a block image header (PostgreSQL 15 numbering; 14 and
/// earlier used different values, so these are per version).
pub const BKPIMAGE_HAS_HOLE: u8 = 0x01;
pub const BKPIMAGE_APPLY: u8 = 0x02;
pub const BKPIMAGE_COMPRESS_PGLZ: u8 = 0x04;
pub const BKPIMAGE_COMPRESS_LZ4: u8 = 0x08;
pub const BKPIMAGE_COMPRESS_ZSTD: u8 = 0x10;

/// Highest built-in resource manager id (`RM_MAX_BUILTIN_ID`).
pub const RM_MAX_BUILTIN_ID: u8 = 21;

/// The WAL format description the generic code in [`crate::wal`] uses.
pub const WAL_FORMAT: WalFormat = WalFormat {
    version: PgMajorVersion::V15,
    page_magic: XLOG_PAGE_MAGIC,
    bkpimage: BkpImageFlags {
        has_hole: BKPIMAGE_HAS_HOLE,
        apply: BKPIMAGE_APPLY,
        compress_pglz: BKPIMAGE_COMPRESS_PGLZ,
        compress_lz4: BKPIMAGE_COMPRESS_LZ4,
        compress_zstd: BKPIMAGE_COMPRESS_ZSTD,
    },
    rm_max_builtin_id: RM_MAX_BUILTIN_ID,
};
