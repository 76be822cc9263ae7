//! The schema of `pageserver.toml` with its defaults.
//!
//! [`ConfigToml`] accepts every key of Neon's pageserver configuration, so a
//! file written for Neon loads here. Parsing (including unknown-key warnings and
//! key-naming errors) lives in the server's `config` module; this module only
//! says what each key is and its default.

use std::num::NonZeroUsize;
use std::str::FromStr;
use std::time::Duration;

use camino::Utf8PathBuf;
use serde::{Deserialize, Deserializer, Serialize};

use crate::tenant_config::{Ratio, TenantConfigToml};

pub const DEFAULT_PG_LISTEN_ADDR: &str = "127.0.0.1:64000";
pub const DEFAULT_HTTP_LISTEN_ADDR: &str = "127.0.0.1:9898";
/// Where the embedded default keeps "remote" storage, relative to the workdir.
pub const DEFAULT_LOCAL_REMOTE_STORAGE_DIR: &str = "remote_storage";
/// Debian's layout: `<dir>/15/bin/initdb`.
pub const DEFAULT_PG_DISTRIB_DIR: &str = "/usr/lib/postgresql";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthType {
    Trust,
    NeonJWT,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Plain,
    Json,
    Test,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IoEngineKind {
    StdFs,
    IoUring,
    TokioEpollUring,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IoMode {
    Buffered,
    Direct,
    DirectRw,
}

/// `image_compression = "disabled" | "zstd" | "zstd(<level>)"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ImageCompression {
    Disabled,
    Zstd { level: Option<i8> },
}

impl FromStr for ImageCompression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not one of disabled, zstd, zstd(<level>)");
        match s {
            "disabled" => Ok(Self::Disabled),
            "zstd" => Ok(Self::Zstd { level: None }),
            other => {
                let level = other
                    .strip_prefix("zstd(")
                    .and_then(|r| r.strip_suffix(')'))
                    .ok_or_else(bad)?;
                let level = level.trim().parse::<i8>().map_err(|_| bad())?;
                Ok(Self::Zstd { level: Some(level) })
            }
        }
    }
}

impl<'de> Deserialize<'de> for ImageCompression {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Object storage: which backend is chosen by which keys are present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawRemoteStorage")]
pub struct RemoteStorageConfig {
    pub kind: RemoteStorageKind,
    pub timeout: Duration,
    pub small_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum RemoteStorageKind {
    LocalFs {
        local_path: Utf8PathBuf,
    },
    S3 {
        bucket_name: String,
        bucket_region: String,
        prefix_in_bucket: Option<String>,
        endpoint: Option<String>,
        concurrency_limit: NonZeroUsize,
        max_keys_per_list_response: Option<i32>,
        upload_storage_class: Option<String>,
    },
    Azure {
        container_name: String,
        storage_account: Option<String>,
        container_region: String,
        prefix_in_container: Option<String>,
        concurrency_limit: NonZeroUsize,
        max_keys_per_list_response: Option<i32>,
        conn_pool_size: usize,
        put_block_size_mb: Option<usize>,
    },
    Gcs {
        bucket_name: String,
        prefix_in_bucket: Option<String>,
        concurrency_limit: NonZeroUsize,
        max_keys_per_list_response: Option<i32>,
    },
}

impl RemoteStorageConfig {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
    pub const DEFAULT_SMALL_TIMEOUT: Duration = Duration::from_secs(30);

