-- Circuit breaker: the failure streak of each failing endpoint, one row per
-- subscription, present only while it fails (a success deletes it), so a
-- healthy subscription's attempts never write here. Claims read it per
-- lane: a subscription paused until after the claim is skipped; one whose
-- pause is over (half-open) gets one delivery in flight at a time.
CREATE TABLE endpoint_health (
    org             uuid        NOT NULL,
    sub_id          uuid        NOT NULL,
    failure_streak  integer     NOT NULL,
    failing_since   timestamptz NOT NULL,
    paused_until    timestamptz,
    times_opened    integer     NOT NULL DEFAULT 0,
    PRIMARY KEY (org, sub_id)
);
