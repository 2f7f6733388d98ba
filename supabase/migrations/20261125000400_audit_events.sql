-- Audit rows for changes that live outside Postgres (the global kill switch is a Redis key, so that
-- every isolate reads it in the request's one Redis round trip).
create function public.record_audit_event(p_action text, p_actor text, p_diff jsonb, p_deployment_id uuid default null)
returns jsonb
language sql
as $$
  insert into public.audit_logs (deployment_id, action, actor, source, diff)
  values (p_deployment_id, p_action, coalesce(nullif(p_actor, ''), 'api'), 'api', coalesce(p_diff, '{}'::jsonb))
  returning jsonb_build_object('id', id, 'action', action, 'actor', actor, 'diff', diff, 'createdAt', created_at)
$$;

create function public.list_global_audit_logs(p_limit integer default 50)
returns jsonb
language sql stable
as $$
  select coalesce(jsonb_agg(jsonb_build_object(
      'id', a.id, 'action', a.action, 'actor', a.actor, 'source', a.source, 'diff', a.diff, 'createdAt', a.created_at) order by a.id desc), '[]'::jsonb)
  from (select * from public.audit_logs where deployment_id is null order by id desc limit least(greatest(p_limit, 1), 500)) a
$$;

revoke execute on function public.record_audit_event(text, text, jsonb, uuid) from public, anon, authenticated;
revoke execute on function public.list_global_audit_logs(integer) from public, anon, authenticated;
grant execute on function public.record_audit_event(text, text, jsonb, uuid) to service_role;
grant execute on function public.list_global_audit_logs(integer) to service_role;

-- Alerts: one row per (deployment, type, window); a second firing in the same window is a no-op.
create function public.record_alert(p_deployment_id uuid, p_type text, p_severity text, p_window_key text, p_message text, p_data jsonb default '{}'::jsonb)
returns jsonb
language sql
as $$
  with ins as (
    insert into public.alerts (deployment_id, type, severity, window_key, message, data)
    values (p_deployment_id, p_type, p_severity, p_window_key, p_message, coalesce(p_data, '{}'::jsonb))
    on conflict (deployment_id, type, window_key) do nothing
    returning id
  )
  select jsonb_build_object('id', (select id from ins), 'created', exists (select 1 from ins))
$$;

create function public.mark_alert_delivered(p_id bigint, p_attempts integer, p_delivered boolean)
returns void
language sql
as $$
  update public.alerts set delivery_attempts = p_attempts, delivered_at = case when p_delivered then now() else delivered_at end
  where id = p_id
$$;

create function public.list_alerts(p_deployment_id uuid, p_limit integer default 50)
returns jsonb
language sql stable
as $$
  select coalesce(jsonb_agg(jsonb_build_object(
      'id', a.id, 'type', a.type, 'severity', a.severity, 'windowKey', a.window_key, 'message', a.message,
      'data', a.data, 'createdAt', a.created_at, 'deliveredAt', a.delivered_at, 'deliveryAttempts', a.delivery_attempts) order by a.id desc), '[]'::jsonb)
  from (select * from public.alerts where deployment_id = p_deployment_id order by id desc limit least(greatest(p_limit, 1), 500)) a
$$;

revoke execute on function public.record_alert(uuid, text, text, text, text, jsonb) from public, anon, authenticated;
revoke execute on function public.mark_alert_delivered(bigint, integer, boolean) from public, anon, authenticated;
revoke execute on function public.list_alerts(uuid, integer) from public, anon, authenticated;
grant execute on function public.record_alert(uuid, text, text, text, text, jsonb) to service_role;
grant execute on function public.mark_alert_delivered(bigint, integer, boolean) to service_role;
grant execute on function public.list_alerts(uuid, integer) to service_role;
