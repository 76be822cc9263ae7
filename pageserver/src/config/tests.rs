//! Tests of config loading: precedence, unknown keys, error messages, and that
//! `pageserver.toml.example` lists every key and parses.

use super::*;
use std::cell::RefCell;

fn workdir() -> (tempfile::TempDir, Utf8PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let path = Utf8PathBuf::from_path_buf(tmp.path().to_owned()).unwrap();
    (tmp, path)
}

fn load_with(file: &str, overrides: &[&str]) -> Result<LoadedConfig, ConfigError> {
    let (_tmp, dir) = workdir();
    std::fs::write(dir.join(CONFIG_FILE_NAME), file).unwrap();
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    load(&dir, &overrides)
}

#[test]
fn defaults_without_file() {
    let (_tmp, dir) = workdir();
    let loaded = load(&dir, &[]).unwrap();
    assert_eq!(loaded.conf.listen_pg_addr, "127.0.0.1:64000");
    assert_eq!(loaded.conf.listen_http_addr, "127.0.0.1:9898");
    assert_eq!(loaded.conf.id, NodeId(1));
    assert_eq!(
        loaded.conf.remote_storage,
        RemoteStorageConfig::local(dir.join("remote_storage"))
    );
    assert!(loaded.unknown_keys.is_empty());
    assert!(loaded.not_yet_effective.is_empty());
}

#[test]
fn overrides_beat_file_and_merge_tables() {
    let loaded = load_with(
        "listen_http_addr = '127.0.0.1:1'\n[tenant_config]\ngc_horizon = 5\ngc_period = '1m'\n",
        &[
            "listen_http_addr='127.0.0.1:2'",
            "tenant_config.gc_period='2h'",
            "remote_storage={local_path='/r'}",
        ],
    )
    .unwrap();
    let conf = loaded.conf;
    assert_eq!(conf.listen_http_addr, "127.0.0.1:2");
    assert_eq!(conf.default_tenant_conf.gc_horizon, 5);
    assert_eq!(conf.default_tenant_conf.gc_period.as_secs(), 7200);
    assert_eq!(conf.remote_storage, RemoteStorageConfig::local("/r".into()));
}

#[test]
fn inline_table_override_replaces_backend() {
    let loaded = load_with(
        "remote_storage = { local_path = '/l' }\n",
        &["remote_storage={bucket_name='b', bucket_region='r'}"],
    )
    .unwrap();
    assert!(matches!(
        loaded.conf.remote_storage.kind,
        pageserver_api::config::RemoteStorageKind::S3 { .. }
    ));
}

#[test]
fn unknown_and_not_yet_effective_keys() {
    let loaded = load_with(
        "bogus = 1\npage_cache_size = 10\nheatmap_upload_concurrency = 2\n[tenant_config]\nnope = true\ngc_horizon = 1\n",
        &[],
    )
    .unwrap();
    assert_eq!(loaded.unknown_keys, vec!["bogus", "tenant_config.nope"]);
    assert_eq!(loaded.not_yet_effective, vec!["heatmap_upload_concurrency"]);
}

