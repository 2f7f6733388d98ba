-- The usage pipeline: events buffered in Redis are drained here in batches, exactly once.
alter table public.usage_events add column empty boolean not null default false;
alter table public.usage_events add column retries integer not null default 0;
alter table public.usage_events add column downgraded_to text;

-- Inserts a batch; a row already present (same request id and time) is skipped, so a drain that is
-- retried, or two drains racing, never count a call twice. Answers how many rows were new.
create function public.insert_usage_events(p_events jsonb)
returns integer
language plpgsql
as $$
declare
  v_inserted integer;
begin
  insert into public.usage_events (request_id, created_at, deployment_id, user_hash, session_id, feature, model, provider,
    route_reason, tokens_in, tokens_out, cost_usd, latency_ms, ttfb_ms, status, error_category, fallbacks, truncated,
    stream, stalled, empty, retries, downgraded_to)
  select e.request_id, e.created_at, e.deployment_id, e.user_hash, e.session_id, e.feature, e.model, e.provider,
    e.route_reason, coalesce(e.tokens_in, 0), coalesce(e.tokens_out, 0), coalesce(e.cost_usd, 0), e.latency_ms, e.ttfb_ms,
    e.status, e.error_category, coalesce(e.fallbacks, 0), coalesce(e.truncated, false), coalesce(e.stream, false),
    coalesce(e.stalled, false), coalesce(e.empty, false), coalesce(e.retries, 0), e.downgraded_to
  from jsonb_to_recordset(p_events) as e(
    request_id text, created_at timestamptz, deployment_id uuid, user_hash text, session_id text, feature text, model text,
    provider text, route_reason text, tokens_in integer, tokens_out integer, cost_usd numeric, latency_ms integer,
    ttfb_ms integer, status integer, error_category text, fallbacks integer, truncated boolean, stream boolean,
    stalled boolean, empty boolean, retries integer, downgraded_to text)
  on conflict (request_id, created_at) do nothing;
  get diagnostics v_inserted = row_count;
  return v_inserted;
end
$$;

create function public.record_deployment_usage_metrics(p_deployment_id uuid, p_metrics jsonb)
returns jsonb
language sql
as $$
  insert into public.deployment_usage_metrics (deployment_id, requests_count, tokens_used, models_used, avg_latency_ms, error_count, features_used)
  values (p_deployment_id, coalesce((p_metrics ->> 'requests')::integer, 0), coalesce((p_metrics ->> 'tokens')::bigint, 0),
          coalesce(p_metrics -> 'models', '[]'::jsonb), (p_metrics ->> 'latency')::numeric,
          coalesce((p_metrics ->> 'errors')::integer, 0), coalesce(p_metrics -> 'features', '[]'::jsonb))
  returning jsonb_build_object('id', id, 'reportedAt', reported_at)
$$;

-- Retention: whole monthly partitions older than the cutoff are dropped (no DELETE, no bloat);
-- rows that landed in the default partition are deleted in small batches.
create function public.purge_usage_events(p_keep_days integer default 90, p_batch integer default 5000)
returns jsonb
language plpgsql
security definer
set search_path = public
as $$
declare
  v_cutoff timestamptz := now() - make_interval(days => greatest(p_keep_days, 1));
  v_part record;
  v_dropped text[] := '{}';
  v_deleted integer := 0;
  v_n integer;
begin
  for v_part in
    select c.relname, pg_get_expr(c.relpartbound, c.oid) as bound
    from pg_inherits i join pg_class c on c.oid = i.inhrelid
    where i.inhparent = 'public.usage_events'::regclass and c.relname ~ '^usage_events_[0-9]{6}$'
  loop
    -- usage_events_YYYYMM holds that month; drop it once the whole month is past the cutoff.
    if (to_date(right(v_part.relname, 6), 'YYYYMM') + interval '1 month') <= v_cutoff then
      execute format('drop table public.%I', v_part.relname);
      v_dropped := v_dropped || v_part.relname::text;
    end if;
  end loop;
  loop
    delete from public.usage_events_default
    where ctid in (select ctid from public.usage_events_default where created_at < v_cutoff limit p_batch);
    get diagnostics v_n = row_count;
    v_deleted := v_deleted + v_n;
    exit when v_n < p_batch;
  end loop;
  perform public.ensure_usage_event_partitions(current_date, 3);
  return jsonb_build_object('droppedPartitions', to_jsonb(v_dropped), 'deletedRows', v_deleted);
end
$$;

-- Name, type and monitoring of deployments, for alert evaluation.
create function public.get_deployments_brief(p_ids uuid[])
returns jsonb
language sql stable
as $$
  select coalesce(jsonb_agg(jsonb_build_object('id', d.id, 'name', d.name, 'type', d.type, 'monitoring', d.monitoring)), '[]'::jsonb)
  from public.deployments d where d.id = any(p_ids)
$$;

create function public.count_usage_events(p_deployment_id uuid)
returns jsonb
language sql stable
as $$
  select jsonb_build_object('events', count(*), 'tokens', coalesce(sum(tokens_in + tokens_out), 0), 'cost', coalesce(sum(cost_usd), 0))
  from public.usage_events where deployment_id = p_deployment_id
$$;

do $$
declare
  f regprocedure;
begin
  for f in select p.oid::regprocedure from pg_proc p
           where p.pronamespace = 'public'::regnamespace
             and p.proname in ('insert_usage_events', 'record_deployment_usage_metrics', 'purge_usage_events', 'get_deployments_brief', 'count_usage_events') loop
    execute format('revoke execute on function %s from public, anon, authenticated', f);
    execute format('grant execute on function %s to service_role', f);
  end loop;
end
$$;
