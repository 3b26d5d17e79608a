//! Processing over a real ledger, with the remotes faked: what each event decides, queues and
//! records.

use crate::domain::entity::{MondayItemId, Side};
use crate::domain::job::Operation;
use crate::domain::state::{EntityStatus, HistoryKind, InboxOutcome, JobState};
use crate::ledger::inbox::InboxRow;
use crate::sync::testkit::{ADA, GATEWAY_USER, Kit, fixture};

async fn outcomes(kit: &Kit, side: Side) -> Vec<(String, Option<InboxOutcome>)> {
    kit.store
        .inbox_events(side, 100)
        .await
        .expect("inbox")
        .into_iter()
        .map(|r: InboxRow| (r.delivery_id, r.outcome))
        .collect()
}

async fn open_operations(kit: &Kit) -> Vec<Operation> {
    kit.store
        .all_jobs()
        .await
        .expect("jobs")
        .into_iter()
        .filter(|j| j.state.is_open())
        .map(|j| j.operation)
        .collect()
}

/// Ada, created in NPD and pushed: linked to item 5200000101.
async fn linked_ada() -> Kit {
    let kit = Kit::new().await;
    kit.npd("msg_1", &fixture("npd/contact.created.json")).await;
    kit.dispatch_all().await;
    kit
}

#[tokio::test]
async fn a_new_npd_contact_becomes_an_entity_with_a_push_queued() {
    let kit = Kit::new().await;

    kit.npd("msg_1", &fixture("npd/contact.created.json")).await;

    assert_eq!(
        outcomes(&kit, Side::Npd).await,
        vec![("msg_1".into(), Some(InboxOutcome::Applied))]
    );
    let entity = kit.entity(ADA).await;
    assert_eq!(
        (entity.status, entity.npd_version),
        (EntityStatus::Pending, Some(1))
    );
    assert_eq!(
        entity
            .npd_snapshot
            .as_ref()
            .and_then(|r| r.text("first_name")),
        Some("Ada")
    );
    assert_eq!(open_operations(&kit).await, vec![Operation::PushItem]);
    let kinds: Vec<HistoryKind> = kit
        .store
        .history(entity.id, 10)
        .await
        .expect("history")
        .into_iter()
        .map(|h| h.kind)
        .collect();
    assert_eq!(kinds, vec![HistoryKind::Decided, HistoryKind::Received]);
}

#[tokio::test]
async fn an_older_npd_version_is_stale_and_changes_nothing() {
    let kit = Kit::new().await;
    kit.npd("msg_7", &fixture("npd/contact.updated.json")).await;
    let before = kit.store.all_jobs().await.expect("jobs");

    kit.npd("msg_1", &fixture("npd/contact.created.json")).await;

    let outcome = outcomes(&kit, Side::Npd).await;
    assert_eq!(outcome[1], ("msg_1".into(), Some(InboxOutcome::Stale)));
    assert_eq!(kit.store.all_jobs().await.expect("jobs"), before);
    assert_eq!(kit.entity(ADA).await.npd_version, Some(7));
}

#[tokio::test]
async fn a_monday_column_change_on_a_linked_item_queues_an_npd_patch() {
    let kit = linked_ada().await;

    kit.monday(&fixture("monday/update_column_value_email.json"))
        .await;

    let monday = outcomes(&kit, Side::Monday).await;
    assert_eq!(
        monday.last().map(|m| m.1),
        Some(Some(InboxOutcome::Applied))
    );
    assert_eq!(open_operations(&kit).await, vec![Operation::PatchNpd]);
    let fields = kit
        .store
        .entity_fields(kit.entity(ADA).await.id)
        .await
        .expect("fields");
    assert_eq!(
        fields["email"]
            .pending_npd
            .as_ref()
            .and_then(|p| p.value.as_deref()),
        Some("ada.lovelace@example.com")
    );
}

#[tokio::test]
async fn a_delivery_the_gateways_own_user_authored_is_an_echo() {
    let kit = linked_ada().await;
    let body = fixture("monday/update_column_value_email.json")
        .replace("71000001", &GATEWAY_USER.to_string());

    kit.monday(&body).await;

    let monday = outcomes(&kit, Side::Monday).await;
    assert_eq!(monday.last().map(|m| m.1), Some(Some(InboxOutcome::Echo)));
    assert!(
        open_operations(&kit).await.is_empty(),
        "nothing bounces back"
    );
}

