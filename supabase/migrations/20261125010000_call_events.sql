-- Call events from the daemon (through the call-webhook Edge Function) and the calls row
-- they add up to. Idempotent: applying this file twice is harmless. The seed's calls table
-- (previous migration) is not altered: no column, index or constraint is added to it.
--
-- Every event is stored once (call_events, keyed by the event id). The calls row of a
-- call_sid is not patched event by event: record_call_event() recomputes it from all the
-- events stored for that call_sid, so the result does not depend on the order events
-- arrive in, and a repeated event changes nothing.

create table if not exists public.call_events (
  id uuid primary key,                 -- the event id: the idempotency key
  call_sid text not null,
  type text not null,                  -- call.started | call.updated | call.ended | call.status
  seq integer not null,                -- the daemon's order within the call (0 for call.status)
  occurred_at timestamptz not null,
  payload jsonb not null,              -- the whole event as posted (schema-checked)
  received_at timestamptz not null default now()
);

create index if not exists idx_call_events_call_sid on public.call_events(call_sid);

-- RLS on, no policies: only the service role (BYPASSRLS in Supabase) and the security
-- definer function below touch it.
alter table public.call_events enable row level security;

-- record_call_event(p_event): store one event and recompute its call's row, in the
-- caller's transaction. Returns {"ok":true,"duplicate":bool,"call_sid":text}.
--   * duplicate: an event with this id is stored already (retries from the daemon): nothing
--     changes, the stored event's call_sid is returned. A concurrent insert of the same id
--     waits on the primary key, so exactly one caller sees duplicate = false.
--   * the calls row: a transaction advisory lock per call_sid serialises writers of one
--     call. Read committed takes a fresh snapshot per statement, so the writer holding the
--     lock sees every event committed before it, and any event still uncommitted belongs to
--     a writer that takes the lock (and recomputes) after it: the last commit always sees
--     all events.
--   * state: among call.started/updated/ended, the highest seq wins (ties: ended >
--     updated > started, then occurred_at, then id, so the winner never depends on arrival
--     order); it gives status, transcript, intent, duration and meta. The call.status event
--     with the latest occurred_at (then id) gives meta.twilio, and calls.duration when the
--     daemon's is null. A call known only from call.status events gets a row whose status
--     is Twilio's call_status.
--   * bad input (not an object, no call_sid, a bad id or timestamp) raises 22023/22P02/
--     22007: the Edge Function checks all of it first, this is the last line.
create or replace function public.record_call_event(p_event jsonb)
returns jsonb
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_id uuid;
  v_sid text;
  v_type text;
  v_seq integer;
  v_at timestamptz;
  v_new uuid;
  v_stored_sid text;
  d public.call_events%rowtype;   -- the daemon event that holds the latest state
  s public.call_events%rowtype;   -- the latest Twilio status event
  v_have_d boolean;
  v_have_s boolean;
  c jsonb;                        -- d's call object (empty when there is none)
  sc jsonb;                       -- s's call object (empty when there is none)
  tw jsonb;                       -- s's call.twilio
  v_count integer;
  v_status text;
  v_transcript text;
  v_duration integer;
  v_tw_duration integer;
  v_from text;
  v_to text;
  v_meta jsonb;
