-- Inference Edge foundation: deployments, API keys, usage, reports, alerts, audit log.
-- Every table enables row level security here, in the file that creates it. The Workers reach the
-- data only through the SQL functions of the next migration, as service_role (which bypasses RLS);
-- anon and authenticated have no policy and therefore see nothing.

-- ---------------------------------------------------------------------------------------------
-- deployments
-- ---------------------------------------------------------------------------------------------
create table public.deployments (
  id              uuid primary key default gen_random_uuid(),
  name            text not null check (length(btrim(name)) between 1 and 100),
  type            text not null check (type in ('public', 'internal', 'hybrid')),
  environment     text not null default 'sandbox' check (environment in ('sandbox', 'production')),
  features        jsonb not null default '{}'::jsonb check (jsonb_typeof(features) = 'object'),
  rate_limits     jsonb not null default '{}'::jsonb check (jsonb_typeof(rate_limits) = 'object'),
  budgets         jsonb not null default '{}'::jsonb check (jsonb_typeof(budgets) = 'object'),
  routing         jsonb not null default '{}'::jsonb check (jsonb_typeof(routing) = 'object'),
  allowed_origins text[] not null default '{}',
  monitoring      jsonb not null default '{}'::jsonb check (jsonb_typeof(monitoring) = 'object'),
  timezone        text not null default 'UTC',
  config_version  bigint not null default 1,
  created_by      text not null default current_user,
  created_at      timestamptz not null default now(),
  updated_at      timestamptz not null default now()
);
alter table public.deployments enable row level security;
create index deployments_created_at_idx on public.deployments (created_at desc);

-- ---------------------------------------------------------------------------------------------
-- api_keys: only the SHA-256 of a key is stored; the key itself is shown once, at creation.
-- ---------------------------------------------------------------------------------------------
create table public.api_keys (
  id            uuid primary key default gen_random_uuid(),
  deployment_id uuid not null references public.deployments (id) on delete cascade,
  kind          text not null check (kind in ('publishable', 'secret')),
  key_hash      text not null unique check (key_hash ~ '^[0-9a-f]{64}$'),
  prefix        text not null check (length(prefix) between 8 and 16),
  environment   text not null check (environment in ('sandbox', 'production')),
  created_at    timestamptz not null default now(),
  revoked_at    timestamptz,
  last_used_at  timestamptz
);
alter table public.api_keys enable row level security;
create index api_keys_deployment_idx on public.api_keys (deployment_id, created_at desc);

-- ---------------------------------------------------------------------------------------------
-- usage_events: one row per proxied call, partitioned by month so that old months are dropped
-- (DROP TABLE of a partition: no DELETE, no bloat). The request id is unique per event; since a
-- buffered event keeps its created_at across retries, (request_id, created_at) is the idempotency key.
-- ---------------------------------------------------------------------------------------------
create table public.usage_events (
  request_id     text not null check (length(request_id) between 1 and 128),
  created_at     timestamptz not null,
  deployment_id  uuid not null,
  user_hash      text,
  session_id     text,
  feature        text,
  model          text,
  provider       text,
  route_reason   text,
  tokens_in      integer not null default 0 check (tokens_in >= 0),
  tokens_out     integer not null default 0 check (tokens_out >= 0),
  cost_usd       numeric(18, 8) not null default 0 check (cost_usd >= 0),
  latency_ms     integer check (latency_ms >= 0),
  ttfb_ms        integer check (ttfb_ms >= 0),
  status         integer not null,
  error_category text,
  fallbacks      integer not null default 0,
  truncated      boolean not null default false,
  stream         boolean not null default false,
  stalled        boolean not null default false,
  primary key (request_id, created_at)
) partition by range (created_at);
alter table public.usage_events enable row level security;
create index usage_events_deployment_time_idx on public.usage_events (deployment_id, created_at);
-- Catches rows outside every monthly partition so an insert is never refused for its date.
create table public.usage_events_default partition of public.usage_events default;
alter table public.usage_events_default enable row level security;

-- Creates the monthly partitions from p_from's month through p_months_ahead months later.
create function public.ensure_usage_event_partitions(p_from date default current_date, p_months_ahead integer default 3)
returns integer
language plpgsql
security definer -- creates tables; callable by service_role from the drain
set search_path = public
as $$
declare
  m date := date_trunc('month', p_from)::date;
  created integer := 0;
  part text;
begin
  for i in 0..p_months_ahead loop
    part := format('usage_events_%s', to_char(m, 'YYYYMM'));
    if to_regclass('public.' || part) is null then
      execute format(
        'create table public.%I partition of public.usage_events for values from (%L) to (%L)',
        part, m, (m + interval '1 month')::date);
      execute format('alter table public.%I enable row level security', part);
      created := created + 1;
    end if;
    m := (m + interval '1 month')::date;
  end loop;
  return created;
