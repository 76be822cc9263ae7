//! The page service's query strings, parsed.
//!
//! Syntax follows Neon's page service: the command word is matched
//! case-insensitively, the string is trimmed, arguments are separated by any
//! whitespace, and every command needs at least one argument. Parsing is
//! pure so it is tested on its own; the connection acts on the result.

use pageserver_api::pagestream::ProtocolVersion;
use utils::id::{TenantId, TimelineId};
use utils::lsn::Lsn;
use utils::shard::TenantShardId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Pagestream {
        version: ProtocolVersion,
        tenant_id: TenantId,
        timeline_id: TimelineId,
    },
    Basebackup {
        tenant_id: TenantId,
        timeline_id: TimelineId,
        lsn: Option<Lsn>,
        gzip: bool,
        replica: bool,
    },
    Fullbackup {
        tenant_id: TenantId,
        timeline_id: TimelineId,
        lsn: Option<Lsn>,
        prev_lsn: Option<Lsn>,
    },
    LeaseLsn {
        tenant_shard_id: TenantShardId,
        timeline_id: TimelineId,
        lsn: Lsn,
    },
    /// `set ...`: accepted and ignored (client libraries send them).
    Set,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CommandError(pub String);

fn err(msg: impl Into<String>) -> CommandError {
    CommandError(msg.into())
}

fn parse_arg<T: std::str::FromStr>(what: &str, s: &str) -> Result<T, CommandError>
where
    T::Err: std::fmt::Display,
{
    s.parse()
        .map_err(|e| err(format!("invalid {what} {s:?}: {e}")))
}

pub fn parse(query: &str) -> Result<Command, CommandError> {
    let query = query.trim();
    let (word, rest) = query
        .split_once(char::is_whitespace)
        .ok_or_else(|| err(format!("unsupported command {query:?}")))?;
    let args: Vec<&str> = rest.split_whitespace().collect();
    match word.to_ascii_lowercase().as_str() {
        "pagestream_v2" | "pagestream_v3" => {
            let version = if word.eq_ignore_ascii_case("pagestream_v2") {
                ProtocolVersion::V2
            } else {
                ProtocolVersion::V3
            };
            let [tenant, timeline] = args[..] else {
                return Err(err(format!(
                    "{word} takes a tenant id and a timeline id, got {} argument(s)",
                    args.len()
                )));
            };
            Ok(Command::Pagestream {
                version,
                tenant_id: parse_arg("tenant id", tenant)?,
                timeline_id: parse_arg("timeline id", timeline)?,
            })
        }
        "basebackup" => parse_basebackup(&args),
        "fullbackup" => {
            if !(2..=4).contains(&args.len()) {
                return Err(err(format!(
                    "fullbackup takes 2 to 4 arguments, got {}",
                    args.len()
                )));
            }
            Ok(Command::Fullbackup {
                tenant_id: parse_arg("tenant id", args[0])?,
                timeline_id: parse_arg("timeline id", args[1])?,
                lsn: args.get(2).map(|s| parse_arg("lsn", s)).transpose()?,
                prev_lsn: args.get(3).map(|s| parse_arg("prev lsn", s)).transpose()?,
            })
        }
        "lease" => {
            let ["lsn", tenant, timeline, lsn] = args[..] else {
                return Err(err(
                    "expected: lease lsn <tenant_shard_id> <timeline_id> <lsn>",
                ));
            };
            Ok(Command::LeaseLsn {
                tenant_shard_id: parse_arg("tenant shard id", tenant)?,
                timeline_id: parse_arg("timeline id", timeline)?,
                lsn: parse_arg("lsn", lsn)?,
            })
        }
        "set" => Ok(Command::Set),
        _ => Err(err(format!("unsupported command {query:?}"))),
    }
}

fn parse_basebackup(args: &[&str]) -> Result<Command, CommandError> {
    if args.len() < 2 {
        return Err(err(format!(
            "basebackup takes a tenant id and a timeline id, got {} argument(s)",
            args.len()
        )));
    }
    let tenant_id = parse_arg("tenant id", args[0])?;
    let timeline_id = parse_arg("timeline id", args[1])?;
    let mut rest = &args[2..];
    let mut lsn = None;
    if let Some(first) = rest.first() {
        if !first.starts_with("--") {
            if !first.eq_ignore_ascii_case("latest") {
                lsn = Some(parse_arg("lsn", first)?);
            }
            rest = &rest[1..];
        }
    }
    let (mut gzip, mut replica) = (false, false);
    for flag in rest {
        let seen = match *flag {
            "--gzip" => std::mem::replace(&mut gzip, true),
            "--replica" => std::mem::replace(&mut replica, true),
            other => return Err(err(format!("unknown basebackup flag {other:?}"))),
        };
        if seen {
            return Err(err(format!("duplicate basebackup flag {flag:?}")));
        }
    }
    Ok(Command::Basebackup {
        tenant_id,
        timeline_id,
        lsn,
        gzip,
        replica,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "0123456789abcdef0123456789abcdef";
    const TL: &str = "fedcba9876543210fedcba9876543210";

    #[test]
    fn pagestream() {
        let cmd = parse(&format!("  PAGESTREAM_v3 {T}   {TL} ")).unwrap();
        assert_eq!(
            cmd,
            Command::Pagestream {
                version: ProtocolVersion::V3,
                tenant_id: T.parse().unwrap(),
                timeline_id: TL.parse().unwrap(),
            }
        );
        assert!(parse(&format!("pagestream_v2 {T}")).is_err());
        assert!(parse(&format!("pagestream_v2 {T} {TL} extra")).is_err());
        assert!(parse(&format!("pagestream_v2 {T}-0102 {TL}")).is_err());
        assert!(parse("pagestream_v3").is_err());
    }

    #[test]
    fn basebackup() {
        let cmd = parse(&format!("basebackup {T} {TL} 0/16B5A50 --gzip")).unwrap();
        let Command::Basebackup {
            lsn, gzip, replica, ..
        } = cmd
        else {
            panic!("{cmd:?}");
        };
        assert_eq!(lsn, Some(Lsn(0x16B5A50)));
        assert!(gzip && !replica);
        let cmd = parse(&format!("basebackup {T} {TL} latest --replica")).unwrap();
        assert!(matches!(
            cmd,
            Command::Basebackup {
                lsn: None,
                replica: true,
                gzip: false,
                ..
            }
        ));
        assert!(parse(&format!("basebackup {T} {TL} --gzip --gzip")).is_err());
        assert!(parse(&format!("basebackup {T} {TL} --zip")).is_err());
        assert!(parse(&format!("basebackup {T} {TL} nonsense")).is_err());
    }

    #[test]
    fn others() {
        assert!(matches!(
            parse(&format!("fullbackup {T} {TL} 0/10 0/8")).unwrap(),
            Command::Fullbackup {
                lsn: Some(Lsn(0x10)),
                prev_lsn: Some(Lsn(0x8)),
                ..
            }
        ));
        assert!(parse(&format!("fullbackup {T}")).is_err());
        assert!(matches!(
            parse(&format!("lease lsn {T}-0102 {TL} 0/20")).unwrap(),
            Command::LeaseLsn { lsn: Lsn(0x20), .. }
        ));
        assert!(parse(&format!("lease lsn {T} {TL}")).is_err());
        assert_eq!(parse("SET datestyle TO ISO").unwrap(), Command::Set);
        assert!(parse("select").is_err());
        assert!(parse("drop everything").is_err());
    }
}
