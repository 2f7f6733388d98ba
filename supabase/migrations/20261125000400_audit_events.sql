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