end
$$;
select public.ensure_usage_event_partitions(current_date - 31, 4);

-- ---------------------------------------------------------------------------------------------
-- deployment_usage_metrics: aggregates reported by apps that call providers themselves.
-- ---------------------------------------------------------------------------------------------
create table public.deployment_usage_metrics (
  id             bigint generated always as identity primary key,
  deployment_id  uuid not null references public.deployments (id) on delete cascade,
  requests_count integer not null default 0 check (requests_count >= 0),
  tokens_used    bigint not null default 0 check (tokens_used >= 0),
  models_used    jsonb not null default '[]'::jsonb,
  avg_latency_ms numeric(12, 2),
  error_count    integer not null default 0 check (error_count >= 0),
  features_used  jsonb not null default '[]'::jsonb,
  reported_at    timestamptz not null default now()
);
alter table public.deployment_usage_metrics enable row level security;
create index deployment_usage_metrics_dep_time_idx on public.deployment_usage_metrics (deployment_id, reported_at);

-- ---------------------------------------------------------------------------------------------
-- daily_reports: one DailySummary per day; a rerun replaces the row.
-- ---------------------------------------------------------------------------------------------
create table public.daily_reports (
  report_date  date primary key,
  summary      jsonb not null,
  generated_at timestamptz not null default now()
);
alter table public.daily_reports enable row level security;

-- ---------------------------------------------------------------------------------------------
-- alerts: deduplicated per (deployment, type, window).
-- ---------------------------------------------------------------------------------------------
create table public.alerts (
  id                bigint generated always as identity primary key,
  deployment_id     uuid references public.deployments (id) on delete set null,
  type              text not null,
  severity          text not null check (severity in ('info', 'warning', 'critical')),
  window_key        text not null,
  message           text not null,
  data              jsonb not null default '{}'::jsonb,
  created_at        timestamptz not null default now(),
  delivered_at      timestamptz,
  delivery_attempts integer not null default 0,
  unique nulls not distinct (deployment_id, type, window_key)
);
alter table public.alerts enable row level security;

-- ---------------------------------------------------------------------------------------------
-- audit_logs: append-only. No foreign key, so the history of a deleted deployment survives.
-- ---------------------------------------------------------------------------------------------
create table public.audit_logs (
  id            bigint generated always as identity primary key,
  deployment_id uuid,
  action        text not null,
  actor         text not null,
  source        text not null check (source in ('api', 'sql')),
  diff          jsonb not null default '{}'::jsonb,
  created_at    timestamptz not null default now()
);
alter table public.audit_logs enable row level security;
create index audit_logs_deployment_idx on public.audit_logs (deployment_id, id desc);

create function public.audit_logs_refuse_change()
returns trigger
language plpgsql
as $$
begin
  raise exception 'audit_logs is append-only: % refused', tg_op
    using errcode = 'insufficient_privilege';
end
$$;
create trigger audit_logs_append_only
  before update or delete on public.audit_logs
  for each row execute function public.audit_logs_refuse_change();
create trigger audit_logs_no_truncate
  before truncate on public.audit_logs
  for each statement execute function public.audit_logs_refuse_change();
revoke update, delete, truncate on public.audit_logs from public, anon, authenticated, service_role;

-- ---------------------------------------------------------------------------------------------
-- Change tracking on deployments and api_keys, whoever makes the change (API or direct SQL).
-- The API's SQL functions set inference_edge.actor / inference_edge.action for their transaction;
-- a direct edit (psql, Supabase Studio) is attributed to the database user, with source 'sql'.
-- ---------------------------------------------------------------------------------------------
create function public.audit_actor() returns text
language sql stable
as $$ select coalesce(nullif(current_setting('inference_edge.actor', true), ''), 'db:' || session_user) $$;

create function public.audit_source() returns text
language sql stable
as $$ select case when coalesce(current_setting('inference_edge.actor', true), '') = '' then 'sql' else 'api' end $$;

