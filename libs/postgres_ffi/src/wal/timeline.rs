//! Timeline history files (`pg_wal/<tli as %08X>.history`, `timeline.c`).
//!
//! Each non-comment line records one ancestor timeline and where the history
//! switched away from it: `<parent tli>\t<switch LSN X/X>\t<reason>`. Blank
//! lines and lines starting with `#` are ignored; the reason is free text.
//! Timeline ids must increase from line to line, as PostgreSQL requires.
//! A timeline's own entry is implicit (it runs from the last switch point to
//! infinity), so [`TimelineHistory::timeline_of`] needs the file's own
//! timeline. Used when following a primary across a promotion and when
//! serving `TIMELINE_HISTORY`.

use crate::types::TimeLineId;
use crate::Lsn;

/// One line of a history file: `tli` ended at `switchpoint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineHistoryEntry {
    pub tli: TimeLineId,
    /// First LSN that belongs to the next timeline.
    pub switchpoint: Lsn,
    pub reason: String,
}

/// A parsed history file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TimelineHistory {
    pub entries: Vec<TimelineHistoryEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimelineHistoryError {
    #[error("timeline history line {line}: syntax error: {text:?}")]
    Syntax { line: usize, text: String },
    #[error("timeline history line {line}: expected a numeric timeline ID, got {text:?}")]
    BadTimeline { line: usize, text: String },
    #[error("timeline history line {line}: invalid switch point {text:?}")]
    BadLsn { line: usize, text: String },
    #[error("timeline history line {line}: timeline {tli} does not follow {prev}")]
    NotIncreasing {
        line: usize,
        tli: TimeLineId,
        prev: TimeLineId,
    },
    #[error("timeline history is not UTF-8")]
    NotUtf8,
}

impl TimelineHistory {
    pub fn parse_bytes(bytes: &[u8]) -> Result<Self, TimelineHistoryError> {
        let text = std::str::from_utf8(bytes).map_err(|_| TimelineHistoryError::NotUtf8)?;
        Self::parse(text)
    }

    pub fn parse(text: &str) -> Result<Self, TimelineHistoryError> {
        let mut entries: Vec<TimelineHistoryEntry> = Vec::new();
        for (idx, raw) in text.lines().enumerate() {
            let line = idx + 1;
            let trimmed = raw.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            // PostgreSQL reads "%u\t%X/%X" and takes the rest as the reason;
            // we accept any whitespace between the first two fields.
            let mut parts = trimmed.splitn(2, |c: char| c.is_ascii_whitespace());
            let tli_text = parts.next().unwrap_or_default();
            let rest = parts.next().unwrap_or_default().trim_start();
            let tli: TimeLineId =
                tli_text
                    .parse()
                    .map_err(|_| TimelineHistoryError::BadTimeline {
                        line,
                        text: tli_text.to_owned(),
                    })?;
            if rest.is_empty() {
                return Err(TimelineHistoryError::Syntax {
                    line,
                    text: raw.to_owned(),
                });
            }
            let mut parts = rest.splitn(2, |c: char| c.is_ascii_whitespace());
            let lsn_text = parts.next().unwrap_or_default();
            let reason = parts.next().unwrap_or_default().trim().to_owned();
            let switchpoint: Lsn = lsn_text.parse().map_err(|_| TimelineHistoryError::BadLsn {
                line,
                text: lsn_text.to_owned(),
            })?;
            if let Some(prev) = entries.last() {
                if tli <= prev.tli {
                    return Err(TimelineHistoryError::NotIncreasing {
                        line,
                        tli,
                        prev: prev.tli,
                    });
                }
            }
            entries.push(TimelineHistoryEntry {
                tli,
                switchpoint,
                reason,
            });
        }
        Ok(TimelineHistory { entries })
    }

    /// The history file text, one tab-separated line per entry.
    pub fn format(&self) -> String {
        self.entries
            .iter()
            .map(|e| format!("{}\t{}\t{}\n", e.tli, e.switchpoint, e.reason))
            .collect()
    }

    /// Which timeline `lsn` belongs to, for the history of timeline
    /// `own_tli` (whose file this is).
    pub fn timeline_of(&self, own_tli: TimeLineId, lsn: Lsn) -> TimeLineId {
        self.entries
            .iter()
            .find(|e| lsn < e.switchpoint)
            .map(|e| e.tli)
            .unwrap_or(own_tli)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_postgres_output() {
        let text = "1\t0/3000158\tno recovery target specified\n\n# comment\n2\t0/5000000\tat restore point \"x\"\n";
        let h = TimelineHistory::parse(text).unwrap();
        assert_eq!(h.entries.len(), 2);
        assert_eq!(h.entries[0].tli, 1);
        assert_eq!(h.entries[0].switchpoint, Lsn(0x3000158));
        assert_eq!(h.entries[0].reason, "no recovery target specified");
        assert_eq!(h.entries[1].reason, "at restore point \"x\"");
        assert_eq!(h.timeline_of(3, Lsn(0x100)), 1);
        assert_eq!(h.timeline_of(3, Lsn(0x3000158)), 2);
        assert_eq!(h.timeline_of(3, Lsn(0x6000000)), 3);
        assert_eq!(TimelineHistory::parse(&h.format()).unwrap(), h);
    }

    #[test]
    fn rejects_bad_lines() {
        assert!(matches!(
            TimelineHistory::parse("x\t0/1\n"),
            Err(TimelineHistoryError::BadTimeline { line: 1, .. })
        ));
        assert!(matches!(
            TimelineHistory::parse("1\n"),
            Err(TimelineHistoryError::Syntax { line: 1, .. })
        ));
        assert!(matches!(
            TimelineHistory::parse("1\tzz\n"),
            Err(TimelineHistoryError::BadLsn { line: 1, .. })
        ));
        assert!(matches!(
            TimelineHistory::parse("2\t0/1\n1\t0/2\n"),
            Err(TimelineHistoryError::NotIncreasing { line: 2, .. })
        ));
        assert!(TimelineHistory::parse_bytes(&[0xFF]).is_err());
        assert_eq!(TimelineHistory::parse("").unwrap().entries.len(), 0);
    }
}
