//! Process-wide tracing setup: human-readable lines (`plain`, `test`) or one
//! JSON object per line (`json`), always on stderr, filtered by `RUST_LOG`
//! (default `info`). Also the panic hook, which logs a panic through tracing
//! and then ends the process, so a panicking task never leaves a half-alive
//! server behind.

use pageserver_api::config::LogFormat;
use tracing_subscriber::EnvFilter;

/// Exit code after a panic anywhere in the process.
pub const PANIC_EXIT_CODE: i32 = 101;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    // A second initialisation (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Plain => builder.with_ansi(false).try_init(),
        LogFormat::Test => builder.with_ansi(false).with_thread_names(true).try_init(),
        LogFormat::Json => builder.json().with_target(true).try_init(),
    };
}

/// Logs every panic with its location and exits with [`PANIC_EXIT_CODE`].
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_else(|| "unknown location".to_owned());
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(non-string payload)".to_owned());
        let thread = std::thread::current();
        tracing::error!(
            thread = thread.name().unwrap_or("unnamed"),
            %location,
            "panic: {payload}; exiting"
        );
        eprintln!("pageserver panicked at {location}: {payload}");
        std::process::exit(PANIC_EXIT_CODE);
    }));
}
