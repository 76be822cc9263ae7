//! The pid-file lock that keeps two processes off one working directory.
//!
//! The file holds the PID of its owner and an exclusive `flock` for the
//! process's whole life; the kernel drops the lock when the process dies, so a
//! stale file from a crash never blocks a restart.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};

use camino::{Utf8Path, Utf8PathBuf};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

#[derive(Debug, thiserror::Error)]
pub enum PidFileError {
    #[error("another process holds the lock on pid file {path}")]
    AlreadyLocked { path: Utf8PathBuf },
    #[error("pid file {path}: {source}")]
    Io {
        path: Utf8PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Holds the lock until dropped (normally: until the process exits).
#[derive(Debug)]
pub struct PidFileGuard {
    _lock: Flock<File>,
}

/// Takes the lock on `path` and writes our PID into it.
pub fn claim(path: &Utf8Path) -> Result<PidFileGuard, PidFileError> {
    let io_err = |source| PidFileError::Io {
        path: path.to_owned(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_err)?;
    let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((_, Errno::EWOULDBLOCK)) => {
            return Err(PidFileError::AlreadyLocked {
                path: path.to_owned(),
            })
        }
        Err((_, errno)) => return Err(io_err(std::io::Error::from(errno))),
    };
    lock.set_len(0).map_err(io_err)?;
    lock.seek(SeekFrom::Start(0)).map_err(io_err)?;
    write!(lock, "{}", std::process::id()).map_err(io_err)?;
    lock.sync_all().map_err(io_err)?;
    Ok(PidFileGuard { _lock: lock })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_claim_fails_until_released() {
        let tmp = tempfile::tempdir().unwrap();
        let path = Utf8Path::from_path(tmp.path()).unwrap().join("x.pid");
        let guard = claim(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            std::process::id().to_string()
        );
        assert!(matches!(
            claim(&path),
            Err(PidFileError::AlreadyLocked { .. })
        ));
        drop(guard);
        claim(&path).unwrap();
    }
}
