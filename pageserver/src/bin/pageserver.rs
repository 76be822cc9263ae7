//! The `pageserver` process: parses the command line, loads the configuration,
//! takes the pid-file lock, starts the HTTP API and waits for a signal.
//!
//! Shutdown: the first SIGTERM/SIGINT starts a graceful shutdown (stop
//! accepting, let in-flight requests finish through the gate, stop the tenant
//! manager) bounded by [`SHUTDOWN_TIMEOUT`]; SIGQUIT or a second signal exits at
//! once. Startup errors print one `Error: ...` line and exit 1.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use camino::{Utf8Path, Utf8PathBuf};
use clap::Parser;
use pageserver::config::{
    self, PageServerConf, CONFIG_FILE_NAME, IDENTITY_FILE_NAME, PID_FILE_NAME,
};
use pageserver::http::{self, HttpState};
use pageserver::logging;
use pageserver::page_service::{self, PageServiceState};
use pageserver::tenant::mgr::TenantManager;
use pageserver::tenant::resources::StorageResources;
use pageserver::walredo::NativeRedo;
use pageserver_api::config::{AuthType, RemoteStorageKind};
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use utils::auth::JwtAuth;
use utils::gate::Gate;
use utils::pid_file::{self, PidFileError};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Longest a graceful shutdown may take before the process exits anyway.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// Exit code of an immediate (SIGQUIT / second signal) or overdue shutdown.
const IMMEDIATE_EXIT_CODE: i32 = 1;

#[derive(Parser, Debug)]
#[command(
    name = "pageserver",
    version,
    about = "Page server for PostgreSQL: stores a cluster's history as layers and serves pages at any LSN"
)]
struct Cli {
    /// Working directory: holds pageserver.toml, identity.toml, tenants/ and the pid file.
    #[arg(short = 'D', long = "workdir", default_value = ".pageserver")]
    workdir: Utf8PathBuf,

    /// Override a configuration key: `key=value`, value in TOML syntax
    /// (e.g. -c 'listen_http_addr="127.0.0.1:9899"'). Repeatable; beats the file.
    #[arg(short = 'c', long = "config-override", value_name = "KEY=VALUE")]
    config_override: Vec<String>,

    /// Write a default pageserver.toml (and identity.toml) into the workdir and exit.
    #[arg(long)]
    init: bool,

    /// Print the compile-time features as JSON and exit.
    #[arg(long)]
    enabled_features: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if cli.enabled_features {
        println!(
            "{}",
            serde_json::json!({ "features": Vec::<String>::new() })
        );
        return Ok(());
    }
    let workdir = prepare_workdir(&cli.workdir)?;
    if cli.init {
        return init_workdir(&workdir, &cli.config_override);
    }

    let loaded = config::load(&workdir, &cli.config_override)?;
    logging::init(loaded.conf.log_format);
    logging::install_panic_hook();
    for key in &loaded.unknown_keys {
        tracing::warn!("unknown configuration key '{key}' ignored");
    }
    for key in &loaded.not_yet_effective {
        tracing::info!("configuration key '{key}' is accepted but not yet effective");
    }

    let pid_path = workdir.join(PID_FILE_NAME);
    let _pid_guard = pid_file::claim(&pid_path).map_err(|e| match e {
        PidFileError::AlreadyLocked { path } => anyhow::anyhow!(
            "another pageserver is already running in {workdir} (pid file {path} is locked)"
        ),
        other => anyhow::Error::new(other),
    })?;

    let conf = Arc::new(loaded.conf);
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        node_id = %conf.id,
        %workdir,
        "starting pageserver"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("pageserver")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(conf))
}

/// Creates the workdir if needed, makes it absolute and enters it.
fn prepare_workdir(workdir: &Utf8Path) -> anyhow::Result<Utf8PathBuf> {
    std::fs::create_dir_all(workdir).with_context(|| format!("cannot create workdir {workdir}"))?;
    let absolute = workdir
        .canonicalize_utf8()
        .with_context(|| format!("cannot resolve workdir {workdir}"))?;
    std::env::set_current_dir(&absolute)
        .with_context(|| format!("cannot enter workdir {absolute}"))?;
    Ok(absolute)
}

fn init_workdir(workdir: &Utf8Path, overrides: &[String]) -> anyhow::Result<()> {
    let config_path = workdir.join(CONFIG_FILE_NAME);
    if config_path.exists() {
        anyhow::bail!("{CONFIG_FILE_NAME} already exists in {workdir}; not overwriting it");
    }
    let text = config::initial_config_text(overrides)?;
    utils::crashsafe::overwrite(&config_path, text.as_bytes())
        .with_context(|| format!("cannot write {config_path}"))?;
    let identity_path = workdir.join(IDENTITY_FILE_NAME);
    if !identity_path.exists() {
        utils::crashsafe::overwrite(&identity_path, b"id = 1\n")
            .with_context(|| format!("cannot write {identity_path}"))?;
    }
    println!("wrote {config_path} and {identity_path}");
    Ok(())
}

