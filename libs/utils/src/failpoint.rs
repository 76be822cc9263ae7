//! Named failpoints for tests: code calls [`hit`] at interesting places and a
//! test arms the point through the HTTP API (only when `dev_mode` is on).
//!
//! Actions: `off`, `panic`, `return` (the caller turns it into an error) and
//! `sleep(<ms>)`.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Off,
    Panic,
    Return,
    Sleep(Duration),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid failpoint action {0:?}: expected off, panic, return or sleep(<ms>)")]
pub struct ActionParseError(String);

impl FromStr for Action {
    type Err = ActionParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "off" => Ok(Action::Off),
            "panic" => Ok(Action::Panic),
            "return" => Ok(Action::Return),
            other => other
                .strip_prefix("sleep(")
                .and_then(|rest| rest.strip_suffix(')'))
                .and_then(|ms| ms.trim().parse::<u64>().ok())
                .map(|ms| Action::Sleep(Duration::from_millis(ms)))
                .ok_or_else(|| ActionParseError(s.to_owned())),
        }
    }
}

fn registry() -> &'static Mutex<HashMap<String, Action>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Action>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// Arms (or with `Action::Off`, disarms) a failpoint.
pub fn configure(name: &str, action: Action) {
    let mut map = registry().lock().unwrap_or_else(|e| e.into_inner());
    if action == Action::Off {
        map.remove(name);
    } else {
        map.insert(name.to_owned(), action);
    }
}

/// Evaluates a failpoint. Returns `true` when the caller should fail with an
/// error; panics or sleeps when so armed.
pub async fn hit(name: &str) -> bool {
    let action = registry()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(name)
        .cloned();
    match action {
        None | Some(Action::Off) => false,
        Some(Action::Panic) => panic!("failpoint {name} triggered"),
        Some(Action::Return) => true,
        Some(Action::Sleep(d)) => {
            tokio::time::sleep(d).await;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_actions() {
        assert_eq!("off".parse::<Action>().unwrap(), Action::Off);
        assert_eq!(
            "sleep(15)".parse::<Action>().unwrap(),
            Action::Sleep(Duration::from_millis(15))
        );
        assert!("explode".parse::<Action>().is_err());
        assert!("sleep(x)".parse::<Action>().is_err());
    }

    #[tokio::test]
    async fn return_action() {
        configure("unit-test-fp", Action::Return);
        assert!(hit("unit-test-fp").await);
        configure("unit-test-fp", Action::Off);
        assert!(!hit("unit-test-fp").await);
    }
}
