-- Gives a leased delivery back without an attempt. `due_at` is no later
-- than the claim, so it is claimable at once.
--
-- $1 = delivery id, $2 = lease token.
--
-- state: 0 pending, 1 leased, 2 failed (`queries::PENDING` and the rest).
UPDATE __SCHEMA__.deliveries
SET state = 0, available_at = due_at, lease_token = NULL
WHERE id = $1 AND lease_token = $2
