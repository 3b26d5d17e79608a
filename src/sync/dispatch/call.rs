//! Step 2 of a job: the remote call. No transaction is open here.
//!
//! Owns: `Dispatcher::call` and one function per kind of work: the item push (an idempotent
//! create, or an update), the archive, and the NPD writes. Each answers a typed `Sent`.
//! May import: std, crate::{connectors, domain, ledger, sync}.

use std::collections::BTreeMap;

use crate::connectors::{ConnectorError, FailureClass, MondayApi, NpdApi, NpdFields};
use crate::domain::entity::{BoardId, MondayItemId, NpdId, Side};
use crate::domain::job::{Sent, Work};
use crate::domain::mapping::FieldValue;
use crate::domain::record::NpdValue;
use crate::ledger::entities::{self, EntityRow};
use crate::ledger::jobs::JobRow;
use crate::sync::dispatch::{CREATE_POINTS, Dispatcher, MUTATION_POINTS, QUERY_POINTS};

/// One key per job and mutation: stable across the job's retries, and distinct between the
/// create and the update a retried create may turn into (an item adopted by its npd_id), since
/// Monday answers a reused key with the first answer whatever the request.
fn key_of(job: &JobRow, mutation: &str) -> String {
    format!("{}:{mutation}", job.idempotency_key)
}

impl Dispatcher {
    pub(super) async fn call(
        &self,
        job: &JobRow,
        entity: &EntityRow,
        work: &Work,
    ) -> Result<Sent, ConnectorError> {
        match work {
            Work::Nothing => Ok(Sent::Nothing),
            Work::PushItem {
                values,
                all,
                npd_id,
            } => self.push_item(job, entity, values, *all || *npd_id).await,
            Work::ArchiveItem => self.archive_item(job, entity).await,
            Work::PatchNpd { values } => Ok(Sent::NpdPatched {
                fields: values.keys().cloned().collect(),
                npd_version: self.patch_npd(job, entity, npd_fields(values)).await?,
            }),
            Work::WriteLink { monday_id } => {
                let link = NpdValue::Text(monday_id.to_string());
                let fields = NpdFields::from([("monday_id".to_owned(), link)]);
                Ok(Sent::LinkWritten {
                    monday_id: *monday_id,
                    npd_version: self.patch_npd(job, entity, fields).await?,
                })
            }
            Work::CreateNpdContact { values } => {
                let npd = self.npd_api()?;
                let mut fields = npd_fields(values);
                if let Some(item) = entity.monday_item_id {
                    fields.insert("monday_id".into(), NpdValue::Text(item.to_string()));
                }
                let npd_id = npd.create_contact(&fields, &job.idempotency_key).await?;
                Ok(Sent::NpdCreated { npd_id })
            }
        }
    }

    /// PATCHes the entity's NPD record with `fields`; the version NPD answers with.
    async fn patch_npd(
        &self,
        job: &JobRow,
        entity: &EntityRow,
        fields: NpdFields,
    ) -> Result<Option<i64>, ConnectorError> {
        let id = npd_id_of(entity)?;
        self.npd_api()?
            .patch(entity.kind, id, &fields, &job.idempotency_key)
            .await
    }

