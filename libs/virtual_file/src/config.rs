//! Node-wide IO configuration: which engine, which mode, how many fds.
//!
//! Owns the types passed to [`crate::init`] ([`Config`], [`IoEngineKind`],
//! [`IoMode`]) and what `init` reports back ([`InitOutcome`], [`InitError`]).
//! The enums parse from the kebab-case strings used in the pageserver config
//! file (`"std-fs"`, `"io-uring"`, `"buffered"`, `"direct"`), both through
//! serde and through [`FromStr`], and print back the same strings.
//!
//! Called by the pageserver binary at startup (config → `init`) and by tests
//! and benches that pick an engine per file through
//! [`crate::OpenOptions::io_engine`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Default size of the node-wide fd table.
pub const DEFAULT_MAX_FILE_DESCRIPTORS: usize = 1000;

/// How IO is issued to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IoEngineKind {
    /// Blocking `pread`/`pwrite` on tokio's blocking thread pool.
    #[default]
    StdFs,
    /// One io_uring instance driven by a dedicated thread.
    IoUring,
}

/// Whether layer files are read through the page cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IoMode {
    /// Through the page cache.
    #[default]
    Buffered,
    /// `O_DIRECT` for files opened with
    /// [`crate::VirtualFile::open_for_layer_read`]; writes stay buffered.
    Direct,
}

/// Settings for [`crate::init`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "snake_case")]
pub struct Config {
    /// Upper bound on fds the node-wide table keeps open (at least 1).
    pub max_file_descriptors: usize,
    pub io_engine: IoEngineKind,
    pub io_mode: IoMode,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_file_descriptors: DEFAULT_MAX_FILE_DESCRIPTORS,
            io_engine: IoEngineKind::StdFs,
            io_mode: IoMode::Buffered,
        }
    }
}

/// A string that names no engine or mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}; expected one of: {expected}")]
pub struct ParseError {
    what: &'static str,
    value: String,
    expected: &'static str,
}

impl IoEngineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IoEngineKind::StdFs => "std-fs",
            IoEngineKind::IoUring => "io-uring",
        }
    }
}

impl IoMode {
    pub fn as_str(self) -> &'static str {
        match self {
            IoMode::Buffered => "buffered",
            IoMode::Direct => "direct",
        }
    }
}

impl FromStr for IoEngineKind {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<IoEngineKind, ParseError> {
        match s {
            "std-fs" => Ok(IoEngineKind::StdFs),
            "io-uring" => Ok(IoEngineKind::IoUring),
            _ => Err(ParseError {
                what: "io engine",
                value: s.to_owned(),
                expected: "std-fs, io-uring",
            }),
        }
    }
}

impl FromStr for IoMode {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<IoMode, ParseError> {
        match s {
            "buffered" => Ok(IoMode::Buffered),
            "direct" => Ok(IoMode::Direct),
            _ => Err(ParseError {
                what: "io mode",
                value: s.to_owned(),
                expected: "buffered, direct",
            }),
        }
    }
}

impl fmt::Display for IoEngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for IoMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why io_uring cannot be used in this process.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineUnavailable {
    /// `io_uring_setup` failed (EPERM under a seccomp profile or with
    /// `kernel.io_uring_disabled`, ENOSYS on kernels without io_uring, ...).
    #[error("io_uring_setup failed: {0}")]
    Setup(String),
    /// The ring exists but lacks an opcode this crate needs.
    #[error("kernel io_uring lacks opcode {0}")]
    MissingOpcode(&'static str),
    /// A helper resource (eventfd, driver thread) could not be created.
    #[error("io_uring driver could not start: {0}")]
    Driver(String),
}

/// What [`crate::init`] put in effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitOutcome {
    /// The engine actually used (std-fs if io-uring was refused).
    pub io_engine: IoEngineKind,
    pub io_mode: IoMode,
    pub max_file_descriptors: usize,
    /// Set when io-uring was requested but refused; the caller should log it.
    pub fallback_reason: Option<EngineUnavailable>,
}

/// [`crate::init`] could not apply the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InitError {
    /// `init` was already called, or a file was used first and the defaults
    /// were latched. The settings in effect are attached.
    #[error("virtual_file already initialised (engine {}, mode {}, {} fds)", .0.io_engine, .0.io_mode, .0.max_file_descriptors)]
    AlreadyInitialized(Box<InitOutcome>),
    #[error("max_file_descriptors must be at least 1")]
    ZeroFileDescriptors,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_roundtrip() {
        for kind in [IoEngineKind::StdFs, IoEngineKind::IoUring] {
            assert_eq!(kind.to_string().parse::<IoEngineKind>(), Ok(kind));
        }
        for mode in [IoMode::Buffered, IoMode::Direct] {
            assert_eq!(mode.to_string().parse::<IoMode>(), Ok(mode));
        }
        assert_eq!("io-uring".parse(), Ok(IoEngineKind::IoUring));
        let err = "io_uring".parse::<IoEngineKind>().unwrap_err();
        assert!(err.to_string().contains("std-fs, io-uring"), "{err}");
        assert!("Direct".parse::<IoMode>().is_err());
    }

    #[test]
    fn serde_uses_kebab_case() {
        #[derive(Deserialize)]
        struct Wrap {
            e: IoEngineKind,
            m: IoMode,
        }
        let w: Wrap = serde_json::from_str(r#"{"e":"io-uring","m":"direct"}"#).unwrap();
        assert_eq!((w.e, w.m), (IoEngineKind::IoUring, IoMode::Direct));
        assert!(serde_json::from_str::<Wrap>(r#"{"e":"IoUring","m":"direct"}"#).is_err());
        assert_eq!(
            serde_json::to_string(&IoEngineKind::StdFs).unwrap(),
            r#""std-fs""#
        );
        let c: Config = serde_json::from_str(r#"{"io_engine":"io-uring"}"#).unwrap();
        assert_eq!(c.io_engine, IoEngineKind::IoUring);
        assert_eq!(c.max_file_descriptors, DEFAULT_MAX_FILE_DESCRIPTORS);
        assert_eq!(c.io_mode, IoMode::Buffered);
    }
}
