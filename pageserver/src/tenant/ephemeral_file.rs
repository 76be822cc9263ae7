//! An append-only scratch file backing one in-memory layer.
//!
//! Values are appended to an in-memory tail buffer; a full tail is written to
//! the file in one large write, on the writer's thread
//! ([`VirtualFile::write_all_at_inline`]). Bytes below [`EphemeralFile::flushed_len`] are
//! on the file and never change again, so a reader can copy what it needs from
//! the tail under the owner's lock and read the rest from the file without it
//! ([`EphemeralFile::plan_read`]). The file is deleted when this is dropped:
//! its content is rebuilt from WAL after a crash, never read back.

use std::io;

use bytes::Bytes;
use camino::{Utf8Path, Utf8PathBuf};
use virtual_file::{IoBuffer, VirtualFile};

/// Size of the in-memory tail written as one IO.
const TAIL_CAPACITY: usize = 256 * 1024;

pub struct EphemeralFile {
    path: Utf8PathBuf,
    file: VirtualFile,
    flushed: u64,
    tail: Vec<u8>,
}

/// How to read `[offset, offset+len)`: the part on the file, then the bytes
/// already copied from the tail.
pub struct ReadPlan {
    pub file: VirtualFile,
    pub from_file: Option<(u64, usize)>,
    pub from_tail: Vec<u8>,
}

impl ReadPlan {
    pub async fn execute(self) -> io::Result<Bytes> {
        let Some((offset, len)) = self.from_file else {
            return Ok(Bytes::from(self.from_tail));
        };
        let (buf, res) = self.file.read_exact_at(IoBuffer::zeroed(len), offset).await;
        res?;
        let mut out = Vec::with_capacity(len + self.from_tail.len());
        out.extend_from_slice(&buf);
        out.extend_from_slice(&self.from_tail);
        Ok(Bytes::from(out))
    }
}

impl EphemeralFile {
    pub async fn create(path: &Utf8Path) -> io::Result<EphemeralFile> {
        let file = VirtualFile::create_new(path).await?;
        Ok(EphemeralFile {
            path: path.to_owned(),
            file,
            flushed: 0,
            tail: Vec::with_capacity(TAIL_CAPACITY),
        })
    }

    pub fn path(&self) -> &Utf8Path {
        &self.path
    }

    /// Total bytes appended.
    pub fn len(&self) -> u64 {
        self.flushed + self.tail.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn flushed_len(&self) -> u64 {
        self.flushed
    }

    /// Appends `data`; returns the offset it starts at. A run longer than
    /// the tail that starts on an empty tail is written from `data` itself.
    pub async fn append_bytes(&mut self, mut data: &[u8]) -> io::Result<u64> {
        let offset = self.len();
        while !data.is_empty() {
            if self.tail.is_empty() && data.len() >= TAIL_CAPACITY {
                self.file.write_all_at_inline(data, self.flushed).await?;
                self.flushed += data.len() as u64;
                break;
            }
            let room = TAIL_CAPACITY.saturating_sub(self.tail.len());
            let (now, later) = data.split_at(room.min(data.len()));
            self.tail.extend_from_slice(now);
            data = later;
            if self.tail.len() >= TAIL_CAPACITY {
                self.flush_tail().await?;
            }
        }
        Ok(offset)
    }

    async fn flush_tail(&mut self) -> io::Result<()> {
        // The file is buffered and deleted before writeback usually starts,
        // so this is a copy into the page cache: done inline, from the tail
        // itself (no aligned copy, no engine hand-off).
        self.file
            .write_all_at_inline(&self.tail, self.flushed)
            .await?;
        self.flushed += self.tail.len() as u64;
        self.tail.clear();
        Ok(())
    }

    /// The end of a read of `len` bytes at `offset`, or `UnexpectedEof` if
    /// that is past what was appended.
    fn check_read(&self, offset: u64, len: usize) -> io::Result<u64> {
        let end = offset + len as u64;
        if end > self.len() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "read of {len} bytes at {offset} past the end ({}) of {}",
                    self.len(),
                    self.path
                ),
            ));
        }
        Ok(end)
    }

    /// Splits a read of `[offset, offset+len)` into its file and tail parts.
    pub fn plan_read(&self, offset: u64, len: usize) -> io::Result<ReadPlan> {
        let end = self.check_read(offset, len)?;
        let file_end = end.min(self.flushed);
        let from_file = (offset < file_end).then(|| (offset, (file_end - offset) as usize));
        let tail_start = offset.max(self.flushed) - self.flushed;
        let tail_end = end.saturating_sub(self.flushed);
        let from_tail = if tail_end > tail_start {
            self.tail[tail_start as usize..tail_end as usize].to_vec()
        } else {
            Vec::new()
        };
        Ok(ReadPlan {
            file: self.file.clone(),
            from_file,
            from_tail,
        })
    }

    /// Fills `buf` with the bytes at `[offset, offset + buf.len())`: the
    /// part on the file read on the calling thread (it is in the page
    /// cache as a rule), the rest copied from the tail.
    pub async fn read_into(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let end = self.check_read(offset, buf.len())?;
        let on_file = (self.flushed.min(end).saturating_sub(offset)) as usize;
        let (file_part, tail_part) = buf.split_at_mut(on_file);
        self.file.read_exact_at_inline(file_part, offset).await?;
        if !tail_part.is_empty() {
            // The tail part starts at `max(offset, flushed)`.
            let tail_start = (offset.max(self.flushed) - self.flushed) as usize;
            tail_part.copy_from_slice(&self.tail[tail_start..tail_start + tail_part.len()]);
        }
        Ok(())
    }
}

impl Drop for EphemeralFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!(path = %self.path, "cannot remove ephemeral file: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_span_file_and_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = Utf8Path::from_path(dir.path()).unwrap().join("eph");
        let mut f = EphemeralFile::create(&path).await.unwrap();
        let mut expected = Vec::new();
        let mut offsets = Vec::new();
        for i in 0..3000u32 {
            // Mostly small appends; every 500th is longer than the tail, so
            // some are written from the caller's buffer directly.
            let len = if i % 500 == 250 {
                3 * TAIL_CAPACITY / 2
            } else {
                (i % 300) as usize
            };
            let chunk: Vec<u8> = (0..len).map(|b| (b as u8) ^ (i as u8)).collect();
            let off = f.append_bytes(&chunk).await.unwrap();
            assert_eq!(off, expected.len() as u64);
            offsets.push((off, chunk.len()));
            expected.extend_from_slice(&chunk);
        }
        assert!(f.flushed_len() > 0 && f.flushed_len() < f.len());
        for (off, len) in offsets.iter().step_by(7) {
            let got = f.plan_read(*off, *len).unwrap().execute().await.unwrap();
            assert_eq!(&got[..], &expected[*off as usize..*off as usize + len]);
        }
        // One read straddling the flushed boundary.
        let start = f.flushed_len() - 10;
        let got = f.plan_read(start, 20).unwrap().execute().await.unwrap();
        assert_eq!(&got[..], &expected[start as usize..start as usize + 20]);
        assert!(f.plan_read(f.len() - 1, 2).is_err());
        let mut all = vec![0; expected.len()];
        f.read_into(0, &mut all).await.unwrap();
        assert_eq!(all, expected);
        let mut straddling = vec![0; 20];
        f.read_into(start, &mut straddling).await.unwrap();
        assert_eq!(
            &straddling[..],
            &expected[start as usize..start as usize + 20]
        );
        assert!(f.read_into(f.len() - 1, &mut [0; 2]).await.is_err());
        drop(f);
        assert!(!path.exists());
    }
}
