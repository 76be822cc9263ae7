//! Loading `pageserver.toml`: the file, then `-c key=value` overrides (TOML
//! syntax, merged table by table), then typed parsing into
//! [`pageserver_api::config::ConfigToml`], then resolution of paths and
//! defaults into the [`PageServerConf`] the rest of the server reads.
//!
//! Unknown keys are collected (the caller warns once per key) and startup goes
//! on; a bad value is a [`ConfigError::InvalidValue`] naming the key, the value
//! as written and what was expected. Keys that are valid but not acted on yet
//! are reported so the operator knows they have no effect.

use std::collections::BTreeSet;

use camino::{Utf8Path, Utf8PathBuf};
use pageserver_api::config::{
    AuthType, ConfigToml, GetVectoredConcurrentIo, ImageCompression, LogFormat,
    RemoteStorageConfig, DEFAULT_LOCAL_REMOTE_STORAGE_DIR, DEFAULT_PG_DISTRIB_DIR,
};
use pageserver_api::tenant_config::TenantConfigToml;
use toml_edit::{DocumentMut, Item};
use utils::id::NodeId;

use crate::tenant::resources::{IoConcurrency, StorageSettings};

pub const CONFIG_FILE_NAME: &str = "pageserver.toml";
pub const IDENTITY_FILE_NAME: &str = "identity.toml";
pub const PID_FILE_NAME: &str = "pageserver.pid";
pub const TENANTS_DIR: &str = "tenants";
const DEFAULT_AUTH_PUBLIC_KEY_FILE: &str = "auth_public_key.pem";
/// The node id when no `identity.toml` exists (a node without a controller).
const DEFAULT_NODE_ID: NodeId = NodeId(1);

/// Top-level keys that this build acts on. Every other known key is parsed and
/// validated, and logged as not yet effective when set.
const EFFECTIVE_KEYS: &[&str] = &[
    "listen_http_addr",
    "http_auth_type",
    "auth_validation_public_key_path",
    "log_format",
    "remote_storage",
    "tenant_config",
    "dev_mode",
    "no_sync",
    "max_file_descriptors",
    "virtual_file_io_engine",
    "virtual_file_io_mode",
    "page_cache_size",
    "ephemeral_bytes_per_memory_kb",
    "wait_lsn_timeout",
    "max_get_vectored_keys",
    "max_vectored_read_bytes",
    "get_vectored_concurrent_io",
    "image_compression",
    "listen_pg_addr",
    "pg_auth_type",
    "pg_distrib_dir",
    "page_service_pipelining",
    "page_service_max_connections",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: Utf8PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin} is not valid TOML: {message}")]
    Syntax { origin: String, message: String },
    #[error("config override {arg:?} must have the form key=value (value in TOML syntax)")]
    OverrideShape { arg: String },
    #[error("invalid value for configuration key '{key}': {value} ({expected})")]
    InvalidValue {
        key: String,
        value: String,
        expected: String,
    },
    #[error("{path}: {message}")]
    Identity { path: Utf8PathBuf, message: String },
}

/// The configuration as the server uses it, with paths resolved against the
/// working directory.
#[derive(Debug, Clone)]
pub struct PageServerConf {
    pub workdir: Utf8PathBuf,
    pub id: NodeId,
    pub listen_pg_addr: String,
    pub listen_http_addr: String,
    pub http_auth_type: AuthType,
    pub pg_auth_type: AuthType,
    pub grpc_auth_type: AuthType,
    /// Set iff some auth type is `NeonJWT`.
    pub auth_validation_public_key_path: Option<Utf8PathBuf>,
    pub log_format: LogFormat,
    pub remote_storage: RemoteStorageConfig,
    pub pg_distrib_dir: Utf8PathBuf,
    pub default_tenant_conf: TenantConfigToml,
    pub dev_mode: bool,
    pub no_sync: bool,
    /// Every setting as parsed, for subsystems that arrive later.
    pub toml: ConfigToml,
}

impl PageServerConf {
    pub fn tenants_path(&self) -> Utf8PathBuf {
        self.workdir.join(TENANTS_DIR)
    }

