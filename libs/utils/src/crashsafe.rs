//! Crash-safe file system operations for local metadata.
//!
//! A file written with [`overwrite`] is either entirely the old content or
//! entirely the new one after a crash at any point: the bytes go to a temporary
//! file in the same directory, which is fsynced, renamed over the target, and
//! then the directory is fsynced so the rename itself is durable.
//! Directory removal renames first (atomic, durable), then deletes at leisure.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};

use camino::{Utf8Path, Utf8PathBuf};

/// Suffix of files being written; leftovers are removed at startup.
pub const TEMP_SUFFIX: &str = "___temp";
/// Suffix of directories being deleted; leftovers are removed at startup.
pub const DELETED_SUFFIX: &str = "___deleted";

/// Makes a directory's entries (creations, renames, removals) durable.
pub fn fsync_dir(dir: &Utf8Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` (and missing parents), and fsyncs it and its parent so the new
/// entry survives a crash.
pub fn create_dir_durable(dir: &Utf8Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    fsync_dir(dir)?;
    if let Some(parent) = dir.parent() {
        fsync_dir(parent)?;
    }
    Ok(())
}

/// The temporary path used while writing `path`.
pub fn temp_path(path: &Utf8Path) -> Utf8PathBuf {
    let mut s = path.as_str().to_owned();
    s.push('.');
    s.push_str(TEMP_SUFFIX);
    Utf8PathBuf::from(s)
}

/// Atomically and durably replaces `path`'s content with `contents`.
pub fn overwrite(path: &Utf8Path, contents: &[u8]) -> io::Result<()> {
    overwrite_with_sync(path, contents, true)
}

/// [`overwrite`], with the fsyncs skipped when `sync` is false (the
/// `no_sync` test mode: atomic against process crashes, not power loss).
pub fn overwrite_with_sync(path: &Utf8Path, contents: &[u8], sync: bool) -> io::Result<()> {
    let parent = path.parent().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("{path} has no parent"))
    })?;
    let tmp = temp_path(path);
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(contents)?;
        if sync {
            file.sync_all()?;
        }
    }
    fs::rename(&tmp, path)?;
    if sync {
        fsync_dir(parent)?;
    }
    Ok(())
}

/// Removes a directory tree so that after a crash it is either fully present
/// or reliably recognisable as garbage: it is renamed to `<dir>.___deleted`
/// (durable), then deleted.
pub fn remove_dir_durable(dir: &Utf8Path) -> io::Result<()> {
    let parent = dir.parent().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("{dir} has no parent"))
    })?;
    let doomed = Utf8PathBuf::from(format!("{dir}.{DELETED_SUFFIX}"));
    if doomed.exists() {
        fs::remove_dir_all(&doomed)?;
    }
    fs::rename(dir, &doomed)?;
    fsync_dir(parent)?;
    fs::remove_dir_all(&doomed)
}

/// Whether `name` is a leftover of an interrupted write or delete.
pub fn is_leftover(name: &str) -> bool {
    name.ends_with(TEMP_SUFFIX) || name.ends_with(DELETED_SUFFIX)
}

/// Removes leftovers of interrupted writes/deletes directly inside `dir`.
pub fn remove_leftovers(dir: &Utf8Path) -> io::Result<Vec<Utf8PathBuf>> {
    let mut removed = Vec::new();
    for entry in dir.read_dir_utf8()? {
        let entry = entry?;
        if !is_leftover(entry.file_name()) {
            continue;
        }
        let path = entry.path().to_owned();
        if entry.file_type()?.is_dir() {
            fs::remove_dir_all(&path)?;
        } else {
            fs::remove_file(&path)?;
        }
        removed.push(path);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overwrite_and_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(tmp.path()).unwrap();
        let file = root.join("f");
        overwrite(&file, b"one").unwrap();
        overwrite(&file, b"two").unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"two");
        assert!(!temp_path(&file).exists());

        let dir = root.join("d");
        create_dir_durable(&dir.join("sub")).unwrap();
        fs::write(root.join("x.___temp"), b"junk").unwrap();
        remove_dir_durable(&dir).unwrap();
        assert!(!dir.exists());
        let removed = remove_leftovers(root).unwrap();
        assert_eq!(removed, vec![root.join("x.___temp")]);
        assert!(file.exists());
    }
}
