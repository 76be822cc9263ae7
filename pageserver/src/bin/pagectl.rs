//! `pagectl`: offline tools for operators and tests.
//!
//! - `wal-verify <pg_wal dir> [--start LSN] [--end LSN]`: replays WAL written
//!   with `wal_consistency_checking = 'all'` through our native redo
//!   (`pg_redo`) and compares every block that carries a verification image
//!   with Postgres's own page, masked as Postgres masks it. Prints one line
//!   per mismatch and, as the last line, the JSON summary. Exit status 0
//!   only when nothing mismatched; 1 on mismatches; 2 when the WAL cannot be
//!   read at all.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pg_redo::verify::{verify_wal_dir_with, VerifyOptions};
use utils::lsn::Lsn;

#[derive(Parser, Debug)]
#[command(name = "pagectl", about = "Offline tools for the page server")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Check our redo against the verification images in a pg_wal directory.
    WalVerify {
        /// The cluster's pg_wal directory (its settings are read from
        /// ../global/pg_control).
        pg_wal: PathBuf,
        /// Count records starting at this LSN.
        #[arg(long)]
        start: Option<Lsn>,
        /// Stop before the first record starting at or after this LSN.
        #[arg(long)]
        end: Option<Lsn>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Cmd::WalVerify { pg_wal, start, end } => wal_verify(pg_wal, start, end),
    }
}

fn wal_verify(pg_wal: PathBuf, start: Option<Lsn>, end: Option<Lsn>) -> ExitCode {
    let opts = VerifyOptions {
        start,
        end,
        max_listed: 1000,
        ..Default::default()
    };
    let report = match verify_wal_dir_with(&pg_wal, &opts) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error: {}: {e}", pg_wal.display());
            return ExitCode::from(2);
        }
    };
    for m in &report.mismatches {
        println!("{m}");
    }
    if let Some(e) = &report.wal_error {
        eprintln!("WAL reading stopped early: {e}");
    }
    println!("{}", report.to_json());
    if report.mismatched == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