    pub fn local(local_path: Utf8PathBuf) -> Self {
        Self {
            kind: RemoteStorageKind::LocalFs { local_path },
            timeout: Self::DEFAULT_TIMEOUT,
            small_timeout: Self::DEFAULT_SMALL_TIMEOUT,
        }
    }
}

/// Every key any backend knows; [`RemoteStorageConfig`] picks the backend.
#[derive(Deserialize)]
struct RawRemoteStorage {
    local_path: Option<Utf8PathBuf>,
    bucket_name: Option<String>,
    bucket_region: Option<String>,
    prefix_in_bucket: Option<String>,
    endpoint: Option<String>,
    concurrency_limit: Option<NonZeroUsize>,
    max_keys_per_list_response: Option<i32>,
    upload_storage_class: Option<String>,
    container_name: Option<String>,
    storage_account: Option<String>,
    container_region: Option<String>,
    prefix_in_container: Option<String>,
    conn_pool_size: Option<usize>,
    put_block_size_mb: Option<usize>,
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    small_timeout: Option<Duration>,
}

const DEFAULT_REMOTE_CONCURRENCY: NonZeroUsize = match NonZeroUsize::new(100) {
    Some(n) => n,
    None => NonZeroUsize::MIN,
};

impl TryFrom<RawRemoteStorage> for RemoteStorageConfig {
    type Error = String;
    fn try_from(raw: RawRemoteStorage) -> Result<Self, Self::Error> {
        let concurrency_limit = raw.concurrency_limit.unwrap_or(DEFAULT_REMOTE_CONCURRENCY);
        let kind = match (raw.local_path, raw.container_name, raw.bucket_name) {
            (Some(local_path), None, None) => RemoteStorageKind::LocalFs { local_path },
            (None, Some(container_name), None) => RemoteStorageKind::Azure {
                container_name,
                storage_account: raw.storage_account,
                container_region: raw
                    .container_region
                    .ok_or("an Azure remote_storage needs container_region")?,
                prefix_in_container: raw.prefix_in_container,
                concurrency_limit,
                max_keys_per_list_response: raw.max_keys_per_list_response,
                conn_pool_size: raw.conn_pool_size.unwrap_or(8),
                put_block_size_mb: raw.put_block_size_mb,
            },
            (None, None, Some(bucket_name)) => match raw.bucket_region {
                Some(bucket_region) => RemoteStorageKind::S3 {
                    bucket_name,
                    bucket_region,
                    prefix_in_bucket: raw.prefix_in_bucket,
                    endpoint: raw.endpoint,
                    concurrency_limit,
                    max_keys_per_list_response: raw.max_keys_per_list_response,
                    upload_storage_class: raw.upload_storage_class,
                },
                None => RemoteStorageKind::Gcs {
                    bucket_name,
                    prefix_in_bucket: raw.prefix_in_bucket,
                    concurrency_limit,
                    max_keys_per_list_response: raw.max_keys_per_list_response,
                },
            },
            (None, None, None) => {
                return Err(
                    "remote_storage needs one of local_path, bucket_name (S3/GCS) or container_name (Azure)"
                        .to_owned(),
                )
            }
            _ => {
                return Err(
                    "remote_storage must name exactly one of local_path, bucket_name, container_name"
                        .to_owned(),
                )
            }
        };
        Ok(Self {
            kind,
            timeout: raw.timeout.unwrap_or(Self::DEFAULT_TIMEOUT),
            small_timeout: raw.small_timeout.unwrap_or(Self::DEFAULT_SMALL_TIMEOUT),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiskUsageEvictionConfig {
    pub max_usage_pct: u64,
    pub min_avail_bytes: u64,
    #[serde(with = "humantime_serde")]
    pub period: Duration,
    pub enabled: bool,
    pub eviction_order: Option<serde_json::Value>,
}

impl Default for DiskUsageEvictionConfig {
    fn default() -> Self {
        Self {
            max_usage_pct: 80,
            min_avail_bytes: 2_000_000_000,
            period: Duration::from_secs(60),
            enabled: true,
            eviction_order: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case", deny_unknown_fields)]
pub enum PageServicePipelining {
    Serial,
    Pipelined {
        max_batch_size: NonZeroUsize,
        execution: PipelineExecution,
        #[serde(default = "default_batching")]
        batching: PipelineBatching,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PipelineExecution {
    ConcurrentFutures,
    Tasks,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PipelineBatching {
    UniformLsn,
    ScatteredLsn,
}

fn default_batching() -> PipelineBatching {
    PipelineBatching::ScatteredLsn
}

impl Default for PageServicePipelining {
    fn default() -> Self {
        Self::Pipelined {
            max_batch_size: NonZeroUsize::new(32).unwrap_or(NonZeroUsize::MIN),
            execution: PipelineExecution::ConcurrentFutures,
            batching: PipelineBatching::ScatteredLsn,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case", deny_unknown_fields)]
pub enum GetVectoredConcurrentIo {
    Sequential,
    #[default]
    SidecarTask,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct L0FlushConfig {
    pub mode: String,
    pub max_concurrency: Option<NonZeroUsize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    pub sampling_ratio: Ratio,
    pub export_config: Option<TracingExportConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingExportConfig {
    pub endpoint: Option<String>,
    pub protocol: Option<TracingProtocol>,
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TracingProtocol {
    Grpc,
    HttpBinary,
    HttpJson,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimelineImportConfig {
    pub import_job_concurrency: NonZeroUsize,
    pub import_job_soft_size_limit: NonZeroUsize,
    pub import_job_checkpoint_threshold: NonZeroUsize,
    pub import_job_max_byte_range_size: NonZeroUsize,
}

impl Default for TimelineImportConfig {
    fn default() -> Self {
        let nz = |n| NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN);
        Self {
            import_job_concurrency: nz(32),
            import_job_soft_size_limit: nz(256 * 1024 * 1024),
            import_job_checkpoint_threshold: nz(32),
            import_job_max_byte_range_size: nz(4 * 1024 * 1024),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BasebackupCacheConfig {
    #[serde(with = "humantime_serde")]
    pub cleanup_period: Duration,
    pub max_total_size_bytes: u64,
    pub max_size_entries: usize,
    pub prepare_channel_size: usize,
}

impl Default for BasebackupCacheConfig {
    fn default() -> Self {
        Self {
            cleanup_period: Duration::from_secs(60),
            max_total_size_bytes: 1024 * 1024 * 1024,
            max_size_entries: 10_000,
            prepare_channel_size: 100,
        }
    }
}

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

/// Every top-level key of `pageserver.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct ConfigToml {
    pub listen_pg_addr: String,
    pub listen_http_addr: String,
    pub listen_https_addr: Option<String>,
    pub listen_grpc_addr: Option<String>,
    pub ssl_key_file: Utf8PathBuf,
    pub ssl_cert_file: Utf8PathBuf,
    #[serde(with = "humantime_serde")]
    pub ssl_cert_reload_period: Duration,
    pub ssl_ca_file: Option<Utf8PathBuf>,
    pub enable_tls_page_service_api: bool,
    pub availability_zone: Option<String>,
    #[serde(with = "humantime_serde")]
    pub wait_lsn_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub wal_redo_timeout: Duration,
    pub superuser: String,
    pub locale: String,
    pub page_cache_size: usize,
    pub max_file_descriptors: usize,
    pub pg_distrib_dir: Option<Utf8PathBuf>,
    pub http_auth_type: AuthType,
    pub pg_auth_type: AuthType,
    pub grpc_auth_type: AuthType,
    pub auth_validation_public_key_path: Option<Utf8PathBuf>,
    pub remote_storage: Option<RemoteStorageConfig>,
    pub tenant_config: TenantConfigToml,
    pub broker_endpoint: String,
    #[serde(with = "humantime_serde")]
    pub broker_keepalive_interval: Duration,
    pub log_format: LogFormat,
    pub concurrent_tenant_warmup: NonZeroUsize,
    pub concurrent_tenant_size_logical_size_queries: NonZeroUsize,
    #[serde(with = "humantime_serde")]
    pub metric_collection_interval: Duration,
    pub metric_collection_endpoint: Option<String>,
    pub metric_collection_bucket: Option<RemoteStorageConfig>,
    #[serde(with = "humantime_serde")]
    pub synthetic_size_calculation_interval: Duration,
    pub disk_usage_based_eviction: DiskUsageEvictionConfig,
    pub test_remote_failures: u64,
    pub test_remote_failures_probability: u64,
    pub ondemand_download_behavior_treat_error_as_warn: bool,
    #[serde(with = "humantime_serde")]
    pub background_task_maximum_delay: Duration,
    pub control_plane_api: Option<String>,
    pub control_plane_api_token: Option<String>,
    pub control_plane_emergency_mode: bool,
    pub import_pgdata_upcall_api: Option<String>,
    pub import_pgdata_upcall_api_token: Option<String>,
    pub import_pgdata_aws_endpoint_url: Option<String>,
    pub heatmap_upload_concurrency: usize,
    pub secondary_download_concurrency: usize,
    pub virtual_file_io_engine: Option<IoEngineKind>,
    pub virtual_file_io_mode: Option<IoMode>,
    pub ingest_batch_size: u64,
    pub max_vectored_read_bytes: usize,
    pub max_get_vectored_keys: usize,
    pub image_compression: ImageCompression,
    pub timeline_offloading: bool,
    pub ephemeral_bytes_per_memory_kb: usize,
    pub l0_flush: Option<L0FlushConfig>,
    pub no_sync: Option<bool>,
    pub page_service_pipelining: PageServicePipelining,
    /// Not in Neon: most page service connections open at once; more are
    /// refused with SQLSTATE 53300.
    pub page_service_max_connections: usize,
    pub get_vectored_concurrent_io: GetVectoredConcurrentIo,
    pub enable_read_path_debugging: Option<bool>,
    pub validate_wal_contiguity: Option<bool>,
    pub load_previous_heatmap: Option<bool>,
    pub generate_unarchival_heatmap: Option<bool>,
    pub tracing: Option<TracingConfig>,
    pub dev_mode: bool,
    pub timeline_import_config: TimelineImportConfig,
    pub basebackup_cache_config: Option<BasebackupCacheConfig>,
    pub image_layer_generation_large_timeline_threshold: Option<u64>,
    pub force_metric_collection_on_scrape: bool,
    pub posthog_config: Option<serde_json::Value>,
}

impl Default for ConfigToml {
    fn default() -> Self {
        Self {
            listen_pg_addr: DEFAULT_PG_LISTEN_ADDR.to_owned(),
            listen_http_addr: DEFAULT_HTTP_LISTEN_ADDR.to_owned(),
            listen_https_addr: None,
            listen_grpc_addr: None,
            ssl_key_file: Utf8PathBuf::from("server.key"),
            ssl_cert_file: Utf8PathBuf::from("server.crt"),
            ssl_cert_reload_period: Duration::from_secs(60),
            ssl_ca_file: None,
            enable_tls_page_service_api: false,
            availability_zone: None,
            wait_lsn_timeout: Duration::from_secs(300),
            wal_redo_timeout: Duration::from_secs(60),
            superuser: "cloud_admin".to_owned(),
            locale: "C.UTF-8".to_owned(),
            page_cache_size: 8192,
            max_file_descriptors: 100,
            pg_distrib_dir: None,
            http_auth_type: AuthType::Trust,
            pg_auth_type: AuthType::Trust,
            grpc_auth_type: AuthType::Trust,
            auth_validation_public_key_path: None,
            remote_storage: None,
            tenant_config: TenantConfigToml::default(),
            broker_endpoint: "http://127.0.0.1:50051".to_owned(),
            broker_keepalive_interval: Duration::from_secs(5),
            log_format: LogFormat::Plain,
            concurrent_tenant_warmup: nz(8),
            concurrent_tenant_size_logical_size_queries: nz(1),
            metric_collection_interval: Duration::from_secs(600),
            metric_collection_endpoint: None,
            metric_collection_bucket: None,
            synthetic_size_calculation_interval: Duration::from_secs(600),
            disk_usage_based_eviction: DiskUsageEvictionConfig::default(),
            test_remote_failures: 0,
            test_remote_failures_probability: 100,
            ondemand_download_behavior_treat_error_as_warn: false,
            background_task_maximum_delay: Duration::from_secs(10),
            control_plane_api: None,
            control_plane_api_token: None,
            control_plane_emergency_mode: false,
            import_pgdata_upcall_api: None,
            import_pgdata_upcall_api_token: None,
            import_pgdata_aws_endpoint_url: None,
            heatmap_upload_concurrency: 8,
            secondary_download_concurrency: 1,
            virtual_file_io_engine: None,
            virtual_file_io_mode: None,
            ingest_batch_size: 100,
            max_vectored_read_bytes: 130 * 1024,
            max_get_vectored_keys: 32,
            image_compression: ImageCompression::Zstd { level: Some(1) },
            timeline_offloading: true,
            ephemeral_bytes_per_memory_kb: 0,
            l0_flush: None,
            no_sync: None,
            page_service_pipelining: PageServicePipelining::default(),
            page_service_max_connections: 1000,
            get_vectored_concurrent_io: GetVectoredConcurrentIo::default(),
            enable_read_path_debugging: None,
            validate_wal_contiguity: None,
            load_previous_heatmap: None,
            generate_unarchival_heatmap: None,
            tracing: None,
            dev_mode: false,
            timeline_import_config: TimelineImportConfig::default(),
            basebackup_cache_config: None,
            image_layer_generation_large_timeline_threshold: Some(2 * 1024 * 1024 * 1024),
            force_metric_collection_on_scrape: true,
            posthog_config: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ConfigToml, toml_edit::de::Error> {
        toml_edit::de::from_str(text)
    }

    #[test]
    fn empty_file_is_all_defaults() {
        assert_eq!(parse("").unwrap(), ConfigToml::default());
    }

    #[test]
    fn remote_storage_kinds() {
        let c = parse("remote_storage = { local_path = \"/x\" }").unwrap();
        assert_eq!(
            c.remote_storage,
            Some(RemoteStorageConfig::local("/x".into()))
        );
        let c = parse(
            "[remote_storage]\nbucket_name = \"b\"\nbucket_region = \"r\"\nendpoint = \"http://127.0.0.1:9000\"\ntimeout = \"5s\"",
        )
        .unwrap();
        let rs = c.remote_storage.unwrap();
        assert!(matches!(rs.kind, RemoteStorageKind::S3 { .. }));
        assert_eq!(rs.timeout, Duration::from_secs(5));
        assert!(parse("remote_storage = {}").is_err());
        assert!(parse("remote_storage = { local_path = \"/x\", bucket_name = \"b\" }").is_err());
    }

    #[test]
    fn typed_values() {
        let c = parse(
            "image_compression = \"zstd(3)\"\npage_service_pipelining = { mode = \"serial\" }\nhttp_auth_type = \"NeonJWT\"\nwait_lsn_timeout = \"1m\"",
        )
        .unwrap();
        assert_eq!(
            c.image_compression,
            ImageCompression::Zstd { level: Some(3) }
        );
        assert_eq!(c.page_service_pipelining, PageServicePipelining::Serial);
        assert_eq!(c.http_auth_type, AuthType::NeonJWT);
        assert_eq!(c.wait_lsn_timeout, Duration::from_secs(60));
        assert!(parse("image_compression = \"lz4\"").is_err());
        assert!(parse("http_auth_type = \"Foo\"").is_err());
        assert!(parse("concurrent_tenant_warmup = 0").is_err());
    }
}