#[tokio::test]
async fn an_item_created_in_monday_without_an_npd_id_is_recorded_not_created() {
    let kit = Kit::new().await;

    kit.monday(&fixture("monday/create_pulse.json")).await;

    let monday = outcomes(&kit, Side::Monday).await;
    assert_eq!(monday[0].1, Some(InboxOutcome::Ignored));
    assert!(open_operations(&kit).await.is_empty());
    let jobs = kit.store.all_jobs().await.expect("jobs");
    assert!(jobs.is_empty(), "{jobs:?}");
}

#[tokio::test]
async fn with_create_in_npd_an_unlinked_item_queues_an_npd_contact() {
    let kit = Kit::with(|s| s.sync.create_in_npd = true).await;

    kit.monday(&fixture("monday/create_pulse.json")).await;

    assert_eq!(
        outcomes(&kit, Side::Monday).await[0].1,
        Some(InboxOutcome::Applied)
    );
    assert_eq!(
        open_operations(&kit).await,
        vec![Operation::CreateNpdContact]
    );
}

#[tokio::test]
async fn an_npd_delete_archives_the_linked_item() {
    let kit = linked_ada().await;

    kit.npd("msg_8", &fixture("npd/contact.deleted.json")).await;

    let entity = kit.entity(ADA).await;
    assert_eq!(entity.status, EntityStatus::Deleted);
    assert_eq!(open_operations(&kit).await, vec![Operation::ArchiveItem]);
    let ends = kit.dispatch_all().await;
    assert_eq!(ends.len(), 1);
    let job = kit
        .store
        .job(ends[0].0.id)
        .await
        .expect("job")
        .expect("row");
    assert_eq!(job.state, JobState::Done);
    assert_eq!(entity.monday_item_id, Some(MondayItemId(5_200_000_101)));
}

#[tokio::test]
async fn sync_disabled_keeps_the_snapshot_and_sends_nothing() {
    let kit = Kit::new().await;
    let body = fixture("npd/contact.created.json")
        .replace("\"sync_enabled\": true", "\"sync_enabled\": false");

    kit.npd("msg_1", &body).await;

    assert_eq!(
        outcomes(&kit, Side::Npd).await[0].1,
        Some(InboxOutcome::Ignored)
    );
    let entity = kit.entity(ADA).await;
    assert_eq!(entity.status, EntityStatus::Disabled);
    assert!(entity.npd_snapshot.is_some());
    assert!(open_operations(&kit).await.is_empty());
}

#[tokio::test]
async fn an_npd_record_made_for_a_monday_item_joins_its_entity_when_its_event_comes_first() {
    // Arrange: a person's item without an npd_id; the gateway queued its NPD create.
    let kit = Kit::with(|s| s.sync.create_in_npd = true).await;
    kit.monday(&fixture("monday/create_pulse.json")).await;
    assert_eq!(
        open_operations(&kit).await,
        vec![Operation::CreateNpdContact]
    );
    let item = MondayItemId(5_200_000_101);
    let waiting = kit
        .store
        .entity_by_item(item)
        .await
        .expect("q")
        .expect("entity");

    // Act: NPD's event for the record it created (naming the item) beats the create's answer.
    let mut event: serde_json::Value =
        serde_json::from_str(&fixture("npd/contact.created.json")).expect("json");
    event["data"]["monday_id"] = serde_json::json!(item.to_string());
    kit.npd("msg_made_for_the_item", &event.to_string()).await;

    // Assert: the same entity, now with the NPD id, still linked; no second entity or item.
    let entity = kit.entity(ADA).await;
    assert_eq!((entity.id, entity.monday_item_id), (waiting.id, Some(item)));
    assert!(
        kit.store
            .all_jobs()
            .await
            .expect("jobs")
            .iter()
            .all(|j| j.entity_id == waiting.id),
        "every job belongs to the one entity"
    );
}
