//! `pagebench`: load generator for a page service (ours or any server that
//! speaks pagestream v2/v3).
//!
//! `get-page-latest-lsn` opens N connections, keeps `--queue-depth` GetPage
//! requests in flight on each (pipelined: requests are written ahead and
//! responses read in order), picks blocks at random or sequentially from
//! the given relation block ranges, and runs for `--runtime`. It prints a
//! human summary and, as its last line, one JSON object with requests/s,
//! p50/p99/p99.9 latency (µs), the count and the number of errors.
//!
//! Latency is measured per request from the moment it is written to the
//! socket to the moment its response has been read. Frontend messages are
//! encoded with `postgres-protocol`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::{Buf, BytesMut};
use clap::{Parser, Subcommand};
use pageserver_api::pagestream::{
    ClientResponse, ParsedResponse, ProtocolVersion, Request, RequestHeader,
};
use pageserver_api::reltag::RelTag;
use postgres_protocol::message::frontend;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use utils::lsn::Lsn;

#[derive(Parser, Debug)]
#[command(name = "pagebench", about = "Benchmarks a page service")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// GetPage at the latest LSN, from N connections.
    GetPageLatestLsn(GetPageArgs),
}

#[derive(clap::Args, Debug)]
struct GetPageArgs {
    /// host:port of the page service.
    #[arg(long, default_value = "127.0.0.1:64000")]
    page_service_addr: String,
    /// JWT passed as the password (NeonJWT auth).
    #[arg(long)]
    token: Option<String>,
    #[arg(long)]
    tenant_id: String,
    #[arg(long)]
    timeline_id: String,
    /// Relation block ranges: `spc/db/rel[/fork]:first-last`; repeatable.
    #[arg(long = "blocks", required = true)]
    blocks: Vec<String>,
    #[arg(long, default_value_t = 8)]
    connections: usize,
    #[arg(long, default_value_t = 1)]
    queue_depth: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    runtime: u64,
    /// Walk blocks in order instead of at random.
    #[arg(long)]
    sequential: bool,
    /// Protocol version (2 or 3).
    #[arg(long, default_value_t = 3)]
    protocol: u8,
    /// Also print requests and latency percentiles for each second of the
    /// run (by the second a response arrived), to tell a periodic stall
    /// from a uniform tail.
    #[arg(long)]
    per_second: bool,
}

#[derive(Debug, Clone, Copy)]
struct BlockRange {
    rel: RelTag,
    first: u32,
    last: u32,
}

fn parse_range(s: &str) -> anyhow::Result<BlockRange> {
    let (rel, blocks) = s
        .split_once(':')
        .with_context(|| format!("{s:?}: expected spc/db/rel[/fork]:first-last"))?;
    let parts: Vec<u32> = rel
        .split('/')
        .map(|p| {
            p.parse::<u32>()
                .with_context(|| format!("{s:?}: bad number {p:?}"))
        })
        .collect::<anyhow::Result<_>>()?;
    let (spc, db, relnode, fork) = match parts[..] {
        [a, b, c] => (a, b, c, 0),
        [a, b, c, f] => (a, b, c, f),
        _ => bail!("{s:?}: expected spc/db/rel[/fork]"),
    };
    let (first, last) = blocks
        .split_once('-')
        .with_context(|| format!("{s:?}: expected first-last blocks"))?;
    let (first, last): (u32, u32) = (first.parse()?, last.parse()?);
    if first > last {
        bail!("{s:?}: first block above last");
    }
    let forknum = u8::try_from(fork).with_context(|| format!("{s:?}: fork {fork}"))?;
    Ok(BlockRange {
        rel: RelTag::new(spc, db, relnode, forknum),
        first,
        last,
    })
}

/// A connection in pagestream mode.
struct Stream {
    socket: TcpStream,
    inbuf: BytesMut,
    version: ProtocolVersion,
}

impl Stream {
    /// Whether a whole backend message is already buffered.
    fn has_frame(&self) -> bool {
        self.inbuf.len() >= 5
            && self.inbuf.len()
                > u32::from_be_bytes([self.inbuf[1], self.inbuf[2], self.inbuf[3], self.inbuf[4]])
                    as usize
    }

