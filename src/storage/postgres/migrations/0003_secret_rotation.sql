-- Secret rotation: the secret a rotation replaced keeps signing next to the
-- new one until `previous_secret_expires_at`. Both NULL when there is none.
ALTER TABLE subscriptions
    ADD COLUMN previous_secret bytea,
    ADD COLUMN previous_secret_expires_at timestamptz;
