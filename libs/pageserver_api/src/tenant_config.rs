//! Per-tenant settings: the node-wide defaults (`[tenant_config]` in
//! `pageserver.toml`, [`TenantConfigToml`]) and a tenant's own overrides
//! ([`TenantConfig`], every field optional, sent in `location_config` and
//! persisted with the tenant). The effective configuration of a tenant is the
//! defaults with its overrides applied ([`TenantConfigToml::apply`]).
//!
//! Both structs are generated from one field list so they cannot drift apart.

use std::num::{NonZeroU32, NonZeroU64};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `compaction_algorithm = { kind = "legacy" | "tiered" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactionAlgorithmSettings {
    pub kind: CompactionAlgorithm,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompactionAlgorithm {
    Legacy,
    Tiered,
}

/// When resident layers may be evicted from local disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum EvictionPolicy {
    NoEviction,
    LayerAccessThreshold(EvictionPolicyLayerAccessThreshold),
    OnlyImitiate(EvictionPolicyLayerAccessThreshold),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvictionPolicyLayerAccessThreshold {
    #[serde(with = "humantime_serde")]
    pub period: Duration,
    #[serde(with = "humantime_serde")]
    pub threshold: Duration,
}

/// Token-bucket throttle of page reads; disabled while `task_kinds` is empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThrottleConfig {
    #[serde(default)]
    pub task_kinds: Vec<String>,
    pub initial: u32,
    #[serde(with = "humantime_serde")]
    pub refill_interval: Duration,
    pub refill_amount: NonZeroU32,
    pub max: u32,
}

impl ThrottleConfig {
    pub fn disabled() -> Self {
        Self {
            task_kinds: Vec::new(),
            initial: 0,
            refill_interval: Duration::from_secs(1),
            refill_amount: NonZeroU32::MIN,
            max: 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ratio {
    pub numerator: u32,
    pub denominator: u32,
}

macro_rules! tenant_config_fields {
    ($( $(#[$attr:meta])* $name:ident : $ty:ty = $default:expr ;)*) => {
        /// Node-wide defaults for every tenant (`[tenant_config]`).
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(default)]
        pub struct TenantConfigToml {
            $( $(#[$attr])* pub $name: $ty, )*
        }

        impl Default for TenantConfigToml {
            fn default() -> Self {
                Self { $( $name: $default, )* }
            }
        }

        /// A tenant's overrides of the node-wide defaults; absent = inherit.
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct TenantConfig {
            $(
                $(#[$attr])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $name: Option<$ty>,
            )*
        }

        impl TenantConfigToml {
            /// The effective settings of a tenant with these overrides.
            pub fn apply(&self, overrides: &TenantConfig) -> TenantConfigToml {
                TenantConfigToml {
                    $( $name: overrides.$name.clone().unwrap_or_else(|| self.$name.clone()), )*
                }
            }

            /// Every key name, in declaration order.
            pub const KEYS: &'static [&'static str] = &[ $( stringify!($name), )* ];
        }
    };
}

const MIB: u64 = 1024 * 1024;

tenant_config_fields! {
    checkpoint_distance: u64 = 256 * MIB;
    #[serde(with = "humantime_serde")]
    checkpoint_timeout: Duration = Duration::from_secs(10 * 60);
    compaction_target_size: u64 = 128 * MIB;
    #[serde(with = "humantime_serde")]
    compaction_period: Duration = Duration::from_secs(20);
    compaction_threshold: usize = 10;
    compaction_upper_limit: usize = 10;
    compaction_algorithm: CompactionAlgorithmSettings =
        CompactionAlgorithmSettings { kind: CompactionAlgorithm::Legacy };
    compaction_shard_ancestor: bool = true;
    compaction_l0_first: bool = true;
    compaction_l0_semaphore: bool = true;
    l0_flush_delay_threshold: Option<usize> = None;
    l0_flush_stall_threshold: Option<usize> = None;
    gc_horizon: u64 = 64 * MIB;
    #[serde(with = "humantime_serde")]
    gc_period: Duration = Duration::from_secs(60 * 60);
    image_creation_threshold: usize = 3;
    /// Zero means unset: image layers are not forced by age.
    #[serde(with = "humantime_serde")]
    image_layer_force_creation_period: Duration = Duration::ZERO;
    #[serde(with = "humantime_serde")]
    pitr_interval: Duration = Duration::from_secs(7 * 24 * 60 * 60);
    #[serde(with = "humantime_serde")]
    walreceiver_connect_timeout: Duration = Duration::from_secs(10);
    #[serde(with = "humantime_serde")]
    lagging_wal_timeout: Duration = Duration::from_secs(10);
    max_lsn_wal_lag: NonZeroU64 = NonZeroU64::new(1024 * MIB).unwrap_or(NonZeroU64::MIN);
    eviction_policy: EvictionPolicy = EvictionPolicy::NoEviction;
    min_resident_size_override: Option<u64> = None;
    #[serde(with = "humantime_serde")]
    evictions_low_residence_duration_metric_threshold: Duration = Duration::from_secs(24 * 60 * 60);
    #[serde(with = "humantime_serde")]
    heatmap_period: Duration = Duration::ZERO;
    lazy_slru_download: bool = false;
    timeline_get_throttle: ThrottleConfig = ThrottleConfig::disabled();
    image_layer_creation_check_threshold: u8 = 2;
    image_creation_preempt_threshold: usize = 3;
    #[serde(with = "humantime_serde")]
    lsn_lease_length: Duration = Duration::from_secs(10 * 60);
    #[serde(with = "humantime_serde")]
    lsn_lease_length_for_ts: Duration = Duration::from_secs(60);
    timeline_offloading: bool = true;
    rel_size_v2_enabled: bool = false;
    gc_compaction_enabled: bool = true;
    gc_compaction_verification: bool = true;
    gc_compaction_initial_threshold_kb: u64 = 5 * 1024 * 1024;
    gc_compaction_ratio_percent: u64 = 100;
    sampling_ratio: Option<Ratio> = None;
    relsize_snapshot_cache_capacity: usize = 1000;
    basebackup_cache_enabled: bool = false;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_apply_over_defaults() {
        let defaults = TenantConfigToml {
            gc_horizon: 1,
            ..Default::default()
        };
        let overrides: TenantConfig =
            serde_json::from_str(r#"{"gc_period": "5m", "image_creation_threshold": 7}"#).unwrap();
        let eff = defaults.apply(&overrides);
        assert_eq!(eff.gc_period, Duration::from_secs(300));
        assert_eq!(eff.image_creation_threshold, 7);
        assert_eq!(eff.gc_horizon, 1);
        assert_eq!(eff.pitr_interval, Duration::from_secs(7 * 86400));
    }

    #[test]
    fn overrides_reject_unknown_and_roundtrip() {
        assert!(serde_json::from_str::<TenantConfig>(r#"{"gc_perod": "5m"}"#).is_err());
        let o: TenantConfig = serde_json::from_str(
            r#"{"eviction_policy": {"kind": "LayerAccessThreshold", "period": "10m", "threshold": "1h"},
                "compaction_algorithm": {"kind": "tiered"}, "checkpoint_timeout": "30s"}"#,
        )
        .unwrap();
        let text = serde_json::to_string(&o).unwrap();
        assert_eq!(serde_json::from_str::<TenantConfig>(&text).unwrap(), o);
        assert!(
            !text.contains("gc_horizon"),
            "unset fields are omitted: {text}"
        );
    }
}
