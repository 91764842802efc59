-- Records a batch of attempts (distinct deliveries) in one statement.
-- Attempts are logged only while their subscription exists. The next step
-- applies only where the lease token still matches; a delivery whose
-- subscription is gone is removed. The log is trimmed lazily: a key is
-- trimmed back to the cap with probability `added / 16`, so trimming costs
-- little per attempt and a log holds about 16 rows beyond the cap at most;
-- reads never show more than the cap. Rows another writer is trimming are
-- skipped, not waited for. A tracked success (one counted by the circuit
-- breaker) deletes its endpoint's failure streak; failures are counted by
-- `lock_health` and `write_health` in the same transaction. One row per
-- input: (ord, applied, live, closed): whether the next step applied,
-- whether the subscription exists, and whether this success closed an open
-- circuit.
--
-- One array element per attempt: $1 = delivery ids, $2 = lease tokens,
-- $3 = organizations, $4 = subscriptions, $5 = event names, $6 = event ids,
-- $7 = delivered at, $8 = successes, $9 = response codes, $10 = response
-- texts, $11 = next steps, $12 = retry times (NULL unless retrying),
-- $13 = whether the circuit breaker tracks the attempt.
-- __LOG_CAP__ is the log cap per (subscription, event name).
-- __COMMIT_SETTING__ is NULL (the session's `synchronous_commit` applies),
-- or `set_config('synchronous_commit', 'off', true)` when the store commits
-- attempts asynchronously (`PostgresStoreConfig::asynchronous_attempt_commit`):
-- set for this transaction alone, in the statement itself, so it costs no
-- round trip. `input` reads it, so it runs before anything is written.
--
-- state: 0 pending, 1 leased, 2 failed (`queries::PENDING` and the rest).
-- next: 0 complete, 1 retry, 2 fail, 3 fail and disable
-- (`queries::NEXT_COMPLETE` and the rest).
WITH settings AS (
    SELECT __COMMIT_SETTING__ AS commit_setting
), input AS (
    SELECT i.* FROM settings, unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[],
        $5::text[], $6::uuid[], $7::timestamptz[], $8::boolean[], $9::integer[],
        $10::bytea[], $11::smallint[], $12::timestamptz[], $13::boolean[])
        WITH ORDINALITY AS i(delivery_id, token, org, sub_id, event_name, event_id,
            delivered_at, success, response_code, response_text, next, retry_at,
            tracked, ord)
), live AS (
    SELECT i.* FROM input i
    WHERE EXISTS (SELECT 1 FROM __SCHEMA__.subscriptions s
                  WHERE s.org = i.org AND s.id = i.sub_id)
), logged AS (
    INSERT INTO __SCHEMA__.attempt_logs (org, sub_id, event_name, delivery_id, event_id,
        delivered_at, success, response_code, response_text)
    SELECT org, sub_id, event_name, delivery_id, event_id, delivered_at, success,
        response_code, response_text
    FROM live ORDER BY ord
), trim_keys AS (
    SELECT org, sub_id, event_name, count(*) AS added FROM live
    GROUP BY org, sub_id, event_name
    HAVING random() * 16 < count(*)
), stale_logs AS (
    SELECT l.org, l.sub_id, l.event_name, l.seq
    FROM trim_keys k
    JOIN __SCHEMA__.attempt_logs l
        ON l.org = k.org AND l.sub_id = k.sub_id AND l.event_name = k.event_name
    WHERE l.seq <= (
        SELECT x.seq FROM __SCHEMA__.attempt_logs x
        WHERE x.org = k.org AND x.sub_id = k.sub_id AND x.event_name = k.event_name
        ORDER BY x.seq DESC OFFSET greatest(__LOG_CAP__ - k.added, 0) LIMIT 1
    )
    FOR UPDATE OF l SKIP LOCKED
), trimmed AS (
    DELETE FROM __SCHEMA__.attempt_logs l USING stale_logs o
    WHERE l.org = o.org AND l.sub_id = o.sub_id AND l.event_name = o.event_name
      AND l.seq = o.seq
), removed AS (
    DELETE FROM __SCHEMA__.deliveries d USING input i
    WHERE d.id = i.delivery_id AND d.lease_token = i.token
      AND (i.next = 0
           OR NOT EXISTS (SELECT 1 FROM live l WHERE l.ord = i.ord))
    RETURNING i.ord
), moved AS (
    UPDATE __SCHEMA__.deliveries d
    SET attempts = d.attempts + 1,
        state = CASE WHEN l.next = 1 THEN 0 ELSE 2 END,
        due_at = CASE WHEN l.next = 1 THEN l.retry_at ELSE d.due_at END,
        available_at =
            CASE WHEN l.next = 1 THEN l.retry_at ELSE d.due_at END,
        lease_token = NULL
    FROM live l
    WHERE d.id = l.delivery_id AND d.lease_token = l.token
      AND l.next <> 0
    RETURNING l.ord, l.next, l.org, l.sub_id
), disabled AS (
    UPDATE __SCHEMA__.subscriptions s SET enabled = false
    FROM moved m
    WHERE m.next = 3 AND s.org = m.org AND s.id = m.sub_id
), healed AS (
    DELETE FROM __SCHEMA__.endpoint_health h
    USING (SELECT DISTINCT org, sub_id FROM live WHERE success AND tracked) w
    WHERE h.org = w.org AND h.sub_id = w.sub_id
    RETURNING h.org, h.sub_id, h.paused_until IS NOT NULL AS was_open
)
SELECT i.ord,
    EXISTS (SELECT 1 FROM live l WHERE l.ord = i.ord)
    AND (EXISTS (SELECT 1 FROM removed r WHERE r.ord = i.ord)
         OR EXISTS (SELECT 1 FROM moved m WHERE m.ord = i.ord)) AS applied,
    EXISTS (SELECT 1 FROM live l WHERE l.ord = i.ord) AS live,
    i.success AND i.tracked AND EXISTS (
        SELECT 1 FROM healed x
        WHERE x.was_open AND x.org = i.org AND x.sub_id = i.sub_id) AS closed
FROM input i