/// Applies `max_file_descriptors`, `virtual_file_io_engine` and
/// `virtual_file_io_mode`, and logs the engine actually in effect (io-uring
/// falls back to std-fs, with the reason, where the kernel refuses it).
fn init_virtual_file(conf: &PageServerConf) -> anyhow::Result<()> {
    use pageserver_api::config::{IoEngineKind, IoMode};
    // io-uring by default, as Neon: a read that misses the block cache costs
    // ~4 µs instead of ~30 µs for std-fs's hop to the blocking pool
    // (docs/performance.md). Where the kernel refuses it, std-fs takes over.
    let io_engine = match conf.toml.virtual_file_io_engine {
        Some(IoEngineKind::StdFs) => virtual_file::IoEngineKind::StdFs,
        None | Some(IoEngineKind::IoUring) | Some(IoEngineKind::TokioEpollUring) => {
            virtual_file::IoEngineKind::IoUring
        }
    };
    let io_mode = match conf.toml.virtual_file_io_mode {
        None | Some(IoMode::Buffered) => virtual_file::IoMode::Buffered,
        Some(IoMode::Direct) | Some(IoMode::DirectRw) => virtual_file::IoMode::Direct,
    };
    let outcome = virtual_file::init(virtual_file::Config {
        max_file_descriptors: conf.toml.max_file_descriptors.max(1),
        io_engine,
        io_mode,
    })
    .context("cannot initialise file IO")?;
    if let Some(reason) = &outcome.fallback_reason {
        if conf.toml.virtual_file_io_engine.is_some() {
            tracing::warn!(
                "virtual_file_io_engine io-uring is not available, using std-fs: {reason}"
            );
        } else {
            tracing::info!(
                "io-uring (the default engine) is not available, using std-fs: {reason}"
            );
        }
    }
    tracing::info!(
        "virtual file io engine in effect: {}, io mode: {}, max file descriptors: {}",
        outcome.io_engine,
        outcome.io_mode,
        outcome.max_file_descriptors
    );
    Ok(())
}

async fn serve(conf: Arc<PageServerConf>) -> anyhow::Result<()> {
    // The key is configured iff some listener uses NeonJWT.
    let jwt = match &conf.auth_validation_public_key_path {
        Some(path) => Some(Arc::new(
            JwtAuth::from_path(path).context("cannot load auth_validation_public_key_path")?,
        )),
        None => None,
    };
    let auth = jwt
        .clone()
        .filter(|_| conf.http_auth_type == AuthType::NeonJWT);
    if let RemoteStorageKind::LocalFs { local_path } = &conf.remote_storage.kind {
        std::fs::create_dir_all(local_path).with_context(|| {
            format!("cannot create local remote storage directory {local_path}")
        })?;
    }
    init_virtual_file(&conf)?;
    let resources = StorageResources::new(conf.storage_settings());
    if let Some(cache) = &resources.block_cache {
        pageserver::metrics::watch_page_cache(Arc::clone(cache));
    }
    let tenants = Arc::new(
        TenantManager::load(Arc::clone(&conf), resources, Arc::new(NativeRedo::new())).await?,
    );

    let listener = tokio::net::TcpListener::bind(&conf.listen_http_addr)
        .await
        .with_context(|| {
            format!(
                "cannot listen on listen_http_addr {}",
                conf.listen_http_addr
            )
        })?;
    let launch = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let state = Arc::new(HttpState {
        conf: Arc::clone(&conf),
        tenants: Arc::clone(&tenants),
        auth,
        launch_timestamp: ::http::HeaderValue::from_str(&launch)
            .context("launch timestamp header")?,
    });

    let cancel = CancellationToken::new();
    let http_gate = Arc::new(Gate::default());
    let server_guard = http_gate.enter().context("http gate")?;
    let server = tokio::spawn(http::server::serve(
        listener,
        state,
        cancel.clone(),
        Arc::clone(&http_gate),
        server_guard,
    ));
    let pg_listener = tokio::net::TcpListener::bind(&conf.listen_pg_addr)
        .await
        .with_context(|| format!("cannot listen on listen_pg_addr {}", conf.listen_pg_addr))?;
    let pg_state = Arc::new(PageServiceState::new(&conf, Arc::clone(&tenants), jwt));
    let pg_gate = Arc::new(Gate::default());
    let page_service = tokio::spawn(page_service::serve(
        pg_listener,
        pg_state,
        cancel.clone(),
        Arc::clone(&pg_gate),
    ));
    tracing::info!(http = %conf.listen_http_addr, pg = %conf.listen_pg_addr, "pageserver is ready");

    let mut sigterm = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut sigquit = signal(SignalKind::quit()).context("SIGQUIT handler")?;
    let which = tokio::select! {
        _ = sigterm.recv() => "SIGTERM",
        _ = sigint.recv() => "SIGINT",
        _ = sigquit.recv() => {
            tracing::info!("got SIGQUIT: exiting immediately");
            std::process::exit(IMMEDIATE_EXIT_CODE);
        }
    };
    tracing::info!("got {which}: shutting down gracefully (send another signal to exit at once)");
    // The second signal must win even while shutdown waits on slow work.
    std::thread::Builder::new()
        .name("signal-watch".to_owned())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async move {
                    tokio::select! {
                        _ = sigterm.recv() => {}
                        _ = sigint.recv() => {}
                        _ = sigquit.recv() => {}
                    }
                });
                eprintln!("second signal: exiting immediately");
                std::process::exit(IMMEDIATE_EXIT_CODE);
            }
        })
        .context("cannot start the signal watcher")?;

    let shutdown = async {
        cancel.cancel();
        if let Err(e) = server.await {
            tracing::error!("http server task failed: {e}");
        }
        http_gate.close().await;
        if let Err(e) = page_service.await {
            tracing::error!("page service task failed: {e}");
        }
        tenants.shutdown().await;
    };
    if tokio::time::timeout(SHUTDOWN_TIMEOUT, shutdown)
        .await
        .is_err()
    {
        tracing::error!("graceful shutdown did not finish within {SHUTDOWN_TIMEOUT:?}; exiting");
        std::process::exit(IMMEDIATE_EXIT_CODE);
    }
    tracing::info!("shut down cleanly");
    Ok(())
}