    /// The storage engine's node-wide settings.
    ///
    /// The background-task limit has no key of its own (as in Neon): it is
    /// three quarters of the cores, rounded up, so flushes still find a
    /// permit on a small machine while compaction runs.
    pub fn storage_settings(&self) -> StorageSettings {
        let t = &self.toml;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let ram_kb = total_memory_bytes().unwrap_or(0) / 1024;
        StorageSettings {
            concurrent_background_tasks: (cores * 3).div_ceil(4).max(1),
            ephemeral_budget_bytes: ram_kb.saturating_mul(t.ephemeral_bytes_per_memory_kb as u64),
            read_concurrency: match t.get_vectored_concurrent_io {
                GetVectoredConcurrentIo::Sequential => IoConcurrency::Sequential,
                GetVectoredConcurrentIo::SidecarTask => IoConcurrency::Concurrent,
            },
            wait_lsn_timeout: t.wait_lsn_timeout,
            max_get_vectored_keys: t.max_get_vectored_keys.max(1),
            max_vectored_read_bytes: t.max_vectored_read_bytes.max(8192),
            page_cache_blocks: t.page_cache_size,
            no_sync: self.no_sync,
            image_compression: !matches!(t.image_compression, ImageCompression::Disabled),
        }
    }
}

/// `MemTotal` of `/proc/meminfo`; `None` where it cannot be read.
fn total_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A loaded configuration and what the operator should be told about it.
#[derive(Debug)]
pub struct LoadedConfig {
    pub conf: PageServerConf,
    pub unknown_keys: Vec<String>,
    pub not_yet_effective: Vec<String>,
}

/// Reads `<workdir>/pageserver.toml` (if present) and applies `overrides`.
pub fn load(workdir: &Utf8Path, overrides: &[String]) -> Result<LoadedConfig, ConfigError> {
    let doc = merged_document(workdir, overrides)?;
    let (toml, unknown_keys) = parse_document(&doc)?;
    let not_yet_effective = doc
        .iter()
        .map(|(k, _)| k.to_owned())
        .filter(|k| !EFFECTIVE_KEYS.contains(&k.as_str()))
        .filter(|k| !unknown_keys.contains(k))
        .collect();
    let conf = resolve(workdir, toml)?;
    Ok(LoadedConfig {
        conf,
        unknown_keys,
        not_yet_effective,
    })
}

/// The config file with the command-line overrides merged in.
pub fn merged_document(
    workdir: &Utf8Path,
    overrides: &[String],
) -> Result<DocumentMut, ConfigError> {
    let path = workdir.join(CONFIG_FILE_NAME);
    let mut doc = match std::fs::read_to_string(&path) {
        Ok(text) => text
            .parse::<DocumentMut>()
            .map_err(|e| ConfigError::Syntax {
                origin: path.to_string(),
                message: e.to_string(),
            })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => DocumentMut::new(),
        Err(source) => return Err(ConfigError::Read { path, source }),
    };
    apply_overrides(&mut doc, overrides)?;
    Ok(doc)
}

fn apply_overrides(doc: &mut DocumentMut, overrides: &[String]) -> Result<(), ConfigError> {
    for arg in overrides {
        if !arg.contains('=') {
            return Err(ConfigError::OverrideShape { arg: arg.clone() });
        }
        let over = arg
            .parse::<DocumentMut>()
            .map_err(|e| ConfigError::Syntax {
                origin: format!("config override {arg:?}"),
                message: e.to_string(),
            })?;
        merge_item(doc.as_item_mut(), over.as_item());
    }
    Ok(())
}

/// Merges `src` into `dst`. A dotted or `[section]` table in `src` merges key
/// by key (so `-c tenant_config.gc_period="1h"` keeps the other tenant keys);
/// any value, including an inline table, replaces what was there (so
/// `-c remote_storage={bucket_name=...}` can switch backends).
fn merge_item(dst: &mut Item, src: &Item) {
    match (dst.as_table_like_mut(), src) {
        (Some(dst_table), Item::Table(src_table)) => {
            for (key, value) in src_table.iter() {
                match dst_table.get_mut(key) {
                    Some(existing) => merge_item(existing, value),
                    None => {
                        dst_table.insert(key, value.clone());
                    }
                }
            }
        }
        _ => *dst = src.clone(),
    }
}

/// Typed parse of a merged document; returns the unknown keys (dotted paths).
pub fn parse_document(doc: &DocumentMut) -> Result<(ConfigToml, Vec<String>), ConfigError> {
    let mut unknown = BTreeSet::new();
    let de = toml_edit::de::Deserializer::from(doc.clone());
    let mut record_unknown = |path: serde_ignored::Path<'_>| {
        unknown.insert(path.to_string());
    };
    let de = serde_ignored::Deserializer::new(de, &mut record_unknown);
    let parsed: Result<ConfigToml, _> = serde_path_to_error::deserialize(de);
    match parsed {
        Ok(toml) => Ok((toml, unknown.into_iter().collect())),
        Err(err) => {
            let key = err.path().to_string();
            let message = err.inner().message().trim().to_owned();
            Err(ConfigError::InvalidValue {
                value: render_value(doc, &key),
                key,
                expected: message,
            })
        }
    }
}