    /// Creates the entity's item (after looking it up by its npd_id: a create whose answer was
    /// lost, more than 30 minutes ago, is adopted) or updates it.
    async fn push_item(
        &self,
        job: &JobRow,
        entity: &EntityRow,
        values: &BTreeMap<String, FieldValue>,
        all: bool,
    ) -> Result<Sent, ConnectorError> {
        let monday = self.monday_api()?;
        let board = entity
            .board_id
            .or_else(|| self.settings.board_for(entity.kind))
            .ok_or_else(|| not_configured(Side::Monday, "the board id"))?;
        let npd_id = entity.npd_id.map(|id| id.to_string()).unwrap_or_default();
        let mapping = self.settings.mapping.for_kind(entity.kind);
        let (item, adopted) = match entity.monday_item_id {
            Some(item) => (Some(item), false),
            None if npd_id.is_empty() => (None, false),
            None => {
                self.spend(QUERY_POINTS, job).await;
                let found = monday
                    .find_items_by_column(board, &mapping.npd_id_column, &npd_id)
                    .await;
                self.observe(monday);
                let item = found?.first().copied();
                (item, item.is_some())
            }
        };
        let name = mapping.item_name(&self.name_values(entity, values).await);
        let Some(item) = item else {
            let filled: BTreeMap<String, FieldValue> = values
                .iter()
                .filter(|(_, v)| v.is_some())
                .map(|(f, v)| (f.clone(), v.clone()))
                .collect();
            let columns = mapping.monday_column_values(&filled, Some(&npd_id));
            self.spend(CREATE_POINTS, job).await;
            let created = monday
                .create_item(board, &name, &columns, &key_of(job, "create_item"))
                .await;
            self.observe(monday);
            return Ok(item_sent(created?, board, true, false));
        };
        let mut columns =
            mapping.monday_column_values(values, (all || adopted).then_some(npd_id.as_str()));
        if adopted || mapping.item_name.iter().any(|f| values.contains_key(f)) {
            columns.set_item_name(&name);
        }
        if !columns.is_empty() {
            self.spend(MUTATION_POINTS, job).await;
            let key = key_of(job, "change_multiple_column_values");
            let changed = monday
                .change_multiple_column_values(board, item, &columns, &key)
                .await;
            self.observe(monday);
            changed?;
        }
        Ok(item_sent(item, board, false, adopted))
    }

    async fn archive_item(&self, job: &JobRow, entity: &EntityRow) -> Result<Sent, ConnectorError> {
        let monday = self.monday_api()?;
        let Some(item) = entity.monday_item_id else {
            return Ok(Sent::Archived { item_id: None });
        };
        self.spend(MUTATION_POINTS, job).await;
        let archived = monday
            .archive_item(item, &key_of(job, "archive_item"))
            .await;
        self.observe(monday);
        match archived {
            Ok(()) => Ok(Sent::Archived {
                item_id: Some(item),
            }),
            // Already gone: nothing left to archive.
            Err(e) if e.class == FailureClass::NotFound => Ok(Sent::Archived { item_id: None }),
            Err(e) => Err(e),
        }
    }

    /// The values of the item-name fields: the ones being sent, else what NPD holds.
    async fn name_values(
        &self,
        entity: &EntityRow,
        values: &BTreeMap<String, FieldValue>,
    ) -> BTreeMap<String, FieldValue> {
        let mut out = values.clone();
        let mapping = self.settings.mapping.for_kind(entity.kind);
        if mapping.item_name.iter().all(|f| values.contains_key(f)) {
            return out;
        }
        if let Ok(mut tx) = self.store.begin_read().await {
            if let Ok(fields) = entities::load_fields(&mut tx, entity.id).await {
                for f in &mapping.item_name {
                    out.entry(f.clone())
                        .or_insert_with(|| fields.get(f).and_then(|s| s.npd.clone()));
                }
            }
            let _ = tx.rollback().await;
        }
        out
    }

    fn monday_api(&self) -> Result<&dyn MondayApi, ConnectorError> {
        self.monday
            .as_deref()
            .ok_or_else(|| not_configured(Side::Monday, "MONDAY_API_TOKEN"))
    }

    fn npd_api(&self) -> Result<&dyn NpdApi, ConnectorError> {
        self.npd
            .as_deref()
            .ok_or_else(|| not_configured(Side::Npd, "NPD_API_URL"))
    }
}

fn item_sent(item_id: MondayItemId, board_id: BoardId, created: bool, adopted: bool) -> Sent {
    Sent::Item {
        item_id,
        board_id,
        created,
        adopted,
    }
}

/// The body of an NPD write: each field's canonical text, `null` to clear it.
fn npd_fields(values: &BTreeMap<String, FieldValue>) -> NpdFields {
    values
        .iter()
        .map(|(f, v)| (f.clone(), v.clone().map_or(NpdValue::Null, NpdValue::Text)))
        .collect()
}

fn npd_id_of(entity: &EntityRow) -> Result<NpdId, ConnectorError> {
    entity.npd_id.ok_or_else(|| {
        ConnectorError::local(Side::Npd, format!("entity {} has no NPD id", entity.id))
    })
}

fn not_configured(system: Side, what: &str) -> ConnectorError {
    ConnectorError::local(system, format!("{what} is not configured"))
}