    /// The next backend message as (tag, body). `postgres-protocol`'s
    /// backend parser does not know CopyBothResponse, so frames are split
    /// here and only bodies are interpreted.
    async fn read_frame(&mut self) -> anyhow::Result<(u8, bytes::Bytes)> {
        loop {
            if self.inbuf.len() >= 5 {
                let len = u32::from_be_bytes([
                    self.inbuf[1],
                    self.inbuf[2],
                    self.inbuf[3],
                    self.inbuf[4],
                ]) as usize;
                if len < 4 {
                    bail!("malformed message length {len}");
                }
                if self.inbuf.len() > len {
                    let tag = self.inbuf[0];
                    let mut frame = self.inbuf.split_to(len + 1);
                    frame.advance(5);
                    return Ok((tag, frame.freeze()));
                }
            }
            if self.socket.read_buf(&mut self.inbuf).await? == 0 {
                bail!("page service closed the connection");
            }
        }
    }

    async fn connect(args: &GetPageArgs) -> anyhow::Result<Stream> {
        let socket = TcpStream::connect(&args.page_service_addr)
            .await
            .with_context(|| format!("connecting to {}", args.page_service_addr))?;
        socket.set_nodelay(true)?;
        let version = match args.protocol {
            2 => ProtocolVersion::V2,
            3 => ProtocolVersion::V3,
            other => bail!("protocol version {other} (expected 2 or 3)"),
        };
        let mut s = Stream {
            socket,
            inbuf: BytesMut::with_capacity(1 << 20),
            version,
        };
        let mut out = BytesMut::new();
        frontend::startup_message(
            [("user", "pagebench"), ("application_name", "pagebench")],
            &mut out,
        )?;
        s.socket.write_all(&out).await?;
        loop {
            let (tag, body) = s.read_frame().await?;
            match tag {
                b'R' if body.get(..4) == Some(&[0, 0, 0, 3][..]) => {
                    let token = args
                        .token
                        .as_deref()
                        .context("the page service wants a token (--token)")?;
                    let mut out = BytesMut::new();
                    frontend::password_message(token.as_bytes(), &mut out)?;
                    s.socket.write_all(&out).await?;
                }
                b'E' => bail!("startup failed: {}", error_text(&body)),
                b'Z' => break,
                _ => {}
            }
        }
        let query = format!(
            "pagestream_v{} {} {}",
            args.protocol, args.tenant_id, args.timeline_id
        );
        let mut out = BytesMut::new();
        frontend::query(&query, &mut out)?;
        s.socket.write_all(&out).await?;
        match s.read_frame().await? {
            (b'W', _) => Ok(s),
            (b'E', body) => bail!("{query}: {}", error_text(&body)),
            (tag, _) => bail!("{query}: unexpected answer {:?}", tag as char),
        }
    }
}

