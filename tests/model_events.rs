//! Event catalogue and fully-qualified names.

use webhook_subscriptions::model::{fully_qualified_name, EventCatalogue, CONVERSATION_EVENTS};

#[test]
fn fqn_of_every_catalogue_name() {
    let expected = [
        ("ConversationCreated", "CONVERSATION_CREATED"),
        ("ConversationOpen", "CONVERSATION_OPEN"),
        ("ConversationPending", "CONVERSATION_PENDING"),
        ("ConversationPendingExpired", "CONVERSATION_PENDING_EXPIRED"),
        ("ConversationClosed", "CONVERSATION_CLOSED"),
        ("ConversationAbandoned", "CONVERSATION_ABANDONED"),
        ("ConversationEnqueued", "CONVERSATION_ENQUEUED"),
        ("ConversationAssigned", "CONVERSATION_ASSIGNED"),
        ("ConversationUnassigned", "CONVERSATION_UNASSIGNED"),
        ("ConversationTransferred", "CONVERSATION_TRANSFERRED"),
        ("ConversationNoteAdded", "CONVERSATION_NOTE_ADDED"),
        ("ConversationMessageAdded", "CONVERSATION_MESSAGE_ADDED"),
        ("ConversationTagAdded", "CONVERSATION_TAG_ADDED"),
        ("ConversationTagRemoved", "CONVERSATION_TAG_REMOVED"),
        ("ConversationRated", "CONVERSATION_RATED"),
        (
            "ConversationEndUserReplaced",
            "CONVERSATION_END_USER_REPLACED",
        ),
        (
            "ConversationCustomAttributeUpdated",
            "CONVERSATION_CUSTOM_ATTRIBUTE_UPDATED",
        ),
        (
            "ConversationTranscriptionAdded",
            "CONVERSATION_TRANSCRIPTION_ADDED",
        ),
        (
            "ConversationMessageDeliveryDelivered",
            "CONVERSATION_MESSAGE_DELIVERY_DELIVERED",
        ),
        (
            "ConversationMessageDeliveryInfo",
            "CONVERSATION_MESSAGE_DELIVERY_INFO",
        ),
        (
            "ConversationMessageDeliveryFailed",
            "CONVERSATION_MESSAGE_DELIVERY_FAILED",
        ),
        (
            "ConversationMessageDeliverySeen",
            "CONVERSATION_MESSAGE_DELIVERY_SEEN",
        ),
        (
            "ConversationMessageDeliverySent",
            "CONVERSATION_MESSAGE_DELIVERY_SENT",
        ),
        (
            "ConversationMessageDeliverySpamComplaint",
            "CONVERSATION_MESSAGE_DELIVERY_SPAM_COMPLAINT",
        ),
        ("AgentBannedEnduser", "AGENT_BANNED_ENDUSER"),
        ("AgentUnbannedEnduser", "AGENT_UNBANNED_ENDUSER"),
        ("AgentBannedIp", "AGENT_BANNED_IP"),
        ("AgentUnbannedIp", "AGENT_UNBANNED_IP"),
        ("TypingStarted", "TYPING_STARTED"),
        ("SLAEvaluationPending", "SLA_EVALUATION_PENDING"),
        ("SLAEvaluationBreached", "SLA_EVALUATION_BREACHED"),
        ("SLAEvaluationAchieved", "SLA_EVALUATION_ACHIEVED"),
        ("SLAEvaluationVoided", "SLA_EVALUATION_VOIDED"),
    ];
    assert_eq!(expected.len(), CONVERSATION_EVENTS.len());
    let catalogue = EventCatalogue::conversation();
    for (name, fqn) in expected {
        assert_eq!(fully_qualified_name(name), fqn, "{name}");
        assert_eq!(catalogue.fqn(name), Some(fqn), "{name} in catalogue");
    }
}

#[test]
fn catalogue_is_host_extensible() {
    let catalogue = EventCatalogue::conversation()
        .extended(["InvoicePaid"])
        .expect("valid name");
    assert!(catalogue.contains("InvoicePaid"));
    assert!(catalogue.contains("ConversationCreated"));
    assert_eq!(catalogue.fqn("InvoicePaid"), Some("INVOICE_PAID"));
}

#[test]
fn catalogue_refuses_bad_and_duplicate_names() {
    assert!(EventCatalogue::new(["Ok", "Ok"]).is_err());
    assert!(EventCatalogue::new(["has space"]).is_err());
    assert!(EventCatalogue::new([""]).is_err());
    assert!(EventCatalogue::new(Vec::<String>::new()).is_err());
    assert!(EventCatalogue::new(["1Leading"]).is_err());
}