#[test]
fn bad_values_name_key_value_and_expectation() {
    let cases = [
        ("page_cache_size = \"lots\"", "page_cache_size", "\"lots\""),
        ("listen_http_addr = 5", "listen_http_addr", "5"),
        ("wait_lsn_timeout = 'soon'", "wait_lsn_timeout", "'soon'"),
        ("http_auth_type = \"Foo\"", "http_auth_type", "\"Foo\""),
        (
            "[tenant_config]\ngc_period = 3",
            "tenant_config.gc_period",
            "3",
        ),
        (
            "listen_pg_addr = 'nowhere'",
            "listen_pg_addr",
            "\"nowhere\"",
        ),
    ];
    for (text, key, value) in cases {
        let err = load_with(text, &[]).expect_err(text);
        match &err {
            ConfigError::InvalidValue {
                key: k,
                value: v,
                expected,
            } => {
                assert_eq!(k, key, "{text}");
                assert_eq!(v, value, "{text}");
                assert!(!expected.is_empty());
            }
            other => panic!("{text}: unexpected error {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains(key) && msg.contains(value), "{msg}");
    }
}

#[test]
fn syntax_and_override_errors() {
    assert!(matches!(
        load_with("this is not toml", &[]),
        Err(ConfigError::Syntax { .. })
    ));
    assert!(matches!(
        load_with("", &["no_equals_sign"]),
        Err(ConfigError::OverrideShape { .. })
    ));
    assert!(matches!(
        load_with("", &["x = ["]),
        Err(ConfigError::Syntax { .. })
    ));
}

#[test]
fn jwt_needs_existing_key() {
    let err = load_with("http_auth_type = 'NeonJWT'", &[]).unwrap_err();
    assert!(
        err.to_string().contains("auth_validation_public_key_path"),
        "{err}"
    );
}

#[test]
fn identity_file() {
    let (_tmp, dir) = workdir();
    std::fs::write(dir.join(IDENTITY_FILE_NAME), "id = 7\n").unwrap();
    assert_eq!(load(&dir, &[]).unwrap().conf.id, NodeId(7));
    std::fs::write(dir.join(IDENTITY_FILE_NAME), "id = 'x'\n").unwrap();
    assert!(matches!(load(&dir, &[]), Err(ConfigError::Identity { .. })));
}

#[test]
fn init_text_round_trips() {
    let text = initial_config_text(&["listen_http_addr='127.0.0.1:7'".to_owned()]).unwrap();
    let (_tmp, dir) = workdir();
    std::fs::write(dir.join(CONFIG_FILE_NAME), &text).unwrap();
    let loaded = load(&dir, &[]).unwrap();
    assert_eq!(loaded.conf.listen_http_addr, "127.0.0.1:7");
    assert!(loaded.unknown_keys.is_empty());
    assert!(initial_config_text(&["page_cache_size='x'".to_owned()]).is_err());
}

/// A serde deserializer that records the field names a struct asks for.
struct FieldNames(RefCell<Vec<&'static str>>);

impl<'de> serde::Deserializer<'de> for &FieldNames {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("only structs"))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.borrow_mut().extend_from_slice(fields);
        Err(serde::de::Error::custom("captured"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

fn top_level_keys() -> Vec<&'static str> {
    let names = FieldNames(RefCell::new(Vec::new()));
    let _ = <ConfigToml as serde::Deserialize>::deserialize(&names);
    names.0.into_inner()
}

/// `pageserver.toml.example` lists every key, commented out, and uncommenting
/// all of them yields a valid config with no unknown key.
#[test]
fn example_config_is_complete_and_valid() {
    let path = Utf8Path::new(env!("CARGO_MANIFEST_DIR")).join("../pageserver.toml.example");
    let text = std::fs::read_to_string(&path).expect("pageserver.toml.example exists");
    let uncommented: String = text
        .lines()
        .map(|line| match line.strip_prefix('#') {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_alphabetic()) => rest,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let doc: DocumentMut = uncommented.parse().expect("uncommented example is TOML");
    let (parsed, unknown) = parse_document(&doc).expect("uncommented example is valid");
    assert!(unknown.is_empty(), "unknown keys in example: {unknown:?}");

    let mut missing: Vec<String> = top_level_keys()
        .into_iter()
        .filter(|k| !doc.contains_key(k))
        .map(str::to_owned)
        .collect();
    let tenant = doc["tenant_config"]
        .as_table_like()
        .expect("[tenant_config] section");
    missing.extend(
        TenantConfigToml::KEYS
            .iter()
            .filter(|k| !tenant.contains_key(k))
            .map(|k| format!("tenant_config.{k}")),
    );
    assert!(
        missing.is_empty(),
        "keys missing from the example: {missing:?}"
    );
    // The documented tenant defaults are the real ones, except for keys whose
    // default is "unset", which the example shows with a sample value.
    let expected = TenantConfigToml {
        l0_flush_delay_threshold: parsed.tenant_config.l0_flush_delay_threshold,
        l0_flush_stall_threshold: parsed.tenant_config.l0_flush_stall_threshold,
        min_resident_size_override: parsed.tenant_config.min_resident_size_override,
        sampling_ratio: parsed.tenant_config.sampling_ratio,
        ..Default::default()
    };
    assert_eq!(parsed.tenant_config, expected);
}

#[test]
fn storage_settings_follow_the_config() {
    let loaded = load_with(
        "page_cache_size = 123\nwait_lsn_timeout = '7s'\nmax_get_vectored_keys = 64\nget_vectored_concurrent_io = { mode = 'sequential' }\nimage_compression = 'disabled'\nephemeral_bytes_per_memory_kb = 2\n",
        &[],
    )
    .unwrap();
    let s = loaded.conf.storage_settings();
    assert_eq!(s.page_cache_blocks, 123);
    assert_eq!(s.wait_lsn_timeout, std::time::Duration::from_secs(7));
    assert_eq!(s.max_get_vectored_keys, 64);
    assert_eq!(
        s.read_concurrency,
        crate::tenant::resources::IoConcurrency::Sequential
    );
    assert!(!s.image_compression);
    assert!(s.concurrent_background_tasks >= 1);
    // Two bytes per KiB of RAM: a budget of about RAM / 512.
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert_eq!(s.ephemeral_budget_bytes, kb * 2);
    assert!(
        loaded.not_yet_effective.is_empty(),
        "{:?}",
        loaded.not_yet_effective
    );
}
