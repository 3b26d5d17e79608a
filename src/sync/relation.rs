//! A contact's organization in a board_relation column (`organization_id`): the ledger's
//! organization links read for one write or one delivery, and the follow-up once an organization
//! is linked: each contact whose relation was left out waiting for that organization's item gets
//! the relation written (a push of the contact queued).
//!
//! Owns: `links_of_organizations`, `links_of_items` (the `OrgLinks` the mapping translates with),
//! `staged_values` (a scanned item's relation as NPD ids),
//! `write_waiting_relations` (called wherever an organization gets linked) and `queue_relation`.
//! No table of its own: it reads entities and left-out values.
//! May import: std, crate::{config, domain, ledger, sync}.

use std::collections::BTreeMap;

use crate::config::Settings;
use crate::domain::entity::{EntityKind, MondayItemId, NpdId, Side};
use crate::domain::job::Operation;
use crate::domain::mapping::{EntityMapping, FieldValue, LeftOutReason, OrgLinks};
use crate::domain::reconcile::retry;
use crate::domain::state::{EntityStatus, HistoryKind};
use crate::ledger::LedgerResult;
use crate::ledger::entities::{self, EntityRow};
use crate::ledger::left_out;
use crate::ledger::tx::Tx;
use crate::sync::history::{Cause, record};
use crate::sync::outbox;

/// The Monday items of these organizations, as the ledger links them now. Each organization's
/// row is locked, so a link being made at this moment is either seen here or sees what this
/// transaction records (the waiting relation) once it commits.
pub async fn links_of_organizations(tx: &mut Tx, ids: &[NpdId]) -> LedgerResult<OrgLinks> {
    let mut links = OrgLinks::default();
    for id in ids {
        let Some(org) = entities::find_by_npd(tx, EntityKind::Organization, *id).await? else {
            continue;
        };
        let org = entities::lock(tx, org.id).await?.unwrap_or(org);
        if let Some(item) = org.monday_item_id {
            links.insert(*id, item);
        }
    }
    Ok(links)
}

/// The organizations of these Monday items, as the ledger links them now (items of no known
/// organization are not in the answer).
pub async fn links_of_items(tx: &mut Tx, items: &[MondayItemId]) -> LedgerResult<OrgLinks> {
    let mut links = OrgLinks::default();
    for item in items {
        let Some(org) = entities::find_by_item(tx, *item).await? else {
            continue;
        };
        if let (EntityKind::Organization, Some(npd_id)) = (org.kind, org.npd_id) {
            links.insert(npd_id, *item);
        }
    }
    Ok(links)
}

/// A scanned item's values (drift scans, backfills) with each board_relation value as its
/// organization's NPD id; one the ledger cannot translate (an item of no known organization,
/// several items) is dropped: a scan never guesses, and never clears NPD's value for it.
pub async fn staged_values(
    tx: &mut Tx,
    mapping: &EntityMapping,
    values: &BTreeMap<String, FieldValue>,
) -> LedgerResult<BTreeMap<String, FieldValue>> {
    let related: Vec<(String, FieldValue)> = mapping
        .relation_fields()
        .filter_map(|f| Some((f.to_owned(), values.get(f)?.clone())))
        .collect();
    let links = links_of_items(tx, &mapping.related_items(&related)).await?;
    let mut out = values.clone();
    for (field, value) in related {
        match mapping.npd_value_linked(&field, value, &links) {
            Ok(npd) => out.insert(field, npd),
            Err(_) => out.remove(&field),
        };
    }
    Ok(out)
}

/// `org` was just linked to its Monday item: every contact whose relation to it was left out
/// (`OrganizationNotSynced`) gets it written now.
pub async fn write_waiting_relations(
    tx: &mut Tx,
    settings: &Settings,
    org: &EntityRow,
    cause: &Cause<'_>,
) -> LedgerResult<()> {
    let (EntityKind::Organization, Some(npd_id)) = (org.kind, org.npd_id) else {
        return Ok(());
    };
    let mapping = settings.mapping.for_kind(EntityKind::Contact);
    let reason = LeftOutReason::OrganizationNotSynced;
    for field in mapping.relation_fields() {
        let waiting =
            left_out::waiting(tx, field, Side::Monday, reason, &npd_id.to_string()).await?;
        for entity_id in waiting {
            // Not locked: the organization is (a contact's write locks the contact, then the
            // organization it waits for; the other order here could deadlock). The push reads
            // the contact's fields under its own lock.
            let Some(contact) = entities::find_by_id(tx, entity_id).await? else {
                continue;
            };
            if writable(&contact) {
                outbox::ensure_forced_push(tx, settings, &contact, cause).await?;
                let reason = format!(
                    "organization {npd_id} is linked to Monday item {}: {field} will be written",
                    org.monday_item_id
                        .map(|i| i.to_string())
                        .unwrap_or_default()
                );
                record(tx, contact.id, cause, HistoryKind::Decided, reason, None).await?;
            }
        }
    }
    Ok(())
}

/// Whether the gateway writes the contact at all (not disabled, not deleted).
fn writable(contact: &EntityRow) -> bool {
    contact.sync_enabled
        && !matches!(
            contact.status,
            EntityStatus::Deleted | EntityStatus::Disabled
        )
}

/// Makes NPD's value of the contact's relation `field` pending for Monday again and queues the
/// push that writes it (joining an unsent one), under the contact's lock (its own write's
/// outcome). A disabled or deleted contact is left alone.
pub async fn queue_relation(
    tx: &mut Tx,
    settings: &Settings,
    contact: &EntityRow,
    field: &str,
    cause: &Cause<'_>,
) -> LedgerResult<()> {
    if !writable(contact) {
        return Ok(());
    }
    let fields = entities::load_fields(tx, contact.id).await?;
    let state = fields.get(field).cloned().unwrap_or_default();
    let next = retry(&state, Side::Monday, &state.npd);
    if next == state {
        return Ok(());
    }
    entities::save_field(tx, contact.id, field, &next).await?;
    outbox::ensure(tx, settings, contact, Operation::PushItem, cause).await?;
    let reason = format!(
        "the organization of {field} is linked to its Monday item now: the relation will be written"
    );
    record(tx, contact.id, cause, HistoryKind::Decided, reason, None).await
}
