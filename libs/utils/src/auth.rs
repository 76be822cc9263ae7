//! JWT validation for the storage APIs ("NeonJWT" auth).
//!
//! Tokens carry `{"scope": ..., "tenant_id": ...}` claims and are signed with
//! Ed25519 (EdDSA) or RSA (RS256/384/512). Public keys come from one PEM file or
//! a directory of PEM files; a token is accepted if any key verifies it. `exp`
//! is checked when present but not required.

use std::fmt;

use camino::{Utf8Path, Utf8PathBuf};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

use crate::id::TenantId;

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Only the routes and commands of `tenant_id`.
    Tenant,
    #[serde(rename = "tenantendpoint")]
    TenantEndpoint,
    /// Everything on the pageserver.
    #[serde(rename = "pageserverapi")]
    PageServerApi,
    #[serde(rename = "safekeeperdata")]
    SafekeeperData,
    #[serde(rename = "generations_api")]
    GenerationsApi,
    Admin,
    Infra,
    Scrubber,
    #[serde(rename = "controller_peer")]
    ControllerPeer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    #[serde(default)]
    pub tenant_id: Option<TenantId>,
    pub scope: Scope,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyLoadError {
    #[error("cannot read public key {path}: {source}")]
    Io {
        path: Utf8PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not an Ed25519 or RSA public key in PEM format")]
    BadKey { path: Utf8PathBuf },
    #[error("no public key files found in {path}")]
    NoKeys { path: Utf8PathBuf },
}

/// A token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("JWT authentication error: {0}")]
pub struct AuthError(pub String);

/// The token is valid but does not allow this request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("permission denied: {0}")]
pub struct PermissionDenied(pub String);

#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Ed25519,
    Rsa,
}

struct PublicKey {
    kind: KeyKind,
    key: DecodingKey,
}

/// The set of keys that may sign tokens.
pub struct JwtAuth {
    keys: Vec<PublicKey>,
}

impl fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtAuth")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl JwtAuth {
    /// Loads one PEM file, or every regular file of a directory (sorted).
    pub fn from_path(path: &Utf8Path) -> Result<Self, KeyLoadError> {
        let io_err = |p: &Utf8Path| {
            let p = p.to_owned();
            move |source| KeyLoadError::Io { path: p, source }
        };
        let mut files = Vec::new();
        if path.is_dir() {
            for entry in path.read_dir_utf8().map_err(io_err(path))? {
                let entry = entry.map_err(io_err(path))?;
                if entry.file_type().map_err(io_err(path))?.is_file() {
                    files.push(entry.path().to_owned());
                }
            }
            files.sort();
            if files.is_empty() {
                return Err(KeyLoadError::NoKeys {
                    path: path.to_owned(),
                });
            }
        } else {
            files.push(path.to_owned());
        }
        let mut keys = Vec::new();
        for file in files {
            let pem = std::fs::read(&file).map_err(io_err(&file))?;
            keys.push(parse_public_key(&pem).ok_or(KeyLoadError::BadKey { path: file })?);
        }
        Ok(Self { keys })
    }

    /// Verifies a token's signature (and `exp`, if present) and returns its claims.
    pub fn decode(&self, token: &str) -> Result<Claims, AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| AuthError(format!("malformed token: {e}")))?;
        let kind = match header.alg {
            Algorithm::EdDSA => KeyKind::Ed25519,
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => KeyKind::Rsa,
            other => return Err(AuthError(format!("unsupported algorithm {other:?}"))),
        };
        let mut validation = Validation::new(header.alg);
        validation.required_spec_claims.clear();
        let mut last_error = None;
        for key in self.keys.iter().filter(|k| k.kind == kind) {
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) => last_error = Some(e),
            }
        }
        Err(AuthError(match last_error {
            Some(e) => e.to_string(),
            None => "no key of the token's algorithm is configured".to_owned(),
        }))
    }
}

fn parse_public_key(pem: &[u8]) -> Option<PublicKey> {
    // The PEM decoder classifies the key by its algorithm OID, so at most one
    // of these succeeds.
    if let Ok(key) = DecodingKey::from_ed_pem(pem) {
        return Some(PublicKey {
            kind: KeyKind::Ed25519,
            key,
        });
    }
    DecodingKey::from_rsa_pem(pem).ok().map(|key| PublicKey {
        kind: KeyKind::Rsa,
        key,
    })
}

/// The pageserver's permission rule: `pageserverapi` may do anything, `tenant`
/// only requests about its own tenant, every other scope nothing.
pub fn check_permission(claims: &Claims, tenant: Option<TenantId>) -> Result<(), PermissionDenied> {
    match (claims.scope, tenant) {
        (Scope::PageServerApi, _) => Ok(()),
        (Scope::Tenant, Some(requested)) => match claims.tenant_id {
            Some(allowed) if allowed == requested => Ok(()),
            _ => Err(PermissionDenied(format!(
                "token is not valid for tenant {requested}"
            ))),
        },
        (Scope::Tenant, None) => Err(PermissionDenied(
            "a tenant-scoped token cannot be used for node-wide requests".to_owned(),
        )),
        (other, _) => Err(PermissionDenied(format!(
            "scope {other:?} is ineligible for pageserver auth"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions() {
        let a: TenantId = "0123456789abcdef0123456789abcdef".parse().unwrap();
        let b: TenantId = "fedcba9876543210fedcba9876543210".parse().unwrap();
        let api = Claims {
            tenant_id: None,
            scope: Scope::PageServerApi,
            endpoint_id: None,
        };
        assert!(check_permission(&api, None).is_ok());
        assert!(check_permission(&api, Some(a)).is_ok());
        let tenant = Claims {
            tenant_id: Some(a),
            scope: Scope::Tenant,
            endpoint_id: None,
        };
        assert!(check_permission(&tenant, Some(a)).is_ok());
        assert!(check_permission(&tenant, Some(b)).is_err());
        assert!(check_permission(&tenant, None).is_err());
        let sk = Claims {
            tenant_id: Some(a),
            scope: Scope::SafekeeperData,
            endpoint_id: None,
        };
        assert!(check_permission(&sk, Some(a)).is_err());
    }

    #[test]
    fn scope_names() {
        let c: Claims = serde_json::from_str(r#"{"scope":"pageserverapi"}"#).unwrap();
        assert_eq!(c.scope, Scope::PageServerApi);
        let c: Claims = serde_json::from_str(
            r#"{"scope":"tenant","tenant_id":"0123456789abcdef0123456789abcdef"}"#,
        )
        .unwrap();
        assert_eq!(c.scope, Scope::Tenant);
        assert!(serde_json::from_str::<Claims>(r#"{"scope":"root"}"#).is_err());
    }
}
