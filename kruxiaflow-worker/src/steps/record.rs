//! The step record's format on the server: one JSON document per activity, holding
//! every completed step (its value, or the name of the file that holds it), the spend
//! recorded inside it, and the latest checkpoint.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::protocol::UsageEntry;
use crate::result::Spend;

/// The format this SDK writes and reads; a record of another format is ignored.
pub(crate) const FORMAT: u32 = 1;

/// One activity's steps and checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Record {
    #[serde(rename = "kruxiaflow_steps")]
    pub(crate) format: u32,
    pub(crate) activity_id: Uuid,
    #[serde(default)]
    pub(crate) steps: BTreeMap<String, Entry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) checkpoint: Option<Checkpoint>,
    /// Value files written so far for this activity: the next one's number.
    #[serde(default)]
    pub(crate) files: u32,
}

/// A checkpoint's value. A struct so that a saved `null` stays a saved value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    pub(crate) value: Value,
}

/// One completed step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Entry {
    #[serde(flatten)]
    pub(crate) stored: Stored,
    /// Spend recorded inside the step.
    #[serde(default, skip_serializing_if = "SpendRecord::is_empty")]
    pub(crate) spend: SpendRecord,
    /// Whether the spend reached the server with some attempt's report. A resumed
    /// attempt reports the spend of entries that say `false` (their attempt was killed
    /// before it reported) and then marks them.
    #[serde(default)]
    pub(crate) reported: bool,
}

/// Where a step's value is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum Stored {
    /// In the record itself (small values).
    Inline { value: Value },
    /// In a file of its own next to the record, written once.
    File { file: String, bytes: u64 },
}

/// [`Spend`] as the record keeps it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct SpendRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cost_usd: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) usage: Vec<UsageEntry>,
}

impl SpendRecord {
    pub(crate) fn is_empty(&self) -> bool {
        self.cost_usd.is_none() && self.usage.is_empty()
    }

    pub(crate) fn from_spend(spend: Spend) -> Self {
        Self { cost_usd: spend.cost, usage: spend.usage }
    }

    pub(crate) fn to_spend(&self) -> Spend {
        Spend { cost: self.cost_usd, usage: self.usage.clone() }
    }
}

impl Record {
    pub(crate) fn new(activity_id: Uuid) -> Self {
        Self { format: FORMAT, activity_id, steps: BTreeMap::new(), checkpoint: None, files: 0 }
    }

    /// Whether an attempt left anything to resume from.
    pub(crate) fn is_empty(&self) -> bool {
        self.steps.is_empty() && self.checkpoint.is_none()
    }

    /// The record in `bytes`, if it is one of this activity's in this format; else why
    /// it is ignored.
    pub(crate) fn parse(bytes: &[u8], activity_id: Uuid) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct Head {
            #[serde(rename = "kruxiaflow_steps")]
            format: Option<Value>,
        }
        let head: Head = serde_json::from_slice(bytes).map_err(|e| format!("it is not JSON of a step record: {e}"))?;
        match head.format {
            Some(Value::Number(n)) if n.as_u64() == Some(u64::from(FORMAT)) => {}
            Some(other) => return Err(format!("it has format {other}, and this SDK reads format {FORMAT}")),
            None => return Err("it is not a step record (no \"kruxiaflow_steps\" field)".to_owned()),
        }
        let record: Self = serde_json::from_slice(bytes).map_err(|e| format!("it is damaged: {e}"))?;
        if record.activity_id != activity_id {
            return Err(format!("it belongs to activity {}", record.activity_id));
        }
        Ok(record)
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a record is plain JSON: string keys, serializable values")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record() -> Record {
        let mut record = Record::new(Uuid::nil());
        record.steps.insert(
            "plan".into(),
            Entry {
                stored: Stored::Inline { value: Value::Null },
                spend: SpendRecord { cost_usd: Some(Decimal::new(15, 3)), usage: vec![] },
                reported: false,
            },
        );
        record.steps.insert(
            "draft".into(),
            Entry {
                stored: Stored::File { file: "x.0.json".into(), bytes: 9000 },
                spend: SpendRecord::default(),
                reported: true,
            },
        );
        record.checkpoint = Some(Checkpoint { value: json!(60) });
        record
    }

    #[test]
    fn a_record_survives_its_round_trip_a_null_value_included() {
        let record = record();
        assert_eq!(Record::parse(&record.to_bytes(), Uuid::nil()), Ok(record));
    }

    #[test]
    fn the_format_is_fixed_json() {
        let text = String::from_utf8(record().to_bytes()).unwrap();
        assert_eq!(
            text,
            r#"{"kruxiaflow_steps":1,"activity_id":"00000000-0000-0000-0000-000000000000","steps":{"draft":{"file":"x.0.json","bytes":9000,"reported":true},"plan":{"value":null,"spend":{"cost_usd":"0.015"},"reported":false}},"checkpoint":{"value":60},"files":0}"#
        );
    }

    #[test]
    fn other_formats_other_activities_and_damage_are_refused_with_the_reason() {
        let other = Uuid::now_v7();
        let cases: [(&[u8], &str); 5] = [
            (b"not json", "it is not JSON of a step record"),
            (br#"{"a":1}"#, "it is not a step record (no \"kruxiaflow_steps\" field)"),
            (br#"{"kruxiaflow_steps":2,"activity_id":"00000000-0000-0000-0000-000000000000"}"#, "it has format 2"),
            (
                br#"{"kruxiaflow_steps":1,"activity_id":"00000000-0000-0000-0000-000000000000","steps":{"a":{}}}"#,
                "it is damaged",
            ),
            (
                br#"{"kruxiaflow_steps":1,"activity_id":"00000000-0000-0000-0000-000000000000"}"#,
                "it belongs to activity",
            ),
        ];
        for (bytes, why) in cases {
            let activity = if why.starts_with("it belongs") { other } else { Uuid::nil() };
            let error = Record::parse(bytes, activity).unwrap_err();
            assert!(error.starts_with(why), "{error:?} for {}", String::from_utf8_lossy(bytes));
        }
    }
}
