//! How the domain's typed values are stored: the ledger boundary where enums, ids and documents
//! become TEXT (or BIGINT) columns and back.
//!
//! Owns: the `sqlx` `Type`/`Encode`/`Decode` impls of the domain types the ledger stores, so row
//! structs carry `EntityKind`, `NpdId`, `JobState`, `JobPayload`, ... instead of strings. Names
//! are the ones the migrations' `check` constraints list (`as_str` / `FromStr`); documents are
//! JSON text. A stored value that does not decode is an error of the row's read, never a default.
//! May import: std, sqlx, serde, serde_json, crate::domain.

use sqlx::Database;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;

use crate::domain::budget::BudgetState;
use crate::domain::entity::{BoardId, EntityKind, MondayItemId, NpdId, Side};
use crate::domain::job::{JobPayload, Operation, Priority, Sent};
use crate::domain::mapping::LeftOutReason;
use crate::domain::reconcile::{ConflictPolicy, FieldState};
use crate::domain::record::NpdRecord;
use crate::domain::scan::{
    Candidates, MatchStatus, RunStatus, ScanKind, Scope, StagedItem, Summary,
};
use crate::domain::state::{
    AuditOutcome, ConflictStatus, EntityStatus, HistoryKind, InboxOutcome, JobState, Resolution,
};

/// Stores `$ty` as TEXT: `$encode` turns a value into its text, `$decode` reads it back.
macro_rules! string_column {
    ($ty:ty, $encode:expr, $decode:expr) => {
        impl<DB: Database> sqlx::Type<DB> for $ty
        where
            String: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <String as sqlx::Type<DB>>::type_info()
            }
            fn compatible(ty: &DB::TypeInfo) -> bool {
                <String as sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'q, DB: Database> sqlx::Encode<'q, DB> for $ty
        where
            String: sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as Database>::ArgumentBuffer<'q>,
            ) -> Result<IsNull, BoxDynError> {
                let encode: fn(&$ty) -> Result<String, BoxDynError> = $encode;
                <String as sqlx::Encode<'q, DB>>::encode(encode(self)?, buf)
            }
        }

        impl<'r, DB: Database> sqlx::Decode<'r, DB> for $ty
        where
            String: sqlx::Decode<'r, DB>,
        {
            fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                let decode: fn(String) -> Result<$ty, BoxDynError> = $decode;
                decode(<String as sqlx::Decode<'r, DB>>::decode(value)?)
            }
        }
    };
}

/// Stores each type as TEXT through its `Display` and `FromStr` (its name).
macro_rules! text_column {
    ($($ty:ty),+ $(,)?) => {$(
        string_column!(
            $ty,
            |v| Ok(v.to_string()),
            |text| text
                .parse::<$ty>()
                .map_err(|e| format!("{} `{text}`: {e}", stringify!($ty)).into())
        );
    )+};
}

/// Stores each type as JSON text (serde).
macro_rules! json_column {
    ($($ty:ty),+ $(,)?) => {$(
        string_column!(
            $ty,
            |v| Ok(serde_json::to_string(v)?),
            |text| serde_json::from_str(&text)
                .map_err(|e| format!("stored {}: {e}", stringify!($ty)).into())
        );
    )+};
}

text_column!(
    EntityKind,
    Side,
    NpdId,
    MondayItemId,
    BoardId,
    EntityStatus,
    JobState,
    InboxOutcome,
    ConflictStatus,
    Resolution,
    HistoryKind,
    AuditOutcome,
    Operation,
    ConflictPolicy,
    ScanKind,
    RunStatus,
    Scope,
    MatchStatus,
    LeftOutReason,
);

json_column!(
    NpdRecord,
    JobPayload,
    Sent,
    FieldState,
    BudgetState,
    Summary,
    StagedItem,
    Candidates
);

/// A priority is stored as its number (BIGINT), so claims can order and compare it.
impl<DB: Database> sqlx::Type<DB> for Priority
where
    i64: sqlx::Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <i64 as sqlx::Type<DB>>::type_info()
    }
    fn compatible(ty: &DB::TypeInfo) -> bool {
        <i64 as sqlx::Type<DB>>::compatible(ty)
    }
}

impl<'q, DB: Database> sqlx::Encode<'q, DB> for Priority
where
    i64: sqlx::Encode<'q, DB>,
{
    fn encode_by_ref(
        &self,
        buf: &mut <DB as Database>::ArgumentBuffer<'q>,
    ) -> Result<IsNull, BoxDynError> {
        <i64 as sqlx::Encode<'q, DB>>::encode(self.as_i64(), buf)
    }
}

impl<'r, DB: Database> sqlx::Decode<'r, DB> for Priority
where
    i64: sqlx::Decode<'r, DB>,
{
    fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Priority::from_i64(<i64 as sqlx::Decode<'r, DB>>::decode(
            value,
        )?))
    }
}
