-- Deletes claimed deliveries whose subscription or event is gone (see
-- `claim`), while their lease is still the one claimed.
--
-- $1 = delivery ids, $2 = their lease tokens.
DELETE FROM __SCHEMA__.deliveries WHERE id = ANY($1::uuid[]) AND lease_token = ANY($2::uuid[])