/// The value at a dotted key path as written in the document.
fn render_value(doc: &DocumentMut, path: &str) -> String {
    let mut item = doc.as_item();
    for segment in path.split('.') {
        match item.as_table_like().and_then(|t| t.get(segment)) {
            Some(next) => item = next,
            None => break,
        }
    }
    match item {
        Item::Value(v) => v.to_string().trim().to_owned(),
        Item::Table(t) => format!("{{ {} }}", t.to_string().trim().replace('\n', ", ")),
        _ => "(missing)".to_owned(),
    }
}

fn resolve(workdir: &Utf8Path, toml: ConfigToml) -> Result<PageServerConf, ConfigError> {
    for (key, addr) in [
        ("listen_pg_addr", &toml.listen_pg_addr),
        ("listen_http_addr", &toml.listen_http_addr),
    ] {
        check_listen_addr(key, addr)?;
    }
    let uses_jwt =
        [toml.http_auth_type, toml.pg_auth_type, toml.grpc_auth_type].contains(&AuthType::NeonJWT);
    let auth_validation_public_key_path = uses_jwt.then(|| {
        workdir.join(
            toml.auth_validation_public_key_path
                .clone()
                .unwrap_or_else(|| DEFAULT_AUTH_PUBLIC_KEY_FILE.into()),
        )
    });
    if let Some(path) = &auth_validation_public_key_path {
        if !path.exists() {
            return Err(ConfigError::InvalidValue {
                key: "auth_validation_public_key_path".to_owned(),
                value: format!("\"{path}\""),
                expected: "a JWT auth type is NeonJWT, so this must name an existing PEM file or directory"
                    .to_owned(),
            });
        }
    }
    let remote_storage = toml.remote_storage.clone().unwrap_or_else(|| {
        RemoteStorageConfig::local(workdir.join(DEFAULT_LOCAL_REMOTE_STORAGE_DIR))
    });
    Ok(PageServerConf {
        workdir: workdir.to_owned(),
        id: read_identity(workdir)?,
        listen_pg_addr: toml.listen_pg_addr.clone(),
        listen_http_addr: toml.listen_http_addr.clone(),
        http_auth_type: toml.http_auth_type,
        pg_auth_type: toml.pg_auth_type,
        grpc_auth_type: toml.grpc_auth_type,
        auth_validation_public_key_path,
        log_format: toml.log_format,
        remote_storage,
        pg_distrib_dir: workdir.join(
            toml.pg_distrib_dir
                .clone()
                .unwrap_or_else(|| DEFAULT_PG_DISTRIB_DIR.into()),
        ),
        default_tenant_conf: toml.tenant_config.clone(),
        dev_mode: toml.dev_mode,
        no_sync: toml.no_sync.unwrap_or(false),
        toml,
    })
}

fn check_listen_addr(key: &str, addr: &str) -> Result<(), ConfigError> {
    let valid = addr
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if valid {
        Ok(())
    } else {
        Err(ConfigError::InvalidValue {
            key: key.to_owned(),
            value: format!("\"{addr}\""),
            expected: "expected host:port".to_owned(),
        })
    }
}

fn read_identity(workdir: &Utf8Path) -> Result<NodeId, ConfigError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Identity {
        id: NodeId,
    }
    let path = workdir.join(IDENTITY_FILE_NAME);
    match std::fs::read_to_string(&path) {
        Ok(text) => toml_edit::de::from_str::<Identity>(&text)
            .map(|i| i.id)
            .map_err(|e| ConfigError::Identity {
                path,
                message: format!("expected `id = <node id>`: {}", e.message().trim()),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DEFAULT_NODE_ID),
        Err(source) => Err(ConfigError::Read { path, source }),
    }
}

/// The `pageserver.toml` that `--init` writes: the essential keys with their
/// defaults, then the overrides given on the command line.
pub fn initial_config_text(overrides: &[String]) -> Result<String, ConfigError> {
    let defaults = ConfigToml::default();
    let mut doc = DocumentMut::new();
    doc["listen_pg_addr"] = toml_edit::value(defaults.listen_pg_addr);
    doc["listen_http_addr"] = toml_edit::value(defaults.listen_http_addr);
    doc["http_auth_type"] = toml_edit::value("Trust");
    doc["pg_auth_type"] = toml_edit::value("Trust");
    let mut remote = toml_edit::InlineTable::new();
    remote.insert("local_path", DEFAULT_LOCAL_REMOTE_STORAGE_DIR.into());
    doc["remote_storage"] = toml_edit::value(remote);
    apply_overrides(&mut doc, overrides)?;
    // Refuse to write a file that would not start.
    parse_document(&doc)?;
    Ok(format!(
        "# Written by `pageserver --init`. Every supported key, with its default,\n\
         # is listed in pageserver.toml.example in the source tree.\n{doc}"
    ))
}

#[cfg(test)]
mod tests;