begin
  if p_event is null or jsonb_typeof(p_event) <> 'object'
     or jsonb_typeof(p_event -> 'call') is distinct from 'object' then
    raise exception 'record_call_event: the event must be an object with a call object'
      using errcode = '22023';
  end if;
  v_sid := p_event -> 'call' ->> 'call_sid';
  v_type := p_event ->> 'type';
  if v_sid is null or v_sid = '' then
    raise exception 'record_call_event: call.call_sid is required' using errcode = '22023';
  end if;
  if v_type is null or v_type not in ('call.started', 'call.updated', 'call.ended', 'call.status') then
    raise exception 'record_call_event: unknown event type' using errcode = '22023';
  end if;
  v_id := (p_event ->> 'id')::uuid;
  v_seq := (p_event ->> 'seq')::integer;
  v_at := (p_event ->> 'occurred_at')::timestamptz;
  if v_id is null or v_seq is null or v_at is null then
    raise exception 'record_call_event: id, seq and occurred_at are required' using errcode = '22023';
  end if;

  insert into public.call_events (id, call_sid, type, seq, occurred_at, payload)
  values (v_id, v_sid, v_type, v_seq, v_at, p_event)
  on conflict (id) do nothing
  returning id into v_new;
  if v_new is null then
    select e.call_sid into v_stored_sid from public.call_events e where e.id = v_id;
    return jsonb_build_object('ok', true, 'duplicate', true,
                              'call_sid', coalesce(v_stored_sid, v_sid));
  end if;

  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('call_events:' || v_sid, 0));

  select * into d from public.call_events e
  where e.call_sid = v_sid and e.type in ('call.started', 'call.updated', 'call.ended')
  order by e.seq desc,
           case e.type when 'call.ended' then 3 when 'call.updated' then 2 else 1 end desc,
           e.occurred_at desc, e.id desc
  limit 1;
  v_have_d := found;

  select * into s from public.call_events e
  where e.call_sid = v_sid and e.type = 'call.status'
  order by e.occurred_at desc, e.id desc
  limit 1;
  v_have_s := found;

  select count(*) into v_count from public.call_events e where e.call_sid = v_sid;

  c := case when v_have_d then d.payload -> 'call' else '{}'::jsonb end;
  sc := case when v_have_s then s.payload -> 'call' else '{}'::jsonb end;
  tw := sc -> 'twilio';
  if jsonb_typeof(tw) is distinct from 'object' then
    tw := null;
  end if;

  -- Twilio's duration has no upper bound in the schema: out of int range counts as none.
  if jsonb_typeof(tw -> 'duration') = 'number' and (tw ->> 'duration')::numeric between 0 and 2147483647 then
    v_tw_duration := (tw ->> 'duration')::numeric::integer;
  end if;
  if jsonb_typeof(c -> 'duration') = 'number' and (c ->> 'duration')::numeric between 0 and 2147483647 then
    v_duration := (c ->> 'duration')::numeric::integer;
  end if;
  v_duration := coalesce(v_duration, v_tw_duration);

  if v_have_d then
    v_status := c ->> 'status';
  else
    v_status := tw ->> 'call_status';
  end if;

  -- One line per turn: "Caller: ...", "Agent: ..." (+ " [interrupted]"), "DTMF: 5".
  if jsonb_typeof(c -> 'transcript') = 'array' then
    select string_agg(case t.turn ->> 'role' when 'caller' then 'Caller: '
                                             when 'agent' then 'Agent: '
                                             when 'dtmf' then 'DTMF: '
                                             else coalesce(t.turn ->> 'role', '?') || ': ' end
                      || coalesce(t.turn ->> 'text', '')
                      || case when (t.turn -> 'interrupted') = 'true'::jsonb then ' [interrupted]' else '' end,
                      E'\n' order by t.ord)
    into v_transcript
    from jsonb_array_elements(c -> 'transcript') with ordinality as t(turn, ord);
  end if;

  -- from/to: the daemon's, else the status callback's (Twilio always knows them).
  v_from := coalesce(nullif(c ->> 'from', ''), nullif(sc ->> 'from', ''), c ->> 'from', sc ->> 'from', '');
  v_to := coalesce(nullif(c ->> 'to', ''), nullif(sc ->> 'to', ''), c ->> 'to', sc ->> 'to', '');

  v_meta := jsonb_build_object(
    'stream_sid', coalesce(case when v_have_d then c else sc end -> 'stream_sid', 'null'::jsonb),
    'account_sid', coalesce(case when v_have_d then c else sc end -> 'account_sid', 'null'::jsonb),
    'reason', coalesce(c -> 'reason', 'null'::jsonb),
    'started_at', coalesce(c -> 'started_at', 'null'::jsonb),
    'ended_at', coalesce(c -> 'ended_at', 'null'::jsonb),
    'intent_source', coalesce(c -> 'intent_source', 'null'::jsonb),
    'transcript', coalesce(c -> 'transcript', '[]'::jsonb),
    'transcript_dropped', coalesce(c -> 'transcript_dropped', '0'::jsonb),
    'tool_calls', coalesce(c -> 'tool_calls', '[]'::jsonb),
    'audio', coalesce(c -> 'audio', 'null'::jsonb),
    'twilio', coalesce(tw, 'null'::jsonb),
    'last_event_id', case when v_have_d then to_jsonb(d.id::text) else to_jsonb(s.id::text) end,
    'last_seq', case when v_have_d then to_jsonb(d.seq) else 'null'::jsonb end,
    'event_count', v_count);

  update public.calls
  set from_number = v_from, to_number = v_to, transcript = v_transcript,
      intent = c ->> 'intent', duration = v_duration, status = v_status, meta = v_meta
  where call_sid = v_sid;
  if not found then
    insert into public.calls (from_number, to_number, call_sid, transcript, intent, duration,
                              status, meta)
    values (v_from, v_to, v_sid, v_transcript, c ->> 'intent', v_duration, v_status, v_meta);
  end if;

  return jsonb_build_object('ok', true, 'duplicate', false, 'call_sid', v_sid);
end;
$$;

-- Privileges: nothing for PUBLIC/anon/authenticated; execute for service_role. The
-- Edge Function connects as the database owner (SUPABASE_DB_URL). The Supabase roles do
-- not exist on a plain PostgreSQL, hence the guards.
revoke all on function public.record_call_event(jsonb) from public;

do $$
declare
  r text;
begin
  foreach r in array array['anon', 'authenticated'] loop
    if exists (select 1 from pg_roles where rolname = r) then
      execute format('revoke all on table public.call_events from %I', r);
      execute format('revoke all on function public.record_call_event(jsonb) from %I', r);
    end if;
  end loop;
  if exists (select 1 from pg_roles where rolname = 'service_role') then
    grant execute on function public.record_call_event(jsonb) to service_role;
  end if;
end;
$$;
