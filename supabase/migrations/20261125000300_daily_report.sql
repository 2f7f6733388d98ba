-- The daily summary (seed 004 §10.5), computed in SQL over one UTC day of usage_events and upserted
-- into daily_reports: a rerun for the same date replaces the row, never duplicates it.
create function public.generate_daily_report(p_date date)
returns jsonb
language plpgsql
as $$
declare
  v_from timestamptz := p_date::timestamp at time zone 'UTC';
  v_to   timestamptz := (p_date + 1)::timestamp at time zone 'UTC';
  v_deployments jsonb;
  v_summary jsonb;
begin
  with ev as (
    select * from public.usage_events where created_at >= v_from and created_at < v_to
  ),
  per_deployment as (
    select
      d.id, d.name,
      count(e.request_id)::bigint as requests,
      coalesce(sum(e.tokens_in + e.tokens_out), 0)::bigint as tokens,
      coalesce(sum(e.cost_usd), 0) as cost,
      coalesce(round(avg(e.latency_ms)::numeric, 2), 0) as avg_latency,
      coalesce(percentile_cont(0.95) within group (order by e.latency_ms), 0) as p95_latency,
      case when count(e.request_id) = 0 then 0
           else round(count(*) filter (where e.status >= 400)::numeric / count(e.request_id), 6) end as error_rate
    from public.deployments d
    left join ev e on e.deployment_id = d.id
    group by d.id, d.name
  )
  select coalesce(jsonb_agg(jsonb_build_object(
      'deploymentId', p.id,
      'deploymentName', p.name,
      'requests', p.requests,
      'tokensUsed', p.tokens,
      'costEstimate', round(p.cost, 6),
      'avgLatency', p.avg_latency,
      'p95Latency', p.p95_latency,
      'errorRate', p.error_rate,
      'topModels', coalesce((
        select jsonb_agg(jsonb_build_object('model', m.model, 'usage', m.n) order by m.n desc, m.model)
        from (select e.model, count(*) as n from ev e where e.deployment_id = p.id and e.model is not null
              group by e.model order by n desc, e.model limit 5) m), '[]'::jsonb),
      'topFeatures', coalesce((
        select jsonb_agg(jsonb_build_object('feature', f.feature, 'usage', f.n) order by f.n desc, f.feature)
        from (select e.feature, count(*) as n from ev e where e.deployment_id = p.id and e.feature is not null
              group by e.feature order by n desc, e.feature limit 5) f), '[]'::jsonb),
      'costByModel', coalesce((
        select jsonb_object_agg(m.model, round(m.cost, 6))
        from (select e.model, sum(e.cost_usd) as cost from ev e where e.deployment_id = p.id and e.model is not null
              group by e.model) m), '{}'::jsonb)
    ) order by p.name, p.id), '[]'::jsonb)
  into v_deployments
  from per_deployment p;

  select jsonb_build_object(
    'date', to_char(p_date, 'YYYY-MM-DD'),
    'deployments', v_deployments,
    'totals', jsonb_build_object(
      'totalRequests', coalesce(sum((x ->> 'requests')::bigint), 0),
      'totalTokens', coalesce(sum((x ->> 'tokensUsed')::bigint), 0),
      'totalCost', round(coalesce(sum((x ->> 'costEstimate')::numeric), 0), 6),
      'avgErrorRate', round(coalesce(avg((x ->> 'errorRate')::numeric) filter (where (x ->> 'requests')::bigint > 0), 0), 6)))
  into v_summary
  from jsonb_array_elements(v_deployments) x;

  insert into public.daily_reports (report_date, summary, generated_at)
  values (p_date, v_summary, now())
  on conflict (report_date) do update set summary = excluded.summary, generated_at = excluded.generated_at;
  return v_summary;
end
$$;

create function public.get_daily_report(p_date date)
returns jsonb
language sql stable
as $$
  select jsonb_build_object('date', to_char(report_date, 'YYYY-MM-DD'), 'generatedAt', generated_at, 'summary', summary)
  from public.daily_reports where report_date = p_date
$$;

revoke execute on function public.generate_daily_report(date) from public, anon, authenticated;
revoke execute on function public.get_daily_report(date) from public, anon, authenticated;
grant execute on function public.generate_daily_report(date) to service_role;
grant execute on function public.get_daily_report(date) to service_role;
