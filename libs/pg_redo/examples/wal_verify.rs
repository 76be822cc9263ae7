//! `cargo run -p pg_redo --example wal_verify -- <pg_wal dir> [--start LSN] [--end LSN]`
//!
//! Developer tool (the product CLI is `pagectl wal-verify`): verifies WAL
//! written with `wal_consistency_checking = 'all'` against our redo, prints
//! each mismatch, then the JSON summary as the last line. Exits 0 only when
//! nothing mismatched; 2 on usage errors or unreadable WAL.

use std::path::PathBuf;
use std::process::ExitCode;

use pg_redo::verify::{verify_wal_dir_with, VerifyOptions};
use postgres_ffi::Lsn;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut dir: Option<PathBuf> = None;
    let mut opts = VerifyOptions {
        max_listed: 1000,
        ..Default::default()
    };
    while let Some(a) = args.next() {
        let lsn = |v: Option<String>| -> Option<Lsn> { v.and_then(|s| s.parse().ok()) };
        match a.as_str() {
            "--start" => opts.start = lsn(args.next()),
            "--end" => opts.end = lsn(args.next()),
            _ if dir.is_none() => dir = Some(PathBuf::from(a)),
            _ => {
                eprintln!("usage: wal_verify <pg_wal dir> [--start LSN] [--end LSN]");
                return ExitCode::from(2);
            }
        }
    }
    let Some(dir) = dir else {
        eprintln!("usage: wal_verify <pg_wal dir> [--start LSN] [--end LSN]");
        return ExitCode::from(2);
    };
    let report = match verify_wal_dir_with(&dir, &opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wal_verify: {e}");
            return ExitCode::from(2);
        }
    };
    for m in &report.mismatches {
        println!("{m}");
    }
    if let Some(e) = &report.wal_error {
        eprintln!("WAL reading stopped: {e}");
    }
    eprintln!(
        "skipped (no previous state): {}, VM bitmap differences: {}",
        report.skipped_no_base, report.vm_bitmap_mismatched
    );
    println!("{}", report.to_json());
    if report.mismatched == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
