//! `pagectl`: offline tools for operators and tests.
//!
//! - `wal-verify <pg_wal dir> [--start LSN] [--end LSN] [--timing]`: replays WAL written
//!   with `wal_consistency_checking = 'all'` through our native redo
//!   (`pg_redo`) and compares every block that carries a verification image
//!   with Postgres's own page, masked as Postgres masks it. Prints one line
//!   per mismatch and, as the last line, the JSON summary. Exit status 0
//!   only when nothing mismatched; 1 on mismatches; 2 when the WAL cannot be
//!   read at all.
//! - `ingest-bench --workdir <dir> <pgdata> <pg_wal>`: decode + ingest
//!   throughput of real WAL (see [`ingest_bench`]).
//! - `mask-pages [--fork N] [--first-block B] <in> <out>`: applies the
//!   redo library's per-access-method masks (those of PostgreSQL's
//!   consistency checks) to every 8 KiB page of a relation file (or any
//!   sequence of pages of one fork, the first being block B), so that two
//!   copies of a relation can be compared byte for byte.

mod ingest_bench;

// The server's allocator, so that measurements match the server's.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pg_redo::verify::{verify_wal_dir_with, VerifyOptions};
use postgres_ffi::BLCKSZ;
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
        /// Time each block redo and print, before the JSON line, a line
        /// per record type: `redo <Rmgr/TYPE> <blocks> blocks <ns>
        /// ns/block <rate> blocks/s`.
        #[arg(long)]
        timing: bool,
    },
    /// Measure decode + ingest of the WAL written after a base backup.
    IngestBench {
        /// An empty (or missing) directory for the throwaway storage.
        #[arg(long)]
        workdir: PathBuf,
        /// Node-wide in-memory layer budget in MiB (0: none).
        #[arg(long, default_value_t = 0)]
        ephemeral_budget_mb: u64,
        /// Use the std-fs IO engine instead of io-uring.
        #[arg(long)]
        std_fs: bool,
        /// Only decode the WAL (no ingest): the decoder's share of the cost.
        #[arg(long)]
        decode_only: bool,
        /// The base backup (with backup_label) or shut down data directory.
        pgdata: PathBuf,
        /// The pg_wal directory with the WAL from the backup's start on.
        pg_wal: PathBuf,
    },
    /// Mask the pages of a relation file for comparison.
    MaskPages {
        /// Fork number (0 main, 1 FSM, 2 VM, 3 init).
        #[arg(long, default_value_t = 0)]
        fork: u8,
        /// Block number of the first page in the file.
        #[arg(long, default_value_t = 0)]
        first_block: u32,
        input: PathBuf,
        output: PathBuf,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Cmd::WalVerify {
            pg_wal,
            start,
            end,
            timing,
        } => wal_verify(pg_wal, start, end, timing),
        Cmd::IngestBench {
            workdir,
            ephemeral_budget_mb,
            std_fs,
            decode_only,
            pgdata,
            pg_wal,
        } => match ingest_bench::run(
            &pgdata,
            &pg_wal,
            &workdir,
            ingest_bench::Options {
                budget_mb: ephemeral_budget_mb,
                std_fs,
                decode_only,
            },
        ) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("Error: {e:#}");
                ExitCode::from(2)
            }
        },
        Cmd::MaskPages {
            fork,
            first_block,
            input,
            output,
        } => match mask_pages(fork, first_block, &input, &output) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("Error: {e}");
                ExitCode::from(2)
            }
        },
    }
}

fn mask_pages(fork: u8, first_block: u32, input: &Path, output: &Path) -> Result<(), String> {
    let mut data = std::fs::read(input).map_err(|e| format!("{}: {e}", input.display()))?;
    if data.len() % BLCKSZ != 0 {
        return Err(format!(
            "{}: {} bytes is not a whole number of {BLCKSZ}-byte pages",
            input.display(),
            data.len()
        ));
    }
    for (i, chunk) in data.chunks_exact_mut(BLCKSZ).enumerate() {
        let page: &mut [u8; BLCKSZ] = chunk
            .try_into()
            .map_err(|_| "page is not 8 KiB".to_owned())?;
        let blkno = first_block.saturating_add(i as u32);
        pg_redo::mask::mask_relation_page(page, fork, blkno);
    }
    std::fs::write(output, &data).map_err(|e| format!("{}: {e}", output.display()))
}

fn print_timing(name: &str, blocks: u64, nanos: u64) {
    let per_block = nanos as f64 / blocks.max(1) as f64;
    println!(
        "redo {name} {blocks} blocks {per_block:.0} ns/block {:.0} blocks/s",
        1e9 / per_block.max(1e-9)
    );
}

fn wal_verify(pg_wal: PathBuf, start: Option<Lsn>, end: Option<Lsn>, timing: bool) -> ExitCode {
    let opts = VerifyOptions {
        start,
        end,
        max_listed: 1000,
        time_redo: timing,
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
    let (mut blocks, mut nanos) = (0u64, 0u64);
    for (name, t) in &report.redo_timing {
        blocks += t.blocks;
        nanos += t.nanos;
        print_timing(name, t.blocks, t.nanos);
    }
    if timing {
        print_timing("all", blocks, nanos);
    }
    println!("{}", report.to_json());
    if report.mismatched == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