/// The message field of an ErrorResponse body.
fn error_text(body: &[u8]) -> String {
    body.split(|b| *b == 0)
        .find_map(|f| f.strip_prefix(b"M"))
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

struct Outcome {
    latencies_us: Vec<u32>,
    /// Per response: whole seconds since the run started when it arrived
    /// (filled only with `--per-second`).
    arrival_s: Vec<u16>,
    errors: u64,
}

async fn run_connection(
    args: Arc<GetPageArgs>,
    ranges: Arc<Vec<BlockRange>>,
    stop: Arc<AtomicBool>,
    started: Instant,
    seed: usize,
) -> anyhow::Result<Outcome> {
    let mut s = Stream::connect(&args).await?;
    let total_blocks: u64 = ranges.iter().map(|r| u64::from(r.last - r.first) + 1).sum();
    let mut next_seq = (seed as u64 * 7919) % total_blocks.max(1);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed as u64 ^ 0x5EED);
    let sequential = args.sequential;
    let mut pick = move || {
        let mut n = if sequential {
            let n = next_seq;
            next_seq = (next_seq + 1) % total_blocks;
            n
        } else {
            rng.gen_range(0..total_blocks)
        };
        for r in ranges.iter() {
            let len = u64::from(r.last - r.first) + 1;
            if n < len {
                return (r.rel, r.first + n as u32);
            }
            n -= len;
        }
        (ranges[0].rel, ranges[0].first)
    };
    let mut in_flight: VecDeque<Instant> = VecDeque::new();
    let mut outcome = Outcome {
        latencies_us: Vec::with_capacity(1 << 20),
        arrival_s: Vec::new(),
        errors: 0,
    };
    let mut reqid = 0u64;
    let mut out = BytesMut::new();
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        // Refill the queue once the responses that already arrived are
        // handled: one write for all of them, as a prefetching compute
        // sends, instead of a write (and a server wake-up) per response.
        if !stopping && !s.has_frame() {
            out.clear();
            while in_flight.len() < args.queue_depth {
                let (rel, blkno) = pick();
                reqid += 1;
                let req = Request::GetPage {
                    hdr: RequestHeader {
                        reqid,
                        request_lsn: Lsn(u64::MAX),
                        not_modified_since: Lsn(0),
                    },
                    rel,
                    blkno,
                };
                frontend::CopyData::new(req.serialize(s.version))?.write(&mut out);
                in_flight.push_back(Instant::now());
            }
            if !out.is_empty() {
                s.socket.write_all(&out).await?;
            }
        }
        let Some(sent) = in_flight.pop_front() else {
            return Ok(outcome);
        };
        match s.read_frame().await? {
            (b'd', body) => {
                let parsed = ParsedResponse::parse(s.version, body)?;
                if !matches!(parsed.body, ClientResponse::GetPage(_)) {
                    outcome.errors += 1;
                }
            }
            (b'E', body) => bail!("page service error: {}", error_text(&body)),
            (tag, _) => bail!("unexpected message {:?} in the pagestream", tag as char),
        }
        let us = sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        outcome.latencies_us.push(us);
        if args.per_second {
            let second = started.elapsed().as_secs().min(u64::from(u16::MAX)) as u16;
            outcome.arrival_s.push(second);
        }
    }
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn get_page_latest_lsn(args: GetPageArgs) -> anyhow::Result<()> {
    let ranges: Vec<BlockRange> = args
        .blocks
        .iter()
        .map(|s| parse_range(s))
        .collect::<anyhow::Result<_>>()?;
    let args = Arc::new(args);
    let ranges = Arc::new(ranges);
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let cpu_before = process_cpu_seconds();
    let mut tasks = Vec::new();
    for i in 0..args.connections.max(1) {
        tasks.push(tokio::spawn(run_connection(
            Arc::clone(&args),
            Arc::clone(&ranges),
            Arc::clone(&stop),
            started,
            i,
        )));
    }
    tokio::time::sleep(Duration::from_secs(args.runtime)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    let mut by_second: Vec<Vec<u32>> = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let outcome = t.await.context("connection task")??;
        for (&us, &second) in outcome.latencies_us.iter().zip(&outcome.arrival_s) {
            let second = usize::from(second);
            if by_second.len() <= second {
                by_second.resize_with(second + 1, Vec::new);
            }
            by_second[second].push(us);
        }
        latencies.extend(outcome.latencies_us);
        errors += outcome.errors;
    }
    for (second, lat) in by_second.iter_mut().enumerate() {
        lat.sort_unstable();
        println!(
            "second {second}: {} requests, latency p50 {} µs, p99 {} µs, max {} µs",
            lat.len(),
            percentile(lat, 0.5),
            percentile(lat, 0.99),
            lat.last().copied().unwrap_or(0),
        );
    }
    let elapsed = started.elapsed().as_secs_f64();
    let client_cpu = process_cpu_seconds().zip(cpu_before).map(|(a, b)| a - b);
    latencies.sort_unstable();
    let count = latencies.len() as u64;
    let rps = count as f64 / elapsed;
    let (p50, p99, p999) = (
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 0.999),
    );
    println!(
        "{count} requests in {elapsed:.1} s: {rps:.0} req/s, latency p50 {p50} µs, p99 {p99} µs, p99.9 {p999} µs, errors {errors}"
    );
    let json = serde_json::json!({
        "requests": count,
        "elapsed_s": elapsed,
        "requests_per_s": rps,
        "latency_us": { "p50": p50, "p99": p99, "p99.9": p999 },
        "errors": errors,
        "connections": args.connections,
        "queue_depth": args.queue_depth,
        "client_cpu_s": client_cpu,
    });
    println!("{json}");
    Ok(())
}

/// CPU seconds (user + system) this process has used, from /proc.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // USER_HZ: 100 on every Linux architecture this runs on.
    Some((utime + stime) / 100.0)
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Cmd::GetPageLatestLsn(args) => get_page_latest_lsn(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
