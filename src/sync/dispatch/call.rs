//! Step 2 of an NPD job: its remote call. No transaction is open here.
//!
//! Owns: `Dispatcher::call_npd`: the field PATCH, the link write-back and the contact create, each
//! answering a typed `Sent`. (Monday jobs are sent in batches by `monday`.)
//! May import: std, crate::{connectors, domain, ledger, sync}.

use std::collections::BTreeMap;

use crate::connectors::{ConnectorError, NpdApi, NpdFields};
use crate::domain::entity::{NpdId, Side};
use crate::domain::job::{Sent, Work};
use crate::domain::mapping::{EntityMapping, FieldValue};
use crate::domain::record::NpdValue;
use crate::ledger::entities::EntityRow;
use crate::ledger::jobs::JobRow;
use crate::sync::dispatch::{Dispatcher, not_configured};

impl Dispatcher {
    /// The call of an NPD job (a Monday job's work is sent by `monday`).
    pub(super) async fn call_npd(
        &self,
        job: &JobRow,
        entity: &EntityRow,
        work: &Work,
    ) -> Result<Sent, ConnectorError> {
        match work {
            Work::PushItem { .. } | Work::ArchiveItem => Err(ConnectorError::local(
                Side::Npd,
                format!("job {}: Monday work on the NPD path", job.id),
            )),
            Work::Nothing => Ok(Sent::Nothing),
            Work::PatchNpd { values } => Ok(Sent::NpdPatched {
                fields: values.keys().cloned().collect(),
                npd_version: self
                    .patch_npd(job, entity, npd_fields(self.mapping_of(entity), values))
                    .await?,
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
                let mut fields = npd_fields(self.mapping_of(entity), values);
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

    fn mapping_of(&self, entity: &EntityRow) -> &EntityMapping {
        self.settings.mapping.for_kind(entity.kind)
    }

    fn npd_api(&self) -> Result<&dyn NpdApi, ConnectorError> {
        self.npd
            .as_deref()
            .ok_or_else(|| not_configured(Side::Npd, "NPD_API_URL"))
    }
}

/// The body of an NPD write: each field's canonical value as NPD's JSON has it
/// (`EntityMapping::npd_json`: text, numbers, booleans, lists), `null` to clear it.
fn npd_fields(mapping: &EntityMapping, values: &BTreeMap<String, FieldValue>) -> NpdFields {
    values
        .iter()
        .map(|(f, v)| (f.clone(), mapping.npd_json(f, v)))
        .collect()
}

fn npd_id_of(entity: &EntityRow) -> Result<NpdId, ConnectorError> {
    entity.npd_id.ok_or_else(|| {
        ConnectorError::local(Side::Npd, format!("entity {} has no NPD id", entity.id))
    })
}