-- {"column": {"old": .., "new": ..}} for each changed column; jsonb objects are diffed one level
-- deeper ("features.smartRouting") so a flag flip reads as one entry, and can be reverted as one.
create function public.jsonb_diff(p_old jsonb, p_new jsonb, p_ignore text[] default '{}')
returns jsonb
language sql immutable
as $$
  select coalesce(jsonb_object_agg(d.key, d.change), '{}'::jsonb)
  from (
    select k.key, jsonb_build_object('old', p_old -> k.key, 'new', p_new -> k.key) as change
    from (select jsonb_object_keys(coalesce(p_old, '{}')) as key
          union select jsonb_object_keys(coalesce(p_new, '{}'))) k
    where k.key <> all (p_ignore)
      and (p_old -> k.key) is distinct from (p_new -> k.key)
      and not (coalesce(jsonb_typeof(p_old -> k.key) = 'object' and jsonb_typeof(p_new -> k.key) = 'object', false))
    union all
    select k.key || '.' || s.key, jsonb_build_object('old', p_old -> k.key -> s.key, 'new', p_new -> k.key -> s.key)
    from (select jsonb_object_keys(coalesce(p_old, '{}')) as key
          union select jsonb_object_keys(coalesce(p_new, '{}'))) k
    cross join lateral (
      select jsonb_object_keys(p_old -> k.key) as key
      union select jsonb_object_keys(p_new -> k.key)
    ) s
    where k.key <> all (p_ignore)
      and jsonb_typeof(p_old -> k.key) = 'object' and jsonb_typeof(p_new -> k.key) = 'object'
      and (p_old -> k.key -> s.key) is distinct from (p_new -> k.key -> s.key)
  ) d
$$;

create function public.deployments_before_write()
returns trigger
language plpgsql
as $$
begin
  -- An unknown time zone is refused here rather than at the first report.
  perform now() at time zone new.timezone;
  if tg_op = 'UPDATE' then
    new.id := old.id;
    new.created_at := old.created_at;
    new.created_by := old.created_by;
    new.config_version := old.config_version + 1;
    new.updated_at := now();
  else
    new.created_by := coalesce(nullif(current_setting('inference_edge.actor', true), ''), new.created_by);
  end if;
  return new;
end
$$;
create trigger deployments_before_write
  before insert or update on public.deployments
  for each row execute function public.deployments_before_write();

create function public.deployments_after_write()
returns trigger
language plpgsql
as $$
declare
  v_diff jsonb;
  v_row public.deployments := case when tg_op = 'DELETE' then old else new end;
  v_ignore text[] := array['config_version', 'updated_at', 'created_at', 'created_by'];
begin
  v_diff := public.jsonb_diff(
    case when tg_op = 'INSERT' then null else to_jsonb(old) end,
    case when tg_op = 'DELETE' then null else to_jsonb(new) end,
    v_ignore);
  if v_diff <> '{}'::jsonb then
    insert into public.audit_logs (deployment_id, action, actor, source, diff)
    values (
      v_row.id,
      coalesce(nullif(current_setting('inference_edge.action', true), ''),
               'deployment.' || case tg_op when 'INSERT' then 'created' when 'UPDATE' then 'updated' else 'deleted' end),
      public.audit_actor(), public.audit_source(), v_diff);
  end if;
  -- Carries the change to every isolate: LISTEN locally, a database webhook in production.
  perform pg_notify('deployment_changes', json_build_object(
    'op', tg_op, 'id', v_row.id,
    'configVersion', case when tg_op = 'DELETE' then null else v_row.config_version end)::text);
  return null;
end
$$;
create trigger deployments_after_write
  after insert or update or delete on public.deployments
  for each row execute function public.deployments_after_write();

-- A key change is a config change of its deployment: the version bump revokes cached keys everywhere.
create function public.api_keys_after_write()
returns trigger
language plpgsql
as $$
declare
  v_key public.api_keys := case when tg_op = 'DELETE' then old else new end;
  v_action text;
begin
  v_action := case
    when tg_op = 'INSERT' then 'key.created'
    when tg_op = 'DELETE' then 'key.deleted'
    when old.revoked_at is null and new.revoked_at is not null then 'key.revoked'
    when old.revoked_at is not null and new.revoked_at is null then 'key.restored'
    else null end;
  if v_action is null and tg_op = 'UPDATE'
     and (old.kind, old.key_hash, old.environment, old.deployment_id)
         is not distinct from (new.kind, new.key_hash, new.environment, new.deployment_id) then
    return null; -- last_used_at bookkeeping: not a config change
  end if;
  insert into public.audit_logs (deployment_id, action, actor, source, diff)
  values (v_key.deployment_id, coalesce(v_action, 'key.updated'), public.audit_actor(), public.audit_source(),
          jsonb_build_object('keyId', v_key.id, 'kind', v_key.kind, 'prefix', v_key.prefix,
                             'environment', v_key.environment));
  -- Only config_version/updated_at change, so the deployments trigger writes no second audit row.
  update public.deployments set updated_at = now() where id = v_key.deployment_id;
  return null;
end
$$;
create trigger api_keys_after_write
  after insert or update or delete on public.api_keys
  for each row execute function public.api_keys_after_write();
