-- voice-agent data layer: call log, members, vouchers, redemptions, and the two RPC
-- functions the daemon calls through PostgREST (POST /rest/v1/rpc/<function>).
-- Idempotent: applying this file twice is harmless. Amounts are integers in the
-- currency's smallest unit. gen_random_uuid() is built into PostgreSQL 13+.

-- The seed's calls table and its four indexes (only "if not exists" added).
create table if not exists calls (
  id uuid primary key default gen_random_uuid(),
  from_number text not null,
  to_number text not null,
  call_sid text,
  transcript text,
  intent text,
  duration integer,
  status text,
  meta jsonb default '{}'::jsonb,
  created_at timestamptz default now()
);

create index if not exists idx_calls_from_number on calls(from_number);
create index if not exists idx_calls_to_number on calls(to_number);
create index if not exists idx_calls_call_sid on calls(call_sid);
create index if not exists idx_calls_created_at on calls(created_at desc);

create table if not exists public.members (
  id text primary key,
  balance bigint not null default 0 check (balance >= 0),
  currency text not null default 'RWF',
  created_at timestamptz not null default now()
);

create table if not exists public.vouchers (
  code text primary key,
  value bigint not null check (value > 0),
  currency text not null default 'RWF',
  single_use boolean not null default true,
  expires_at timestamptz null,
  redeemed_count integer not null default 0 check (redeemed_count >= 0),
  created_at timestamptz not null default now()
);

-- One row per idempotency key: the first result of redeem_voucher for that key
-- (failures included), and a hash of the arguments it was called with. No foreign
-- keys: a failed attempt (unknown code / member) is stored too.
create table if not exists public.voucher_redemptions (
  id uuid primary key default gen_random_uuid(),
  code text,
  member_id text,
  idempotency_key text not null unique,
  request_hash text not null,
  result jsonb not null,
  created_at timestamptz not null default now()
);

create index if not exists idx_voucher_redemptions_code on public.voucher_redemptions(code);
create index if not exists idx_voucher_redemptions_member_id on public.voucher_redemptions(member_id);

-- Row level security on, no policies: anon/authenticated see nothing; the service role
-- (BYPASSRLS in Supabase) and the security definer functions below do the work.
alter table calls enable row level security;
alter table public.members enable row level security;
alter table public.vouchers enable row level security;
alter table public.voucher_redemptions enable row level security;

create or replace function public.get_member_balance(p_member_id text)
returns jsonb
language plpgsql
stable
security definer
set search_path = public
as $$
declare
  m public.members%rowtype;
begin
  select * into m from public.members where id = p_member_id;
  if not found then
    return jsonb_build_object('success', false, 'error', 'unknown member', 'memberId', p_member_id);
  end if;
  return jsonb_build_object('success', true, 'memberId', m.id, 'balance', m.balance,
                            'currency', m.currency);
end;
$$;

-- Atomic, idempotent redemption. Concurrency:
--  * the same key: a transaction-scoped advisory lock on the key serialises callers; the
--    second one (read committed: each statement takes a fresh snapshot) then finds the
--    first one's stored result and returns it. The unique constraint on idempotency_key
--    is the backstop (a violation aborts, nothing is credited twice).
--  * the same code, other keys: the voucher row is locked FOR UPDATE, so exactly one
--    caller sees redeemed_count = 0 for a single-use code.
-- Lock order everywhere: advisory(key) -> vouchers row -> members row.
create or replace function public.redeem_voucher(p_code text, p_member_id text,
                                                 p_idempotency_key text)
returns jsonb
language plpgsql
volatile
security definer
set search_path = public
as $$
declare
  v_hash text;
  v_prev public.voucher_redemptions%rowtype;
  v public.vouchers%rowtype;
  m public.members%rowtype;
  v_result jsonb;
begin
  if p_idempotency_key is null or length(p_idempotency_key) = 0 then
    raise exception 'redeem_voucher: p_idempotency_key is required'
      using errcode = '22004', hint = 'Pass a unique key per logical request (e.g. the call_id).';
  end if;

  v_hash := encode(sha256(convert_to(jsonb_build_array(p_code, p_member_id)::text, 'UTF8')), 'hex');

  perform pg_advisory_xact_lock(hashtextextended('redeem_voucher:' || p_idempotency_key, 0));

  select * into v_prev from public.voucher_redemptions where idempotency_key = p_idempotency_key;
  if found then
    if v_prev.request_hash = v_hash then
      return v_prev.result;
    end if;
    return jsonb_build_object('success', false,
                              'error', 'idempotency key reused with other arguments',
                              'code', p_code);
  end if;

  select * into v from public.vouchers where code = p_code for update;
  if not found then
    v_result := jsonb_build_object('success', false, 'error', 'unknown code', 'code', p_code);
  else
    select * into m from public.members where id = p_member_id for update;
    if not found then
      v_result := jsonb_build_object('success', false, 'error', 'unknown member',
                                     'code', p_code, 'memberId', p_member_id);
    elsif v.single_use and v.redeemed_count > 0 then
      v_result := jsonb_build_object('success', false, 'error', 'already redeemed', 'code', p_code);
    elsif v.expires_at is not null and v.expires_at <= now() then
      v_result := jsonb_build_object('success', false, 'error', 'expired', 'code', p_code);
    elsif v.currency <> m.currency then
      v_result := jsonb_build_object('success', false, 'error', 'currency mismatch', 'code', p_code);
    else
      update public.vouchers set redeemed_count = redeemed_count + 1 where code = v.code;
      update public.members set balance = balance + v.value where id = m.id;
      v_result := jsonb_build_object('success', true, 'code', v.code, 'value', v.value,
                                     'currency', v.currency);
    end if;
  end if;

  insert into public.voucher_redemptions (code, member_id, idempotency_key, request_hash, result)
  values (p_code, p_member_id, p_idempotency_key, v_hash, v_result);
  return v_result;
end;
$$;

-- Privileges: nothing for PUBLIC/anon/authenticated; execute for service_role. The
-- Supabase roles do not exist on a plain PostgreSQL, hence the guards.
revoke all on function public.get_member_balance(text) from public;
revoke all on function public.redeem_voucher(text, text, text) from public;

do $$
declare
  r text;
begin
  foreach r in array array['anon', 'authenticated'] loop
    if exists (select 1 from pg_roles where rolname = r) then
      execute format('revoke all on table public.calls, public.members, public.vouchers, '
                     'public.voucher_redemptions from %I', r);
      execute format('revoke all on function public.get_member_balance(text), '
                     'public.redeem_voucher(text, text, text) from %I', r);
    end if;
  end loop;
  if exists (select 1 from pg_roles where rolname = 'service_role') then
    grant execute on function public.get_member_balance(text),
                              public.redeem_voucher(text, text, text) to service_role;
  end if;
end;
$$;
