//! What gengate remembers about a task's life at Kling, saved in the task's `upstream`
//! column before every call it protects.
//!
//! ```text
//! (none) ──▶ submitting ──create answered──▶ submitted ──▶ (task ends)
//!   ▲            │  clean refusal (1xxx)
//!   └─ pending ◀─┘
//! ```
//!
//! `submitting` is written *before* create is sent and means "a create may be at Kling".
//! Whoever finds a task in that phase (the same worker after a timeout, another node after
//! a crash) must look it up by `external_task_id` before sending create again.

use gengate_kling::Family;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Upstream {
    /// Nothing is at Kling (never sent, or Kling refused it cleanly).
    Pending {
        family: FamilyName,
        /// Create attempts so far, for the back-off.
        attempts: u32,
    },
    /// A create was (maybe) sent and its answer is not stored.
    Submitting {
        family: FamilyName,
        attempts: u32,
        /// The Kling account the create went to: only it is asked whether the task
        /// exists. Absent in states saved before accounts were recorded (the first
        /// account's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        account: Option<String>,
    },
    /// Kling accepted the task.
    Submitted {
        family: FamilyName,
        /// The account holding the task: polls, downloads and lookups go there only.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        account: Option<String>,
        task_id: String,
        /// Unix ms when we learned the task id; polling slows down as the task ages.
        submitted_at_ms: i64,
        /// Status queries that failed in a row (5xx, 5000, network): the next one
        /// comes after the retry back-off for this many, not a poll interval.
        #[serde(default, skip_serializing_if = "is_zero")]
        poll_failures: u32,
    },
}

/// `Family` as it is stored (its path segment), kept apart so the client crate needs no
/// serde derive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FamilyName {
    #[serde(rename = "text2video")]
    Text2Video,
    #[serde(rename = "image2video")]
    Image2Video,
}

impl From<Family> for FamilyName {
    fn from(f: Family) -> Self {
        match f {
            Family::Text2Video => FamilyName::Text2Video,
            Family::Image2Video => FamilyName::Image2Video,
        }
    }
}

impl From<FamilyName> for Family {
    fn from(f: FamilyName) -> Self {
        match f {
            FamilyName::Text2Video => Family::Text2Video,
            FamilyName::Image2Video => Family::Image2Video,
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Upstream {
    /// Reads saved state. Anything unreadable is reported as such rather than treated as
    /// "nothing sent": guessing wrong here could submit (and bill) a video twice.
    pub fn load(v: Option<&Value>) -> Result<Option<Upstream>, String> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(v) => serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|e| format!("unreadable kling upstream state {v}: {e}")),
        }
    }

    pub fn to_json(&self) -> Value {
        // Serialising plain enums of strings and integers cannot fail.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn phases_round_trip_with_the_family_stored() {
        let s = Upstream::Submitting {
            family: FamilyName::Image2Video,
            attempts: 2,
            account: Some("sg-main".into()),
        };
        let v = s.to_json();
        assert_eq!(
            v,
            json!({"phase": "submitting", "family": "image2video", "attempts": 2, "account": "sg-main"})
        );
        assert_eq!(Upstream::load(Some(&v)), Ok(Some(s)));
        // Saved before accounts were recorded: the first account's.
        assert_eq!(
            Upstream::load(Some(
                &json!({"phase": "submitting", "family": "image2video", "attempts": 2})
            )),
            Ok(Some(Upstream::Submitting {
                family: FamilyName::Image2Video,
                attempts: 2,
                account: None
            }))
        );
        let s = Upstream::Submitted {
            account: Some("b".into()),
            family: FamilyName::Text2Video,
            task_id: "860".into(),
            submitted_at_ms: 5,
            poll_failures: 0,
        };
        assert_eq!(Upstream::load(Some(&s.to_json())), Ok(Some(s)));
        // State saved before poll failures were counted reads as none so far.
        assert_eq!(
            Upstream::load(Some(
                &json!({"phase": "submitted", "family": "text2video", "task_id": "1", "submitted_at_ms": 5})
            )),
            Ok(Some(Upstream::Submitted {
                account: None,
                family: FamilyName::Text2Video,
                task_id: "1".into(),
                submitted_at_ms: 5,
                poll_failures: 0
            }))
        );
        let failing = Upstream::Submitted {
            account: None,
            family: FamilyName::Text2Video,
            task_id: "1".into(),
            submitted_at_ms: 5,
            poll_failures: 3,
        };
        assert_eq!(failing.to_json()["poll_failures"], 3);
        assert_eq!(Upstream::load(Some(&failing.to_json())), Ok(Some(failing)));
        assert_eq!(Upstream::load(None), Ok(None));
    }

    #[test]
    fn foreign_state_is_an_error_not_a_fresh_start() {
        // e.g. the sandbox's state, if a model moved from the sandbox to Kling mid-task.
        assert!(Upstream::load(Some(&json!({"state": "rendering", "ready_at_ms": 1}))).is_err());
    }
}
