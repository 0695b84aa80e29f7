-- Events in commit order.
--
-- Lists (`GET /v1/events`: `starting_after`, `ending_before`) and streams
-- (`Last-Event-ID`) resume from an event. They used the insertion order
-- (`seq`), but a long transaction (a watcher step, a settlement batch) can
-- insert its event before a short one and commit after it: a client that
-- had seen the short one's event and asked for what came after never saw
-- the long one's. Now each event gets, when its transaction commits, the
-- next `position` of its merchant's clock, and lists and streams follow
-- `position`.
--
-- Invariant: within a merchant, an event with a higher position became
-- visible no earlier than every event with a lower one. So a reader that
-- has seen position p can ask for `position > p` and will never miss
-- anything, now or later.
--
-- Mechanism: `events_stamp`, a deferred constraint trigger, runs at COMMIT.
-- It bumps the merchant's `event_clocks` row, whose lock is then held until
-- the transaction has committed and become visible (PostgreSQL releases
-- locks after that), so the next transaction of that merchant takes the
-- next number only afterwards. The cost: event-writing commits of one
-- merchant are serialized for the length of a commit (the WAL flush, and
-- the synchronous replica's answer); other merchants do not wait. A
-- transaction that writes events of several merchants (a watcher step, an
-- expiry batch, anchoring) locks all their clocks first, in merchant order,
-- so two of them never deadlock: `events_note` remembers the merchants of
-- the transaction's events in a transaction-local setting. Nothing may run
-- `SET CONSTRAINTS … IMMEDIATE` on `events_stamp`, which would stamp early.

ALTER TABLE events ADD COLUMN position BIGINT CHECK (position > 0);

UPDATE events e SET position = r.n
  FROM (SELECT seq, row_number() OVER (PARTITION BY merchant_id ORDER BY seq) AS n FROM events) r
 WHERE r.seq = e.seq;

CREATE TABLE event_clocks (
    merchant_id TEXT PRIMARY KEY REFERENCES merchants (id),
    -- The last position given to one of the merchant's events (0: none).
    last        BIGINT NOT NULL CHECK (last >= 0)
);

INSERT INTO event_clocks (merchant_id, last)
SELECT merchant_id, max(position) FROM events GROUP BY merchant_id;

-- Each merchant once (a watcher step catching up may write thousands of
-- events); ids are `mer_` and 24 base62 characters, so `<id>,` matches
-- only itself.
CREATE FUNCTION events_note() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    noted TEXT := coalesce(current_setting('epg.event_merchants', true), '');
BEGIN
    IF strpos(noted, NEW.merchant_id || ',') = 0 THEN
        PERFORM set_config('epg.event_merchants', noted || NEW.merchant_id || ',', true);
    END IF;
    RETURN NEW;
END
$$;

CREATE FUNCTION events_stamp() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    merchants TEXT[];
    next BIGINT;
BEGIN
    IF current_setting('epg.event_clocks', true) IS DISTINCT FROM 'locked' THEN
        SELECT array_agg(DISTINCT m ORDER BY m) INTO merchants
          FROM unnest(string_to_array(current_setting('epg.event_merchants', true), ',')) AS m
         WHERE m <> '';
        INSERT INTO event_clocks (merchant_id, last)
        SELECT m, 0 FROM unnest(merchants) AS m ORDER BY m
        ON CONFLICT (merchant_id) DO NOTHING;
        PERFORM 1 FROM event_clocks WHERE merchant_id = ANY (merchants)
          ORDER BY merchant_id FOR UPDATE;
        PERFORM set_config('epg.event_clocks', 'locked', true);
    END IF;
    UPDATE event_clocks SET last = last + 1 WHERE merchant_id = NEW.merchant_id
    RETURNING last INTO next;
    UPDATE events SET position = next WHERE seq = NEW.seq;
    RETURN NULL;
END
$$;

CREATE TRIGGER events_note BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_note();

CREATE CONSTRAINT TRIGGER events_stamp AFTER INSERT ON events
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION events_stamp();

CREATE UNIQUE INDEX events_merchant_position ON events (merchant_id, position);
CREATE INDEX events_merchant_type_position ON events (merchant_id, type, position);
CREATE INDEX events_object_position ON events (merchant_id, object_id, position)
    WHERE object_id IS NOT NULL;
DROP INDEX events_merchant;
DROP INDEX events_merchant_type;
DROP INDEX events_object;
